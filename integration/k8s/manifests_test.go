// Package k8s checks that what the charts render is what an API server would
// accept: every object decoded strictly into its k8s.io/api (or Prometheus
// Operator) type, where an unknown or misplaced field fails; names, labels and
// selectors valid and matching; every pod template admitted by the Pod
// Security "restricted" profile at its latest version, the es-setup hook
// Job's too. It renders every budget of budgets/, the charts with every
// option on, the API-key-only case, the es-setup hook with admin credentials
// as username/password and as an API key only, the chart as a subchart, and
// the fleet monitoring chart from budgets/.
//
// It is its own module so that the Kubernetes libraries stay out of the
// service's go.mod. helm comes from integration/helm/helm.sh, as in the
// main module's tests; a helm that cannot be built fails the tests.
package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

const (
	root            = "../.."
	teamChart       = "helm/streambudget"
	monitoringChart = "helm/streambudget-monitoring"
	namespace       = "logging"
)

// newObject returns an empty typed object for a rendered apiVersion and
// kind; a kind the charts are not expected to render is an error.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	}
	return nil, fmt.Errorf("%s %s: not a kind the charts render", apiVersion, kind)
}

// decoded is one rendered object: its typed value and its metadata.
type decoded struct {
	kind string
	meta metav1.ObjectMeta
	obj  any
}

// decodeStrict splits helm template's output and decodes every document
// strictly: an unknown field, a duplicate field or a wrong type fails.
func decodeStrict(out string) ([]decoded, error) {
	var objs []decoded
	var errs []error
	for i, doc := range splitDocuments(out) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): strict decoding: %w", i, tm.Kind, err))
			continue
		}
		var om struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &om); err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, decoded{kind: tm.Kind, meta: om.Metadata, obj: obj})
	}
	return objs, errors.Join(errs...)
}

// splitDocuments returns the non-empty YAML documents of a stream.
func splitDocuments(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		var content bool
		for _, line := range strings.Split(d, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				content = true
				break
			}
		}
		if content {
			docs = append(docs, d)
		}
	}
	return docs
}

// restricted is the Pod Security Standards "restricted" profile, latest version.
var restricted = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

var evaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// checkRestricted returns the restricted profile's objections to a pod template.
func checkRestricted(tmpl *corev1.PodTemplateSpec) error {
	ev, err := evaluator()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range ev.EvaluatePod(restricted, &tmpl.ObjectMeta, &tmpl.Spec) {
		if !r.Allowed {
			errs = append(errs, fmt.Errorf("pod security restricted: %s: %s", r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return errors.Join(errs...)
}

// checkObjects checks what decoding cannot: names and labels the API server
// accepts, selectors that select the pods, the namespace, and every pod
// template against the restricted profile.
func checkObjects(objs []decoded, ns string) error {
	var errs []error
	add := func(o decoded, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s: %s", o.kind, o.meta.Name, fmt.Sprintf(format, args...)))
	}
	var podLabels []labels.Set
	for _, o := range objs {
		if d, ok := o.obj.(*appsv1.Deployment); ok {
			podLabels = append(podLabels, labels.Set(d.Spec.Template.Labels))
		}
	}
	selects := func(sel map[string]string) bool {
		for _, l := range podLabels {
			if labels.SelectorFromSet(sel).Matches(l) {
				return true
			}
		}
		return false
	}
	// The selectors of the team's pods, hook ConfigMaps and the release's
	// ServiceAccounts, for the checks of a Job.
	var selectors []labels.Selector
	hookConfigMaps := map[string]bool{}
	serviceAccounts := map[string]bool{}
	for _, o := range objs {
		switch obj := o.obj.(type) {
		case *appsv1.Deployment:
			if sel, err := metav1.LabelSelectorAsSelector(obj.Spec.Selector); err == nil {
				selectors = append(selectors, sel)
			}
		case *corev1.Service:
			if len(obj.Spec.Selector) > 0 {
				selectors = append(selectors, labels.SelectorFromSet(obj.Spec.Selector))
			}
		case *policyv1.PodDisruptionBudget:
			if sel, err := metav1.LabelSelectorAsSelector(obj.Spec.Selector); err == nil {
				selectors = append(selectors, sel)
			}
		case *networkingv1.NetworkPolicy:
			if sel, err := metav1.LabelSelectorAsSelector(&obj.Spec.PodSelector); err == nil {
				selectors = append(selectors, sel)
			}
		case *corev1.ConfigMap:
			if o.meta.Annotations["helm.sh/hook"] != "" {
				hookConfigMaps[o.meta.Name] = true
			}
		case *corev1.ServiceAccount:
			serviceAccounts[o.meta.Name] = true
		}
	}
	selected := func(l map[string]string) bool {
		for _, sel := range selectors {
			if !sel.Empty() && sel.Matches(labels.Set(l)) {
				return true
			}
		}
		return false
	}
	for _, o := range objs {
		for _, msg := range validation.IsDNS1123Subdomain(o.meta.Name) {
			add(o, "name: %s", msg)
		}
		if o.meta.Namespace != ns {
			add(o, "namespace: got %q, want %q", o.meta.Namespace, ns)
		}
		for k, v := range o.meta.Labels {
			for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				add(o, "label %s=%s: %s", k, v, msg)
			}
		}
		switch obj := o.obj.(type) {
		case *appsv1.Deployment:
			sel, err := metav1.LabelSelectorAsSelector(obj.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(obj.Spec.Template.Labels)) {
				add(o, "selector %v does not select its pod template's labels %v (%v)", obj.Spec.Selector, obj.Spec.Template.Labels, err)
			}
			if obj.Spec.Replicas == nil || *obj.Spec.Replicas < 1 {
				add(o, "replicas: got %v, want at least 1", obj.Spec.Replicas)
			}
			for _, c := range obj.Spec.Template.Spec.TopologySpreadConstraints {
				if c.LabelSelector == nil || !selects(c.LabelSelector.MatchLabels) {
					add(o, "topology spread constraint %s selects none of the team's pods", c.TopologyKey)
				}
			}
			for _, err := range checkPodTemplate(&obj.Spec.Template) {
				add(o, "%v", err)
			}
		case *batchv1.Job:
			// The job controller labels its pods job-name=<name>: a label value.
			for _, msg := range validation.IsValidLabelValue(o.meta.Name) {
				add(o, "name as the job-name label of its pods: %s", msg)
			}
			if p := obj.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
				add(o, "restartPolicy %q: a Job's pods need Never or OnFailure", p)
			}
			if len(obj.Spec.Template.Labels) > 0 && selected(obj.Spec.Template.Labels) {
				add(o, "its pod template's labels %v are selected by a selector of the team's pods", obj.Spec.Template.Labels)
			}
			if o.meta.Annotations["helm.sh/hook"] != "" {
				for _, v := range obj.Spec.Template.Spec.Volumes {
					if v.ConfigMap != nil && !hookConfigMaps[v.ConfigMap.Name] {
						add(o, "a hook mounts ConfigMap %s, which is no hook of the same render: it does not exist when the hook runs on install", v.ConfigMap.Name)
					}
				}
				if sa := obj.Spec.Template.Spec.ServiceAccountName; sa != "" && serviceAccounts[sa] {
					add(o, "a hook runs as ServiceAccount %s, a release object that does not exist when it runs on install", sa)
				}
			}
			for _, err := range checkPodTemplate(&obj.Spec.Template) {
				add(o, "%v", err)
			}
		case *corev1.Service:
			for _, msg := range validation.IsDNS1035Label(o.meta.Name) {
				add(o, "Service name: %s", msg)
			}
			if !selects(obj.Spec.Selector) {
				add(o, "selector %v selects no pod template", obj.Spec.Selector)
			}
		case *policyv1.PodDisruptionBudget:
			if !selects(obj.Spec.Selector.MatchLabels) {
				add(o, "selector %v selects no pod template", obj.Spec.Selector.MatchLabels)
			}
		case *networkingv1.NetworkPolicy:
			if !selects(obj.Spec.PodSelector.MatchLabels) {
				add(o, "podSelector %v selects no pod template", obj.Spec.PodSelector.MatchLabels)
			}
		case *monitoringv1.PrometheusRule:
			if len(obj.Spec.Groups) == 0 {
				add(o, "no rule groups")
			}
		}
	}
	return errors.Join(errs...)
}

// checkPodTemplate checks a pod template against the restricted profile and
// that every volume mount names a volume of the pod.
func checkPodTemplate(tmpl *corev1.PodTemplateSpec) []error {
	var errs []error
	if err := checkRestricted(tmpl); err != nil {
		errs = append(errs, err)
	}
	volumes := map[string]bool{}
	for _, v := range tmpl.Spec.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range tmpl.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				errs = append(errs, fmt.Errorf("container %s mounts %s, which is no volume of the pod", c.Name, m.Name))
			}
		}
	}
	return errs
}

var helmOnce = sync.OnceValues(func() (string, error) {
	cmd := exec.Command("bash", "integration/helm/helm.sh")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("integration/helm/helm.sh: %w\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
})

// helmTemplate renders a chart in the repository root with the pinned helm.
func helmTemplate(t *testing.T, release, chart string, args ...string) string {
	t.Helper()
	bin, err := helmOnce()
	if err != nil {
		t.Fatalf("build helm: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"template", release, chart, "--namespace", namespace}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template %s %s: %v\n%s", release, chart, err, stderr.String())
	}
	return stdout.String()
}

// budgetFiles are budgets/*.yaml, relative to the repository root.
func budgetFiles(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "budgets", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("budget files: got %d (%v), want at least one", len(paths), err)
	}
	var out []string
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
	}
	sort.Strings(out)
	return out
}

// everythingOn switches on every optional part of the team chart.
var everythingOn = []string{
	"--set", "esSetup.enabled=true",
	"--set", "esSetup.existingSecret=es-admin",
	"--set", "esSetup.distribution=opensearch",
	"--set", "esSetup.urls={https://es-admin.example:9200}",
	"--set", "serviceMonitor.enabled=true",
	"--set", "serviceMonitor.relabelings[0].action=replace",
	"--set", "serviceMonitor.relabelings[0].targetLabel=cluster",
	"--set", "serviceMonitor.relabelings[0].replacement=eu1",
	"--set", "networkPolicy.enabled=true",
	"--set", "networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
	"--set", "networkPolicy.egress[0].ports[0].port=443",
	"--set", "elasticsearch.existingSecret=es-creds",
	"--set", "elasticsearch.tls.existingSecret=es-tls",
	"--set", "elasticsearch.tls.caKey=ca.crt",
	"--set", "elasticsearch.tls.certKey=tls.crt",
	"--set", "elasticsearch.tls.keyKey=tls.key",
	"--set", "aws.region=eu-west-1",
	"--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/streambudget",
	"--set", "envFrom[0].configMapRef.name=aws-endpoints",
	"--set", "extraEnv[0].name=AWS_ENDPOINT_URL",
	"--set", "extraEnv[0].value=https://vpce.example",
	"--set", "extraVolumes[0].name=extra",
	"--set", "extraVolumes[0].emptyDir.sizeLimit=1Mi",
	"--set", "extraVolumeMounts[0].name=extra",
	"--set", "extraVolumeMounts[0].mountPath=/var/extra",
	"--set", "commonLabels.cost-center=logging",
	"--set", "imagePullSecrets[0].name=regcred",
	"--set", "priorityClassName=logging",
	"--set", "nodeSelector.kubernetes\\.io/os=linux",
	"--set", "tolerations[0].key=dedicated",
	"--set", "tolerations[0].operator=Exists",
}

// renders are every render the tests check, by name.
func renders(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, b := range budgetFiles(t) {
		team := strings.TrimSuffix(filepath.Base(b), ".yaml")
		out["team/"+team] = helmTemplate(t, team, teamChart, "--set-file", "budget="+b)
		out["team/"+team+"/everything-on"] = helmTemplate(t, team, teamChart, append([]string{"--set-file", "budget=" + b}, everythingOn...)...)
		out["team/"+team+"/api-key-only"] = helmTemplate(t, team, teamChart, "--set-file", "budget="+b,
			"--set", "elasticsearch.existingSecret=es-api-key", "--set", "elasticsearch.apiKeyKey=api-key")
		out["team/"+team+"/es-setup"] = helmTemplate(t, team, teamChart, "--set-file", "budget="+b,
			"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-admin")
		out["team/"+team+"/es-setup-api-key-only"] = helmTemplate(t, team, teamChart, "--set-file", "budget="+b,
			"--set", "elasticsearch.existingSecret=es-api-key", "--set", "elasticsearch.apiKeyKey=api-key",
			"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-admin-api-key", "--set", "esSetup.apiKeyKey=api-key")
	}
	out["subchart"] = helmTemplate(t, "logging", umbrella(t))
	values := monitoringValues(t)
	out["monitoring/budgets"] = helmTemplate(t, "monitoring", monitoringChart, "-f", values)
	out["monitoring/tests"] = helmTemplate(t, "monitoring", monitoringChart, "-f", filepath.Join(monitoringChart, "tests", "values.yaml"),
		"--set", "cluster.label=k8s_cluster", "--set", "cluster.name=eu1", "--set", "commonLabels.cost-center=logging")
	return out
}

// monitoringValues writes `streambudget monitoring-values --namespace logging
// budgets/` to a file and returns its absolute path.
func monitoringValues(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "run", "./cmd/streambudget", "monitoring-values", "--namespace", namespace, "budgets/")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("streambudget monitoring-values: %v\n%s", err, stderr.String())
	}
	path := filepath.Join(t.TempDir(), "teams.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// umbrella writes an umbrella chart holding the team chart twice under
// aliases (with global values and the enabled condition), and returns its path.
func umbrella(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "logging")
	src := filepath.Join(root, teamChart)
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dir, "charts", "streambudget", rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	budget := func(team string) string {
		b, err := os.ReadFile(filepath.Join(root, "budgets", team+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.Marshal(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(strings.ReplaceAll(string(j), "\n", "\n    "))
	}
	files := map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: logging\nversion: 1.0.0\ndependencies:\n" +
			"  - {name: streambudget, version: \">=0.0.0\", alias: payments, condition: payments.enabled}\n" +
			"  - {name: streambudget, version: \">=0.0.0\", alias: search, condition: search.enabled}\n",
		"values.yaml": "global:\n  imageRegistry: registry.example\n" +
			"payments:\n  enabled: true\n  budget: " + budget("payments") + "\n" +
			"search:\n  enabled: true\n  budget: " + budget("search") + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestManifests decodes every render strictly and checks it.
func TestManifests(t *testing.T) {
	all := renders(t)
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			objs, err := decodeStrict(all[name])
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatal("rendered no objects")
			}
			if err := checkObjects(objs, namespace); err != nil {
				t.Error(err)
			}
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.kind]++
			}
			wantJobs := 0
			if strings.Contains(name, "/es-setup") || strings.HasSuffix(name, "/everything-on") {
				wantJobs = 1
			}
			switch {
			case strings.HasPrefix(name, "team/") && (kinds["Deployment"] != 1 || kinds["Job"] != wantJobs):
				t.Errorf("Deployments and Jobs: got %d and %d, want 1 and %d", kinds["Deployment"], kinds["Job"], wantJobs)
			case name == "subchart" && kinds["Deployment"] != 2:
				t.Errorf("Deployments: got %d, want 2 (payments and search)", kinds["Deployment"])
			case strings.HasPrefix(name, "monitoring/") && (kinds["PrometheusRule"] != 1 || kinds["ConfigMap"] != 2):
				t.Errorf("objects: got %v, want a PrometheusRule and two dashboard ConfigMaps", kinds)
			}
		})
	}
}

// TestChecksBite shows that the checks reject what the API server or the
// restricted profile would: a misspelt field in a value the chart passes
// through, a container (of the Deployment or of the es-setup Job) allowed to
// escalate its privileges, and a hook Job selected as one of the team's
// pods, mounting what does not exist yet on install, or restarting forever.
func TestChecksBite(t *testing.T) {
	b := budgetFiles(t)[0]
	typo := helmTemplate(t, "typo", teamChart, "--set-file", "budget="+b, "--set", "extraEnv[0].nmae=X")
	if _, err := decodeStrict(typo); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Errorf("a misspelt field (extraEnv[0].nmae): got %v, want a strict decoding error naming it", err)
	}
	escalating := helmTemplate(t, "escalating", teamChart, "--set-file", "budget="+b,
		"--set", "securityContext.allowPrivilegeEscalation=true", "--set", "podSecurityContext.runAsNonRoot=false")
	objs, err := decodeStrict(escalating)
	if err != nil {
		t.Fatal(err)
	}
	err = checkObjects(objs, namespace)
	for _, want := range []string{"allowPrivilegeEscalation != false", "runAsNonRoot != true"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a pod that may escalate and run as root: got %v, want the restricted profile to object (%s)", err, want)
		}
	}
	escalatingJob := helmTemplate(t, "escalating", teamChart, "--set-file", "budget="+b,
		"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-admin", "--set", "securityContext.allowPrivilegeEscalation=true")
	objs, err = decodeStrict(escalatingJob)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkObjects(objs, namespace); err == nil || !strings.Contains(err.Error(), "Job escalating-streambudget-es-setup: pod security restricted") {
		t.Errorf("an es-setup Job that may escalate: got %v, want the restricted profile to object to the Job", err)
	}

	// Mistakes a hook Job could make, made in a good render.
	good := helmTemplate(t, "edge", teamChart, "--set-file", "budget="+b, "--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-admin")
	mistakes := []struct{ name, old, new, want string }{
		{"pods-selected-as-the-team's", "app.kubernetes.io/name: streambudget-es-setup", "app.kubernetes.io/name: streambudget",
			"are selected by a selector of the team's pods"},
		{"the-release's-configmap", "configMap:\n            name: edge-streambudget-es-setup", "configMap:\n            name: edge-streambudget",
			"a hook mounts ConfigMap edge-streambudget, which is no hook"},
		{"the-release's-service-account", "restartPolicy: Never\n", "restartPolicy: Never\n      serviceAccountName: edge-streambudget\n",
			"a hook runs as ServiceAccount edge-streambudget"},
		{"restarting", "restartPolicy: Never", "restartPolicy: Always", `restartPolicy "Always"`},
		{"long-name", "name: edge-streambudget-es-setup\n  namespace: logging\n  labels:\n    app.kubernetes.io/component: es-setup",
			"name: edge-streambudget-es-setup-" + strings.Repeat("x", 40) + "\n  namespace: logging\n  labels:\n    app.kubernetes.io/component: es-setup",
			"name as the job-name label of its pods"},
	}
	for _, m := range mistakes {
		t.Run(m.name, func(t *testing.T) {
			if !strings.Contains(good, m.old) {
				t.Fatalf("the render has no %q to change", m.old)
			}
			objs, err := decodeStrict(strings.Replace(good, m.old, m.new, -1))
			if err != nil {
				t.Fatal(err)
			}
			if err := checkObjects(objs, namespace); err == nil || !strings.Contains(err.Error(), m.want) {
				t.Errorf("got %v, want an error containing %q", err, m.want)
			}
		})
	}
	if objs, err := decodeStrict(good); err != nil {
		t.Fatal(err)
	} else if err := checkObjects(objs, namespace); err != nil {
		t.Errorf("the unchanged render: %v", err)
	}

	unknown := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n"
	if _, err := decodeStrict(unknown); err == nil || !strings.Contains(err.Error(), "not a kind the charts render") {
		t.Errorf("a kind the charts do not render: got %v, want an error", err)
	}
}
