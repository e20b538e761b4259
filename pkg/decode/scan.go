package decode

import (
	"bytes"
	"encoding/binary"
)

// The scanner validates JSON strictly (RFC 8259, valid UTF-8 in strings) in
// one pass without building values: it reports where each top-level member's
// key and value are, and leaves values as raw bytes. It is iterative, with an
// explicit depth counter, so hostile nesting costs no stack.

// Scanner result codes.
const (
	scanOK = iota
	scanSyntax
	scanUTF8
	scanDepth
)

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanString validates the string literal starting at b[i] == '"' and returns
// the index just past its closing quote and whether it holds escapes.
func scanString(b []byte, i int) (end int, escaped bool, code int) {
	i++
	for {
		for i+8 <= len(b) && plainWord(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			return i, escaped, scanSyntax
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, scanOK
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, scanSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(b, i+2); !ok {
					return i, escaped, scanSyntax
				}
				i += 6
			default:
				return i, escaped, scanSyntax
			}
		case c < 0x20:
			return i, escaped, scanSyntax
		case c < 0x80:
			i++
		default:
			n := utf8Len(b, i)
			if n == 0 {
				return i, escaped, scanUTF8
			}
			i += n
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// NumberEnd returns the index just past the JSON number (RFC 8259) that
// starts at b[i], and false when no valid number starts there.
func NumberEnd(b []byte, i int) (int, bool) {
	end, code := scanNumber(b, i)
	return end, code == scanOK
}

// scanNumber validates the number starting at b[i].
func scanNumber(b []byte, i int) (int, int) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, scanSyntax
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return i, scanSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return i, scanSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return i, scanSyntax
		}
	}
	return i, scanOK
}

// scanKey validates `"key"` `:` at b[i] (space allowed around the colon) and
// returns the index after the colon and the raw key (without quotes).
func scanKey(b []byte, i int) (next int, key []byte, escaped bool, code int) {
	if i >= len(b) || b[i] != '"' {
		return i, nil, false, scanSyntax
	}
	end, escaped, code := scanString(b, i)
	if code != scanOK {
		return end, nil, escaped, code
	}
	key = b[i+1 : end-1]
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return i, nil, escaped, scanSyntax
	}
	return i + 1, key, escaped, scanOK
}

// scanScalar validates the string, number or literal at b[i] and returns
// the index just past it.
func scanScalar(b []byte, i int) (int, int) {
	if i >= len(b) {
		return i, scanSyntax
	}
	switch b[i] {
	case '"':
		end, _, code := scanString(b, i)
		return end, code
	case 't':
		if len(b)-i >= 4 && b[i+1] == 'r' && b[i+2] == 'u' && b[i+3] == 'e' {
			return i + 4, scanOK
		}
	case 'f':
		if len(b)-i >= 5 && b[i+1] == 'a' && b[i+2] == 'l' && b[i+3] == 's' && b[i+4] == 'e' {
			return i + 5, scanOK
		}
	case 'n':
		if len(b)-i >= 4 && b[i+1] == 'u' && b[i+2] == 'l' && b[i+3] == 'l' {
			return i + 4, scanOK
		}
	default:
		return scanNumber(b, i)
	}
	return i, scanSyntax
}

// skipValue validates the JSON value at b[i] (leading space allowed) and
// returns the index just past it. depth is the nesting depth of whatever holds
// the value (0 for a document, 1 inside a top-level object); objects and
// arrays deeper than maxDepth fail with scanDepth. stack is reused scratch.
func skipValue(b []byte, i, depth, maxDepth int, stack *[]byte) (int, int) {
	i = skipSpace(b, i)
	if i < len(b) && b[i] != '{' && b[i] != '[' {
		return scanScalar(b, i)
	}
	st := (*stack)[:0]
	end, code := skipNested(b, i, depth, maxDepth, &st)
	*stack = st[:0]
	return end, code
}

func skipNested(b []byte, i, depth, maxDepth int, stack *[]byte) (int, int) {
	st := *stack
	defer func() { *stack = st }()
	code := scanOK
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, scanSyntax
		}
		if c := b[i]; c == '{' || c == '[' {
			depth++
			if depth > maxDepth {
				return i, scanDepth
			}
			i = skipSpace(b, i+1)
			if i >= len(b) {
				return i, scanSyntax
			}
			if c == '{' && b[i] == '}' || c == '[' && b[i] == ']' {
				i++
				depth--
			} else {
				if c == '{' {
					if i, _, _, code = scanKey(b, i); code != scanOK {
						return i, code
					}
				}
				st = append(st, c)
				continue
			}
		} else if i, code = scanScalar(b, i); code != scanOK {
			return i, code
		}
		// A value ended: close containers until one expects another value.
		for {
			if len(st) == 0 {
				return i, scanOK
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, scanSyntax
			}
			top, c := st[len(st)-1], b[i]
			if c == ',' {
				i++
				if top == '{' {
					if i, _, _, code = scanKey(b, skipSpace(b, i)); code != scanOK {
						return i, code
					}
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				st = st[:len(st)-1]
				depth--
				i++
				continue
			}
			return i, scanSyntax
		}
	}
}

// The functions below walk JSON that has already been validated (or that
// came from elsewhere, such as Doc.Set): they assume validity for speed but
// never read out of bounds or loop forever on anything else.

// rawStringEnd returns the index just past the string literal at b[i] == '"'.
func rawStringEnd(b []byte, i int) int {
	i++
	for {
		for i+8 <= len(b) && !quoteOrBackslash(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			return len(b)
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2
		default:
			i++
		}
	}
}

func quoteOrBackslash(x uint64) bool {
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return ((q-lsb)&^q|(bs-lsb)&^bs)&msb != 0
}

// rawValueEnd returns the index just past the value at b[i].
func rawValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return rawStringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = rawStringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// member is one member of an object being walked by nextMember.
type member struct {
	key     []byte // raw, without quotes
	escaped bool   // key holds escapes
	value   []byte
}

// nextMember reads the member at b[i] of a valid object (i just after '{' or
// after the previous member) and returns the index after it. At the end of
// the object it reports false and the index of the closing brace.
func nextMember(b []byte, i int) (member, int, bool) {
	i = skipSpace(b, i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return member{}, i, false
	}
	end := rawStringEnd(b, i)
	if end-i < 2 {
		return member{}, len(b), false
	}
	m := member{key: b[i+1 : end-1]}
	m.escaped = bytes.IndexByte(m.key, '\\') >= 0
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return member{}, len(b), false
	}
	i = skipSpace(b, i+1)
	vEnd := rawValueEnd(b, i)
	if vEnd <= i {
		return member{}, len(b), false
	}
	m.value = b[i:vEnd:vEnd]
	return m, vEnd, true
}

// keyIs reports whether the raw key (escaped or not) unescapes to s.
func keyIs(raw []byte, escaped bool, s string) bool {
	if !escaped {
		return string(raw) == s
	}
	var tmp [64]byte
	return string(appendUnescaped(tmp[:0], raw)) == s
}
