package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Figure is one row of the table. Other benchmark programs contribute rows
// by writing a JSON array of them to <dir>/<name>.figures.json.
type Figure struct {
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	// Target is the stated target ("<= 1.02"); empty for a figure that is
	// only reported.
	Target string `json:"target"`
	// Pass is whether Value meets Target; null without a target.
	Pass *bool `json:"pass"`
	// Note says what the figure is or which case it comes from.
	Note string `json:"note,omitempty"`
	// Source is the figures file a merged figure came from.
	Source string `json:"source,omitempty"`
}

// Targets of the issue. The throughput is per core: the pipeline benchmarks
// run on one goroutine.
const (
	TargetJSONRecordsPerSecond = 150000
	TargetNaiveRatio           = 3
	TargetMaxRatio             = 1.02
	TargetMinRatio             = 0.98
)

// Packages and benchmarks the figures come from.
const (
	consumerPkg = "/pkg/consumer"
	documentPkg = "/pkg/document"
	decodePkg   = "/pkg/decode"
	rulesPkg    = "/pkg/rules"
	accuracy    = "BenchmarkBudgetAccuracy/"
)

// Derive computes the figures from the benchmarks present; a figure whose
// benchmarks did not run (a narrower -bench pattern) is left out.
func Derive(bs []Benchmark) []Figure {
	var figs []Figure
	get := func(pkg, name, unit string) (float64, bool) {
		for _, b := range bs {
			if b.Name == name && strings.HasSuffix(b.Pkg, pkg) {
				v, ok := b.Metrics[unit]
				return v, ok
			}
		}
		return 0, false
	}
	add := func(f Figure) { figs = append(figs, f) }

	jsonNs, okJSON := get(documentPkg, "BenchmarkPipelineJSON", "ns/record")
	if okJSON {
		add(atLeast("pipeline, JSON lines of 512 B", 1e9/jsonNs, "records/s per core", TargetJSONRecordsPerSecond,
			"decode, drop rules, redaction, bulk body"))
	}
	naiveNs, okNaive := get(documentPkg, "BenchmarkNaiveJSON", "ns/record")
	if okJSON && okNaive {
		add(atLeast("pipeline, JSON vs naive encoding/json", naiveNs/jsonNs, "x", TargetNaiveRatio,
			fmt.Sprintf("naive: %s records/s per core, same lines, same run", group(1e9/naiveNs))))
	}
	for _, c := range []struct{ name, bench, unit string }{
		{"pipeline, JSON lines of 512 B", "BenchmarkPipelineJSON", "record"},
		{"pipeline, CloudWatch Logs gzip (50 events)", "BenchmarkPipelineCloudWatch", "event"},
		{"pipeline, plain text of 512 B", "BenchmarkPipelineText", "record"},
	} {
		if c.bench != "BenchmarkPipelineJSON" {
			if ns, ok := get(documentPkg, c.bench, "ns/"+c.unit); ok {
				add(info(c.name, 1e9/ns, c.unit+"s/s per core", ""))
			}
		}
		if v, ok := get(documentPkg, c.bench, "allocs/"+c.unit); ok {
			add(info(c.name, v, "allocs/"+c.unit, ""))
		}
		if v, ok := get(documentPkg, c.bench, "B/"+c.unit); ok {
			add(info(c.name, v, "B/"+c.unit, ""))
		}
	}
	if peak, ok := get(documentPkg, "BenchmarkBatchMemory", "peak-MiB"); ok {
		bound, _ := get(documentPkg, "BenchmarkBatchMemory", "bound-MiB")
		inflated, _ := get(documentPkg, "BenchmarkBatchMemory", "inflated-MiB")
		add(info("one shard's batch: 10 MB of gzip inflating to 16 MiB each, peak heap", peak, "MiB",
			fmt.Sprintf("%.0f MiB of documents, indexed in chunks; the bound per shard is %.0f MiB (pkg/document.MaxShardBytes)", inflated, bound)))
	}
	if ns, ok := get(decodePkg, "BenchmarkDecodeJSON", "ns/op"); ok {
		add(info("decode only, JSON line of 512 B", 1e9/ns, "records/s per core", "pkg/decode"))
	}
	if ns, ok := get(rulesPkg, "BenchmarkApply", "ns/op"); ok {
		add(info("rules only, 3 drops and 2 redactions", 1e9/ns, "records/s per core", "pkg/rules"))
	}

	// Budget accuracy: the extremes over every shards x budget case.
	var cases int
	hi, lo := math.Inf(-1), math.Inf(1)
	var hiCase, loCase string
	var loConfigured float64
	alignedHi, alignedLo := math.Inf(-1), math.Inf(1)
	var alignedLoCase string
	for _, b := range bs {
		name, ok := strings.CutPrefix(b.Name, accuracy)
		if !ok || !strings.HasSuffix(b.Pkg, consumerPkg) {
			continue
		}
		mx, ok1 := b.Metrics["max-ratio"]
		mn, ok2 := b.Metrics["min-ratio"]
		if !ok1 || !ok2 {
			continue
		}
		cases++
		if v, ok := b.Metrics["aligned-max-ratio"]; ok {
			alignedHi = max(alignedHi, v)
		}
		if v, ok := b.Metrics["aligned-min-ratio"]; ok && v < alignedLo {
			alignedLo, alignedLoCase = v, name
		}
		if mx > hi {
			hi, hiCase = mx, name
		}
		if mn < lo {
			lo, loCase = mn, name
			loConfigured = b.Metrics["configured-ratio"]
		}
	}
	if cases > 0 {
		add(atMost("budget accuracy, highest observed/budget", hi, "ratio", TargetMaxRatio,
			fmt.Sprintf("worst of %d cases: %s; 30 s windows", cases, hiCase)))
		note := fmt.Sprintf("worst of %d cases: %s; 30 s windows", cases, loCase)
		if loConfigured > 0 && loConfigured < 1 {
			note += fmt.Sprintf("; the per-shard maxRecords, rounded down from the team's recordsPerSecond, already give only %.4f of it", loConfigured)
		}
		add(atLeast("budget accuracy, lowest observed/budget", lo, "ratio", TargetMinRatio, note))
		if !math.IsInf(alignedLo, 1) {
			add(info("budget accuracy if every shard's calls align (worst case)", alignedLo, "ratio",
				fmt.Sprintf("lowest %.4f (%s), highest %.4f: a window can hold one batch of every shard more or less; none when maxRecords per poll interval is whole",
					alignedLo, alignedLoCase, alignedHi)))
		}
	}
	return figs
}

func atLeast(name string, v float64, unit string, limit float64, note string) Figure {
	pass := v >= limit
	return Figure{Figure: name, Value: v, Unit: unit, Target: ">= " + number(limit), Pass: &pass, Note: note}
}

func atMost(name string, v float64, unit string, limit float64, note string) Figure {
	pass := v <= limit
	return Figure{Figure: name, Value: v, Unit: unit, Target: "<= " + number(limit), Pass: &pass, Note: note}
}

func info(name string, v float64, unit, note string) Figure {
	return Figure{Figure: name, Value: v, Unit: unit, Note: note}
}

// ReadFigureFiles reads every <dir>/*.figures.json, in name order. A
// missing dir is no figures; a file that is not an array of figures is an
// error naming it.
func ReadFigureFiles(dir string) ([]Figure, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.figures.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var all []Figure
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		var figs []Figure
		if err := dec.Decode(&figs); err != nil {
			return nil, fmt.Errorf("read figures from %s: %w", p, err)
		}
		for i := range figs {
			if figs[i].Figure == "" {
				return nil, fmt.Errorf("read figures from %s: figure %d has no name", p, i)
			}
			figs[i].Source = filepath.Base(p)
		}
		all = append(all, figs...)
	}
	return all, nil
}

// Missed returns the figures that have a target and do not meet it.
func Missed(figs []Figure) []Figure {
	var out []Figure
	for _, f := range figs {
		if f.Pass != nil && !*f.Pass {
			out = append(out, f)
		}
	}
	return out
}

// WriteTable writes figs as one aligned Markdown table (figure, value,
// target, verdict), then the notes, numbered, under it.
func WriteTable(w io.Writer, figs []Figure) error {
	rows := [][]string{{"figure", "value", "target", "verdict"}}
	var notes []string
	for _, f := range figs {
		name, note := f.Figure, f.Note
		if f.Source != "" {
			note = strings.TrimSpace(note + " (from " + f.Source + ")")
		}
		if note != "" {
			notes = append(notes, note)
			name += fmt.Sprintf(" [%d]", len(notes))
		}
		verdict := "-"
		if f.Pass != nil {
			verdict = "pass"
			if !*f.Pass {
				verdict = "FAIL"
			}
		}
		target := f.Target
		if target == "" {
			target = "-"
		}
		rows = append(rows, []string{name, Format(f.Value, f.Unit), target, verdict})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(cells []string, right func(int) bool) {
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if right(i) {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		b.WriteString("\n")
	}
	isValue := func(i int) bool { return i == 1 }
	line(rows[0], isValue)
	b.WriteString("|")
	for i, wd := range width {
		if isValue(i) {
			b.WriteString(" " + strings.Repeat("-", wd-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", wd) + " |")
		}
	}
	b.WriteString("\n")
	for _, r := range rows[1:] {
		line(r, isValue)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for i, n := range notes {
			fmt.Fprintf(&b, "[%d] %s\n", i+1, n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Format renders a value with its unit for the table: ratios with four
// decimals, "x" factors with one, large numbers grouped by thousands.
func Format(v float64, unit string) string {
	switch unit {
	case "ratio":
		return strconv.FormatFloat(v, 'f', 4, 64)
	case "x":
		return strconv.FormatFloat(v, 'f', 1, 64) + "x"
	}
	s := number(v)
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// number prints v with the precision that matters at its size.
func number(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return group(v)
	case a >= 100 || a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// group prints v rounded to an integer, thousands separated by commas.
func group(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
