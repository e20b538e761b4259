package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Results is what results.json holds: the table's figures and the
// benchmark results they were derived from.
type Results struct {
	Generated time.Time `json:"generated"`
	GoVersion string    `json:"go_version"`
	Env
	Benchtime  string      `json:"benchtime"`
	Figures    []Figure    `json:"figures"`
	Benchmarks []Benchmark `json:"benchmarks"`
}

// WriteFile writes r as indented JSON to path, creating its directory; a
// reader never sees a half-written file.
func (r *Results) WriteFile(path string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // targets read ">= 3", not "\u003e= 3"
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".results-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
