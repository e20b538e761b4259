package helm

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	hookEvents       = "pre-install,pre-upgrade"
	hookDeletePolicy = "before-hook-creation,hook-succeeded"
	budgetPath       = "/etc/streambudget/budget.yaml"
)

// esSetupOn switches the es-setup hook on with an admin Secret holding a
// username and a password (the default keys).
var esSetupOn = []string{"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-admin"}

// hookObjects returns the objects that carry a helm.sh/hook annotation.
func hookObjects(objs []object) []object {
	var out []object
	for _, o := range objs {
		if _, ok := stringMap(dig(o, "metadata", "annotations"))["helm.sh/hook"]; ok {
			out = append(out, o)
		}
	}
	return out
}

// esSetupJob returns the Job, its pod spec and its only container.
func esSetupJob(t *testing.T, objs []object) (job object, pod, container any) {
	t.Helper()
	job = only(t, objs, "Job")
	pod = dig(job, "spec", "template", "spec")
	containers := list(dig(pod, "containers"))
	if len(containers) != 1 {
		t.Fatalf("Job containers: got %d, want 1", len(containers))
	}
	return job, pod, containers[0]
}

func argsOf(c any) []string {
	var out []string
	for _, a := range list(dig(c, "args")) {
		out = append(out, str(a))
	}
	return out
}

// envRefs returns the container's env as name -> "secret/key" (or "value:..."
// for a literal).
func envRefs(c any) map[string]string {
	out := map[string]string{}
	for _, e := range list(dig(c, "env")) {
		name := str(dig(e, "name"))
		if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
			out[name] = str(dig(ref, "name")) + "/" + str(dig(ref, "key"))
			continue
		}
		out[name] = "value:" + str(dig(e, "value"))
	}
	return out
}

// TestESSetupOffByDefault checks that the hook is opt-in: by default no Job
// and no hook object at all, for every budget.
func TestESSetupOffByDefault(t *testing.T) {
	for _, b := range budgets(t) {
		t.Run(b.team, func(t *testing.T) {
			objs := render(t, b.team, "--set-file", "budget="+b.path)
			if got := byKind(objs, "Job"); len(got) != 0 {
				t.Errorf("Jobs: got %d, want none (esSetup.enabled is false by default)", len(got))
			}
			for _, o := range hookObjects(objs) {
				t.Errorf("%s %s: a hook object with esSetup off", o.kind(), o.name())
			}
		})
	}
}

// TestESSetupJob renders the hook for every budget, with an admin Secret of
// username and password and with an API key only, and checks what the Job
// runs, with which credentials, on which budget, how it is ordered before
// the release's objects, and that it runs as restricted as the pods.
func TestESSetupJob(t *testing.T) {
	variants := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"username-password", esSetupOn, map[string]string{
			"ELASTICSEARCH_USERNAME": "es-admin/username", "ELASTICSEARCH_PASSWORD": "es-admin/password",
		}},
		{"api-key-only", []string{"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-admin-key", "--set", "esSetup.apiKeyKey=api-key"},
			map[string]string{"ELASTICSEARCH_API_KEY": "es-admin-key/api-key"}},
		{"other-keys", append(slices.Clone(esSetupOn), "--set", "esSetup.usernameKey=user", "--set", "esSetup.passwordKey=pass"),
			map[string]string{"ELASTICSEARCH_USERNAME": "es-admin/user", "ELASTICSEARCH_PASSWORD": "es-admin/pass"}},
	}
	for _, b := range budgets(t) {
		for _, v := range variants {
			t.Run(b.team+"/"+v.name, func(t *testing.T) {
				// The pods' own writer credentials are set too: the Job must not use them.
				objs := render(t, b.team, append([]string{"--set-file", "budget=" + b.path,
					"--set", "elasticsearch.existingSecret=es-writer", "--set", "elasticsearch.apiKeyKey=writer-key"}, v.args...)...)
				checkESSetupJob(t, objs, b)
				_, _, c := esSetupJob(t, objs)
				if got := envRefs(c); !mapsEqual(got, v.env) {
					t.Errorf("Job env: got %v, want %v", got, v.env)
				}
				// The Deployment keeps the writer credentials.
				if got := envRefs(list(dig(only(t, objs, "Deployment"), "spec", "template", "spec", "containers"))[0])["ELASTICSEARCH_API_KEY"]; got != "es-writer/writer-key" {
					t.Errorf("Deployment ELASTICSEARCH_API_KEY: got %q, want es-writer/writer-key", got)
				}
			})
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkESSetupJob checks what every es-setup render must hold.
func checkESSetupJob(t *testing.T, objs []object, b budgetFile) {
	t.Helper()
	job, pod, c := esSetupJob(t, objs)

	// The hook objects: a ConfigMap with the budget, then the Job.
	hooks := hookObjects(objs)
	if len(hooks) != 2 {
		t.Fatalf("hook objects: got %d, want 2 (the budget ConfigMap and the Job)", len(hooks))
	}
	weights := map[string]int{}
	for _, o := range hooks {
		ann := stringMap(dig(o, "metadata", "annotations"))
		if got := ann["helm.sh/hook"]; got != hookEvents {
			t.Errorf("%s %s helm.sh/hook: got %q, want %q", o.kind(), o.name(), got, hookEvents)
		}
		if got := ann["helm.sh/hook-delete-policy"]; got != hookDeletePolicy {
			t.Errorf("%s %s helm.sh/hook-delete-policy: got %q, want %q", o.kind(), o.name(), got, hookDeletePolicy)
		}
		w, err := strconv.Atoi(ann["helm.sh/hook-weight"])
		if err != nil {
			t.Errorf("%s %s helm.sh/hook-weight: got %q, want an integer (%v)", o.kind(), o.name(), ann["helm.sh/hook-weight"], err)
		}
		weights[o.kind()] = w
		labels := stringMap(dig(o, "metadata", "labels"))
		for _, l := range requiredLabels {
			if labels[l] == "" {
				t.Errorf("%s %s: label %s missing; labels %v", o.kind(), o.name(), l, labels)
			}
		}
		if labels["streambudget.io/team"] != b.team {
			t.Errorf("%s %s: team label got %q, want %q", o.kind(), o.name(), labels["streambudget.io/team"], b.team)
		}
		if got := str(dig(o, "metadata", "namespace")); got != namespace {
			t.Errorf("%s %s: namespace got %q, want %q", o.kind(), o.name(), got, namespace)
		}
	}
	if weights["ConfigMap"] >= weights["Job"] {
		t.Errorf("hook weights: ConfigMap %d, Job %d; want the ConfigMap lower (created first)", weights["ConfigMap"], weights["Job"])
	}
	if got := str(dig(job, "metadata", "annotations", "helm.sh/hook-output-log-policy")); got != "hook-failed" {
		t.Errorf("Job helm.sh/hook-output-log-policy: got %q, want hook-failed", got)
	}
	if len(job.name()) > 63 {
		t.Errorf("Job name %q: %d characters, want at most 63 (it becomes its pods' job-name label)", job.name(), len(job.name()))
	}

	// The budget: the hook's own ConfigMap, byte for byte, mounted where es-setup reads it.
	var hookCM, releaseCM object
	for _, cm := range byKind(objs, "ConfigMap") {
		if _, ok := stringMap(dig(cm, "metadata", "annotations"))["helm.sh/hook"]; ok {
			hookCM = cm
		} else {
			releaseCM = cm
		}
	}
	if hookCM == nil || releaseCM == nil {
		t.Fatalf("ConfigMaps: want the release's and the hook's, got hook %v, release %v", hookCM != nil, releaseCM != nil)
	}
	if hookCM.name() == releaseCM.name() {
		t.Errorf("hook ConfigMap named %q like the release's: the release could not create its own", hookCM.name())
	}
	if got := str(dig(hookCM, "data", "budget.yaml")); got != string(b.raw) {
		t.Errorf("hook ConfigMap budget.yaml is not the budget file byte for byte:\ngot  %q\nwant %q", got, b.raw)
	}
	var mounted string
	for _, m := range list(dig(c, "volumeMounts")) {
		if str(dig(m, "mountPath")) != filepath.Dir(budgetPath) {
			continue
		}
		for _, vol := range list(dig(pod, "volumes")) {
			if dig(vol, "name") == dig(m, "name") {
				mounted = str(dig(vol, "configMap", "name"))
			}
		}
	}
	if mounted != hookCM.name() {
		t.Errorf("ConfigMap mounted at %s: got %q, want the hook's %q (the release's does not exist yet on install)", filepath.Dir(budgetPath), mounted, hookCM.name())
	}

	// The command.
	args := argsOf(c)
	if len(args) < 2 || args[0] != "es-setup" || args[len(args)-1] != budgetPath {
		t.Errorf("Job args: got %q, want es-setup ... %s", args, budgetPath)
	}

	// Retries and deadline from the values' defaults.
	if got := dig(job, "spec", "backoffLimit"); got != 2 {
		t.Errorf("backoffLimit: got %v, want 2", got)
	}
	if got := dig(job, "spec", "activeDeadlineSeconds"); got != 240 {
		t.Errorf("activeDeadlineSeconds: got %v, want 240 (under helm's 5m --timeout)", got)
	}

	// Not one of the team's pods: no selector of the release selects it.
	podLabels := stringMap(dig(job, "spec", "template", "metadata", "labels"))
	for _, sel := range []map[string]string{
		stringMap(dig(only(t, objs, "Deployment"), "spec", "selector", "matchLabels")),
		stringMap(dig(only(t, objs, "Service"), "spec", "selector")),
	} {
		matches := true
		for k, v := range sel {
			matches = matches && podLabels[k] == v
		}
		if matches {
			t.Errorf("Job pod labels %v are selected by %v: the Job's pod would count as one of the team's", podLabels, sel)
		}
	}
	if got := podLabels["streambudget.io/team"]; got != b.team {
		t.Errorf("Job pod team label: got %q, want %q", got, b.team)
	}

	// Runs like the pods: restricted, no token, no ServiceAccount that does not exist yet.
	if got := str(dig(pod, "restartPolicy")); got != "Never" {
		t.Errorf("restartPolicy: got %q, want Never (each retry a new pod, its logs kept)", got)
	}
	if got := dig(pod, "automountServiceAccountToken"); got != false {
		t.Errorf("automountServiceAccountToken: got %v, want false", got)
	}
	if sa := str(dig(pod, "serviceAccountName")); sa != "" && sa == only(t, objs, "ServiceAccount").name() {
		t.Errorf("serviceAccountName: %q is a release object, which does not exist when a pre-install hook runs", sa)
	}
	for key, want := range map[string]any{"runAsNonRoot": true, "runAsUser": 65532} {
		if got := dig(pod, "securityContext", key); got != want {
			t.Errorf("pod securityContext.%s: got %v, want %v", key, got, want)
		}
	}
	if got := str(dig(pod, "securityContext", "seccompProfile", "type")); got != "RuntimeDefault" {
		t.Errorf("pod securityContext.seccompProfile.type: got %q, want RuntimeDefault", got)
	}
	checkContainer(t, "Job ", c)
	if got := str(dig(c, "image")); got != "ghcr.io/streambudget/streambudget:"+appVersion(t) {
		t.Errorf("Job image: got %q, want the pods' image", got)
	}
}

// TestESSetupArgs checks the flags the Job passes: --es-url from esSetup.urls,
// else the pods' elasticsearch.urls, else none (the budget's); --distribution
// only when set; --es-ca and a mount of only the CA when elasticsearch.tls
// has one.
func TestESSetupArgs(t *testing.T) {
	b := budgets(t)[0]
	cases := []struct {
		name    string
		args    []string
		want    []string
		tlsKeys []string // the keys of the TLS Secret mounted; nil: no TLS volume
	}{
		{"defaults", nil, []string{"es-setup", budgetPath}, nil},
		{"pods-urls", []string{"--set", "elasticsearch.urls={https://es-a:9200,https://es-b:9200}"},
			[]string{"es-setup", "--es-url=https://es-a:9200,https://es-b:9200", budgetPath}, nil},
		{"own-urls", []string{"--set", "elasticsearch.urls={https://es-a:9200}", "--set", "esSetup.urls={https://es-admin:9200}"},
			[]string{"es-setup", "--es-url=https://es-admin:9200", budgetPath}, nil},
		{"opensearch", []string{"--set", "esSetup.distribution=opensearch"},
			[]string{"es-setup", "--distribution=opensearch", budgetPath}, nil},
		{"ca", []string{"--set", "elasticsearch.tls.existingSecret=es-tls", "--set", "elasticsearch.tls.caKey=ca.crt",
			"--set", "elasticsearch.tls.certKey=tls.crt", "--set", "elasticsearch.tls.keyKey=tls.key"},
			[]string{"es-setup", "--es-ca=/etc/streambudget-tls/ca.crt", budgetPath}, []string{"ca.crt"}},
		{"client-cert-only", []string{"--set", "elasticsearch.tls.existingSecret=es-tls",
			"--set", "elasticsearch.tls.certKey=tls.crt", "--set", "elasticsearch.tls.keyKey=tls.key"},
			[]string{"es-setup", budgetPath}, nil},
		{"everything", []string{"--set", "esSetup.urls={https://es-admin:9200}", "--set", "esSetup.distribution=elasticsearch",
			"--set", "elasticsearch.tls.existingSecret=es-tls", "--set", "elasticsearch.tls.caKey=ca.pem"},
			[]string{"es-setup", "--distribution=elasticsearch", "--es-url=https://es-admin:9200", "--es-ca=/etc/streambudget-tls/ca.pem", budgetPath}, []string{"ca.pem"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, b.team, append(append([]string{"--set-file", "budget=" + b.path}, esSetupOn...), tc.args...)...)
			_, pod, c := esSetupJob(t, objs)
			if got := argsOf(c); !slices.Equal(got, tc.want) {
				t.Errorf("args: got %q, want %q", got, tc.want)
			}
			var tlsKeys []string
			var tlsVolume string
			for _, v := range list(dig(pod, "volumes")) {
				if str(dig(v, "secret", "secretName")) != "es-tls" {
					continue
				}
				tlsVolume = str(dig(v, "name"))
				for _, it := range list(dig(v, "secret", "items")) {
					tlsKeys = append(tlsKeys, str(dig(it, "key")))
				}
				if dig(v, "secret", "items") == nil {
					tlsKeys = append(tlsKeys, "(every key)")
				}
			}
			if !slices.Equal(tlsKeys, tc.tlsKeys) {
				t.Errorf("TLS Secret keys mounted: got %v, want %v (only the CA: es-setup presents no client certificate)", tlsKeys, tc.tlsKeys)
			}
			var mountedAt string
			for _, m := range list(dig(c, "volumeMounts")) {
				if tlsVolume != "" && str(dig(m, "name")) == tlsVolume {
					mountedAt = str(dig(m, "mountPath"))
				}
			}
			if tlsVolume != "" && mountedAt != "/etc/streambudget-tls" {
				t.Errorf("TLS volume %s mounted at %q, want /etc/streambudget-tls", tlsVolume, mountedAt)
			}
		})
	}
}

// TestESSetupFails checks that bad esSetup values stop the render with a
// message that says what to fix.
func TestESSetupFails(t *testing.T) {
	withBudget := []string{"--set-file", "budget=" + budgets(t)[0].path}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no-secret", []string{"--set", "esSetup.enabled=true"},
			"esSetup.existingSecret: required when esSetup.enabled is true: name a Secret with ADMIN credentials"},
		{"no-keys", []string{"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-admin", "--set", "esSetup.usernameKey=", "--set", "esSetup.passwordKey="},
			"esSetup.existingSecret is set but usernameKey, passwordKey and apiKeyKey are all empty"},
		{"the-pods-secret", []string{"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-creds", "--set", "elasticsearch.existingSecret=es-creds"},
			"esSetup.existingSecret: es-creds with these keys holds the pods' credentials (elasticsearch.existingSecret)"},
		{"the-pods-api-key", []string{"--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-creds", "--set", "esSetup.apiKeyKey=k",
			"--set", "elasticsearch.existingSecret=es-creds", "--set", "elasticsearch.apiKeyKey=k"},
			"esSetup.existingSecret: es-creds with these keys holds the pods' credentials"},
		{"bad-distribution", []string{"--set", "esSetup.distribution=solr"}, "at '/esSetup/distribution'"},
		{"bad-url", []string{"--set", "esSetup.urls={es:9200}"}, "at '/esSetup/urls/0'"},
		{"negative-backoff", []string{"--set", "esSetup.backoffLimit=-1"}, "at '/esSetup/backoffLimit'"},
		{"unknown-key", []string{"--set", "esSetup.serviceAccount=x"}, "at '/esSetup': additional properties 'serviceAccount' not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runHelm(t, append(append([]string{"template", "x", chart}, withBudget...), tc.args...)...)
			if err == nil {
				t.Fatalf("helm template succeeded, want an error containing %q; output:\n%s", tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error: got %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// The same Secret with other keys (admin keys beside the writer's) is allowed.
	args := append(slices.Clone(withBudget), "--set", "esSetup.enabled=true", "--set", "esSetup.existingSecret=es-creds", "--set", "esSetup.apiKeyKey=admin-key",
		"--set", "elasticsearch.existingSecret=es-creds", "--set", "elasticsearch.apiKeyKey=writer-key")
	if out, err := runHelm(t, append([]string{"template", "x", chart}, args...)...); err != nil {
		t.Errorf("admin and writer keys in one Secret: %v\n%s", err, out)
	}
}

// notes renders the chart's NOTES.txt, which helm template does not print:
// a copy of the chart renders it with tpl into a ConfigMap.
func notes(t *testing.T, release string, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "streambudget")
	copyDir(t, filepath.Join(root, chart), dir)
	raw, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get \"notes.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runHelm(t, append([]string{"template", release, dir, "--show-only", "templates/zz-notes.yaml"}, args...)...)
	if err != nil {
		t.Fatalf("render NOTES.txt: %v", err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal([]byte(out), &cm); err != nil {
		t.Fatalf("decode the rendered NOTES.txt: %v\n%s", err, out)
	}
	return cm.Data["notes"]
}

// TestNotes checks what the release notes say about es-setup and the
// deprecated run.dataStream.
func TestNotes(t *testing.T) {
	dir := t.TempDir()
	indexBudget := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(indexBudget, []byte("team: edge\nstream: edge-logs\nelasticsearch:\n  index: logs-edge\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	datedBudget := filepath.Join(dir, "dated.yaml")
	if err := os.WriteFile(datedBudget, []byte("team: edge\nstream: edge-logs\nelasticsearch:\n  index: logs-edge-{yyyy.MM.dd}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	payments := "budget=budgets/payments.yaml" // helm runs in the repository root
	cases := []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"defaults", []string{"--set-file", payments},
			[]string{"streambudget es-setup budgets/payments.yaml", "the role streambudget-payments"},
			[]string{"DEPRECATED", "the es-setup hook"}},
		{"es-setup-on", append([]string{"--set-file", payments}, esSetupOn...),
			[]string{"the es-setup hook (payments-streambudget-es-setup) set up the cluster", "the role streambudget-payments"},
			[]string{"DEPRECATED", "esSetup.enabled=false"}},
		{"data-stream-flag-with-a-data-stream-budget", []string{"--set-file", payments, "--set", "run.dataStream=true"},
			[]string{"DEPRECATED: run.dataStream", "elasticsearch.dataStream: logs-payments-prod), so run.dataStream does nothing: drop it"}, nil},
		{"data-stream-flag-with-an-index-budget", []string{"--set-file", "budget=" + indexBudget, "--set", "run.dataStream=true"},
			[]string{"DEPRECATED: run.dataStream", "dataStream: logs-edge   # instead of index: logs-edge", "then drop run.dataStream"}, nil},
		{"data-stream-flag-with-a-dated-index", []string{"--set-file", "budget=" + datedBudget, "--set", "run.dataStream=true"},
			[]string{"dataStream: logs-edge-prod   # instead of index: logs-edge-{yyyy.MM.dd}"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := notes(t, "payments", tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("NOTES:\n%s\nwant it to contain %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("NOTES:\n%s\nwant it not to contain %q", got, n)
				}
			}
		})
	}
}

// TestESSetupArgsRun runs the streambudget binary with the very arguments
// the Job renders, with --dry-run and the budget file in place of the
// mount: a flag es-setup does not know, or a budget it refuses, fails here
// rather than in a pre-upgrade hook.
func TestESSetupArgsRun(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "streambudget")
	build := exec.Command("go", "build", "-o", bin, "./cmd/streambudget")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/streambudget: %v\n%s", err, out)
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range budgets(t) {
		for _, dist := range []string{"elasticsearch", "opensearch"} {
			t.Run(b.team+"/"+dist, func(t *testing.T) {
				objs := render(t, b.team, append(append([]string{"--set-file", "budget=" + b.path}, esSetupOn...),
					"--set", "esSetup.distribution="+dist, "--set", "esSetup.urls={https://es-admin:9200}",
					"--set", "elasticsearch.tls.existingSecret=es-tls", "--set", "elasticsearch.tls.caKey=ca.crt")...)
				_, _, c := esSetupJob(t, objs)
				args := argsOf(c)
				if len(args) == 0 || args[0] != "es-setup" {
					t.Fatalf("Job args: got %q, want es-setup first", args)
				}
				run := []string{"es-setup", "--dry-run"}
				for _, a := range args[1:] {
					switch {
					case a == budgetPath:
						a = filepath.Join(root, b.path)
					case strings.HasPrefix(a, "--es-ca="):
						a = "--es-ca=" + ca
					}
					run = append(run, a)
				}
				cmd := exec.Command(bin, run...)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("streambudget %s: %v\n%s", strings.Join(run, " "), err, stderr.String())
				}
				var teams []struct {
					Team         string `yaml:"team"`
					Distribution string `yaml:"distribution"`
					Requests     []struct {
						Path string `yaml:"path"`
					} `yaml:"requests"`
				}
				if err := yaml.Unmarshal(out, &teams); err != nil {
					t.Fatalf("decode es-setup --dry-run: %v\n%s", err, out)
				}
				if len(teams) != 1 || teams[0].Team != b.team || teams[0].Distribution != dist {
					t.Fatalf("es-setup --dry-run: got %+v, want team %s on %s", teams, b.team, dist)
				}
				var role bool
				for _, r := range teams[0].Requests {
					role = role || strings.HasSuffix(r.Path, "/streambudget-"+b.team)
				}
				if !role {
					t.Errorf("es-setup --dry-run requests: got %+v, want the role streambudget-%s", teams[0].Requests, b.team)
				}
			})
		}
	}
}
