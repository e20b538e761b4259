package rules

import (
	"bytes"

	"github.com/streambudget/streambudget/pkg/decode"
)

// redacted is the JSON value a redacted field gets. Its capacity equals its
// length so that nobody can append into it.
var redacted = []byte(`"[REDACTED]"`)[:12:12]

const redactedText = "[REDACTED]"

// redact applies the field and pattern redactions to doc in place.
func (s *Set) redact(doc *decode.Doc, sc *scratch) {
	for _, path := range s.fields {
		redactField(doc, path)
	}
	if s.patterns == 0 {
		return
	}
	for i := range doc.Fields {
		v := doc.Fields[i].Value
		if !s.patterns.candidate(v) {
			continue
		}
		if out, ok := s.redactStrings(v, sc); ok {
			doc.Fields[i].Value = out
		}
	}
}

// redactField replaces the value at path (a top-level key, else a dotted
// path into nested objects) with "[REDACTED]".
func redactField(doc *decode.Doc, path string) {
	for i := range doc.Fields {
		if doc.Fields[i].Key == path {
			doc.Fields[i].Value = redacted
			return
		}
	}
	for i := range doc.Fields {
		k := doc.Fields[i].Key
		if n := len(k); len(path) > n && path[n] == '.' && path[:n] == k {
			v := doc.Fields[i].Value
			if start, end, ok := find(v, path[n+1:]); ok {
				out := make([]byte, 0, len(v)-(end-start)+len(redacted))
				out = append(out, v[:start]...)
				out = append(out, redacted...)
				doc.Fields[i].Value = append(out, v[end:]...)
				return
			}
		}
	}
}

// redactStrings replaces the pattern matches in every string value (not
// key) of the raw JSON value v. It returns a new value, or false and no
// allocation when nothing matched.
func (s *Set) redactStrings(v []byte, sc *scratch) ([]byte, bool) {
	var out []byte
	last := 0
	for i := 0; i < len(v); {
		q := bytes.IndexByte(v[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		end := stringEnd(v, start)
		if end > len(v) || end-start < 2 {
			break
		}
		i = end
		if k := skipSpace(v, end); k < len(v) && v[k] == ':' {
			continue // a key
		}
		text, ok := textOf(v[start:end], sc)
		if !ok {
			continue
		}
		sc.spans = s.patterns.find(text, sc.spans[:0])
		if len(sc.spans) == 0 {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(v)+len(redactedText))
		}
		out = append(out, v[last:start]...)
		sc.out = appendRedacted(sc.out[:0], text, sc.spans)
		out = decode.AppendString(out, string(sc.out))
		last = end
	}
	if out == nil {
		return v, false
	}
	return append(out, v[last:]...), true
}

// appendRedacted appends text with each span replaced by [REDACTED]; spans
// are sorted and do not overlap.
func appendRedacted(dst, text []byte, spans []span) []byte {
	prev := 0
	for _, sp := range spans {
		dst = append(dst, text[prev:sp.start]...)
		dst = append(dst, redactedText...)
		prev = sp.end
	}
	return append(dst, text[prev:]...)
}

// The helpers below walk raw JSON values, which come from the decoder and
// are valid; on anything else they stop early and never read out of bounds.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string literal at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b) + 1
}

// valueEnd returns the index just past the JSON value at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return min(stringEnd(b, i), len(b))
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = min(stringEnd(b, i), len(b))
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
		i++
	}
	return i
}

// find locates path (a key, or a dotted path) inside the raw object obj and
// returns the span of its value.
func find(obj []byte, path string) (start, end int, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return 0, 0, false
	}
	var tmp [64]byte
	for i++; ; {
		i = skipSpace(obj, i)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		if i >= len(obj) || obj[i] != '"' {
			return 0, 0, false
		}
		kEnd := stringEnd(obj, i)
		if kEnd > len(obj) {
			return 0, 0, false
		}
		key := obj[i+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			key, _ = decode.AppendText(tmp[:0], obj[i:kEnd])
		}
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return 0, 0, false
		}
		vStart := skipSpace(obj, i+1)
		vEnd := valueEnd(obj, vStart)
		if vEnd <= vStart {
			return 0, 0, false
		}
		i = vEnd
		if string(key) == path {
			return vStart, vEnd, true
		}
		if n := len(key); len(path) > n && path[n] == '.' && path[:n] == string(key) {
			if s, e, ok := find(obj[vStart:vEnd], path[n+1:]); ok {
				return vStart + s, vStart + e, true
			}
		}
	}
}
