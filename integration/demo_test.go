//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	h "github.com/streambudget/streambudget/integration/harness"
	"github.com/streambudget/streambudget/pkg/demo"
)

// TestDemo runs a shortened `make demo` (30 s of load) and checks what it
// promises: every record accounted for, the quiet teams' lag low, and the
// spiking team held to its budget while its backlog waited in Kinesis.
func TestDemo(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	summaryPath := filepath.Join(t.TempDir(), "summary.json")
	cmd := exec.Command(env.Bin, "demo", "--budgets", "../budgets", "--seconds", "30", "--spike-factor", "3",
		"--live", "no", "--borrowing=false", "--port-base", "9200", "--summary", summaryPath, "--log-dir", t.TempDir())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("demo took %s:\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	b, err := os.ReadFile(summaryPath)
	if err != nil {
		t.Fatal(err)
	}
	var sum demo.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Teams) != 3 {
		t.Fatalf("got %d teams, want 3", len(sum.Teams))
	}
	spiked := 0
	for _, tm := range sum.Teams {
		if tm.Unaccounted != 0 || tm.Produced != tm.Indexed+tm.Dropped+tm.DeadLettered || tm.Produced == 0 {
			t.Errorf("%s: produced %d, indexed %d, dropped %d, dead-lettered %d: not accounted for", tm.Team, tm.Produced, tm.Indexed, tm.Dropped, tm.DeadLettered)
		}
		if tm.DeadLettered == 0 {
			t.Errorf("%s: no dead letters; the load sends every kind", tm.Team)
		}
		if !tm.Spiking {
			if tm.MaxLag > 5 {
				t.Errorf("%s (quiet): max lag %.1fs, want under 5s", tm.Team, tm.MaxLag)
			}
			continue
		}
		spiked++
		// The budget plus one burst (one poll interval's worth) over 10 s.
		if tm.MaxRead10s > tm.Budget*1.1*1.02 {
			t.Errorf("%s (spiking): read %.0f records/s over 10 s, above its budget of %.0f", tm.Team, tm.MaxRead10s, tm.Budget)
		}
		if tm.MaxRead10s < tm.Budget*0.8 {
			t.Errorf("%s (spiking): read at most %.0f records/s, want about its budget of %.0f while backlogged", tm.Team, tm.MaxRead10s, tm.Budget)
		}
		if tm.MaxLag < 5 {
			t.Errorf("%s (spiking): max lag %.1fs, want the excess to wait in Kinesis", tm.Team, tm.MaxLag)
		}
	}
	if spiked != 1 {
		t.Errorf("%d teams spiked, want 1", spiked)
	}
}
