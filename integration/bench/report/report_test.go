package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/streambudget/streambudget/pkg/document
cpu: Intel(R) Xeon(R) Processor @ 2.80GHz
BenchmarkPipelineJSON-2         	     633	   2009750 ns/op	 125.82 MB/s	       221.0 B/record	         5.780 allocs/record	      4020 ns/record	    248787 records/s	  110486 B/op	    2890 allocs/op
BenchmarkNaiveJSON-2            	      14	  34115758 ns/op	   7.41 MB/s	      7787 B/record	       151.2 allocs/record	     68232 ns/record	     14656 records/s	 3893678 B/op	   75593 allocs/op
BenchmarkPipelineCloudWatch-2   	       2	 306322172 ns/op	   7.38 MB/s	       244.3 B/event	         5.178 allocs/event	     81613 events/s	     12253 ns/event	 6107648 B/op	  129444 allocs/op
PASS
ok  	github.com/streambudget/streambudget/pkg/document	3.550s
goos: linux
goarch: amd64
pkg: github.com/streambudget/streambudget/pkg/consumer
cpu: Intel(R) Xeon(R) Processor @ 2.80GHz
BenchmarkBudgetAccuracy/shards=1/budget=100-2         	       1	     75070 ns/op	         1.000 configured-ratio	         1.000 max-ratio	         1.000 min-ratio
BenchmarkBudgetAccuracy/shards=8/budget=100-2         	       1	    837990 ns/op	         0.9600 configured-ratio	         0.9600 max-ratio	         0.9600 min-ratio
BenchmarkBudgetAccuracy/shards=8/budget=1000-2        	       1	    871718 ns/op	         1.009 aligned-max-ratio	         0.9754 aligned-min-ratio	         1.000 configured-ratio	         1.005 max-ratio	         0.9950 min-ratio
PASS
ok  	github.com/streambudget/streambudget/pkg/consumer	3.550s
goos: linux
goarch: amd64
pkg: github.com/streambudget/streambudget/pkg/decode
cpu: Intel(R) Xeon(R) Processor @ 2.80GHz
BenchmarkDecodeJSON
    bench_test.go:30: a log line a benchmark printed
BenchmarkDecodeJSON-2             	  305287	      1976 ns/op	 259.11 MB/s	       0 B/op	       0 allocs/op
BenchmarkNaiveJSON                	   50000	     20000 ns/op
--- FAIL: BenchmarkBroken
PASS
ok  	github.com/streambudget/streambudget/pkg/decode	2.1s
`

func TestParse(t *testing.T) {
	env, bs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if env.GOOS != "linux" || env.GOARCH != "amd64" || env.CPU != "Intel(R) Xeon(R) Processor @ 2.80GHz" {
		t.Errorf("env = %+v, want linux, amd64 and the cpu line", env)
	}
	if len(bs) != 8 {
		t.Fatalf("got %d benchmarks, want 8: %+v", len(bs), bs)
	}
	for _, tc := range []struct {
		i          int
		pkg, name  string
		procs      int
		iterations int64
		unit       string
		value      float64
	}{
		{0, "github.com/streambudget/streambudget/pkg/document", "BenchmarkPipelineJSON", 2, 633, "ns/op", 2009750},
		{0, "github.com/streambudget/streambudget/pkg/document", "BenchmarkPipelineJSON", 2, 633, "allocs/record", 5.78},
		{0, "github.com/streambudget/streambudget/pkg/document", "BenchmarkPipelineJSON", 2, 633, "B/op", 110486},
		{0, "github.com/streambudget/streambudget/pkg/document", "BenchmarkPipelineJSON", 2, 633, "MB/s", 125.82},
		{4, "github.com/streambudget/streambudget/pkg/consumer", "BenchmarkBudgetAccuracy/shards=8/budget=100", 2, 1, "min-ratio", 0.96},
		{6, "github.com/streambudget/streambudget/pkg/decode", "BenchmarkDecodeJSON", 2, 305287, "allocs/op", 0},
		{7, "github.com/streambudget/streambudget/pkg/decode", "BenchmarkNaiveJSON", 1, 50000, "ns/op", 20000},
	} {
		b := bs[tc.i]
		if b.Pkg != tc.pkg || b.Name != tc.name || b.Procs != tc.procs || b.Iterations != tc.iterations {
			t.Errorf("benchmark %d = %s %s -%d %d, want %s %s -%d %d", tc.i, b.Pkg, b.Name, b.Procs, b.Iterations, tc.pkg, tc.name, tc.procs, tc.iterations)
		}
		if got, ok := b.Metrics[tc.unit]; !ok || got != tc.value {
			t.Errorf("%s %s = %v (present %v), want %v", b.Name, tc.unit, got, ok, tc.value)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unpaired value", "BenchmarkX-2 10 5 ns/op 3\n", "line 1: BenchmarkX-2: values and units do not pair up"},
		{"bad value", "pkg: p\nBenchmarkX-2 10 five ns/op\n", `line 2: BenchmarkX-2: value "five" of ns/op`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSplitProcs(t *testing.T) {
	for _, tc := range []struct {
		in    string
		name  string
		procs int
	}{
		{"BenchmarkX-8", "BenchmarkX", 8},
		{"BenchmarkX", "BenchmarkX", 1},
		{"BenchmarkX/budget=100-2", "BenchmarkX/budget=100", 2},
		{"BenchmarkX/a-b", "BenchmarkX/a-b", 1},
	} {
		if name, procs := splitProcs(tc.in); name != tc.name || procs != tc.procs {
			t.Errorf("splitProcs(%q) = %q, %d, want %q, %d", tc.in, name, procs, tc.name, tc.procs)
		}
	}
}

func TestDerive(t *testing.T) {
	_, bs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	figs := Derive(bs)
	byName := map[string]Figure{}
	for _, f := range figs {
		byName[f.Figure+" "+f.Unit] = f
	}
	for _, tc := range []struct {
		key   string
		value float64
		pass  string // "pass", "fail" or "" (no target)
	}{
		{"pipeline, JSON lines of 512 B records/s per core", 1e9 / 4020, "pass"},
		{"pipeline, JSON vs naive encoding/json x", 68232.0 / 4020, "pass"},
		{"pipeline, JSON lines of 512 B allocs/record", 5.78, ""},
		{"pipeline, CloudWatch Logs gzip (50 events) events/s per core", 1e9 / 12253, ""},
		{"budget accuracy, highest observed/budget ratio", 1.005, "pass"},
		{"budget accuracy, lowest observed/budget ratio", 0.96, "fail"},
		{"budget accuracy if every shard's calls align (worst case) ratio", 0.9754, ""},
		{"decode only, JSON line of 512 B records/s per core", 1e9 / 1976, ""},
	} {
		f, ok := byName[tc.key]
		if !ok {
			t.Errorf("no figure %q in %v", tc.key, figs)
			continue
		}
		pass := ""
		if f.Pass != nil {
			pass = map[bool]string{true: "pass", false: "fail"}[*f.Pass]
		}
		if f.Value != tc.value || pass != tc.pass {
			t.Errorf("%s = %v (%q), want %v (%q)", tc.key, f.Value, pass, tc.value, tc.pass)
		}
	}
	if f := byName["budget accuracy, lowest observed/budget ratio"]; !strings.Contains(f.Note, "shards=8/budget=100;") || !strings.Contains(f.Note, "only 0.9600 of it") {
		t.Errorf("lowest ratio note %q, want the worst case named and its rounding", f.Note)
	}
	if got := len(Missed(figs)); got != 1 {
		t.Errorf("%d missed targets, want 1", got)
	}
}

func TestReadFigureFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("e2e.figures.json", `[{"figure":"end to end, records/s","value":12000,"unit":"records/s","target":">= 10000","pass":true}]`)
	write("results.json", `{"not":"figures"}`)
	figs, err := ReadFigureFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 || figs[0].Value != 12000 || figs[0].Pass == nil || !*figs[0].Pass || figs[0].Source != "e2e.figures.json" {
		t.Errorf("got %+v, want the one figure of e2e.figures.json", figs)
	}
	write("typo.figures.json", `[{"figure":"x","value":1,"passed":true}]`)
	if _, err := ReadFigureFiles(dir); err == nil || !strings.Contains(err.Error(), "typo.figures.json") {
		t.Errorf("got %v, want an error naming typo.figures.json", err)
	}
}

func TestWriteTable(t *testing.T) {
	yes, no := true, false
	var b strings.Builder
	err := WriteTable(&b, []Figure{
		{Figure: "pipeline, JSON", Value: 248787.4, Unit: "records/s per core", Target: ">= 150,000", Pass: &yes},
		{Figure: "accuracy", Value: 0.96, Unit: "ratio", Target: ">= 0.98", Pass: &no, Note: "worst: shards=8/budget=100"},
		{Figure: "allocs", Value: 5.78, Unit: "allocs/record"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `| figure         |                      value | target     | verdict |
| -------------- | -------------------------: | ---------- | ------- |
| pipeline, JSON | 248,787 records/s per core | >= 150,000 | pass    |
| accuracy [1]   |                     0.9600 | >= 0.98    | FAIL    |
| allocs         |         5.78 allocs/record | -          | -       |

[1] worst: shards=8/budget=100
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
