package budget

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: any bytes as a budget file load or fail with positioned errors;
// never a panic.
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Load(path)
		if err == nil {
			if file == nil || file.Team == "" || file.Budget.PollInterval < MinPollInterval {
				t.Fatalf("loaded an invalid budget: %+v", file)
			}
			return
		}
		es, ok := AsErrors(err)
		if !ok || len(es) == 0 {
			t.Fatalf("error %v is not a budget.Errors", err)
		}
		for _, e := range es {
			if !strings.HasPrefix(e.Error(), path) {
				t.Fatalf("finding %q does not start with the file name", e.Error())
			}
		}
	})
}
