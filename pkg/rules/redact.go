package rules

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/streambudget/streambudget/pkg/decode"
)

// redacted is the JSON value a redacted field gets. Its capacity equals its
// length so that nobody can append into it.
var redacted = []byte(`"[REDACTED]"`)[:12:12]

const redactedText = "[REDACTED]"

// redact applies the field and pattern redactions to doc in place.
func (s *Set) redact(doc *decode.Doc, sc *scratch) {
	for _, path := range s.fields {
		redactField(doc, path, sc)
	}
	if doc.IsText && len(s.textKeys) > 0 {
		for i := range doc.Fields {
			if f := &doc.Fields[i]; f.Key == "message" && s.textHoldsField(f.Value, sc) {
				f.Value = redacted
			}
		}
	}
	if s.patterns == 0 {
		return
	}
	for i := range doc.Fields {
		f := &doc.Fields[i]
		if s.patterns.keyCandidate(f.Key) {
			sc.spans = s.patterns.find([]byte(f.Key), sc.spans[:0])
			if len(sc.spans) > 0 {
				f.Key = string(appendRedacted(nil, []byte(f.Key), sc.spans))
			}
		}
		if !s.patterns.candidate(f.Value) {
			continue
		}
		if out, ok := s.redactStrings(f.Value, sc); ok {
			f.Value = out
		}
	}
}

// HasFieldRules reports whether the set redacts fields by name: such rules
// need a decoded document, so raw bytes cannot be redacted with them.
func (s *Set) HasFieldRules() bool { return len(s.fields) > 0 }

// redactField replaces with "[REDACTED]" every value at or below path: a
// top-level key, or a dotted path that reaches into nested objects, where
// any key on the way may itself hold dots (Elasticsearch reads
// {"password.old":1} as {"password":{"old":1}}), arrays are crossed (as
// Elasticsearch's field paths cross them), keys are compared without case,
// and every member of a key given more than once is redacted, not only the
// first. path is lower case.
func redactField(doc *decode.Doc, path string, sc *scratch) {
	for i := range doc.Fields {
		f := &doc.Fields[i]
		whole, rest := matchPath(f.Key, path)
		switch {
		case whole:
			f.Value = redacted
		case rest != "":
			sc.fieldSpans = collectPath(f.Value, 0, rest, sc.fieldSpans[:0])
			if len(sc.fieldSpans) > 0 {
				f.Value = splice(f.Value, sc.fieldSpans)
			}
		}
	}
}

// textHoldsField reports whether a text message (the raw JSON string of a
// record that is not a JSON object: broken JSON, an array, a Python or Java
// map, a log line ending in JSON) may hold the value of a field the team
// redacts: one of the field names, in any case and however JSON escapes
// spell it, followed by quotes or spaces and ':' or '='. The field rules
// cannot find the value in text, so such a message is redacted whole.
func (s *Set) textHoldsField(raw []byte, sc *scratch) bool {
	text, ok := textOf(raw, sc)
	if !ok {
		return true // not a string: cannot tell
	}
	sc.lower = lowerUnescaped(sc.lower[:0], text, false)
	if s.holdsKey(sc.lower) {
		return true
	}
	// \t, \n, \r, \b and \f are also read as the letters they spell
	// (passwo\rd=...): whichever the writer meant, the message is caught.
	if !hasLetterEscape(text) {
		return false
	}
	sc.lower = lowerUnescaped(sc.lower[:0], text, true)
	return s.holdsKey(sc.lower)
}

// holdsKey reports whether lower holds one of the text keys followed by
// quotes or spaces and ':' or '='.
func (s *Set) holdsKey(lower []byte) bool {
	for _, key := range s.textKeys {
		if key == "" {
			continue // refused by Compile; never a match of everything
		}
		for rest := lower; ; {
			i := bytes.Index(rest, []byte(key))
			if i < 0 {
				break
			}
			rest = rest[i+len(key):]
			j := 0
			for j < len(rest) && (rest[j] == '"' || rest[j] == '\'' || rest[j] == '`' || rest[j] == ' ' || rest[j] == '\t' || rest[j] == '\n' || rest[j] == '\r') {
				j++
			}
			if j < len(rest) && (rest[j] == ':' || rest[j] == '=') {
				return true
			}
		}
	}
	return false
}

// hasLetterEscape reports whether text holds a backslash before t, n, r, b
// or f.
func hasLetterEscape(text []byte) bool {
	for i := bytes.IndexByte(text, '\\'); i >= 0 && i+1 < len(text); {
		switch text[i+1] {
		case 't', 'n', 'r', 'b', 'f':
			return true
		}
		j := bytes.IndexByte(text[i+2:], '\\')
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return false
}

// lowerUnescaped appends text in lower case with the JSON escapes it holds
// (a record that is broken JSON keeps its own) decoded: \uXXXX as the
// character, \t, \n, \r, \b and \f as theirs (as the letters with
// letters set), \X as X. Runs of ASCII
// without a backslash, nearly all of a log line, are copied and lowered
// eight bytes at a time.
func lowerUnescaped(dst, text []byte, letters bool) []byte {
	for len(text) > 0 {
		n := plainRun(text)
		start := len(dst)
		dst = append(dst, text[:n]...)
		lowerASCII(dst[start:])
		text = text[n:]
		switch {
		case len(text) == 0:
		case text[0] == '\\' && len(text) > 1:
			r, size := unescapeOne(text, letters)
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
			text = text[size:]
		case text[0] == '\\':
			dst, text = append(dst, '\\'), text[1:]
		default:
			r, size := utf8.DecodeRune(text)
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
			text = text[size:]
		}
	}
	return dst
}

// unescapeOne decodes the escape at the start of text (a backslash and at
// least one more byte) and says how many bytes it took; with letters, \t,
// \n, \r, \b and \f are the letters.
func unescapeOne(text []byte, letters bool) (rune, int) {
	c := text[1]
	if letters && c != 'u' && c < utf8.RuneSelf {
		return rune(c), 2
	}
	switch c {
	case 'u':
		if len(text) >= 6 {
			if r, err := strconv.ParseUint(string(text[2:6]), 16, 32); err == nil {
				return rune(r), 6
			}
		}
		return 'u', 2
	case 't':
		return '\t', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	default:
		if c < utf8.RuneSelf {
			return rune(c), 2
		}
		r, size := utf8.DecodeRune(text[1:])
		return r, 1 + size
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainRun returns how many bytes at the start of text are ASCII other
// than a backslash.
func plainRun(text []byte) int {
	n := 0
	for ; n+8 <= len(text); n += 8 {
		w := binary.LittleEndian.Uint64(text[n:])
		bs := w ^ ('\\' * ones) // zero bytes where w has a backslash
		if (w|((bs-ones)&^bs))&highs != 0 {
			break
		}
	}
	for n < len(text) && text[n] < utf8.RuneSelf && text[n] != '\\' {
		n++
	}
	return n
}

// lowerASCII lowers the ASCII letters of b, which holds only ASCII, in
// place.
func lowerASCII(b []byte) {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		// The high bit of each byte is set where the byte is 'A'..'Z':
		// at or above 'A' and not above 'Z' (every byte is below 0x80).
		upper := (w + (0x80-'A')*ones) &^ (w + (0x7f-'Z')*ones) & highs
		binary.LittleEndian.PutUint64(b[i:], w|upper>>2)
	}
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// matchPath says where key stands against the lower-case dotted path:
// whole when the key's value is at or below the path (the key is the path,
// or the path followed by a dot and more), or the rest of the path to
// follow inside the value when the key is a leading part of it. Keys are
// compared without case.
func matchPath(key, path string) (whole bool, rest string) {
	if len(key) > 0 {
		// Most keys differ from the path in their first letter.
		c := key[0]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c < utf8.RuneSelf && c != path[0] {
			return false, ""
		}
	}
	if !isASCII(key) {
		key = strings.ToLower(key)
	}
	n := len(path)
	switch {
	case len(key) == n && foldEq(key, path) || len(key) > n && key[n] == '.' && foldEq(key[:n], path):
		return true, ""
	case n > len(key) && path[len(key)] == '.' && foldEq(key, path[:len(key)]):
		return false, path[len(key)+1:]
	}
	return false, ""
}

// foldEq reports whether key equals the lower-case s of the same length,
// ignoring the case of the key's ASCII letters; no allocation (keys are
// compared for every field rule of every document).
func foldEq(key, s string) bool {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// isASCII reports whether s has no byte outside ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// collectPath appends the spans of every value at path inside the raw JSON
// value v (which starts at offset base of the whole value).
func collectPath(v []byte, base int, path string, spans []span) []span {
	i := skipSpace(v, 0)
	if i >= len(v) {
		return spans
	}
	switch v[i] {
	case '[':
		for i = skipSpace(v, i+1); i < len(v) && v[i] != ']'; {
			end := valueEnd(v, i)
			if end <= i {
				return spans
			}
			spans = collectPath(v[i:end], base+i, path, spans)
			i = skipSpace(v, end)
			if i < len(v) && v[i] == ',' {
				i = skipSpace(v, i+1)
			}
		}
	case '{':
		var tmp [64]byte
		for i = skipSpace(v, i+1); i < len(v) && v[i] == '"'; {
			kEnd := stringEnd(v, i)
			if kEnd > len(v) {
				return spans
			}
			key := v[i+1 : kEnd-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key, _ = decode.AppendText(tmp[:0], v[i:kEnd])
			}
			i = skipSpace(v, kEnd)
			if i >= len(v) || v[i] != ':' {
				return spans
			}
			vStart := skipSpace(v, i+1)
			vEnd := valueEnd(v, vStart)
			if vEnd <= vStart {
				return spans
			}
			switch whole, rest := matchPath(string(key), path); {
			case whole:
				spans = append(spans, span{base + vStart, base + vEnd})
			case rest != "":
				spans = collectPath(v[vStart:vEnd], base+vStart, rest, spans)
			}
			i = skipSpace(v, vEnd)
			if i < len(v) && v[i] == ',' {
				i = skipSpace(v, i+1)
			}
		}
	}
	return spans
}

// splice returns v with every span (sorted, not overlapping) replaced by
// "[REDACTED]".
func splice(v []byte, spans []span) []byte {
	out := make([]byte, 0, len(v)+len(spans)*len(redacted))
	prev := 0
	for _, sp := range spans {
		if sp.start < prev {
			continue
		}
		out = append(out, v[prev:sp.start]...)
		out = append(out, redacted...)
		prev = sp.end
	}
	return append(out, v[prev:]...)
}

// redactStrings replaces the pattern matches in every string of the raw
// JSON value v, keys included, and the card numbers written as JSON numbers
// (which become the string "[REDACTED]"). It returns a new value, or false
// and no allocation when nothing matched.
func (s *Set) redactStrings(v []byte, sc *scratch) ([]byte, bool) {
	var out []byte
	last := 0
	emit := func(start, end int, repl []byte) {
		if out == nil {
			out = make([]byte, 0, len(v)+len(redactedText))
		}
		out = append(out, v[last:start]...)
		out = append(out, repl...)
		last = end
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c == '-' || isDigit(c) {
			end := i
			for end < len(v) && (isDigit(v[end]) || v[end] == '-' || v[end] == '+' || v[end] == '.' || v[end] == 'e' || v[end] == 'E') {
				end++
			}
			if s.patterns&patCreditCard != 0 && (end-i >= 13 || bytes.ContainsAny(v[i:end], ".eE")) {
				num := v[i:end]
				if digits, ok := integerDigits(num, sc.num[:0]); ok {
					sc.num, num = digits, digits // 4.111111111111111e15 is 4111111111111111
				}
				sc.spans = findCards(num, sc.spans[:0])
				if len(sc.spans) > 0 {
					emit(i, end, redacted)
				}
			}
			i = end
			continue
		}
		if c != '"' {
			i++
			continue
		}
		start := i
		end := stringEnd(v, start)
		if end > len(v) || end-start < 2 {
			break
		}
		i = end
		text, ok := textOf(v[start:end], sc)
		if !ok {
			continue
		}
		sc.spans = s.patterns.find(text, sc.spans[:0])
		if len(sc.spans) == 0 {
			continue
		}
		sc.out = appendRedacted(sc.out[:0], text, sc.spans)
		emit(start, end, decode.AppendString(nil, string(sc.out)))
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

// integerDigits writes the digits of the JSON number num when it has a
// fraction or an exponent and its value is a whole number of 13 to 19
// digits (the lengths of card numbers), and reports whether it did.
func integerDigits(num, dst []byte) ([]byte, bool) {
	mant, exp := num, 0
	if i := bytes.IndexAny(num, "eE"); i >= 0 {
		mant = num[:i]
		e, neg := 0, false
		for _, c := range num[i+1:] {
			switch {
			case c == '-':
				neg = true
			case isDigit(c):
				if e = e*10 + int(c-'0'); e > 100 {
					return dst, false
				}
			}
		}
		if neg {
			e = -e
		}
		exp = e
	} else if bytes.IndexByte(num, '.') < 0 {
		return dst, false // a plain integer: findCards reads it as it is
	}
	if len(mant) > 0 && mant[0] == '-' {
		mant = mant[1:]
	}
	point := bytes.IndexByte(mant, '.')
	if point < 0 {
		point = len(mant)
	}
	dst = append(dst, mant[:point]...)
	if point < len(mant) {
		dst = append(dst, mant[point+1:]...)
	}
	// The value is dst x 10^(exp - fraction digits).
	shift := exp - (len(mant) - min(point+1, len(mant)))
	for ; shift > 0; shift-- {
		dst = append(dst, '0')
	}
	for ; shift < 0; shift++ {
		if len(dst) == 0 || dst[len(dst)-1] != '0' {
			return dst, false // a fraction remains
		}
		dst = dst[:len(dst)-1]
	}
	for len(dst) > 1 && dst[0] == '0' {
		dst = dst[1:]
	}
	return dst, len(dst) >= 13 && len(dst) <= 19
}
