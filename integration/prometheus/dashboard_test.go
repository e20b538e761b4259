package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streambudget/streambudget/integration/harness"
)

// dashboardFiles are the fleet chart's dashboards and the panels each must have.
var dashboardFiles = map[string][]string{
	"fleet.json": {
		"Teams now", "Over budget now", "Teams by advice", "Read rate / budget", "Lag", "Retention headroom",
		"Backlog", "Advice", "Pods scraped and shards being read", "Elasticsearch: indexed, errors, blocked",
	},
	"team.json": {
		"Budget vs read rate", "Lag per shard", "Retention headroom", "Drain ETA and backlog", "Current advice",
		"Indexed / dropped / dead-lettered", "Bulk request latency p50 / p99", "Budget wait ratio", "Shards owned vs open",
		"Elasticsearch: blocked and preflight", "Pods and shards being read",
	},
}

// TestDashboardQueriesRun runs every panel query of both dashboards on a real
// Prometheus that scrapes an exporter serving every series streambudget
// exports, for two teams in two clusters (one team over budget). A query
// Prometheus cannot parse or evaluate fails, and so does one that finds no
// series: a misspelt label or a matcher no series satisfies.
func TestDashboardQueriesRun(t *testing.T) {
	exporter := startExporter(t)
	p := harness.StartPrometheus(t, harness.SelfTarget, exporter)
	p.WaitScraped(t, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The server answers and reports errors: the checks below mean something.
	if n, err := p.Query(ctx, `up{job="streambudget"}`); err != nil || n != 2 {
		t.Fatalf(`up{job="streambudget"}: got %d series, %v; want 2 series, no error`, n, err)
	}
	if _, err := p.Query(ctx, `sum by (team) (rate(streambudget_sink_indexed_total[1m])`); err == nil {
		t.Fatal("a query missing its closing parenthesis: got no error, want a parse error")
	}
	// rate() needs two samples of every counter within its window.
	waitQuery(t, ctx, p, `count(count_over_time(streambudget_sink_indexed_total[1m]) >= 3)`, 3)

	for file := range dashboardFiles {
		queries, err := harness.DashboardQueries(filepath.Join(dashboards, file))
		if err != nil {
			t.Fatal(err)
		}
		if len(queries) == 0 {
			t.Fatalf("%s: no panel queries", file)
		}
		for _, q := range queries {
			n, err := p.Query(ctx, q.Expr)
			switch {
			case err != nil:
				t.Errorf("%s: panel %q target %s: %v", file, q.Panel, q.RefID, err)
			case n == 0:
				t.Errorf("%s: panel %q target %s: no series for %s", file, q.Panel, q.RefID, q.Expr)
			}
		}
	}
}

// waitQuery waits until expr returns a single sample of value want.
func waitQuery(t *testing.T, ctx context.Context, p *harness.Prometheus, expr string, want int) {
	t.Helper()
	for {
		n, err := p.Query(ctx, fmt.Sprintf("(%s) == %d", expr, want))
		if err == nil && n == 1 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not reach %d: %v", expr, want, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startExporter serves every known series on 127.0.0.1 for four pods' worth
// of teams: payments in clusters eu1 and us1 (over budget in eu1), search in
// eu1, each in namespace logging. It returns host:port.
func startExporter(t *testing.T) string {
	t.Helper()
	type team struct{ cluster, name, advice string }
	teams := []team{{"eu1", "payments", "over_budget"}, {"us1", "payments", "ok"}, {"eu1", "search", "ok"}}
	extra := map[string][]string{
		"streambudget_advice":                   {`action="ok"`, `action="over_budget"`, `action="draining"`, `action="add_pods"`, `action="reshard"`, `action="data_loss_risk"`, `action="scale_down"`},
		"streambudget_sink_dead_lettered_total": {`reason="invalid_json"`},
		"streambudget_sink_retries_total":       {`reason="item_429"`, `reason="request_error"`},
		"streambudget_sink_bulk_requests_total": {`result="ok"`, `result="error"`},
		"streambudget_sink_blocked":             {`reason="unauthorized"`},
		"streambudget_rules_dropped_total":      {`rule="debug"`},
		"streambudget_build_info":               {`version="0.1.0",goversion="go1.26.8"`},
	}
	for name := range knownSeries {
		if strings.HasPrefix(name, "streambudget_shard_") {
			extra[name] = []string{`shard="shardId-000000000000"`, `shard="shardId-000000000001"`}
		}
	}
	start := time.Now()
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// Counters grow with time so that rate() sees them move.
		tick := strconv.FormatInt(int64(time.Since(start)/time.Millisecond), 10)
		var b strings.Builder
		names := make([]string, 0, len(knownSeries))
		for name := range knownSeries {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if strings.HasPrefix(name, "streambudget_sink_bulk_request_duration_seconds_") {
				continue // written below as one histogram
			}
			for _, tm := range teams {
				base := fmt.Sprintf(`cluster=%q,namespace="logging",team=%q,stream="%s-logs",pod="%s-0"`, tm.cluster, tm.name, tm.name, tm.name)
				variants := extra[name]
				if len(variants) == 0 {
					variants = []string{""}
				}
				for _, v := range variants {
					labels := base
					if v != "" {
						labels += "," + v
					}
					value := "1"
					switch {
					case strings.HasSuffix(name, "_total"):
						value = tick
					case name == "streambudget_advice":
						value = "0"
						if v == fmt.Sprintf("action=%q", tm.advice) {
							value = "1"
						}
					}
					fmt.Fprintf(&b, "%s{%s} %s\n", name, labels, value)
				}
			}
		}
		for _, tm := range teams {
			base := fmt.Sprintf(`cluster=%q,namespace="logging",team=%q,stream="%s-logs",pod="%s-0",result="ok"`, tm.cluster, tm.name, tm.name, tm.name)
			for _, le := range []string{"0.1", "1", "+Inf"} {
				fmt.Fprintf(&b, "streambudget_sink_bulk_request_duration_seconds_bucket{%s,le=%q} %s\n", base, le, tick)
			}
			fmt.Fprintf(&b, "streambudget_sink_bulk_request_duration_seconds_sum{%s} %s\n", base, tick)
			fmt.Fprintf(&b, "streambudget_sink_bulk_request_duration_seconds_count{%s} %s\n", base, tick)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(b.String()))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// selector is a series name and its label matchers.
var selector = regexp.MustCompile(`(streambudget_[a-z_]+)(\{(?:\$\{\w+\}|[^}])*\})?`)

// scopeMatchers are what every series of a panel is filtered by: the
// dashboard's cluster, namespace and team variables.
var scopeMatchers = []string{`${cluster_label}=~"$cluster"`, `namespace=~"$namespace"`, `team=~"$team"`}

// TestDashboardModel checks what Grafana and the chart rely on: the schema
// version, the datasource, cluster, namespace and team variables, panels that
// use only them, every series filtered by them, and every aggregation keeping
// the cluster label and the namespace.
func TestDashboardModel(t *testing.T) {
	uids := map[string]string{}
	for file, wantTitles := range dashboardFiles {
		t.Run(file, func(t *testing.T) {
			raw := readFile(t, filepath.Join(dashboards, file))
			var dash struct {
				UID           string `json:"uid"`
				SchemaVersion int    `json:"schemaVersion"`
				Templating    struct {
					List []struct {
						Name       string          `json:"name"`
						Type       string          `json:"type"`
						Query      json.RawMessage `json:"query"`
						Definition string          `json:"definition"`
						Hide       int             `json:"hide"`
					} `json:"list"`
				} `json:"templating"`
				Panels []panel `json:"panels"`
			}
			if err := json.Unmarshal(raw, &dash); err != nil {
				t.Fatalf("decode %s: %v", file, err)
			}
			if prev, ok := uids[dash.UID]; ok || dash.UID == "" {
				t.Errorf("uid %q: empty or already used by %s", dash.UID, prev)
			}
			uids[dash.UID] = file
			if dash.SchemaVersion != 39 {
				t.Errorf("schemaVersion: got %d, want 39", dash.SchemaVersion)
			}
			vars := map[string]string{}
			for _, v := range dash.Templating.List {
				vars[v.Name] = v.Type
				switch v.Name {
				case "datasource":
					if string(v.Query) != `"prometheus"` {
						t.Errorf("variable datasource: got query %s, want \"prometheus\"", v.Query)
					}
				case "cluster_label":
					if string(v.Query) != `"cluster"` || v.Hide != 2 {
						t.Errorf("variable cluster_label: got query %s hide %d, want \"cluster\", hidden (2)", v.Query, v.Hide)
					}
				case "cluster", "namespace", "team":
					if !strings.HasPrefix(v.Definition, "label_values(streambudget_build_info") {
						t.Errorf("variable %s: got definition %q, want label_values(streambudget_build_info...)", v.Name, v.Definition)
					}
				}
			}
			want := map[string]string{"datasource": "datasource", "cluster_label": "constant", "cluster": "query", "namespace": "query", "team": "query"}
			for name, typ := range want {
				if vars[name] != typ {
					t.Errorf("variable %s: got type %q, want %q", name, vars[name], typ)
				}
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
						checkTarget(t, p.Title, target.RefID, target.Expr)
					}
				}
			}
			check(dash.Panels)
			for _, want := range wantTitles {
				if !titles[want] {
					t.Errorf("panels: no panel %q", want)
				}
			}
		})
	}
}

func checkTarget(t *testing.T, title, refID, expr string) {
	t.Helper()
	sels := selector.FindAllStringSubmatch(expr, -1)
	if len(sels) == 0 {
		t.Errorf("panel %q target %s: no streambudget series in %q", title, refID, expr)
	}
	for _, m := range sels {
		if !knownSeries[m[1]] {
			t.Errorf("panel %q target %s: %s is not a series streambudget exports", title, refID, m[1])
		}
		for _, want := range scopeMatchers {
			if !strings.Contains(m[2], want) {
				t.Errorf("panel %q target %s: %s: got matchers %q, want %s", title, refID, m[1], m[2], want)
			}
		}
	}
	for _, c := range grouping.FindAllStringSubmatch(expr, -1) {
		labels := strings.Split(strings.ReplaceAll(c[2], " ", ""), ",")
		if c[2] == "action" || (len(labels) == 1 && labels[0] == "${cluster_label}") {
			continue // counting teams by advice; the work-conserving cluster's capacity, one per cluster
		}
		for _, want := range []string{"${cluster_label}", "namespace", "team"} {
			if !containsString(labels, want) {
				t.Errorf("panel %q target %s: %s (%s) drops %s", title, refID, c[1], c[2], want)
			}
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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
