// Package prometheus checks the chart's monitoring files with the real
// Prometheus tools: the alert rules with promtool (syntax and unit tests),
// the Grafana dashboard's queries against a running server. install.sh puts
// Debian's prometheus package (pinned) in place first; a failed install fails
// the tests.
package prometheus

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/streambudget/streambudget/integration/harness"
)

const dashboards = "../../helm/streambudget/dashboards"

func TestAlertRules(t *testing.T) {
	tools := harness.InstallPrometheus(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check", []string{"check", "rules", "alerts.yaml"}},
		{"unit tests", []string{"test", "rules", "alerts_test.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tools.Promtool, tc.args...)
			cmd.Dir = dashboards
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
		})
	}
}

// knownSeries are the series streambudget exports (README, Metrics). A name
// outside it in a rule or the dashboard is a typo that valid PromQL hides.
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
	"streambudget_rules_dropped_total":                       true,
	"streambudget_decode_control_messages_total":             true,
	"streambudget_build_info":                                true,
	"streambudget_team_open_shards":                          true,
	"streambudget_team_pods":                                 true,
	"streambudget_team_budget_records_per_second":            true,
	"streambudget_team_retention_seconds":                    true,
	"streambudget_team_retention_headroom_seconds":           true,
	"streambudget_team_incoming_records_per_second":          true,
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
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(dashboards, "alerts.yaml")), &file); err != nil {
		t.Fatalf("decode alerts.yaml: %v", err)
	}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			text := r.Expr
			for _, a := range r.Annotations {
				text += "\n" + a
			}
			for _, name := range seriesName.FindAllString(text, -1) {
				if !knownSeries[name] {
					t.Errorf("alert %s uses %s, which streambudget does not export", r.Alert, name)
				}
			}
		}
	}
}
