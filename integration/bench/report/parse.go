// Package report turns `go test -bench` output into the release-note figures
// of `make bench`: it parses the benchmark lines, derives the figures the
// targets are stated in (records/s per core, ratio to the naive baseline,
// budget accuracy), merges figures other benchmark programs wrote, and
// renders one table.
package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Benchmark is one result line of `go test -bench` output.
type Benchmark struct {
	Pkg  string `json:"pkg"`
	Name string `json:"name"` // as printed, without the -GOMAXPROCS suffix
	// Procs is GOMAXPROCS during the run (the name's -N suffix; 1 without).
	Procs      int   `json:"procs"`
	Iterations int64 `json:"iterations"`
	// Metrics are the values by unit: ns/op, MB/s, B/op, allocs/op and the
	// benchmark's own (b.ReportMetric), such as records/s.
	Metrics map[string]float64 `json:"metrics"`
}

// Env is what `go test -bench` prints about the machine.
type Env struct {
	GOOS   string `json:"goos,omitempty"`
	GOARCH string `json:"goarch,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// Parse reads `go test -bench` output (one or more packages) and returns
// every benchmark result in order. Lines that are not results (logs, PASS,
// ok, a benchmark's name printed before its own output) are skipped; a
// result line whose values cannot be read is an error naming its line.
func Parse(r io.Reader) (Env, []Benchmark, error) {
	var env Env
	var out []Benchmark
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ": "); ok {
			switch k {
			case "pkg":
				pkg = strings.TrimSpace(v)
				continue
			case "goos":
				env.GOOS = strings.TrimSpace(v)
				continue
			case "goarch":
				env.GOARCH = strings.TrimSpace(v)
				continue
			case "cpu":
				env.CPU = strings.TrimSpace(v)
				continue
			}
		}
		b, ok, err := parseLine(line)
		if err != nil {
			return env, out, fmt.Errorf("line %d: %w", n, err)
		}
		if ok {
			b.Pkg = pkg
			out = append(out, b)
		}
	}
	if err := sc.Err(); err != nil {
		return env, out, fmt.Errorf("read benchmark output: %w", err)
	}
	return env, out, nil
}

// parseLine reads "BenchmarkName-N  iterations  value unit  value unit ...".
// ok is false for lines that are not results.
func parseLine(line string) (b Benchmark, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) < 2 || !isBenchmarkName(f[0]) {
		return b, false, nil
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return b, false, nil // the name, then the benchmark's own output
	}
	if len(f)%2 != 0 {
		return b, false, fmt.Errorf("%s: values and units do not pair up: %q", f[0], line)
	}
	b.Name, b.Procs = splitProcs(f[0])
	b.Iterations = iters
	b.Metrics = make(map[string]float64, (len(f)-2)/2)
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return b, false, fmt.Errorf("%s: value %q of %s: %w", f[0], f[i], f[i+1], err)
		}
		b.Metrics[f[i+1]] = v
	}
	return b, true, nil
}

// isBenchmarkName: "Benchmark" then, as for the testing package, a name
// that does not start with a lower-case letter.
func isBenchmarkName(s string) bool {
	rest, ok := strings.CutPrefix(s, "Benchmark")
	return ok && (rest == "" || rest[0] < 'a' || rest[0] > 'z')
}

// splitProcs splits the -GOMAXPROCS suffix the testing package adds when
// GOMAXPROCS is not 1.
func splitProcs(name string) (string, int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, 1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 1 {
		return name, 1
	}
	return name[:i], n
}
