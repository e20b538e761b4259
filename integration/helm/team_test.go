package helm

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// envOf returns the container's env entries by name.
func envOf(t *testing.T, objs []object) map[string]any {
	t.Helper()
	c := list(dig(only(t, objs, "Deployment"), "spec", "template", "spec", "containers"))[0]
	env := map[string]any{}
	for _, e := range list(dig(c, "env")) {
		env[str(dig(e, "name"))] = e
	}
	return env
}

// TestAPIKeyOnly checks that a Secret holding only an API key is enough:
// with apiKeyKey set, the pods reference no username or password key, which
// would leave them in CreateContainerConfigError.
func TestAPIKeyOnly(t *testing.T) {
	b := budgets(t)[0]
	objs := render(t, b.team, "--set-file", "budget="+b.path,
		"--set", "elasticsearch.existingSecret=es-api-key", "--set", "elasticsearch.apiKeyKey=api-key")
	env := envOf(t, objs)
	ref := dig(env["ELASTICSEARCH_API_KEY"], "valueFrom", "secretKeyRef")
	if str(dig(ref, "name")) != "es-api-key" || str(dig(ref, "key")) != "api-key" {
		t.Errorf("env ELASTICSEARCH_API_KEY: got %v, want secretKeyRef es-api-key/api-key", ref)
	}
	for _, name := range []string{"ELASTICSEARCH_USERNAME", "ELASTICSEARCH_PASSWORD"} {
		if e, ok := env[name]; ok {
			t.Errorf("env %s: got %v, want unset (the Secret holds only the API key)", name, e)
		}
	}
}

// TestPodSpread checks the spread of a multi-pod team: by host and zone by
// default, the user's constraints instead when given, none when switched off
// or with one pod.
func TestPodSpread(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	three := write("three.yaml", "team: edge\nstream: edge-logs\npods: 3\n")
	one := write("one.yaml", "team: edge\nstream: edge-logs\npods: 1\n")
	spread := func(args ...string) []any {
		objs := render(t, "edge", args...)
		return list(dig(only(t, objs, "Deployment"), "spec", "template", "spec", "topologySpreadConstraints"))
	}
	t.Run("default", func(t *testing.T) {
		got := spread("--set-file", "budget="+three)
		if len(got) != 2 {
			t.Fatalf("constraints: got %v, want 2", got)
		}
		var keys []string
		for _, c := range got {
			keys = append(keys, str(dig(c, "topologyKey")))
			if dig(c, "maxSkew") != 1 || str(dig(c, "whenUnsatisfiable")) != "ScheduleAnyway" {
				t.Errorf("constraint %v: want maxSkew 1, ScheduleAnyway", c)
			}
			checkSelector(t, "topologySpreadConstraint", stringMap(dig(c, "labelSelector", "matchLabels")), "edge")
		}
		if want := []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"}; !reflect.DeepEqual(keys, want) {
			t.Errorf("topology keys: got %v, want %v", keys, want)
		}
	})
	t.Run("strict", func(t *testing.T) {
		for _, c := range spread("--set-file", "budget="+three, "--set", "podSpread.whenUnsatisfiable=DoNotSchedule") {
			if got := str(dig(c, "whenUnsatisfiable")); got != "DoNotSchedule" {
				t.Errorf("whenUnsatisfiable: got %q, want DoNotSchedule", got)
			}
		}
	})
	t.Run("one-pod", func(t *testing.T) {
		if got := spread("--set-file", "budget="+one); len(got) != 0 {
			t.Errorf("constraints: got %v, want none", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		if got := spread("--set-file", "budget="+three, "--set", "podSpread.enabled=false"); len(got) != 0 {
			t.Errorf("constraints: got %v, want none", got)
		}
	})
	t.Run("given", func(t *testing.T) {
		got := spread("--set-file", "budget="+three, "--set", "topologySpreadConstraints[0].maxSkew=2",
			"--set", "topologySpreadConstraints[0].topologyKey=rack", "--set", "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule")
		if len(got) != 1 || str(dig(got[0], "topologyKey")) != "rack" {
			t.Errorf("constraints: got %v, want only the given one", got)
		}
	})
}

// TestSubchart renders the chart as two aliased dependencies of an umbrella
// chart, with global values and the `enabled` condition an umbrella sets: the
// schema accepts them, and the two teams' objects do not collide.
func TestSubchart(t *testing.T) {
	dir := t.TempDir()
	umbrella := filepath.Join(dir, "logging")
	copyDir(t, filepath.Join(root, chart), filepath.Join(umbrella, "charts", "streambudget"))
	payments, err := os.ReadFile(filepath.Join(root, "budgets", "payments.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	search, err := os.ReadFile(filepath.Join(root, "budgets", "search.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Chart.yaml": `apiVersion: v2
name: logging
version: 1.0.0
dependencies:
  - name: streambudget
    version: ">=0.0.0"
    alias: payments
    condition: payments.enabled
  - name: streambudget
    version: ">=0.0.0"
    alias: search
    condition: search.enabled
  - name: streambudget
    version: ">=0.0.0"
    alias: email
    condition: email.enabled
`,
		"values.yaml": "global:\n  imageRegistry: registry.example\n  labels:\n    tier: logging\n" +
			"payments:\n  enabled: true\n  budget: " + quoteYAML(string(payments)) + "\n" +
			"search:\n  enabled: true\n  budget: " + quoteYAML(string(search)) + "\n" +
			"email:\n  enabled: false\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(umbrella, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runHelm(t, "lint", "--strict", umbrella); err != nil {
		t.Fatalf("helm lint --strict of the umbrella chart: %v\n%s", err, out)
	}
	out, err := runHelm(t, "template", "logging", umbrella, "--namespace", namespace)
	if err != nil {
		t.Fatalf("helm template of the umbrella chart: %v", err)
	}
	objs := decodeAll(t, out)
	names := map[string]string{}
	teams := map[string]bool{}
	for _, o := range objs {
		key := o.kind() + "/" + o.name()
		team := stringMap(dig(o, "metadata", "labels"))["streambudget.io/team"]
		if prev, ok := names[key]; ok {
			t.Errorf("%s rendered for teams %s and %s: the aliases collide", key, prev, team)
		}
		names[key] = team
		teams[team] = true
	}
	if !reflect.DeepEqual(teams, map[string]bool{"payments": true, "search": true}) {
		t.Errorf("teams rendered: got %v, want payments and search (email is disabled)", teams)
	}
	for _, dep := range byKind(objs, "Deployment") {
		sel := stringMap(dig(dep, "spec", "selector", "matchLabels"))
		team := sel["streambudget.io/team"]
		if !strings.HasPrefix(dep.name(), "logging-"+team) {
			t.Errorf("Deployment %s of team %s: want a name from the alias (logging-%s...)", dep.name(), team, team)
		}
		if got := sel["app.kubernetes.io/name"]; got != team {
			t.Errorf("Deployment %s selector name: got %q, want the alias %q", dep.name(), got, team)
		}
	}
}

// quoteYAML returns s as a double-quoted YAML scalar.
func quoteYAML(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}
