package document

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/rules"
)

// SampleReport is what a team's drop rules do to a sample of log lines.
type SampleReport struct {
	Team        string
	Lines       int
	Kept        int
	Undecodable int
	Rules       []RuleReport
}

// RuleReport is one drop rule's share of a sample.
type RuleReport struct {
	Rule    string
	Dropped int
	// Levels counts the dropped lines by their level field ("-" when none).
	Levels map[string]int
}

// serious levels are ones a drop rule is almost never meant to drop.
var serious = map[string]bool{"ERROR": true, "FATAL": true, "CRITICAL": true, "WARN": true, "WARNING": true, "error": true, "fatal": true, "critical": true, "warn": true, "warning": true}

// Sample runs f's drop and redact rules over the file at path, one record per
// line, so an operator sees what a rule drops before shipping it.
func Sample(ctx context.Context, f *budget.File, path string) (*SampleReport, error) {
	rs, err := rules.Compile(f.Drop, f.Redact)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open sample: %w", err)
	}
	defer fh.Close()
	format := f.Decode
	if format == budget.DecodeCloudWatchLogs {
		format = budget.DecodeAuto // a line file holds no gzip payloads
	}
	dec := decode.New(decode.Options{Format: format, MaxDecompressedBytes: f.Limits.MaxDecompressedBytes})
	rep := &SampleReport{Team: f.Team}
	byRule := map[string]*RuleReport{}
	for _, name := range rs.RuleNames() {
		r := &RuleReport{Rule: name, Levels: map[string]int{}}
		byRule[name] = r
		rep.Rules = append(rep.Rules, *r)
	}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	var docs []decode.Doc
	now := time.Now()
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep.Lines++
		rec := decode.Record{Data: sc.Bytes(), Arrival: now}
		out, _, err := dec.Decode(&rec, docs[:0])
		if err != nil {
			rep.Undecodable++
			continue
		}
		for i := range out {
			level, ok := out[i].Text("level")
			if !ok {
				level = "-"
			}
			keep, rule := rs.Apply(&out[i])
			if keep {
				rep.Kept++
				continue
			}
			r := byRule[rule]
			r.Dropped++
			r.Levels[level]++
		}
		docs = out[:0]
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("read sample: line %d is over 2 MiB", rep.Lines+1)
		}
		return nil, fmt.Errorf("read sample: %w", err)
	}
	for i := range rep.Rules {
		rep.Rules[i] = *byRule[rep.Rules[i].Rule]
	}
	return rep, nil
}

// Print writes the report, one line per rule, with a warning for rules that
// drop lines of a serious level.
func (r *SampleReport) Print(w io.Writer) {
	fmt.Fprintf(w, "sample of %d lines for team %s: %d kept, %d undecodable\n", r.Lines, r.Team, r.Kept, r.Undecodable)
	for _, rule := range r.Rules {
		fmt.Fprintf(w, "  %-24s drops %d lines%s\n", rule.Rule, rule.Dropped, levels(rule.Levels))
		for _, lv := range rule.seriousLevels() {
			fmt.Fprintf(w, "  warning: rule %s drops %d %s lines\n", rule.Rule, rule.Levels[lv], lv)
		}
	}
}

// Warnings is the number of warnings Print writes: one per rule and serious
// level it drops. `lint --strict` counts them.
func (r *SampleReport) Warnings() int {
	n := 0
	for _, rule := range r.Rules {
		n += len(rule.seriousLevels())
	}
	return n
}

func (r RuleReport) seriousLevels() []string {
	var out []string
	for _, lv := range sortedKeys(r.Levels) {
		if serious[lv] {
			out = append(out, lv)
		}
	}
	return out
}

func levels(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
