package budget

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// parser walks the YAML tree by hand so that every finding carries the
// position of the value it is about and so that all findings are reported,
// not just the first. Unknown and duplicate keys are errors, as with
// yaml.v3's KnownFields(true).
type parser struct {
	file string
	errs Errors
}

func (p *parser) add(n *yaml.Node, sev Severity, field, format string, args ...any) {
	e := &Error{File: p.file, Field: field, Severity: sev, Err: fmt.Errorf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	p.add(n, SeverityError, field, format, args...)
}

func (p *parser) warnf(n *yaml.Node, field, format string, args ...any) {
	p.add(n, SeverityWarning, field, format, args...)
}

// fields is a checked mapping: value nodes by key, plus the mapping itself
// for "is required" findings.
type fields struct {
	node   *yaml.Node
	values map[string]*yaml.Node
}

func (f fields) get(key string) *yaml.Node { return f.values[key] }

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// mapping checks that n is a mapping whose keys are all known and unique.
func (p *parser) mapping(n *yaml.Node, field string, known ...string) (fields, bool) {
	n = resolve(n)
	out := fields{node: n, values: map[string]*yaml.Node{}}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "must be a mapping with keys %s, got %s", strings.Join(known, ", "), kindName(n))
		return out, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(field, k.Value)
		if !contains(known, k.Value) {
			hint := ""
			if s := closest(k.Value, known); s != "" {
				hint = fmt.Sprintf("did you mean %s? ", s)
			}
			p.errorf(k, name, "unknown field (%sallowed: %s)", hint, strings.Join(known, ", "))
			continue
		}
		if _, dup := out.values[k.Value]; dup {
			p.errorf(k, name, "appears twice; keep one")
			continue
		}
		out.values[k.Value] = resolve(v)
	}
	return out, true
}

func (p *parser) required(f fields, field, key string) *yaml.Node {
	v := f.get(key)
	if v == nil {
		p.errorf(f.node, join(field, key), "is required")
	}
	return v
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, field, "must be a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, field string, lo, hi int) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errorf(n, field, "must be a whole number between %d and %d, got %s", lo, hi, kindName(n))
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		p.errorf(n, field, "must be between %d and %d, got %s", lo, hi, n.Value)
		return 0, false
	}
	return int(v), true
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.errorf(n, field, "must be true or false, got %s", kindName(n))
		return false, false
	}
	return n.Value == "true", true
}

func (p *parser) duration(n *yaml.Node, field string, lo time.Duration) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, field, "must be a duration such as 1s or 500ms, got %s", kindName(n))
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.errorf(n, field, "must be a duration such as 1s or 500ms, got %q", n.Value)
		return 0, false
	}
	if d < lo {
		p.errorf(n, field, "must be at least %s (Kinesis serves %d GetRecords calls per second per shard), got %s", lo, MaxCallsPerSecond, n.Value)
		return 0, false
	}
	return d, true
}

func (p *parser) size(n *yaml.Node, field string, lo, hi int64) (int64, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, field, "must be a size such as 2MiB, 512KiB or 1000000, got %s", kindName(n))
		return 0, false
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		p.errorf(n, field, "%v", err)
		return 0, false
	}
	if v < lo || v > hi {
		p.errorf(n, field, "must be between %s and %s, got %s", FormatSize(lo), FormatSize(hi), n.Value)
		return 0, false
	}
	return v, true
}

func (p *parser) strings(n *yaml.Node, field string) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, field, "must be a list of strings, got %s", kindName(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		s, good := p.str(resolve(c), fmt.Sprintf("%s[%d]", field, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

var (
	teamRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	streamRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	arnRe    = regexp.MustCompile(`^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/([a-zA-Z0-9_.-]{1,128})$`)
)

// maxTeamLen keeps "<team>" usable as a Helm release name.
const maxTeamLen = 53

func streamNameFromARN(arn string) string {
	if m := arnRe.FindStringSubmatch(arn); m != nil {
		return m[1]
	}
	return ""
}

var topKeys = []string{"team", "stream", "streamARN", "shards", "budget", "pods", "elasticsearch", "decode", "limits", "drop", "redact", "cluster"}

func (p *parser) file0(doc *yaml.Node) *positioned {
	root := doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	top, ok := p.mapping(root, "", topKeys...)
	if !ok {
		return nil
	}
	f := &positioned{File: &File{Pods: 1, Decode: DecodeAuto, Limits: Limits{MaxDecompressedBytes: DefaultMaxDecompressedBytes}}}

	if n := p.required(top, "", "team"); n != nil {
		f.teamLine, f.teamCol = n.Line, n.Column
		if s, ok := p.str(n, "team"); ok {
			if !teamRe.MatchString(s) || len(s) > maxTeamLen {
				p.errorf(n, "team", "must be 1 to %d of a-z, 0-9 and '-', starting and ending with a letter or digit, got %q", maxTeamLen, s)
			}
			f.Team = s
		}
	}

	stream, arn := top.get("stream"), top.get("streamARN")
	if stream != nil {
		f.streamField, f.streamLine, f.streamCol = "stream", stream.Line, stream.Column
	} else if arn != nil {
		f.streamField, f.streamLine, f.streamCol = "streamARN", arn.Line, arn.Column
	}
	switch {
	case stream == nil && arn == nil:
		p.errorf(top.node, "stream", "is required (or streamARN)")
	case stream != nil && arn != nil:
		p.errorf(arn, "streamARN", "give stream or streamARN, not both")
	case stream != nil:
		if s, ok := p.str(stream, "stream"); ok {
			if !streamRe.MatchString(s) {
				p.errorf(stream, "stream", "must be a Kinesis stream name (1 to 128 of a-z, A-Z, 0-9, '_', '.', '-'), got %q", s)
			}
			f.Stream = s
		}
	default:
		if s, ok := p.str(arn, "streamARN"); ok {
			if !arnRe.MatchString(s) {
				p.errorf(arn, "streamARN", "must look like arn:aws:kinesis:REGION:ACCOUNT:stream/NAME, got %q", s)
			}
			f.StreamARN = s
		}
	}

	if n := p.required(top, "", "shards"); n != nil {
		f.Shards, _ = p.integer(n, "shards", 1, 10000)
	}
	if n := top.get("pods"); n != nil {
		f.Pods, _ = p.integer(n, "pods", 1, 1000)
	}
	if n := p.required(top, "", "budget"); n != nil {
		p.budget(n, f.File)
	}
	if n := p.required(top, "", "elasticsearch"); n != nil {
		p.elasticsearch(n, f.File)
	}
	if n := top.get("decode"); n != nil {
		if s, ok := p.str(n, "decode"); ok {
			allowed := []string{DecodeAuto, DecodeJSON, DecodeText, DecodeCloudWatchLogs}
			if !contains(allowed, s) {
				p.errorf(n, "decode", "must be one of %s, got %q", strings.Join(allowed, ", "), s)
			}
			f.Decode = s
		}
	}
	if n := top.get("limits"); n != nil {
		if lim, ok := p.mapping(n, "limits", "maxDecompressedBytes"); ok {
			if v := lim.get("maxDecompressedBytes"); v != nil {
				f.Limits.MaxDecompressedBytes, _ = p.size(v, "limits.maxDecompressedBytes", 64<<10, 1<<30)
			}
		}
	}
	if n := top.get("drop"); n != nil {
		f.Drop = p.dropRules(n)
	}
	if n := top.get("redact"); n != nil {
		f.Redact = p.redactRules(n)
	}
	if n := top.get("cluster"); n != nil {
		f.Cluster = p.cluster(n)
	}
	p.crossChecks(top, f.File)
	return f
}

func (p *parser) budget(n *yaml.Node, f *File) {
	b, ok := p.mapping(n, "budget", "maxRecords", "recordsPerSecond", "pollInterval", "maxBytesPerSecond")
	if !ok {
		return
	}
	f.Budget.PollInterval = time.Second
	if v := b.get("pollInterval"); v != nil {
		if d, ok := p.duration(v, "budget.pollInterval", MinPollInterval); ok {
			f.Budget.PollInterval = d
		}
	}
	mr, rps := b.get("maxRecords"), b.get("recordsPerSecond")
	switch {
	case mr == nil && rps == nil:
		p.errorf(b.node, "budget", "give exactly one of maxRecords (per shard per poll interval) or recordsPerSecond (the team's total)")
	case mr != nil && rps != nil:
		p.errorf(rps, "budget.recordsPerSecond", "give exactly one of maxRecords or recordsPerSecond, not both")
	case mr != nil:
		f.Budget.MaxRecords, _ = p.integer(mr, "budget.maxRecords", 1, MaxRecordsPerCall)
	default:
		f.Budget.RecordsPerSecond, _ = p.integer(rps, "budget.recordsPerSecond", 1, math.MaxInt32)
	}
	if v := b.get("maxBytesPerSecond"); v != nil {
		f.Budget.MaxBytesPerSecond, _ = p.size(v, "budget.maxBytesPerSecond", 1<<10, MaxReadBytesPerSecond)
	}
}

func (p *parser) elasticsearch(n *yaml.Node, f *File) {
	es, ok := p.mapping(n, "elasticsearch", "urls", "index", "dataStream", "deadLetterIndex", "deadLetterDataStream", "retention")
	if !ok {
		return
	}
	if v := p.required(es, "elasticsearch", "urls"); v != nil {
		urls, _ := p.strings(v, "elasticsearch.urls")
		if len(urls) == 0 && v.Kind == yaml.SequenceNode {
			p.errorf(v, "elasticsearch.urls", "must list at least one URL")
		}
		for i, s := range urls {
			field := fmt.Sprintf("elasticsearch.urls[%d]", i)
			if err := CheckURL(s); err != nil {
				p.errorf(resolve(v.Content[i]), field, "%v", err)
			}
		}
		f.Elasticsearch.URLs = urls
	}
	p.target(es, "index", "dataStream", &f.Elasticsearch.Index, &f.Elasticsearch.DataStream)
	p.target(es, "deadLetterIndex", "deadLetterDataStream", &f.Elasticsearch.DeadLetterIndex, &f.Elasticsearch.DeadLetterDataStream)
	if v := es.get("retention"); v != nil {
		if s, ok := p.str(v, "elasticsearch.retention"); ok {
			d, err := ParseRetention(s)
			if err != nil {
				p.errorf(v, "elasticsearch.retention", "%v", err)
			}
			f.Elasticsearch.Retention = d
		}
	}
}

// builtinDataStreams is the index pattern of Elasticsearch's built-in logs
// template (7.9 and later): a name it matches becomes a data stream.
var builtinDataStreams = regexp.MustCompile(`^logs-[^-]*-.+$`)

// target reads one of index (a dated pattern, written with op index) and
// dataStream (a data stream's name, written with op create).
func (p *parser) target(es fields, indexKey, streamKey string, index, stream *string) {
	iv, sv := es.get(indexKey), es.get(streamKey)
	switch {
	case iv == nil && sv == nil:
		p.errorf(es.node, "elasticsearch."+streamKey, "is required (or %s)", indexKey)
		return
	case iv != nil && sv != nil:
		p.errorf(sv, "elasticsearch."+streamKey, "give %s or %s, not both", indexKey, streamKey)
		return
	case sv != nil:
		field := "elasticsearch." + streamKey
		s, ok := p.str(sv, field)
		if !ok {
			return
		}
		if err := ValidateIndexPattern(s); err != nil {
			p.errorf(sv, field, "%v", err)
		} else if strings.ContainsAny(s, "{}") {
			p.errorf(sv, field, "a data stream's name has no date tokens (%q); its backing indices roll over by themselves", s)
		}
		*stream = s
		return
	}
	field := "elasticsearch." + indexKey
	s, ok := p.str(iv, field)
	if !ok {
		return
	}
	if err := ValidateIndexPattern(s); err != nil {
		p.errorf(iv, field, "%v", err)
	} else if builtinDataStreams.MatchString(s) {
		prefix, _, _ := strings.Cut(s, "{")
		prefix = strings.TrimRight(prefix, "-.")
		if strings.Count(prefix, "-") < 2 {
			prefix += "-default"
		}
		p.warnf(iv, field, "%q matches logs-*-*, which Elasticsearch 7.9+ and 8 make a data stream (built-in template): every document written with op index would be refused; write %s: %s (op create) or use a name outside logs-*-*", s, streamKey, prefix)
	}
	*index = s
}

// CheckURL checks an Elasticsearch URL, from a budget file or a flag: an
// http:// or https:// URL without credentials (they would show in pod
// specs, process listings and logs).
func CheckURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case strings.Contains(s, "@"):
		// Also where the URL parser would read the password as a port and
		// a path, query or fragment (http://elastic:1234?pw@es:9200).
		return errors.New("must not hold credentials (no @ in the URL); set ELASTICSEARCH_USERNAME/ELASTICSEARCH_PASSWORD or ELASTICSEARCH_API_KEY instead")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("must be an http:// or https:// URL, got %q", s)
	}
	return nil
}

// ParseRetention reads a retention such as 30d or 12h: how long documents
// are kept before the lifecycle policy deletes them.
func ParseRetention(s string) (time.Duration, error) {
	m := retentionRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("must be a number of days or hours such as 30d or 12h, got %q", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := time.Hour
	if m[2] == "d" {
		unit = 24 * time.Hour
	}
	d := time.Duration(n) * unit
	if d < time.Hour || d > 3650*24*time.Hour {
		return 0, fmt.Errorf("must be between 1h and 3650d, got %q", s)
	}
	return d, nil
}

var retentionRe = regexp.MustCompile(`^([0-9]{1,6})([dh])$`)

func (p *parser) dropRules(n *yaml.Node) []DropRule {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "drop", "must be a list of rules, got %s", kindName(n))
		return nil
	}
	var out []DropRule
	names := map[string]bool{}
	for i, c := range n.Content {
		field := fmt.Sprintf("drop[%d]", i)
		m, ok := p.mapping(c, field, "name", "field", "in", "contains", "regex")
		if !ok {
			continue
		}
		r := DropRule{}
		if v := m.get("name"); v != nil {
			if s, ok := p.str(v, field+".name"); ok {
				if !ruleNameRe.MatchString(s) {
					p.errorf(v, field+".name", "must be 1 to 63 of a-z, 0-9, '-' and '_', got %q", s)
				} else if names[s] {
					p.errorf(v, field+".name", "%q names another rule too; names are unique", s)
				}
				names[s] = true
				r.Name = s
			}
		}
		if v := m.get("field"); v != nil {
			if s, ok := p.str(v, field+".field"); ok {
				if s == "" {
					p.errorf(v, field+".field", "must not be empty")
				}
				r.Field = s
			}
		}
		in, cont, re := m.get("in"), m.get("contains"), m.get("regex")
		set := 0
		for _, v := range []*yaml.Node{in, cont, re} {
			if v != nil {
				set++
			}
		}
		if set != 1 {
			p.errorf(m.node, field, "give exactly one of in (with field), contains (a literal substring) or regex (a regular expression)")
			out = append(out, r)
			continue
		}
		switch {
		case in != nil:
			vals, ok := p.strings(in, field+".in")
			if ok && len(vals) == 0 {
				p.errorf(in, field+".in", "must list at least one value")
			}
			if m.get("field") == nil {
				p.errorf(in, field+".in", "needs field: the document field whose value is compared")
			}
			r.In = vals
		case cont != nil:
			if s, ok := p.str(cont, field+".contains"); ok {
				if s == "" {
					p.errorf(cont, field+".contains", "must not be empty: the empty string is in every record")
				}
				r.Contains = s
			}
		default:
			if s, ok := p.str(re, field+".regex"); ok {
				r.Regex = s
				p.checkRegex(re, field+".regex", s)
			}
		}
		out = append(out, r)
	}
	return out
}

var (
	ruleNameRe    = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)
	charClassOnly = regexp.MustCompile(`^\[([A-Z]{3,})\]$`)
)

// checkRegex rejects invalid expressions and flags the two ways a drop regex
// silently drops far more than meant: a bracketed word, which is a character
// class (Klaviyo's "[DEBUG]" dropped every line with a D, E, B, U or G), and
// an expression that matches the empty string, which matches every record.
func (p *parser) checkRegex(n *yaml.Node, field, s string) {
	re, err := regexp.Compile(s)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
		p.errorf(n, field, "invalid regular expression: %s", msg)
		return
	}
	if m := charClassOnly.FindStringSubmatch(s); m != nil {
		p.warnf(n, field, "%q is a character class: it matches any line containing one of the letters %s, not the word %s; for the literal text write contains: %q (or regex: '%s')",
			s, letters(m[1]), m[1], s, regexp.QuoteMeta(s))
		return
	}
	if re.MatchString("") {
		p.warnf(n, field, "%q matches the empty string, so it drops every record", s)
	}
}

// letters lists the distinct letters of w in alphabetical order: "B, D, E, G, U".
func letters(w string) string {
	seen := map[rune]bool{}
	var ls []string
	for _, r := range w {
		if !seen[r] {
			seen[r] = true
			ls = append(ls, string(r))
		}
	}
	sort.Strings(ls)
	return strings.Join(ls, ", ")
}

func (p *parser) redactRules(n *yaml.Node) []RedactRule {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "redact", "must be a list of rules, got %s", kindName(n))
		return nil
	}
	var out []RedactRule
	for i, c := range n.Content {
		field := fmt.Sprintf("redact[%d]", i)
		m, ok := p.mapping(c, field, "field", "pattern")
		if !ok {
			continue
		}
		fv, pv := m.get("field"), m.get("pattern")
		var r RedactRule
		switch {
		case (fv == nil) == (pv == nil):
			p.errorf(m.node, field, "give exactly one of field (a field whose value is replaced) or pattern (one of %s)", strings.Join(Patterns, ", "))
		case fv != nil:
			if s, ok := p.str(fv, field+".field"); ok {
				switch {
				case s == "":
					p.errorf(fv, field+".field", "must not be empty")
				case slices.Contains(strings.Split(s, "."), ""):
					p.errorf(fv, field+".field", "%q has an empty part: a dotted path names a field at each step, like user.token", s)
				}
				r.Field = s
			}
		default:
			if s, ok := p.str(pv, field+".pattern"); ok {
				if !contains(Patterns, s) {
					p.errorf(pv, field+".pattern", "must be one of %s, got %q", strings.Join(Patterns, ", "), s)
				}
				r.Pattern = s
			}
		}
		out = append(out, r)
	}
	return out
}

func (p *parser) cluster(n *yaml.Node) *Cluster {
	m, ok := p.mapping(n, "cluster", "name", "capacity", "borrow")
	if !ok {
		return nil
	}
	c := &Cluster{}
	if v := p.required(m, "cluster", "name"); v != nil {
		if s, ok := p.str(v, "cluster.name"); ok {
			if !teamRe.MatchString(s) {
				p.errorf(v, "cluster.name", "must be a-z, 0-9 and '-', got %q", s)
			}
			c.Name = s
		}
	}
	if v := p.required(m, "cluster", "capacity"); v != nil {
		c.Capacity, _ = p.integer(v, "cluster.capacity", 1, math.MaxInt32)
	}
	if v := m.get("borrow"); v != nil {
		c.Borrow, _ = p.boolean(v, "cluster.borrow")
	}
	return c
}

// crossChecks are the checks that need several fields at once.
func (p *parser) crossChecks(top fields, f *File) {
	b := f.Budget
	if b.RecordsPerSecond > 0 && f.Shards > 0 && b.PollInterval > 0 {
		perCall := float64(b.RecordsPerSecond) * b.PollInterval.Seconds() / float64(f.Shards)
		n := top.get("budget")
		if bm, ok := p.quiet(n); ok {
			n = bm.get("recordsPerSecond")
		}
		if perCall > MaxRecordsPerCall {
			p.errorf(n, "budget.recordsPerSecond", "%d records/s over %d shards at pollInterval %s needs %.0f records per call per shard, above the Kinesis limit of %d (add shards or shorten pollInterval)",
				b.RecordsPerSecond, f.Shards, b.PollInterval, perCall, MaxRecordsPerCall)
		} else if perCall < 1 {
			p.warnf(n, "budget.recordsPerSecond", "%d records/s over %d shards at pollInterval %s is below 1 record per call per shard; each shard reads at least 1, so the team reads %.0f records/s",
				b.RecordsPerSecond, f.Shards, b.PollInterval, float64(f.Shards)/b.PollInterval.Seconds())
		}
	}
}

// quiet views n as a mapping without reporting anything (it was checked
// already).
func (p *parser) quiet(n *yaml.Node) (fields, bool) {
	if n == nil || n.Kind != yaml.MappingNode {
		return fields{}, false
	}
	out := fields{node: n, values: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out.values[n.Content[i].Value] = resolve(n.Content[i+1])
	}
	return out, true
}

// checkClusters checks that files naming the same cluster agree on its
// capacity and that their guaranteed budgets fit in it.
func checkClusters(files []*File) Errors {
	type agg struct {
		first *File
		sum   float64
		teams []string
	}
	var errs Errors
	byName := map[string]*agg{}
	var order []string
	for _, f := range files {
		if f.Cluster == nil {
			continue
		}
		a, ok := byName[f.Cluster.Name]
		if !ok {
			a = &agg{first: f}
			byName[f.Cluster.Name] = a
			order = append(order, f.Cluster.Name)
		} else if f.Cluster.Capacity != a.first.Cluster.Capacity {
			errs = append(errs, &Error{File: f.Path, Field: "cluster.capacity",
				Err: fmt.Errorf("cluster %q has capacity %d here but %d in %s; every file naming a cluster gives the same capacity",
					f.Cluster.Name, f.Cluster.Capacity, a.first.Cluster.Capacity, a.first.Path)})
		}
		a.sum += f.Budget.TeamRate(f.Shards)
		a.teams = append(a.teams, f.Team)
	}
	for _, name := range order {
		a := byName[name]
		if a.sum > float64(a.first.Cluster.Capacity) {
			errs = append(errs, &Error{File: a.first.Path, Field: "cluster.capacity",
				Err: fmt.Errorf("cluster %q: the guaranteed budgets of %s add up to %.0f records/s, above its capacity of %d",
					name, strings.Join(a.teams, ", "), a.sum, a.first.Cluster.Capacity)})
		}
	}
	return errs
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// closest suggests the known key within two edits of s, if any.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
