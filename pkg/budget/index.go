package budget

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Date tokens allowed between braces in an index pattern, with their Go
// layouts. The pattern is formatted in UTC from the document's @timestamp.
var indexTokens = map[string]string{
	"yyyy": "2006", "yy": "06", "MM": "01", "dd": "02", "HH": "15",
}

// IndexPattern is a validated index name pattern such as
// logs-payments-{yyyy.MM.dd}. Format is called per document, so it keeps the
// last name it made and the hour it is valid for.
type IndexPattern struct {
	parts  []indexPart
	static bool
	last   atomic.Pointer[formatted]
}

type formatted struct {
	hour int64 // Unix hour the name is for
	name string
}

type indexPart struct {
	literal string
	layout  string
}

// ParseIndexPattern validates and compiles an index name pattern.
func ParseIndexPattern(s string) (*IndexPattern, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	ip := &IndexPattern{static: true}
	rest := s
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			ip.parts = append(ip.parts, indexPart{literal: rest})
			break
		}
		if open > 0 {
			ip.parts = append(ip.parts, indexPart{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q has an unclosed {", s)
		}
		spec := rest[open+1 : open+end]
		layout, err := dateLayout(spec)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		ip.parts = append(ip.parts, indexPart{layout: layout})
		ip.static = false
		rest = rest[open+end+1:]
	}
	// Check the name a date would produce against Elasticsearch's rules.
	if err := validIndexName(ip.format(time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC))); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return ip, nil
}

// ValidateIndexPattern reports whether s is a usable index pattern.
func ValidateIndexPattern(s string) error {
	_, err := ParseIndexPattern(s)
	return err
}

func dateLayout(spec string) (string, error) {
	var b strings.Builder
	i := 0
	for i < len(spec) {
		matched := false
		for _, tok := range []string{"yyyy", "yy", "MM", "dd", "HH"} {
			if strings.HasPrefix(spec[i:], tok) {
				b.WriteString(indexTokens[tok])
				i += len(tok)
				matched = true
				break
			}
		}
		if matched {
			continue
		}
		switch c := spec[i]; c {
		case '.', '-', '_':
			b.WriteByte(c)
			i++
		default:
			return "", fmt.Errorf("{%s}: date patterns use yyyy, yy, MM, dd and HH separated by '.', '-' or '_'", spec)
		}
	}
	if b.Len() == 0 {
		return "", errors.New("{} is empty; write a date such as {yyyy.MM.dd}")
	}
	return b.String(), nil
}

// Format returns the index name for a document stamped t (in UTC). Names
// change at most hourly (the finest token is HH), so the last one is reused
// for documents of the same hour; it is safe for concurrent use.
func (ip *IndexPattern) Format(t time.Time) string {
	if ip.static && len(ip.parts) == 1 {
		return ip.parts[0].literal
	}
	hour := t.Unix() / 3600
	if t.Unix() < 0 && t.Unix()%3600 != 0 {
		hour--
	}
	if f := ip.last.Load(); f != nil && f.hour == hour {
		return f.name
	}
	name := ip.format(t)
	ip.last.Store(&formatted{hour: hour, name: name})
	return name
}

func (ip *IndexPattern) format(t time.Time) string {
	t = t.UTC()
	var b strings.Builder
	for _, p := range ip.parts {
		if p.layout == "" {
			b.WriteString(p.literal)
		} else {
			b.WriteString(t.Format(p.layout))
		}
	}
	return b.String()
}

// Static reports whether the pattern has no date in it.
func (ip *IndexPattern) Static() bool { return ip.static }

// validIndexName applies Elasticsearch's index naming rules.
func validIndexName(name string) error {
	switch {
	case name == "." || name == "..":
		return errors.New("an index cannot be named . or ..")
	case len(name) > 255:
		return errors.New("index names are at most 255 bytes")
	case name != strings.ToLower(name):
		return errors.New("index names are lower case")
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return errors.New(`index names cannot contain \ / * ? " < > | space , # :`)
	case strings.IndexAny(name[:1], "-_+") == 0:
		return errors.New("index names cannot start with -, _ or +")
	}
	return nil
}
