package decode

import (
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// AppendString appends s to dst as a JSON string literal, quotes included.
// Quotes, backslashes and control characters are escaped (\n, \r, \t, and
// \u00XX for the others, NUL included); valid multi-byte UTF-8 is kept as is
// and each byte of invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainWord reports whether none of the 8 bytes in x needs attention inside a
// JSON string: no control character, quote, backslash or non-ASCII byte.
// When no byte has its top bit set, subtracting 0x20 or 1 from every byte
// borrows (sets a top bit) exactly where a byte is below 0x20 or zero.
func plainWord(x uint64) bool {
	return ((x-lsb*0x20)|x|((x^lsb*'"')-lsb)|((x^lsb*'\\')-lsb))&msb == 0
}

// noBackslash reports whether none of the 8 bytes in x is a backslash.
func noBackslash(x uint64) bool {
	y := x ^ lsb*'\\'
	return (y-lsb)&^y&msb == 0
}

func load64[T string | []byte](s T, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

const hexDigits = "0123456789abcdef"

func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start, i := 0, 0
	for i < len(s) {
		for i+8 <= len(s) && plainWord(load64(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if n := utf8Len(s, i); n > 0 {
				i += n
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// utf8Len returns the length of the valid UTF-8 sequence starting at s[i],
// or 0 if there is none (bad lead byte, bad continuation, overlong form,
// surrogate, above U+10FFFF or truncated), as unicode/utf8 decodes it.
func utf8Len[T string | []byte](s T, i int) int {
	var r rune
	var n int
	switch v := any(s).(type) {
	case string:
		r, n = utf8.DecodeRuneInString(v[i:])
	case []byte:
		r, n = utf8.DecodeRune(v[i:])
	}
	if r == utf8.RuneError && n <= 1 {
		return 0
	}
	return n
}

// appendUnescaped appends the text of the inside of a JSON string literal
// (without its quotes). Lone surrogates become U+FFFD like encoding/json does.
// It never panics on malformed input: a bad escape is copied as is.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := i
		for j+8 <= len(s) && noBackslash(binary.LittleEndian.Uint64(s[j:])) {
			j += 8
		}
		for j < len(s) && s[j] != '\\' {
			j++
		}
		dst = append(dst, s[i:j]...)
		if i = j; i >= len(s) {
			return dst
		}
		if i+1 >= len(s) {
			return append(dst, '\\')
		}
		switch c := s[i+1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				dst = append(dst, '\\')
				i++
				continue
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if r < 0xDC00 && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok = hex4(s, i+2)
				}
				if ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
					r = utf16.DecodeRune(r, r2)
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			dst = append(dst, '\\')
			i++
			continue
		}
		i += 2
	}
	return dst
}

// hex4 decodes the 4 hex digits at s[i:i+4].
func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// AppendText appends the text of a raw JSON value: a string unescaped, a
// number or boolean as its literal. It reports false, appending nothing, for
// objects, arrays, null and anything that is not a JSON value.
func AppendText(dst, raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return dst, false
	}
	switch c := raw[0]; {
	case c == '"':
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return dst, false
		}
		return appendUnescaped(dst, raw[1:len(raw)-1]), true
	case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
		return append(dst, raw...), true
	}
	return dst, false
}
