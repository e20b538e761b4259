package decode

import (
	"strconv"
	"time"
)

// Epoch bounds: a number at or above millisThreshold is taken as
// milliseconds (1e11 seconds is the year 5138, 1e11 ms is 1973); anything at
// or after the year 10000 is not a timestamp.
const (
	millisThreshold = 1e11
	maxEpochMillis  = 253402300800000 // 10000-01-01T00:00:00Z
)

// parseTimestamp reads a raw JSON value as a time: a string in RFC 3339
// (fractional seconds optional), or a number of epoch seconds or
// milliseconds. scratch is used to unescape strings.
func parseTimestamp(raw []byte, scratch *[]byte) (time.Time, bool) {
	if len(raw) == 0 {
		return time.Time{}, false
	}
	if raw[0] == '"' {
		if len(raw) < 2 {
			return time.Time{}, false
		}
		s := raw[1 : len(raw)-1]
		for _, c := range s {
			if c == '\\' {
				*scratch = appendUnescaped((*scratch)[:0], s)
				s = *scratch
				break
			}
		}
		return parseRFC3339(s)
	}
	return parseEpoch(raw, false)
}

// parseEpoch reads a non-negative JSON number of epoch seconds or
// milliseconds (by magnitude), or always milliseconds when millis is set.
func parseEpoch(b []byte, millis bool) (time.Time, bool) {
	var whole, frac uint64 // frac: the fraction in units of 1e-9
	i := 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		if i >= 16 {
			return time.Time{}, false
		}
		whole = whole*10 + uint64(b[i]-'0')
	}
	if i == 0 {
		return time.Time{}, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start, scale := i, uint64(1e9)
		for ; i < len(b) && isDigit(b[i]); i++ {
			if scale > 1 {
				scale /= 10
				frac += uint64(b[i]-'0') * scale
			}
		}
		if i == start {
			return time.Time{}, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		return parseEpochFloat(b, millis)
	}
	if i != len(b) {
		return time.Time{}, false
	}
	if millis || whole >= millisThreshold {
		if whole >= maxEpochMillis {
			return time.Time{}, false
		}
		return time.UnixMilli(int64(whole)).Add(time.Duration(frac / 1e3)).UTC(), true
	}
	return time.Unix(int64(whole), int64(frac)).UTC(), true
}

// parseEpochFloat handles the rare number with an exponent.
func parseEpochFloat(b []byte, millis bool) (time.Time, bool) {
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || v < 0 {
		return time.Time{}, false
	}
	if !millis && v < millisThreshold {
		v *= 1e3
	}
	if v >= maxEpochMillis {
		return time.Time{}, false
	}
	return time.UnixMilli(0).Add(time.Duration(v * 1e6)).UTC(), true
}

// parseRFC3339 reads YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM) without
// allocating.
func parseRFC3339(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if s[i] == '.' {
		i++
		start, scale := i, 1000000000
		for ; i < len(s) && isDigit(s[i]); i++ {
			if scale > 1 {
				scale /= 10
				nsec += int(s[i]-'0') * scale
			}
		}
		if i == start {
			return time.Time{}, false
		}
	}
	if i >= len(s) {
		return time.Time{}, false
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return time.Time{}, false
		}
		hh, ok1 := digits(s[i+1 : i+3])
		mm, ok2 := digits(s[i+4 : i+6])
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		offset = hh*3600 + mm*60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(s) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
