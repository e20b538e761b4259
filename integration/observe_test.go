//go:build integration

package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	h "github.com/streambudget/streambudget/integration/harness"
)

// TestWherePeopleLook: a team over its budget, seen the three ways people
// look at it. Every dashboard query runs against a real Prometheus scraping
// the consumer and the core panels have data; `streambudget top --once`
// shows the team; the status page renders in headless Chromium.
func TestWherePeopleLook(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("observe")
	h.CreateStream(t, kc, team, 2)
	h.Put(t, kc, team, h.Records(team, 2000, 20))
	budget := h.Budget(t, team, team, 2, "maxRecords: 20\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	prom := h.StartPrometheus(t, c.Addr)
	prom.WaitScraped(t, 60*time.Second)

	h.Eventually(t, 60*time.Second, "advice computed", func() (bool, string) {
		m, err := c.Metrics()
		if err != nil {
			return false, err.Error()
		}
		n := h.Sum(m, "streambudget_advice", `team="`+team+`"`)
		return n == 1, "no current advice yet"
	})

	t.Run("no profiles without --pprof", func(t *testing.T) {
		resp, err := http.Get("http://" + c.Addr + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("/debug/pprof/heap answered %s without --pprof", resp.Status)
		}
	})

	t.Run("dashboard queries", func(t *testing.T) {
		queries, err := h.DashboardQueries("../helm/streambudget-monitoring/dashboards/team.json")
		if err != nil {
			t.Fatal(err)
		}
		core := map[string]bool{"Budget vs read rate": true, "Lag per shard": true, "Current advice": true, "Retention headroom": true, "Shards owned vs open": true}
		h.Eventually(t, 90*time.Second, "core panels return data", func() (bool, string) {
			var empty []string
			for _, q := range queries {
				n, err := prom.Query(context.Background(), q.Expr)
				if err != nil {
					t.Fatalf("panel %q: %v", q.Panel, err)
				}
				if n == 0 && core[q.Panel] {
					empty = append(empty, q.Panel)
				}
			}
			return len(empty) == 0, "empty: " + strings.Join(empty, ", ")
		})
	})

	t.Run("top", func(t *testing.T) {
		out, err := exec.Command(env.Bin, "top", "--once", "--interval", "1s", c.Addr).CombinedOutput()
		if err != nil {
			t.Fatalf("top --once: %v\n%s", err, out)
		}
		var row string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, team+" ") {
				row = l
			}
		}
		f := strings.Fields(row)
		if len(f) < 11 || f[2] != "2/2" || f[3] != "40" {
			t.Fatalf("top row %q, want team %s with 2/2 shards and a budget of 40:\n%s", row, team, out)
		}
		if advice := f[len(f)-1]; advice == "measuring" {
			t.Errorf("top shows no advice: %q", row)
		}
	})

	t.Run("status page in chromium", func(t *testing.T) {
		var installLog strings.Builder
		install := exec.Command("bash", "browser/install.sh")
		install.Stderr = &installLog
		path, err := install.Output()
		if err != nil {
			t.Fatalf("install chromium: %v\n%s", err, installLog.String())
		}
		t.Log(strings.TrimSpace(installLog.String())) // the version that ran
		chromium := strings.TrimSpace(string(path))
		profile := t.TempDir()
		shot := filepath.Join(t.TempDir(), "status.png")
		args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + profile, "--virtual-time-budget=2000"}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		dom, err := exec.CommandContext(ctx, chromium, append(args, "--dump-dom", "http://"+c.Addr+"/")...).Output()
		if err != nil {
			t.Fatalf("chromium --dump-dom: %v", err)
		}
		page := string(dom)
		for _, want := range []string{`id="team">` + team + `<`, `id="advice"`, "records/s", "shardId-000000000000", "shardId-000000000001", "Retention headroom"} {
			if !strings.Contains(page, want) {
				t.Errorf("rendered page lacks %q:\n%s", want, page)
			}
		}
		for _, action := range []string{"over_budget", "draining", "ok", "add_pods", "reshard", "data_loss_risk", "scale_down"} {
			if strings.Contains(page, `class="advice `+action+`"`) {
				goto found
			}
		}
		t.Errorf("rendered page shows no advice class:\n%s", page)
	found:
		if out, err := exec.CommandContext(ctx, chromium, append(args, "--screenshot="+shot, "--window-size=1200,800", "http://"+c.Addr+"/")...).CombinedOutput(); err != nil {
			t.Fatalf("chromium --screenshot: %v\n%s", err, out)
		}
		if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
			t.Errorf("screenshot %s: %v, want a rendered page", shot, err)
		}
	})
}
