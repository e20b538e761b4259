package prometheus

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streambudget/streambudget/integration/harness"
)

var dashboard = filepath.Join(dashboards, "streambudget.json")

// TestDashboardQueriesRun runs every panel query on a real Prometheus that
// scrapes itself: no streambudget runs, so the results are empty, but a query
// Prometheus cannot parse or evaluate fails.
func TestDashboardQueriesRun(t *testing.T) {
	queries, err := harness.DashboardQueries(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatalf("%s: no panel queries", dashboard)
	}
	p := harness.StartPrometheus(t, harness.SelfTarget)
	p.WaitScraped(t, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The server answers and reports errors: the checks below mean something.
	if n, err := p.Query(ctx, `up{job="streambudget"}`); err != nil || n != 1 {
		t.Fatalf(`up{job="streambudget"}: got %d series, %v; want 1 series, no error`, n, err)
	}
	if _, err := p.Query(ctx, `sum by (team) (rate(streambudget_sink_indexed_total[1m])`); err == nil {
		t.Fatal("a query missing its closing parenthesis: got no error, want a parse error")
	}

	for _, q := range queries {
		if _, err := p.Query(ctx, q.Expr); err != nil {
			t.Errorf("panel %q target %s: %v", q.Panel, q.RefID, err)
		}
	}
}

// selector is a series name and its label matchers.
var selector = regexp.MustCompile(`(streambudget_[a-z_]+)(\{[^}]*\})?`)

// TestDashboardModel checks what Grafana and the chart rely on: the schema
// version, the datasource and team variables, panels that use only them, and
// every series filtered by the team variable.
func TestDashboardModel(t *testing.T) {
	raw := readFile(t, dashboard)
	var dash struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Query      json.RawMessage `json:"query"`
				Definition string          `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("decode %s: %v", dashboard, err)
	}
	if dash.SchemaVersion != 39 {
		t.Errorf("schemaVersion: got %d, want 39", dash.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "datasource" && string(v.Query) != `"prometheus"` {
			t.Errorf("variable datasource: got query %s, want \"prometheus\"", v.Query)
		}
		if v.Name == "team" && v.Definition != "label_values(streambudget_team_budget_records_per_second, team)" {
			t.Errorf("variable team: got definition %q, want label_values(streambudget_team_budget_records_per_second, team)", v.Definition)
		}
	}
	if vars["datasource"] != "datasource" || vars["team"] != "query" {
		t.Errorf("variables: got %v, want datasource (datasource) and team (query)", vars)
	}

	// Every datasource reference anywhere is the variable; no link leaves Grafana.
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	walkJSON(generic, "", func(path string, v any) {
		if m, ok := v.(map[string]any); ok {
			if ds, ok := m["datasource"].(map[string]any); ok && ds["uid"] != "${datasource}" {
				t.Errorf("%s.datasource: got uid %v, want ${datasource}", path, ds["uid"])
			}
		}
		if s, ok := v.(string); ok && strings.Contains(s, "://") {
			t.Errorf("%s: got %q, want no external link", path, s)
		}
	})

	titles := map[string]bool{}
	var check func([]panel)
	check = func(panels []panel) {
		for _, p := range panels {
			check(p.Panels)
			titles[p.Title] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q: no targets", p.Title)
			}
			for _, target := range p.Targets {
				sels := selector.FindAllStringSubmatch(target.Expr, -1)
				if len(sels) == 0 {
					t.Errorf("panel %q target %s: no streambudget series in %q", p.Title, target.RefID, target.Expr)
				}
				for _, m := range sels {
					if !knownSeries[m[1]] {
						t.Errorf("panel %q target %s: %s is not a series streambudget exports", p.Title, target.RefID, m[1])
					}
					if !strings.Contains(m[2], `team=~"$team"`) {
						t.Errorf("panel %q target %s: %s: got matchers %q, want team=~\"$team\"", p.Title, target.RefID, m[1], m[2])
					}
				}
			}
		}
	}
	check(dash.Panels)
	for _, want := range []string{
		"Budget vs read rate", "Lag per shard", "Retention headroom", "Drain ETA and backlog", "Current advice",
		"Indexed / dropped / dead-lettered", "Bulk request latency p50 / p99", "Budget wait ratio", "Shards owned vs open",
	} {
		if !titles[want] {
			t.Errorf("panels: no panel %q", want)
		}
	}
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func walkJSON(v any, path string, visit func(string, any)) {
	visit(path, v)
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			walkJSON(child, path+"."+k, visit)
		}
	case []any:
		for i, child := range v {
			walkJSON(child, path+"["+strconv.Itoa(i)+"]", visit)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
