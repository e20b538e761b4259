package rules

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/streambudget/streambudget/pkg/budget"
)

// The built-in detectors are hand-written matchers rather than regular
// expressions: each has a cheap prefilter (a byte or a short literal that
// every match holds), so text without a candidate costs one fast scan, and
// the matchers run in linear time on any input.
//
//	email           [A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}
//	credit-card     13 to 19 digits, groups optionally separated by one space
//	                or dash, not inside a longer word or number, Luhn-valid
//	aws-access-key  (AKIA|ASIA)[A-Z0-9]{16}, not inside a longer [A-Z0-9] run
//	bearer-token    "bearer" (any case), spaces, [A-Za-z0-9._~+/-]+ and any "="
//	                padding; the whole match, "Bearer" included, is replaced

// patterns is a set of built-in detectors.
type patterns uint8

const (
	patEmail patterns = 1 << iota
	patCreditCard
	patAWSAccessKey
	patBearerToken
)

var patternByName = map[string]patterns{
	budget.PatternEmail:        patEmail,
	budget.PatternCreditCard:   patCreditCard,
	budget.PatternAWSAccessKey: patAWSAccessKey,
	budget.PatternBearerToken:  patBearerToken,
}

// span is a match: text[start:end].
type span struct{ start, end int }

// candidate reports whether the raw JSON value v may hold a match. A \u
// escape can hide any character, so a value with one is always a candidate.
func (p patterns) candidate(v []byte) bool {
	if len(v) > 0 && (v[0] == '-' || isDigit(v[0])) {
		return p&patCreditCard != 0 && (hasDigitRun(v) || hasExponent(v)) // a card number written as a number
	}
	if len(v) == 0 || v[0] != '"' && v[0] != '{' && v[0] != '[' {
		return false // booleans and null hold no string
	}
	at, backslash := scanAtBackslash(v)
	return p&patEmail != 0 && at ||
		p&patAWSAccessKey != 0 && hasAWSPrefix(v) ||
		p&patBearerToken != 0 && hasBearer(v) ||
		p&patCreditCard != 0 && (hasDigitRun(v) || hasExponent(v)) ||
		backslash && bytes.Contains(v, []byte(`\u`))
}

// hasExponent reports whether b holds a digit followed by e or E: a number
// with an exponent, which can spell a card number in few digits (43e11).
func hasExponent(b []byte) bool {
	for i := 1; i < len(b); i++ {
		if (b[i] == 'e' || b[i] == 'E') && isDigit(b[i-1]) {
			return true
		}
	}
	return false
}

// keyCandidate reports whether a top-level key (unescaped) may hold a
// match.
func (p patterns) keyCandidate(k string) bool {
	return p&patEmail != 0 && strings.IndexByte(k, '@') >= 0 ||
		p&patAWSAccessKey != 0 && hasAWSPrefix([]byte(k)) ||
		p&patBearerToken != 0 && hasBearer([]byte(k)) ||
		p&patCreditCard != 0 && hasDigitRun([]byte(k))
}

// scanAtBackslash reports whether b holds an '@' and a backslash, in one
// pass of eight bytes at a time.
func scanAtBackslash(b []byte) (at, backslash bool) {
	var acc uint64 // top bit of byte 0..7: '@' seen; shifted copy: backslash seen
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		a, s := x^lsb*'@', x^lsb*'\\'
		acc |= (a-lsb)&^a&msb | ((s-lsb)&^s&msb)>>7
	}
	at, backslash = acc&msb != 0, acc&(msb>>7) != 0
	for ; i < len(b); i++ {
		at = at || b[i] == '@'
		backslash = backslash || b[i] == '\\'
	}
	return at, backslash
}

// find appends the matches of every detector in p to spans, sorted and
// merged where they overlap.
func (p patterns) find(text []byte, spans []span) []span {
	n0 := len(spans)
	if p&patEmail != 0 && bytes.IndexByte(text, '@') >= 0 {
		spans = findEmails(text, spans)
	}
	if p&patCreditCard != 0 && hasDigitRun(text) {
		spans = findCards(text, spans)
	}
	if p&patAWSAccessKey != 0 && hasAWSPrefix(text) {
		spans = findAWSKeys(text, spans)
	}
	if p&patBearerToken != 0 && hasBearer(text) {
		spans = findBearer(text, spans)
	}
	found := spans[n0:]
	if len(found) < 2 {
		return spans
	}
	slices.SortFunc(found, func(a, b span) int { return a.start - b.start })
	merged := found[:1]
	for _, sp := range found[1:] {
		last := &merged[len(merged)-1]
		if sp.start < last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		merged = append(merged, sp)
	}
	return spans[:n0+len(merged)]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

func isUpperAlnum(c byte) bool { return isDigit(c) || c >= 'A' && c <= 'Z' }

func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isEmailDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

// findEmails finds [A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,} with the
// leftmost-longest extent a regular expression would give.
func findEmails(t []byte, spans []span) []span {
	from := 0 // a match may not start before the end of the previous one
	for i := 0; i < len(t); {
		j := bytes.IndexByte(t[i:], '@')
		if j < 0 {
			break
		}
		at := i + j
		i = at + 1
		start := at
		for start > from && isEmailLocal(t[start-1]) {
			start--
		}
		if start == at {
			continue
		}
		domEnd := at + 1
		for domEnd < len(t) && isEmailDomain(t[domEnd]) {
			domEnd++
		}
		// The last dot, with something before it, followed by 2+ letters.
		end := -1
		for p := domEnd - 1; p > at+1 && end < 0; p-- {
			if t[p] != '.' {
				continue
			}
			k := p + 1
			for k < domEnd && isAlpha(t[k]) {
				k++
			}
			if k-p-1 >= 2 {
				end = k
			}
		}
		if end < 0 {
			continue
		}
		spans = append(spans, span{start, end})
		from, i = end, end
	}
	return spans
}

// hasDigitRun reports whether b holds 13 or more digits with nothing but
// spaces and dashes between them: the prefilter for card numbers.
func hasDigitRun(b []byte) bool {
	digits := 0
	for _, c := range b {
		switch {
		case isDigit(c):
			if digits++; digits >= 13 {
				return true
			}
		case c == ' ' || c == '-':
		default:
			digits = 0
		}
	}
	return false
}

// findCards finds card numbers: 13 to 19 digits in groups separated by a
// single space or dash, starting and ending at a group boundary, with no
// letter or digit right before or after, and a valid Luhn check digit.
func findCards(t []byte, spans []span) []span {
	for i := 0; i < len(t); {
		if !isDigit(t[i]) || i > 0 && isAlnum(t[i-1]) {
			i++
			continue
		}
		// The run of groups starting at i.
		end := i
		for {
			for end < len(t) && isDigit(t[end]) {
				end++
			}
			if end+1 < len(t) && (t[end] == ' ' || t[end] == '-') && isDigit(t[end+1]) {
				end++
				continue
			}
			break
		}
		lastOK := end == len(t) || !isAlnum(t[end])
		// For each group start, the longest Luhn-valid number from it.
		for g := i; g < end; {
			best, digits := -1, 0
			for k := g; k < end; {
				e := k
				for e < end && isDigit(t[e]) {
					e++
				}
				if digits += e - k; digits > 19 {
					break
				}
				if digits >= 13 && (e < end || lastOK) && luhn(t[g:e]) {
					best = e
				}
				k = e + 1
			}
			if best > 0 {
				spans = append(spans, span{g, best})
				g = best + 1
				continue
			}
			for g < end && isDigit(t[g]) {
				g++
			}
			g++
		}
		i = end
	}
	return spans
}

// luhn checks the Luhn digit of the digits in b (other bytes are skipped).
func luhn(b []byte) bool {
	sum, double := 0, false
	for i := len(b) - 1; i >= 0; i-- {
		c := b[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func hasAWSPrefix(b []byte) bool {
	return bytes.Contains(b, []byte("AKIA")) || bytes.Contains(b, []byte("ASIA"))
}

// findAWSKeys finds (AKIA|ASIA)[A-Z0-9]{16} not inside a longer [A-Z0-9] run.
func findAWSKeys(t []byte, spans []span) []span {
	for i := 0; i+20 <= len(t); {
		j := bytes.IndexByte(t[i:len(t)-19], 'A')
		if j < 0 {
			break
		}
		i += j
		if (t[i+1] == 'K' || t[i+1] == 'S') && t[i+2] == 'I' && t[i+3] == 'A' &&
			(i == 0 || !isUpperAlnum(t[i-1])) && (i+20 == len(t) || !isUpperAlnum(t[i+20])) &&
			allUpperAlnum(t[i+4:i+20]) {
			spans = append(spans, span{i, i + 20})
			i += 20
			continue
		}
		i++
	}
	return spans
}

func allUpperAlnum(b []byte) bool {
	for _, c := range b {
		if !isUpperAlnum(c) {
			return false
		}
	}
	return true
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasBearer reports whether b holds "earer" in any case: the prefilter for
// bearer tokens. It looks for "ea" eight positions at a time (c|0x20 folds
// exactly the letters' case).
func hasBearer(b []byte) bool {
	i := 0
	for ; i+9 <= len(b); i += 8 {
		y := binary.LittleEndian.Uint64(b[i:]) | lsb*0x20
		y1 := binary.LittleEndian.Uint64(b[i+1:]) | lsb*0x20
		z := (y ^ lsb*'e') | (y1 ^ lsb*'a')
		if (z-lsb)&^z&msb == 0 {
			continue
		}
		for k := i; k < i+8; k++ {
			if earerAt(b, k) {
				return true
			}
		}
	}
	for ; i < len(b); i++ {
		if earerAt(b, i) {
			return true
		}
	}
	return false
}

func earerAt(b []byte, i int) bool {
	return i+5 <= len(b) && b[i]|0x20 == 'e' && b[i+1]|0x20 == 'a' && b[i+2]|0x20 == 'r' &&
		b[i+3]|0x20 == 'e' && b[i+4]|0x20 == 'r'
}

func isTokenChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// findBearer finds "bearer" (any case, not inside a word), one or more
// spaces or tabs, then token characters and any "=" padding.
func findBearer(t []byte, spans []span) []span {
	for i := 0; i+8 <= len(t); i++ {
		if t[i]|0x20 != 'b' || t[i+1]|0x20 != 'e' || t[i+2]|0x20 != 'a' || t[i+3]|0x20 != 'r' ||
			t[i+4]|0x20 != 'e' || t[i+5]|0x20 != 'r' || i > 0 && isAlpha(t[i-1]) {
			continue
		}
		j := i + 6
		for j < len(t) && (t[j] == ' ' || t[j] == '\t') {
			j++
		}
		if j == i+6 {
			continue
		}
		k := j
		for k < len(t) && isTokenChar(t[k]) {
			k++
		}
		if k == j {
			continue
		}
		for k < len(t) && t[k] == '=' {
			k++
		}
		spans = append(spans, span{i, k})
		i = k - 1
	}
	return spans
}
