// Package helm tests the Helm chart in helm/streambudget with the pinned helm
// binary (integration/helm/helm.sh builds it once into $STACK_DIR/bin): lint,
// and the manifests `helm template` renders for every budget in budgets/.
// It needs no cluster. A helm that cannot be built is a failure, never a skip.
package helm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/streambudget/streambudget/integration/harness"
)

const (
	root  = "../.."
	chart = "helm/streambudget"
	// monitoringChart is the fleet monitoring chart (monitoring_test.go).
	monitoringChart = "helm/streambudget-monitoring"
	// namespace is where the test renders, to see that every object lands there.
	namespace = "logging"
)

// runHelm runs the pinned helm in the repository root (harness.RunHelm).
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return harness.RunHelm(t, args...)
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return o["kind"].(string) }
func (o object) name() string { return str(dig(o, "metadata", "name")) }

// render runs helm template and decodes every document.
func render(t *testing.T, release string, args ...string) []object {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", release, chart, "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v", release, err)
	}
	return decodeAll(t, out)
}

// decodeAll decodes every document of helm template's output.
func decodeAll(t *testing.T, out string) []object {
	t.Helper()
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o map[string]any // not object: yaml.v3 would decode nested maps as object too
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode helm template output: %v\n%s", err, out)
		}
		if o != nil {
			objs = append(objs, object(o))
		}
	}
	return objs
}

// dig walks nested maps; nil when a step is missing.
func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			if o, isObj := v.(object); isObj {
				m = o
			} else {
				return nil
			}
		}
		v = m[k]
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, val := range m {
		out[k] = str(val)
	}
	return out
}

func list(v any) []any { l, _ := v.([]any); return l }

func byKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func only(t *testing.T, objs []object, kind string) object {
	t.Helper()
	got := byKind(objs, kind)
	if len(got) != 1 {
		t.Fatalf("%s objects: got %d, want 1", kind, len(got))
	}
	return got[0]
}

// budgetFile is what the test reads from a budget file: the fields the chart uses.
type budgetFile struct {
	path string
	raw  []byte
	team string
	pods int
}

func budgets(t *testing.T) []budgetFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "budgets", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("budget files in budgets/: got %d (%v), want at least one", len(paths), err)
	}
	var out []budgetFile
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Team string `yaml:"team"`
			Pods *int   `yaml:"pods"`
		}
		if err := yaml.Unmarshal(raw, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		pods := 1 // the binary's default
		if f.Pods != nil {
			pods = *f.Pods
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, budgetFile{path: filepath.ToSlash(rel), raw: raw, team: f.Team, pods: pods})
	}
	return out
}

func TestLint(t *testing.T) {
	for _, b := range budgets(t) {
		t.Run(b.team, func(t *testing.T) {
			if out, err := runHelm(t, "lint", "--strict", chart, "--set-file", "budget="+b.path); err != nil {
				t.Fatalf("helm lint --strict with %s: %v\n%s", b.path, err, out)
			}
			if out, err := runHelm(t, append([]string{"lint", "--strict", chart, "--set-file", "budget=" + b.path}, esSetupOn...)...); err != nil {
				t.Fatalf("helm lint --strict with %s and the es-setup hook: %v\n%s", b.path, err, out)
			}
		})
	}
	t.Run("everything-on", func(t *testing.T) {
		args := append([]string{"lint", "--strict", chart, "--set-file", "budget=" + budgets(t)[0].path}, everythingOn...)
		if out, err := runHelm(t, args...); err != nil {
			t.Fatalf("helm lint --strict with every option on: %v\n%s", err, out)
		}
	})
}

// everythingOn switches on every optional part of the chart. The TLS Secret
// holds a client certificate and no CA (caKey empty): the pods and the
// es-setup Job trust the system CAs.
var everythingOn = []string{
	"--set", "esSetup.enabled=true",
	"--set", "esSetup.existingSecret=es-admin",
	"--set", "esSetup.distribution=opensearch",
	"--set", "serviceMonitor.enabled=true",
	"--set", "networkPolicy.enabled=true",
	"--set", "networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
	"--set", "networkPolicy.egress[0].ports[0].port=443",
	"--set", "elasticsearch.existingSecret=es-creds",
	"--set", "elasticsearch.tls.existingSecret=es-tls",
	"--set", "elasticsearch.tls.certKey=tls.crt",
	"--set", "elasticsearch.tls.keyKey=tls.key",
	"--set", "elasticsearch.urls={https://es-a:9200,https://es-b:9200}",
	"--set", "aws.region=eu-west-1",
	"--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/streambudget",
	"--set", "envFrom[0].configMapRef.name=aws-endpoints",
	"--set", "extraVolumes[0].name=extra",
	"--set", "extraVolumes[0].emptyDir.sizeLimit=1Mi",
	"--set", "extraVolumeMounts[0].name=extra",
	"--set", "extraVolumeMounts[0].mountPath=/var/extra",
	"--set", "commonLabels.cost-center=logging",
}

var requiredLabels = []string{
	"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
	"app.kubernetes.io/managed-by", "app.kubernetes.io/component", "streambudget.io/team",
}

func TestTemplate(t *testing.T) {
	for _, b := range budgets(t) {
		t.Run(b.team, func(t *testing.T) {
			objs := render(t, b.team, "--set-file", "budget="+b.path)

			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.kind())
				labels := stringMap(dig(o, "metadata", "labels"))
				for _, l := range requiredLabels {
					if labels[l] == "" {
						t.Errorf("%s %s: label %s missing; labels %v", o.kind(), o.name(), l, labels)
					}
				}
				if got := labels["streambudget.io/team"]; got != b.team {
					t.Errorf("%s %s: team label got %q, want %q", o.kind(), o.name(), got, b.team)
				}
				if got := labels["app.kubernetes.io/instance"]; got != b.team {
					t.Errorf("%s %s: instance label got %q, want %q", o.kind(), o.name(), got, b.team)
				}
				if got := str(dig(o, "metadata", "namespace")); got != namespace {
					t.Errorf("%s %s: namespace got %q, want %q", o.kind(), o.name(), got, namespace)
				}
			}
			slices.Sort(kinds)
			// Off by default: ServiceMonitor, PrometheusRule and the dashboard ConfigMap.
			want := []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}
			if !reflect.DeepEqual(kinds, want) {
				t.Errorf("kinds: got %v, want %v", kinds, want)
			}

			dep := only(t, objs, "Deployment")
			if got := dig(dep, "spec", "replicas"); got != b.pods {
				t.Errorf("replicas: got %v, want %d (the budget's pods)", got, b.pods)
			}
			selector := stringMap(dig(dep, "spec", "selector", "matchLabels"))
			checkSelector(t, "Deployment", selector, b.team)
			podLabels := stringMap(dig(dep, "spec", "template", "metadata", "labels"))
			for k, v := range selector {
				if podLabels[k] != v {
					t.Errorf("pod label %s: got %q, want %q (the selector's)", k, podLabels[k], v)
				}
			}
			svc := only(t, objs, "Service")
			if got := stringMap(dig(svc, "spec", "selector")); !reflect.DeepEqual(got, selector) {
				t.Errorf("Service selector: got %v, want %v", got, selector)
			}
			pdb := only(t, objs, "PodDisruptionBudget")
			if got := stringMap(dig(pdb, "spec", "selector", "matchLabels")); !reflect.DeepEqual(got, selector) {
				t.Errorf("PodDisruptionBudget selector: got %v, want %v", got, selector)
			}

			spread := list(dig(dep, "spec", "template", "spec", "topologySpreadConstraints"))
			if b.pods > 1 && len(spread) != 2 {
				t.Errorf("topologySpreadConstraints with %d pods: got %v, want spread by host and zone", b.pods, spread)
			}
			if b.pods == 1 && len(spread) != 0 {
				t.Errorf("topologySpreadConstraints with 1 pod: got %v, want none", spread)
			}

			cm := only(t, objs, "ConfigMap")
			if got := str(dig(cm, "data", "budget.yaml")); got != string(b.raw) {
				t.Errorf("ConfigMap budget.yaml is not the budget file byte for byte:\ngot  %q\nwant %q", got, b.raw)
			}
			sum := sha256.Sum256(b.raw)
			if got := str(dig(dep, "spec", "template", "metadata", "annotations", "checksum/budget")); got != hex.EncodeToString(sum[:]) {
				t.Errorf("checksum/budget: got %q, want %q", got, hex.EncodeToString(sum[:]))
			}

			pod := dig(dep, "spec", "template", "spec")
			checkPod(t, pod, cm.name())
			// The default image is the one `make image-push VERSION=<appVersion>` publishes.
			if got, want := str(dig(list(dig(pod, "containers"))[0], "image")), "ghcr.io/streambudget/streambudget:"+appVersion(t); got != want {
				t.Errorf("image: got %q, want %q (the chart's appVersion)", got, want)
			}
			if got := str(dig(pod, "serviceAccountName")); got != only(t, objs, "ServiceAccount").name() {
				t.Errorf("serviceAccountName: got %q, want the chart's ServiceAccount %q", got, only(t, objs, "ServiceAccount").name())
			}
			c := list(dig(pod, "containers"))[0]
			for _, e := range list(dig(c, "env")) {
				if name := str(dig(e, "name")); strings.HasPrefix(name, "ELASTICSEARCH_") {
					t.Errorf("env %s set without elasticsearch.existingSecret", name)
				}
			}
		})
	}
}

// appVersion returns the team chart's appVersion.
func appVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: got %q (%v)", c.AppVersion, err)
	}
	return c.AppVersion
}

// checkSelector asserts a selector has name, instance and team, and nothing
// that changes between chart versions.
func checkSelector(t *testing.T, what string, sel map[string]string, team string) {
	t.Helper()
	want := map[string]string{
		"app.kubernetes.io/name":     "streambudget",
		"app.kubernetes.io/instance": team,
		"streambudget.io/team":       team,
	}
	if !reflect.DeepEqual(sel, want) {
		t.Errorf("%s selector: got %v, want %v", what, sel, want)
	}
	for _, k := range []string{"helm.sh/chart", "app.kubernetes.io/version"} {
		if _, ok := sel[k]; ok {
			t.Errorf("%s selector has %s: a selector cannot change on upgrade", what, k)
		}
	}
}

// checkPod asserts the pod spec runs the binary as the chart promises.
// checkContainer checks a container's security context and resource
// requests (what names it in the messages, "" for the team's pod).
func checkContainer(t *testing.T, what string, c any) {
	t.Helper()
	sc := dig(c, "securityContext")
	for key, want := range map[string]any{"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "runAsNonRoot": true} {
		if got := dig(sc, key); got != want {
			t.Errorf("%scontainer securityContext.%s: got %v, want %v", what, key, got, want)
		}
	}
	if got := list(dig(sc, "capabilities", "drop")); !slices.Contains(got, any("ALL")) {
		t.Errorf("%scontainer securityContext.capabilities.drop: got %v, want ALL", what, got)
	}
	for _, r := range []string{"cpu", "memory"} {
		if dig(c, "resources", "requests", r) == nil {
			t.Errorf("%sresources.requests.%s: not set", what, r)
		}
	}
}

func checkPod(t *testing.T, pod any, configMap string) {
	t.Helper()
	if got := dig(pod, "securityContext", "runAsNonRoot"); got != true {
		t.Errorf("pod securityContext.runAsNonRoot: got %v, want true", got)
	}
	if got, _ := dig(pod, "terminationGracePeriodSeconds").(int); got <= 30 {
		t.Errorf("terminationGracePeriodSeconds: got %d, want above the 30s shutdown timeout", got)
	}
	containers := list(dig(pod, "containers"))
	if len(containers) != 1 {
		t.Fatalf("containers: got %d, want 1", len(containers))
	}
	c := containers[0]
	args := list(dig(c, "args"))
	for _, want := range []string{"run", "--budget=/etc/streambudget/budget.yaml", "--listen=0.0.0.0:9090", "--log-format=json", "--shutdown-timeout=30s"} {
		if !slices.Contains(args, any(want)) {
			t.Errorf("args: got %v, want %s among them", args, want)
		}
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := str(dig(c, probe, "httpGet", "path")); got != path {
			t.Errorf("%s path: got %q, want %q", probe, got, path)
		}
		if got := str(dig(c, probe, "httpGet", "port")); got != "http" {
			t.Errorf("%s port: got %q, want http", probe, got)
		}
	}
	ports := list(dig(c, "ports"))
	if len(ports) != 1 || dig(ports[0], "containerPort") != 9090 || str(dig(ports[0], "name")) != "http" {
		t.Errorf("ports: got %v, want one named http on 9090", ports)
	}
	checkContainer(t, "", c)
	var podName bool
	for _, e := range list(dig(c, "env")) {
		if str(dig(e, "name")) == "POD_NAME" && str(dig(e, "valueFrom", "fieldRef", "fieldPath")) == "metadata.name" {
			podName = true
		}
	}
	if !podName {
		t.Errorf("env: got %v, want POD_NAME from metadata.name", dig(c, "env"))
	}
	var mounted bool
	for _, m := range list(dig(c, "volumeMounts")) {
		if str(dig(m, "mountPath")) != "/etc/streambudget" {
			continue
		}
		for _, v := range list(dig(pod, "volumes")) {
			if dig(v, "name") == dig(m, "name") && str(dig(v, "configMap", "name")) == configMap {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("volumes: ConfigMap %s is not mounted at /etc/streambudget", configMap)
	}
}

// TestTemplateEverythingOn renders the optional parts: ServiceMonitor,
// NetworkPolicy, Elasticsearch credentials and TLS (a client certificate
// without a CA), envFrom, extra volumes and common labels.
func TestTemplateEverythingOn(t *testing.T) {
	b := budgets(t)[0]
	objs := render(t, b.team, append([]string{"--set-file", "budget=" + b.path}, everythingOn...)...)

	sm := only(t, objs, "ServiceMonitor")
	checkSelector(t, "ServiceMonitor", stringMap(dig(sm, "spec", "selector", "matchLabels")), b.team)
	if got := str(dig(list(dig(sm, "spec", "endpoints"))[0], "path")); got != "/metrics" {
		t.Errorf("ServiceMonitor path: got %q, want /metrics", got)
	}

	if got := byKind(objs, "PrometheusRule"); len(got) != 0 {
		t.Errorf("PrometheusRule objects: got %d, want none (they live in the fleet chart)", len(got))
	}
	for _, o := range objs {
		if got := stringMap(dig(o, "metadata", "labels"))["cost-center"]; got != "logging" {
			t.Errorf("%s %s: commonLabels cost-center got %q, want logging", o.kind(), o.name(), got)
		}
	}
	np := only(t, objs, "NetworkPolicy")
	checkSelector(t, "NetworkPolicy", stringMap(dig(np, "spec", "podSelector", "matchLabels")), b.team)
	if got := list(dig(np, "spec", "policyTypes")); !reflect.DeepEqual(got, []any{"Ingress", "Egress"}) {
		t.Errorf("NetworkPolicy policyTypes: got %v, want [Ingress Egress]", got)
	}
	if got := len(list(dig(np, "spec", "egress"))); got != 2 {
		t.Errorf("NetworkPolicy egress rules: got %d, want 2 (DNS and the one given)", got)
	}

	dep := only(t, objs, "Deployment")
	pod := dig(dep, "spec", "template", "spec")
	c := list(dig(pod, "containers"))[0]
	env := map[string]any{}
	for _, e := range list(dig(c, "env")) {
		env[str(dig(e, "name"))] = e
	}
	for name, key := range map[string]string{"ELASTICSEARCH_USERNAME": "username", "ELASTICSEARCH_PASSWORD": "password"} {
		ref := dig(env[name], "valueFrom", "secretKeyRef")
		if str(dig(ref, "name")) != "es-creds" || str(dig(ref, "key")) != key {
			t.Errorf("env %s: got %v, want secretKeyRef es-creds/%s", name, ref, key)
		}
	}
	if _, ok := env["ELASTICSEARCH_API_KEY"]; ok {
		t.Errorf("env ELASTICSEARCH_API_KEY: set, want unset (apiKeyKey is empty)")
	}
	if got := str(dig(env["AWS_REGION"], "value")); got != "eu-west-1" {
		t.Errorf("env AWS_REGION: got %q, want eu-west-1", got)
	}
	args := list(dig(c, "args"))
	for _, want := range []string{
		"--es-url=https://es-a:9200,https://es-b:9200",
		"--es-cert=/etc/streambudget-tls/tls.crt", "--es-key=/etc/streambudget-tls/tls.key",
	} {
		if !slices.Contains(args, any(want)) {
			t.Errorf("args: got %v, want %s among them", args, want)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(str(a), "--es-ca") {
			t.Errorf("args: got %s, want no --es-ca (caKey is empty: a Secret without ca.crt)", a)
		}
	}
	if got := str(dig(list(dig(c, "envFrom"))[0], "configMapRef", "name")); got != "aws-endpoints" {
		t.Errorf("envFrom: got %v, want configMapRef aws-endpoints", dig(c, "envFrom"))
	}
	var extraMounted, extraVolume bool
	for _, m := range list(dig(c, "volumeMounts")) {
		extraMounted = extraMounted || (str(dig(m, "name")) == "extra" && str(dig(m, "mountPath")) == "/var/extra")
	}
	for _, v := range list(dig(pod, "volumes")) {
		extraVolume = extraVolume || str(dig(v, "name")) == "extra"
	}
	if !extraMounted || !extraVolume {
		t.Errorf("extraVolumes/extraVolumeMounts: volume %v, mounted %v; want both", extraVolume, extraMounted)
	}
	var tls bool
	for _, v := range list(dig(pod, "volumes")) {
		if str(dig(v, "secret", "secretName")) == "es-tls" {
			tls = true
		}
	}
	if !tls {
		t.Errorf("volumes: Secret es-tls not mounted")
	}
	sa := only(t, objs, "ServiceAccount")
	if got := str(dig(sa, "metadata", "annotations", "eks.amazonaws.com/role-arn")); got == "" {
		t.Errorf("ServiceAccount: IRSA annotation missing")
	}
}

// normalise makes decoded YAML comparable whatever the decoder's number types.
func normalise(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBudgetBytes checks that the ConfigMap holds the budget file byte for
// byte also where a YAML literal block cannot (it falls back to a quoted
// string there), and that the rest of the budget's fields come from the file.
func TestBudgetBytes(t *testing.T) {
	base := "team: edge\nstream: edge-logs\npods: 3\n"
	cases := []struct{ name, budget string }{
		{"trailing-newline", base},
		{"no-trailing-newline", strings.TrimSuffix(base, "\n")},
		{"blank-lines-at-end", base + "\n\n"},
		{"crlf", strings.ReplaceAll(base, "\n", "\r\n")},
		{"leading-space", "  # indented comment\n" + base},
		{"leading-blank-line", "\n" + base},
		{"tabs-and-trailing-spaces", base + "# a\tb   \n"},
		{"document-marker", "---\n" + base + "...\n"},
		{"unicode", base + "# café ✓\n"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(path, []byte(tc.budget), 0o644); err != nil {
				t.Fatal(err)
			}
			objs := render(t, "edge", "--set-file", "budget="+path)
			if got := str(dig(only(t, objs, "ConfigMap"), "data", "budget.yaml")); got != tc.budget {
				t.Errorf("ConfigMap budget.yaml:\ngot  %q\nwant %q", got, tc.budget)
			}
			if got := dig(only(t, objs, "Deployment"), "spec", "replicas"); got != 3 {
				t.Errorf("replicas: got %v, want 3", got)
			}
		})
	}
	t.Run("stream-arn", func(t *testing.T) {
		path := filepath.Join(dir, "arn.yaml")
		budget := "team: edge\nstreamARN: arn:aws:kinesis:eu-central-1:123456789012:stream/edge-logs\n"
		if err := os.WriteFile(path, []byte(budget), 0o644); err != nil {
			t.Fatal(err)
		}
		dep := only(t, render(t, "edge", "--set-file", "budget="+path), "Deployment")
		if got := dig(dep, "spec", "replicas"); got != 1 {
			t.Errorf("replicas without pods: got %v, want 1 (the binary's default)", got)
		}
		if got := str(dig(dep, "metadata", "annotations", "streambudget.io/stream")); got != "edge-logs" {
			t.Errorf("stream annotation: got %q, want edge-logs", got)
		}
		var region string
		for _, e := range list(dig(list(dig(dep, "spec", "template", "spec", "containers"))[0], "env")) {
			if str(dig(e, "name")) == "AWS_REGION" {
				region = str(dig(e, "value"))
			}
		}
		if region != "eu-central-1" {
			t.Errorf("AWS_REGION from the streamARN: got %q, want eu-central-1", region)
		}
	})
}

// TestTemplateFails checks that a bad budget or bad values stop the render
// with a message that says what to fix.
func TestTemplateFails(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(root, budgets(t)[0].path))
	if err != nil {
		t.Fatal(err)
	}
	teamRe := regexp.MustCompile(`(?m)^team: .*$`)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badTeam := write("bad-team.yaml", teamRe.ReplaceAllString(string(good), "team: Bad_Team"))
	empty := write("empty.yaml", "")
	notYAML := write("not-yaml.yaml", "team: [unclosed\n")
	aList := write("list.yaml", "- team: a\n")
	noStream := write("no-stream.yaml", "team: a\npods: 1\n")
	noTeam := write("no-team.yaml", "stream: a-logs\npods: 1\n")
	zeroPods := write("zero-pods.yaml", "team: a\nstream: a-logs\npods: 0\n")
	withBudget := []string{"--set-file", "budget=" + budgets(t)[0].path}

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no-budget", nil, "budget: the team's budget file is required; set it with --set-file budget=budgets/<team>.yaml"},
		{"empty-budget", []string{"--set-file", "budget=" + empty}, "budget: the team's budget file is required; set it with --set-file budget=budgets/<team>.yaml"},
		{"bad-team", []string{"--set-file", "budget=" + badTeam}, `budget: team must be 1 to 53 of a-z, 0-9 and '-', starting and ending with a letter or digit, got "Bad_Team"`},
		{"not-yaml", []string{"--set-file", "budget=" + notYAML}, "budget: not a YAML mapping of budget fields"},
		{"not-a-mapping", []string{"--set-file", "budget=" + aList}, "budget: not a YAML mapping of budget fields"},
		{"no-team", []string{"--set-file", "budget=" + noTeam}, "budget: the file has no team; set it with --set-file budget=budgets/<team>.yaml"},
		{"no-stream", []string{"--set-file", "budget=" + noStream}, "budget: the file has no stream (or streamARN)"},
		{"zero-pods", []string{"--set-file", "budget=" + zeroPods}, "budget: pods must be a whole number from 1 to 1000, got 0"},
		{"budget-not-a-string", []string{"--set", "budget=3"}, "at '/budget': got number, want string"},
		{"unknown-value", append([]string{"--set", "nope=1"}, withBudget...), "additional properties 'nope' not allowed"},
		{"unknown-nested-value", append([]string{"--set", "image.nope=1"}, withBudget...), "at '/image': additional properties 'nope' not allowed"},
		{"wrong-type", append([]string{"--set", "resources=3"}, withBudget...), "at '/resources': got number, want object"},
		{"bad-duration", append([]string{"--set", "run.failoverTime=10"}, withBudget...), "at '/run/failoverTime': got number, want string"},
		{"secret-without-keys", append([]string{"--set", "elasticsearch.existingSecret=es", "--set", "elasticsearch.usernameKey=", "--set", "elasticsearch.passwordKey="}, withBudget...),
			"elasticsearch.existingSecret is set but usernameKey, passwordKey and apiKeyKey are all empty"},
		{"tls-secret-without-keys", append([]string{"--set", "elasticsearch.tls.existingSecret=es-tls"}, withBudget...),
			"elasticsearch.tls.existingSecret is set but caKey, certKey and keyKey are all empty"},
		{"prometheus-rule-deprecated", append([]string{"--set", "prometheusRule.enabled=true"}, withBudget...),
			"prometheusRule.enabled: the alert rules of every team moved to the fleet monitoring chart"},
		{"dashboard-deprecated", append([]string{"--set", "dashboard.enabled=true"}, withBudget...),
			"dashboard.enabled: the dashboards moved to the fleet monitoring chart"},
		{"bad-spread", append([]string{"--set", "podSpread.whenUnsatisfiable=Never"}, withBudget...),
			"at '/podSpread/whenUnsatisfiable'"},
		// Credentials in a URL would show in the pod spec.
		{"credentials-in-url", append([]string{"--set", "elasticsearch.urls[0]=https://elastic:pw@es:9200"}, withBudget...),
			"at '/elasticsearch/urls/0'"},
		{"credentials-in-es-setup-url", append([]string{"--set", "esSetup.urls[0]=https://elastic:pw@es:9200"}, withBudget...),
			"at '/esSetup/urls/0'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runHelm(t, append([]string{"template", "x", chart}, tc.args...)...)
			if err == nil {
				t.Fatalf("helm template succeeded, want an error containing %q; output:\n%s", tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error: got %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestValuesDocumented checks, for both charts, that values.yaml documents
// every key with a "# --" comment and that values.schema.json describes
// exactly the keys of values.yaml, so that it rejects nothing documented and
// nothing else.
func TestValuesDocumented(t *testing.T) {
	for _, c := range []string{chart, monitoringChart} {
		t.Run(filepath.Base(c), func(t *testing.T) { checkValuesDocumented(t, c) })
	}
}

func checkValuesDocumented(t *testing.T, chart string) {
	raw, err := os.ReadFile(filepath.Join(root, chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	schemaRaw, err := os.ReadFile(filepath.Join(root, chart, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(schemaRaw, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	if got := schema["$schema"]; got != "http://json-schema.org/draft-07/schema#" {
		t.Errorf("values.schema.json $schema: got %v, want draft-07", got)
	}
	walkValues(t, "", doc.Content[0], schema, false)
}

// walkValues compares one mapping of values.yaml with its schema object. A
// key is documented by its own "# --" comment or by its parent's.
func walkValues(t *testing.T, prefix string, m *yaml.Node, schema any, documented bool) {
	t.Helper()
	if dig(schema, "type") != "object" || dig(schema, "additionalProperties") != false {
		t.Errorf("values.schema.json %s: want type object with additionalProperties false", orRoot(prefix))
	}
	props, _ := dig(schema, "properties").(map[string]any)
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + k.Value
		seen[k.Value] = true
		prop, ok := props[k.Value]
		if !ok {
			t.Errorf("values.schema.json: no property for %s (values.yaml:%d)", key, k.Line)
			continue
		}
		if dig(prop, "description") == nil {
			t.Errorf("values.schema.json %s: no description", key)
		}
		doc := documented || strings.Contains(k.HeadComment, "# --")
		if v.Kind == yaml.MappingNode && len(v.Content) > 0 && dig(prop, "properties") != nil {
			walkValues(t, key+".", v, prop, doc)
			continue
		}
		if !doc {
			t.Errorf("values.yaml:%d: %s has no \"# --\" comment", k.Line, key)
		}
	}
	for name := range props {
		if !seen[name] {
			t.Errorf("values.schema.json: %s%s is not in values.yaml", prefix, name)
		}
	}
}

func orRoot(prefix string) string {
	if prefix == "" {
		return "(root)"
	}
	return strings.TrimSuffix(prefix, ".")
}
