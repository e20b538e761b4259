package budget

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected findings in testdata/*.txt")

// TestLoadTestdata loads every testdata/*.yaml: *.good.yaml must load with no
// findings; *.bad.yaml and *.warn.yaml must produce exactly the lines in the
// paired .txt file (bad ones fail to load, warn ones load).
func TestLoadTestdata(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 10 {
		t.Fatalf("found %d fixtures, want at least 10", len(paths))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			files, findings := LoadPaths(path)
			var got []string
			for _, f := range findings {
				got = append(got, f.Error())
			}
			switch {
			case strings.HasSuffix(path, ".good.yaml"):
				if len(findings) != 0 || len(files) != 1 {
					t.Fatalf("got %d files and findings:\n%s\nwant one file and none", len(files), strings.Join(got, "\n"))
				}
				return
			case strings.HasSuffix(path, ".bad.yaml"):
				if !findings.HasErrors() || len(files) != 0 {
					t.Fatalf("got %d files and no errors, want the file rejected", len(files))
				}
			case strings.HasSuffix(path, ".warn.yaml"):
				if findings.HasErrors() || len(files) != 1 || len(findings.Warnings()) == 0 {
					t.Fatalf("got %d files, findings:\n%s\nwant the file loaded with warnings", len(files), strings.Join(got, "\n"))
				}
			default:
				t.Fatalf("fixture name must end in .good.yaml, .bad.yaml or .warn.yaml")
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".txt"
			text := strings.Join(got, "\n") + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read expected findings: %v (run go test -update once to create it)", err)
			}
			if text != string(want) {
				t.Errorf("got findings:\n%s\nwant:\n%s", text, want)
			}
		})
	}
}

func TestLoadValues(t *testing.T) {
	f, err := Load("testdata/arn.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.StreamName(), "billing-logs"; got != want {
		t.Errorf("StreamName() = %q, want %q", got, want)
	}
	if got, want := f.Budget.PollInterval, 500*time.Millisecond; got != want {
		t.Errorf("PollInterval = %v, want %v", got, want)
	}
	if got, want := f.Limits.MaxDecompressedBytes, int64(8<<20); got != want {
		t.Errorf("MaxDecompressedBytes = %d, want %d", got, want)
	}
	// recordsPerSecond 4000 at 500ms over 4 shards: 500 records per call per shard.
	if got, want := f.Budget.MaxRecordsFor(4), 500; got != want {
		t.Errorf("MaxRecordsFor(4) = %d, want %d", got, want)
	}
	// Resharding to 8 halves the per-shard share; the team total stays.
	if got, want := f.Budget.MaxRecordsFor(8), 250; got != want {
		t.Errorf("MaxRecordsFor(8) = %d, want %d", got, want)
	}
	if got, want := f.Budget.TeamRate(8), 4000.0; got != want {
		t.Errorf("TeamRate(8) = %v, want %v", got, want)
	}
	if got, want := f.ApplicationName(), "streambudget-billing-2"; got != want {
		t.Errorf("ApplicationName() = %q, want %q", got, want)
	}
}

func TestLoadPositionedError(t *testing.T) {
	_, err := Load("testdata/maxrecords-zero.bad.yaml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want a *budget.Error", err, err)
	}
	if e.Line != 6 || e.Column != 15 || e.Field != "budget.maxRecords" {
		t.Errorf("got %d:%d %s, want 6:15 budget.maxRecords", e.Line, e.Column, e.Field)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	a := "team: a\nstream: s\nshards: 1\nbudget: {maxRecords: 10}\nelasticsearch: {urls: [http://es:9200], index: i, deadLetterIndex: d}\n"
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", a)
	write("b.yml", strings.Replace(a, "stream: s", "stream: t", 1))
	write("notes.txt", "not a budget")
	_, err := LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), `b.yml:1:7: team: "a" is already used by `) {
		t.Fatalf("got %v, want a duplicate team error at b.yml:1:7", err)
	}

	// One team per stream (found by review: two teams on one stream read it
	// twice, and their documents share _ids).
	dir2 := t.TempDir()
	for name, body := range map[string]string{"a.yaml": a, "c.yaml": strings.Replace(a, "team: a", "team: c", 1)} {
		if err := os.WriteFile(filepath.Join(dir2, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadDir(dir2); err == nil || !strings.Contains(err.Error(), `c.yaml:2:9: stream: stream "s" is already read by team a`) {
		t.Fatalf("got %v, want a shared stream error at c.yaml:2:9", err)
	}

	empty := t.TempDir()
	if _, err := LoadDir(empty); err == nil || !strings.Contains(err.Error(), "no budget files") {
		t.Fatalf("got %v, want no budget files", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("got %v, want no such file", err)
	}
}

func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("team: a\n#"+strings.Repeat("x", 10<<20)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "over 1048576 bytes") {
		t.Fatalf("got %v, want a size error", err)
	}
	two := filepath.Join(dir, "two.yaml")
	if err := os.WriteFile(two, []byte("team: a\n---\nteam: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(two); err == nil || !strings.Contains(err.Error(), "second one") {
		t.Fatalf("got %v, want a two-document error", err)
	}
}

func TestClusters(t *testing.T) {
	dir := t.TempDir()
	body := func(team string, maxRecords, capacity int) string {
		return strings.NewReplacer("TEAM", team).Replace("team: TEAM\nstream: TEAM\nshards: 2\nbudget: {maxRecords: ") +
			itoa(maxRecords) + "}\nelasticsearch: {urls: [http://es:9200], index: i, deadLetterIndex: d}\ncluster: {name: prod, capacity: " + itoa(capacity) + ", borrow: true}\n"
	}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"fits", map[string]string{"a.yaml": body("a", 100, 1000), "b.yaml": body("b", 200, 1000)}, ""},
		{"capacity disagrees", map[string]string{"a.yaml": body("a", 100, 1000), "b.yaml": body("b", 200, 2000)}, "gives the same capacity"},
		{"guarantees above capacity", map[string]string{"a.yaml": body("a", 300, 1000), "b.yaml": body("b", 300, 1000)}, "add up to 1200 records/s, above its capacity of 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, b := range tc.files {
				if err := os.WriteFile(filepath.Join(d, name), []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadDir(d)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"2MiB", 2 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1MB", 1000000, false},
		{"1000", 1000, false},
		{"1.5MiB", 3 << 19, false},
		{"2 MiB", 2 << 20, false},
		{"MiB", 0, true},
		{"-1KiB", 0, true},
		{"lots", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestIndexPattern(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		pattern, want, err string
	}{
		{"logs-payments-{yyyy.MM.dd}", "logs-payments-2026.03.04", ""},
		{"logs-{yyyy.MM.dd.HH}", "logs-2026.03.04.04", ""},
		{"deadletter-payments", "deadletter-payments", ""},
		{"logs-{yy_MM}-x", "logs-26_03-x", ""},
		{"Logs", "", "lower case"},
		{"logs-{", "", "unclosed"},
		{"logs-{}", "", "empty"},
		{"_logs", "", "cannot start"},
		{"logs,x", "", "cannot contain"},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			ip, err := ParseIndexPattern(tc.pattern)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ip.Format(at); got != tc.want {
				t.Errorf("Format() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestExampleBudgets keeps the shipped budgets/ valid and free of warnings.
func TestExampleBudgets(t *testing.T) {
	files, findings := LoadPaths("../../budgets")
	if len(findings) != 0 {
		t.Fatalf("budgets/ has findings:\n%v", findings)
	}
	if len(files) != 3 {
		t.Fatalf("got %d example budgets, want 3", len(files))
	}
}

// TestCheckURL: credentials are refused however the URL parser would read
// them (found by review: a password of digits then ?, / or # parses as a
// port and a query, path or fragment).
func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://es.logs.internal:9200", true},
		{"http://127.0.0.1:9200/prefix", true},
		{"http://elastic:pw@es:9200", false},
		{"http://elastic:12345?pw@es:9200", false},
		{"https://elastic:9200/s3cr3t@es", false},
		{"http://elastic:1234#pw@es:9200", false},
		{"ftp://es", false},
		{"es:9200", false},
	} {
		err := CheckURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw") || err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("CheckURL(%q): the error repeats the password: %v", tc.url, err)
		}
	}
}
