// Package rules applies a budget's drop and redaction rules to documents.
//
// Rules are compiled once per budget; a compiled Set is read-only and safe
// for concurrent use by every shard. Apply works on a document's raw JSON
// bytes and allocates nothing unless it has something to redact.
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
)

// Set is a budget's drop and redaction rules compiled once.
type Set struct {
	drops  []dropRule
	names  []string
	fields []string // field redactions: top-level keys or dotted paths, lower case
	// textKeys are the last parts of the field paths: in a text message
	// they are how a redacted field would be spelled.
	textKeys []string
	patterns patterns // built-in detectors, for every string value
}

type dropRule struct {
	label    string
	field    string
	in       []string
	inSet    map[string]struct{} // for long in lists
	contains []byte
	re       *regexp.Regexp
}

// inSetMin is the in-list length from which a map beats a linear scan.
const inSetMin = 8

// Compile checks and compiles the rules. The budget loader has validated
// them already; Compile still rejects what it cannot run.
func Compile(drop []budget.DropRule, redact []budget.RedactRule) (*Set, error) {
	s := &Set{}
	var errs []error
	for i, r := range drop {
		dr := dropRule{label: r.Name, field: r.Field}
		if dr.label == "" {
			dr.label = fmt.Sprintf("drop[%d]", i)
		}
		kinds := 0
		for _, set := range []bool{len(r.In) > 0, r.Contains != "", r.Regex != ""} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds != 1:
			errs = append(errs, fmt.Errorf("compile drop[%d]: give exactly one of in, contains or regex", i))
		case len(r.In) > 0:
			if r.Field == "" {
				errs = append(errs, fmt.Errorf("compile drop[%d].in: needs field", i))
			}
			dr.in = r.In
			if len(r.In) >= inSetMin {
				dr.inSet = make(map[string]struct{}, len(r.In))
				for _, v := range r.In {
					dr.inSet[v] = struct{}{}
				}
			}
		case r.Contains != "":
			dr.contains = []byte(r.Contains)
		default:
			re, err := regexp.Compile(r.Regex)
			if err != nil {
				errs = append(errs, fmt.Errorf("compile drop[%d].regex: %w", i, err))
			}
			dr.re = re
		}
		if dr.field == "" {
			dr.field = "message"
		}
		s.drops = append(s.drops, dr)
		s.names = append(s.names, dr.label)
	}
	for i, r := range redact {
		switch {
		case (r.Field == "") == (r.Pattern == ""):
			errs = append(errs, fmt.Errorf("compile redact[%d]: give exactly one of field or pattern", i))
		case r.Field != "" && slices.Contains(strings.Split(r.Field, "."), ""):
			errs = append(errs, fmt.Errorf("compile redact[%d].field: %q has an empty part", i, r.Field))
		case r.Field != "":
			f := strings.ToLower(r.Field) // keys match without case
			s.fields = append(s.fields, f)
			s.textKeys = append(s.textKeys, f[strings.LastIndexByte(f, '.')+1:])
		default:
			p, ok := patternByName[r.Pattern]
			if !ok {
				errs = append(errs, fmt.Errorf("compile redact[%d].pattern: unknown pattern %q", i, r.Pattern))
			}
			s.patterns |= p
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// RuleNames returns the metric label of each drop rule in order: its Name,
// else "drop[i]".
func (s *Set) RuleNames() []string { return append([]string(nil), s.names...) }

// scratch is per-call working memory, pooled so that shards share no state.
type scratch struct {
	text       []byte // a field's unescaped text
	spans      []span
	fieldSpans []span
	out        []byte
	num        []byte // a JSON number's digits
	lower      []byte // a text message unescaped and in lower case
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Apply runs the drop rules in order on doc; the first that matches drops
// it: keep=false, rule = that rule's label. Otherwise it applies every
// redaction to doc in place and returns keep=true, rule="".
func (s *Set) Apply(doc *decode.Doc) (keep bool, rule string) {
	if len(s.drops) == 0 && len(s.fields) == 0 && s.patterns == 0 {
		return true, ""
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	for i := range s.drops {
		if s.drops[i].matches(doc, sc) {
			return false, s.drops[i].label
		}
	}
	s.redact(doc, sc)
	return true, ""
}

func (r *dropRule) matches(doc *decode.Doc, sc *scratch) bool {
	raw, ok := doc.Get(r.field)
	if !ok {
		return false
	}
	text, ok := textOf(raw, sc)
	if !ok {
		return false
	}
	switch {
	case r.inSet != nil:
		_, ok := r.inSet[string(text)]
		return ok
	case r.in != nil:
		for _, v := range r.in {
			if string(text) == v {
				return true
			}
		}
		return false
	case r.contains != nil:
		return bytes.Contains(text, r.contains)
	case r.re != nil:
		return r.re.Match(text)
	}
	return false
}

// textOf returns the text of a raw value (see decode.AppendText), without
// copying when it is a string with no escapes.
func textOf(raw []byte, sc *scratch) ([]byte, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 {
		return raw[1 : len(raw)-1], true
	}
	var ok bool
	sc.text, ok = decode.AppendText(sc.text[:0], raw)
	return sc.text, ok
}

// RedactText replaces every built-in pattern match in arbitrary text with
// [REDACTED] (field rules do not apply to raw text); it is used before raw
// records go to the dead-letter index. Text with no match is returned as is.
func (s *Set) RedactText(text string) string {
	if s.patterns == 0 || text == "" {
		return text
	}
	// A read-only view of the string's bytes; nothing writes through it.
	b := unsafe.Slice(unsafe.StringData(text), len(text))
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	sc.spans = s.patterns.find(b, sc.spans[:0])
	if len(sc.spans) == 0 {
		return text
	}
	return string(appendRedacted(nil, b, sc.spans))
}
