// Package prometheus checks the fleet monitoring chart's rules and dashboards
// with the real Prometheus tools: the alert rules, as the chart renders them,
// with promtool (syntax and unit tests), the Grafana dashboards' queries
// against a running server that scrapes every series streambudget exports.
// install.sh puts Debian's prometheus package in place and helm.sh builds the
// pinned helm first; either failing fails the tests.
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/streambudget/streambudget/integration/harness"
)

const (
	chart      = "helm/streambudget-monitoring"
	chartDir   = "../../" + chart
	dashboards = chartDir + "/dashboards"
	testValues = chart + "/tests/values.yaml"
)

// ruleFile is a Prometheus rule file, as much as the tests read of it.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func (f ruleFile) rules() []rule {
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// renderRules renders the chart's PrometheusRule and returns its groups as a
// Prometheus rule file.
func renderRules(t *testing.T, args ...string) ([]byte, ruleFile) {
	t.Helper()
	out, err := harness.RunHelm(t, append([]string{"template", "monitoring", chart, "--show-only", "templates/prometheusrule.yaml"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v", chart, err)
	}
	var obj struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups yaml.Node `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("decode the rendered PrometheusRule: %v\n%s", err, out)
	}
	if obj.Kind != "PrometheusRule" {
		t.Fatalf("rendered kind: got %q, want PrometheusRule", obj.Kind)
	}
	raw, err := yaml.Marshal(map[string]*yaml.Node{"groups": &obj.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return raw, f
}

// TestAlertRules runs promtool on the rules as the chart renders them with
// tests/values.yaml: `check rules` and the unit tests of tests/alerts_test.yaml.
func TestAlertRules(t *testing.T) {
	tools := harness.InstallPrometheus(t)
	raw, _ := renderRules(t, "-f", testValues)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), readFile(t, chartDir+"/tests/alerts_test.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check", []string{"check", "rules", "rules.yaml"}},
		{"unit tests", []string{"test", "rules", "alerts_test.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tools.Promtool, tc.args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
		})
	}
}

// TestAlertRulesOtherClusterLabel renders the rules with another cluster
// label and a cluster name: promtool accepts them, no placeholder is left,
// and the team-down selectors name the cluster.
func TestAlertRulesOtherClusterLabel(t *testing.T) {
	tools := harness.InstallPrometheus(t)
	raw, f := renderRules(t, "-f", testValues, "--set", "cluster.label=k8s_cluster", "--set", "cluster.name=eu1")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tools.Promtool, "check", "rules", "rules.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	for _, placeholder := range []string{"CLUSTER_LABEL", "FOR_DURATION"} {
		if strings.Contains(string(raw), placeholder) {
			t.Errorf("rendered rules still hold %s", placeholder)
		}
	}
	for _, r := range f.rules() {
		if r.Alert == "StreambudgetTeamDown" && !strings.Contains(r.Expr, `k8s_cluster="eu1"`) {
			t.Errorf("StreambudgetTeamDown expr %q: want the matcher k8s_cluster=\"eu1\"", r.Expr)
		}
		if r.Alert != "StreambudgetTeamDown" && !strings.Contains(r.Expr, "k8s_cluster") {
			t.Errorf("%s expr %q: want the k8s_cluster label kept", r.Alert, r.Expr)
		}
	}
}

// grouping is a by (...) or on (...) clause.
var grouping = regexp.MustCompile(`\b(by|on)\s*\(([^)]*)\)`)

// TestAlertRulesKeepScope checks that no aggregation or join drops the
// cluster label or the namespace: a central Thanos or Mimir would merge one
// team of two clusters, and namespace-scoped Alertmanager routes would never
// match.
func TestAlertRulesKeepScope(t *testing.T) {
	_, f := renderRules(t, "-f", testValues)
	for _, r := range f.rules() {
		if strings.HasPrefix(r.Expr, "absent_over_time(") {
			continue // the per-team rules: they select, never aggregate
		}
		clauses := grouping.FindAllStringSubmatch(r.Expr, -1)
		if len(clauses) == 0 {
			t.Errorf("%s: no by (...) in %q; every rule aggregates the pods of a team", r.Alert, r.Expr)
		}
		for _, c := range clauses {
			labels := strings.Split(strings.ReplaceAll(c[2], " ", ""), ",")
			for _, want := range []string{"cluster", "namespace", "team", "stream"} {
				if !slices.Contains(labels, want) {
					t.Errorf("%s: %s (%s) drops %s", r.Alert, c[1], c[2], want)
				}
			}
		}
	}
}

// TestAlertRulesTested checks that tests/alerts_test.yaml shows every alert
// of the rendered rules both firing and not firing.
func TestAlertRulesTested(t *testing.T) {
	_, f := renderRules(t, "-f", testValues)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, chartDir+"/tests/alerts_test.yaml"), &tests); err != nil {
		t.Fatalf("decode tests/alerts_test.yaml: %v", err)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	names := alertNames(f)
	if len(names) < 10 {
		t.Fatalf("rendered alerts: got %v, want the chart's alerts", names)
	}
	for _, name := range names {
		if !firing[name] {
			t.Errorf("tests/alerts_test.yaml: no test shows %s firing", name)
		}
		if !quiet[name] {
			t.Errorf("tests/alerts_test.yaml: no test shows %s not firing", name)
		}
	}
}

// TestRunbook checks that docs/runbook.md has a section for every alert,
// whose anchor is the runbook_url's fragment, and that every runbook_url
// points at it.
func TestRunbook(t *testing.T) {
	_, f := renderRules(t, "-f", testValues)
	doc := string(readFile(t, "../../docs/runbook.md"))
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)\s*$`).FindAllStringSubmatch(doc, -1) {
		anchors[strings.ToLower(m[1])] = true
	}
	for _, r := range f.rules() {
		want := "https://github.com/streambudget/streambudget/blob/main/docs/runbook.md#" + strings.ToLower(r.Alert)
		if got := r.Annotations["runbook_url"]; got != want {
			t.Errorf("%s runbook_url: got %q, want %q", r.Alert, got, want)
		}
		if !anchors[strings.ToLower(r.Alert)] {
			t.Errorf("docs/runbook.md: no section \"## %s\"", r.Alert)
		}
	}
}

// knownSeries are the series streambudget exports (README, Metrics). A name
// outside it in a rule or a dashboard is a typo that valid PromQL hides.
var knownSeries = map[string]bool{
	"streambudget_shard_records_read_total":                  true,
	"streambudget_shard_bytes_read_total":                    true,
	"streambudget_shard_budget_records_per_second":           true,
	"streambudget_shard_budget_wait_seconds_total":           true,
	"streambudget_shard_lag_seconds":                         true,
	"streambudget_shard_checkpoint_age_seconds":              true,
	"streambudget_consumer_shards_owned":                     true,
	"streambudget_sink_indexed_total":                        true,
	"streambudget_sink_dead_lettered_total":                  true,
	"streambudget_sink_retries_total":                        true,
	"streambudget_sink_bulk_request_duration_seconds_bucket": true,
	"streambudget_sink_bulk_request_duration_seconds_sum":    true,
	"streambudget_sink_bulk_request_duration_seconds_count":  true,
	"streambudget_sink_bulk_requests_total":                  true,
	"streambudget_sink_blocked":                              true,
	"streambudget_sink_replayed_total":                       true,
	"streambudget_shard_records_abandoned_total":             true,
	"streambudget_sink_preflight_ok":                         true,
	"streambudget_rules_dropped_total":                       true,
	"streambudget_decode_control_messages_total":             true,
	"streambudget_build_info":                                true,
	"streambudget_team_open_shards":                          true,
	"streambudget_team_reading_shards":                       true,
	"streambudget_team_pods":                                 true,
	"streambudget_team_budget_records_per_second":            true,
	"streambudget_team_retention_seconds":                    true,
	"streambudget_team_retention_headroom_seconds":           true,
	"streambudget_team_incoming_records_per_second":          true,
	"streambudget_team_read_records_per_second":              true,
	"streambudget_team_backlog_records":                      true,
	"streambudget_team_drain_eta_seconds":                    true,
	"streambudget_team_recommended_shards":                   true,
	"streambudget_advice":                                    true,
	"streambudget_team_allowance_records_per_second":         true,
	"streambudget_team_borrowed_records_per_second":          true,
	"streambudget_cluster_capacity_records_per_second":       true,
	"streambudget_cluster_used_records_per_second":           true,
	"streambudget_cluster_coordination_up":                   true,
}

var seriesName = regexp.MustCompile(`streambudget_[a-z_]+`)

// TestAlertRulesUseKnownSeries checks the series names in every rule's
// expression and in the queries of its annotations.
func TestAlertRulesUseKnownSeries(t *testing.T) {
	_, f := renderRules(t, "-f", testValues)
	for _, r := range f.rules() {
		text := r.Expr
		for k, a := range r.Annotations {
			if k != "runbook_url" {
				text += "\n" + a
			}
		}
		for _, name := range seriesName.FindAllString(text, -1) {
			if !knownSeries[name] {
				t.Errorf("alert %s uses %s, which streambudget does not export", r.Alert, name)
			}
		}
	}
}

func alertNames(f ruleFile) []string {
	seen := map[string]bool{}
	for _, r := range f.rules() {
		seen[r.Alert] = true
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
