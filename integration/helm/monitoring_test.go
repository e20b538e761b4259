package helm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/fleet"
)

// fleetValues writes the monitoring chart's values for budgets/, as
// `streambudget monitoring-values --namespace logging budgets/` prints them,
// and returns the file's path.
func fleetValues(t *testing.T) string {
	t.Helper()
	files, err := budget.LoadDir(filepath.Join(root, "budgets"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := fleet.Values(files, fleet.Options{Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "teams.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func renderMonitoring(t *testing.T, args ...string) []object {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", "monitoring", monitoringChart, "--namespace", "monitoring"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v", monitoringChart, err)
	}
	return decodeAll(t, out)
}

// alertRules returns the rendered PrometheusRule's rules, in order.
func alertRules(t *testing.T, objs []object) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, g := range list(dig(only(t, objs, "PrometheusRule"), "spec", "groups")) {
		for _, r := range list(dig(g, "rules")) {
			out = append(out, r.(map[string]any))
		}
	}
	return out
}

func TestMonitoringLint(t *testing.T) {
	for name, args := range map[string][]string{
		"defaults":    nil,
		"budgets":     {"-f", fleetValues(t)},
		"tests":       {"-f", filepath.Join(monitoringChart, "tests", "values.yaml")},
		"other-label": {"-f", fleetValues(t), "--set", "cluster.label=k8s_cluster", "--set", "cluster.name=eu1"},
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := runHelm(t, append([]string{"lint", "--strict", monitoringChart}, args...)...); err != nil {
				t.Fatalf("helm lint --strict: %v\n%s", err, out)
			}
		})
	}
}

// TestMonitoringTemplate renders the fleet release from budgets/: one
// PrometheusRule with a StreambudgetTeamDown rule per team, and the two
// dashboards byte for byte.
func TestMonitoringTemplate(t *testing.T) {
	objs := renderMonitoring(t, "-f", fleetValues(t))
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.kind()+"/"+o.name())
		labels := stringMap(dig(o, "metadata", "labels"))
		if labels["app.kubernetes.io/instance"] != "monitoring" || labels["app.kubernetes.io/name"] != "streambudget-monitoring" {
			t.Errorf("%s %s: labels %v, want instance monitoring and name streambudget-monitoring", o.kind(), o.name(), labels)
		}
	}
	sort.Strings(kinds)
	want := []string{
		"ConfigMap/monitoring-streambudget-monitoring-fleet", "ConfigMap/monitoring-streambudget-monitoring-team",
		"PrometheusRule/monitoring-streambudget-monitoring",
	}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("objects: got %v, want %v", kinds, want)
	}

	down := map[string]string{}
	for _, r := range alertRules(t, objs) {
		if r["alert"] == "StreambudgetTeamDown" {
			down[str(dig(r, "labels", "team"))] = str(r["expr"])
		}
	}
	for _, b := range budgets(t) {
		want := `absent_over_time(streambudget_build_info{team="` + b.team + `", stream="` + b.team + `-logs", namespace="logging"}[3m])`
		if got := down[b.team]; got != want {
			t.Errorf("StreambudgetTeamDown of %s: got %q, want %q", b.team, got, want)
		}
	}
	if len(down) != len(budgets(t)) {
		t.Errorf("StreambudgetTeamDown rules: got %d, want one per budget (%d)", len(down), len(budgets(t)))
	}

	for _, name := range []string{"fleet", "team"} {
		cm := byName(t, objs, "ConfigMap", "monitoring-streambudget-monitoring-"+name)
		if got := stringMap(dig(cm, "metadata", "labels"))["grafana_dashboard"]; got != "1" {
			t.Errorf("ConfigMap %s: label grafana_dashboard got %q, want \"1\"", cm.name(), got)
		}
		file, err := os.ReadFile(filepath.Join(root, monitoringChart, "dashboards", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := str(dig(cm, "data", "streambudget-"+name+".json")); got != strings.TrimSuffix(string(file), "\n") {
			t.Errorf("ConfigMap %s is not dashboards/%s.json byte for byte", cm.name(), name)
		}
	}
}

// TestMonitoringClusterLabel checks that another cluster label reaches the
// rules and the dashboards' cluster_label constant.
func TestMonitoringClusterLabel(t *testing.T) {
	objs := renderMonitoring(t, "-f", fleetValues(t), "--set", "cluster.label=k8s_cluster", "--set", "cluster.name=eu1")
	for _, r := range alertRules(t, objs) {
		if !strings.Contains(str(r["expr"]), "k8s_cluster") {
			t.Errorf("%s: expr %q does not keep k8s_cluster", r["alert"], r["expr"])
		}
	}
	for _, name := range []string{"fleet", "team"} {
		cm := byName(t, objs, "ConfigMap", "monitoring-streambudget-monitoring-"+name)
		var dash struct {
			Templating struct {
				List []struct {
					Name  string `json:"name"`
					Query any    `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal([]byte(str(dig(cm, "data", "streambudget-"+name+".json"))), &dash); err != nil {
			t.Fatalf("%s dashboard: %v", name, err)
		}
		var got any
		for _, v := range dash.Templating.List {
			if v.Name == "cluster_label" {
				got = v.Query
			}
		}
		if got != "k8s_cluster" {
			t.Errorf("%s dashboard: cluster_label got %v, want k8s_cluster", name, got)
		}
	}
}

// TestMonitoringOverrides checks the per-alert overrides: disabled by name,
// for, severity and labels, labels for every alert, the runbook base.
func TestMonitoringOverrides(t *testing.T) {
	objs := renderMonitoring(t, "-f", fleetValues(t),
		"--set", "alerts.StreambudgetReshard.enabled=false",
		"--set", "alerts.StreambudgetTeamDown.enabled=false",
		"--set", "alerts.StreambudgetDeadLetters.for=1h",
		"--set", "alerts.StreambudgetDeadLetters.severity=critical",
		"--set", "alerts.StreambudgetDeadLetters.labels.page=yes",
		"--set", "alertLabels.routing=logging",
		"--set", "runbookBaseURL=https://wiki.example/streambudget")
	rules := map[string]map[string]any{}
	for _, r := range alertRules(t, objs) {
		rules[str(r["alert"])] = r
		if got := str(dig(r, "labels", "routing")); got != "logging" {
			t.Errorf("%s: label routing got %q, want logging (alertLabels)", r["alert"], got)
		}
		if got, want := str(dig(r, "annotations", "runbook_url")), "https://wiki.example/streambudget#"+strings.ToLower(str(r["alert"])); got != want {
			t.Errorf("%s: runbook_url got %q, want %q", r["alert"], got, want)
		}
		for k, a := range stringMap(dig(r, "annotations")) {
			if strings.Contains(a, "FOR_DURATION") || strings.Contains(a, "CLUSTER_LABEL") {
				t.Errorf("%s: annotation %s still holds a placeholder: %q", r["alert"], k, a)
			}
		}
	}
	for _, name := range []string{"StreambudgetReshard", "StreambudgetTeamDown"} {
		if _, ok := rules[name]; ok {
			t.Errorf("%s: rendered, want it disabled", name)
		}
	}
	dl := rules["StreambudgetDeadLetters"]
	if dl == nil {
		t.Fatal("StreambudgetDeadLetters: not rendered")
	}
	if got := str(dl["for"]); got != "1h" {
		t.Errorf("StreambudgetDeadLetters for: got %q, want 1h", got)
	}
	if got := stringMap(dl["labels"]); got["severity"] != "critical" || got["page"] != "yes" {
		t.Errorf("StreambudgetDeadLetters labels: got %v, want severity critical and page yes", got)
	}
	if got := str(dig(dl, "annotations", "description")); !strings.HasPrefix(got, "For 1h ") {
		t.Errorf("StreambudgetDeadLetters description: got %q, want it to say the overridden for (1h)", got)
	}
}

// TestMonitoringFails checks that the schema rejects what would silently do
// nothing: an alert name the chart does not have, a team without a stream.
func TestMonitoringFails(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown-alert", []string{"--set", "alerts.StreambudgetDeadLeters.enabled=false"}, "invalid propertyName 'StreambudgetDeadLeters'"},
		{"bad-severity", []string{"--set", "alerts.StreambudgetDeadLetters.severity=page"}, "at '/alerts/StreambudgetDeadLetters/severity'"},
		{"bad-for", []string{"--set", "alerts.StreambudgetDeadLetters.for=ten"}, "at '/alerts/StreambudgetDeadLetters/for'"},
		{"team-without-stream", []string{"--set", "teams.payments.namespace=logging"}, "at '/teams/payments'"},
		{"bad-team-name", []string{"--set", "teams.Pay_ments.stream=x"}, "invalid propertyName 'Pay_ments'"},
		{"bad-cluster-label", []string{"--set", "cluster.label=k8s-cluster"}, "at '/cluster/label'"},
		{"unknown-value", []string{"--set", "nope=1"}, "additional properties 'nope' not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runHelm(t, append([]string{"template", "m", monitoringChart}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template succeeded, want an error containing %q; output:\n%s", tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error: got %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestTeamReleaseHasNoFleetMonitoring checks what makes uninstalling a team
// safe for the others: no team's release, whatever its values, renders a
// PrometheusRule or a dashboard; all of them come from the fleet release.
func TestTeamReleaseHasNoFleetMonitoring(t *testing.T) {
	for _, b := range budgets(t) {
		t.Run(b.team, func(t *testing.T) {
			objs := render(t, b.team, append([]string{"--set-file", "budget=" + b.path}, everythingOn...)...)
			for _, o := range objs {
				if o.kind() == "PrometheusRule" || stringMap(dig(o, "metadata", "labels"))["grafana_dashboard"] != "" {
					t.Errorf("%s %s: the team's release holds fleet monitoring", o.kind(), o.name())
				}
			}
			if len(byKind(objs, "ServiceMonitor")) != 1 {
				t.Errorf("ServiceMonitor: want the team's own")
			}
		})
	}
}

// TestMonitoringAlertNames checks that the schema's list of alert names,
// which rejects a misspelt override, is exactly the chart's alerts.
func TestMonitoringAlertNames(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, monitoringChart, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for _, n := range list(dig(schema, "properties", "alerts", "propertyNames", "enum")) {
		inSchema = append(inSchema, str(n))
	}
	seen := map[string]bool{}
	var rendered []string
	for _, r := range alertRules(t, renderMonitoring(t, "-f", fleetValues(t))) {
		if name := str(r["alert"]); !seen[name] {
			seen[name] = true
			rendered = append(rendered, name)
		}
	}
	sort.Strings(inSchema)
	sort.Strings(rendered)
	if !reflect.DeepEqual(inSchema, rendered) {
		t.Errorf("values.schema.json alerts names:\ngot  %v\nwant %v (the rendered alerts)", inSchema, rendered)
	}
}

func byName(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range byKind(objs, kind) {
		if o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}
