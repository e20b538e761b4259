package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PrometheusTools are the paths of the prometheus and promtool binaries that
// integration/prometheus/install.sh installed (Debian's package, pinned).
type PrometheusTools struct {
	Prometheus string
	Promtool   string
}

var (
	installMu sync.Mutex
	installed *PrometheusTools
)

// InstallPrometheus runs integration/prometheus/install.sh once per test
// binary and returns the paths it prints. It fails t when the script cannot
// install them: a missing Prometheus is a failure, never a skip.
func InstallPrometheus(t testing.TB) PrometheusTools {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	if installed != nil {
		return *installed
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "integration", "prometheus", "install.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("install prometheus with %s: %v\n%s", script, err, stderr.String())
	}
	var tools PrometheusTools
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		name, path, _ := strings.Cut(sc.Text(), "=")
		switch name {
		case "prometheus":
			tools.Prometheus = path
		case "promtool":
			tools.Promtool = path
		}
	}
	if tools.Prometheus == "" || tools.Promtool == "" {
		t.Fatalf("%s printed no prometheus= and promtool= lines:\n%s\n%s", script, out, stderr.String())
	}
	t.Log(strings.TrimSpace(stderr.String())) // the version that ran
	installed = &tools
	return tools
}

// moduleRoot walks up from the working directory (a test's package
// directory) to the directory holding go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find the module root: no go.mod in %s or above", wd)
		}
	}
}

// SelfTarget, given to StartPrometheus as a target, stands for the server's
// own address: it then scrapes its own /metrics, which proves scraping works
// without anything else running.
const SelfTarget = "self"

// Prometheus is a prometheus server started for one test. It scrapes its
// targets every second as job "streambudget" and is stopped when the test
// ends.
type Prometheus struct {
	*process
	URL     string   // http://127.0.0.1:port
	Targets []string // host:port, SelfTarget resolved
}

// StartPrometheus installs Prometheus if needed, starts it on a free port of
// 127.0.0.1 with its storage in a temporary directory, scraping the given
// host:port targets every second (job "streambudget"), and waits until it is
// ready. It is stopped when the test ends.
func StartPrometheus(t testing.TB, targets ...string) *Prometheus {
	t.Helper()
	tools := InstallPrometheus(t)
	dir := t.TempDir() // before the stop below, so it is removed after it
	addr := freeAddr(t)
	resolved := make([]string, len(targets))
	for i, target := range targets {
		if target == SelfTarget {
			target = addr
		}
		resolved[i] = target
	}
	quoted := make([]string, len(resolved))
	for i, target := range resolved {
		quoted[i] = strconv.Quote(target)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: streambudget
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tools.Prometheus,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Dir = dir
	url := "http://" + addr
	ready := func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	// SIGTERM, and SIGKILL when the server has not exited after 10 s.
	stop := func(p *process) { _, _ = p.Stop(10 * time.Second) }
	p := startProcess(t, "prometheus", cmd, filepath.Join(dir, "prometheus.log"), ready, stop)
	return &Prometheus{process: p, URL: url, Targets: resolved}
}

// Query runs an instant query through /api/v1/query and returns the number
// of series (or samples) in its result; a scalar or string counts as one. A
// PromQL error (bad syntax, wrong types, ...) is returned as an error.
func (p *Prometheus) Query(ctx context.Context, expr string) (int, error) {
	data, err := p.query(ctx, expr)
	if err != nil {
		return 0, err
	}
	switch data.ResultType {
	case "scalar", "string":
		return 1, nil
	default:
		var series []json.RawMessage
		if err := json.Unmarshal(data.Result, &series); err != nil {
			return 0, fmt.Errorf("query %q: decode %s result: %w", expr, data.ResultType, err)
		}
		return len(series), nil
	}
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

func (p *Prometheus) query(ctx context.Context, expr string) (queryData, error) {
	form := url.Values{"query": {expr}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return queryData{}, fmt.Errorf("query %q: %w", expr, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return queryData{}, fmt.Errorf("query %q: %w", expr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return queryData{}, fmt.Errorf("query %q: read the answer: %w", expr, err)
	}
	var r struct {
		Status    string    `json:"status"`
		ErrorType string    `json:"errorType"`
		Error     string    `json:"error"`
		Data      queryData `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return queryData{}, fmt.Errorf("query %q: HTTP %d, not an API answer: %.200s", expr, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return queryData{}, fmt.Errorf("query %q: %s: %s", expr, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// WaitScraped waits until up{job="streambudget"} is 1 for every target,
// failing t after timeout.
func (p *Prometheus) WaitScraped(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		up, err := p.up()
		if err != nil {
			last = err.Error()
		} else {
			var missing []string
			for _, target := range p.Targets {
				if up[target] != "1" {
					missing = append(missing, fmt.Sprintf("%s (up=%q)", target, up[target]))
				}
			}
			if len(missing) == 0 {
				return
			}
			last = "not scraped yet: " + strings.Join(missing, ", ")
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape every target within %s: %s", timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// up returns instance -> value of up{job="streambudget"}.
func (p *Prometheus) up() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	data, err := p.query(ctx, `up{job="streambudget"}`)
	if err != nil {
		return nil, err
	}
	var samples []vectorSample
	if err := json.Unmarshal(data.Result, &samples); err != nil {
		return nil, fmt.Errorf("decode up: %w", err)
	}
	out := map[string]string{}
	for _, s := range samples {
		v, _ := s.Value[1].(string)
		out[s.Metric["instance"]] = v
	}
	return out, nil
}

// DashboardQuery is one target of a Grafana dashboard panel.
type DashboardQuery struct {
	Panel string // the panel's title
	RefID string
	Expr  string // with the dashboard's variables replaced
}

// dashboardVariables are what the dashboard's variables become so that its
// queries run on a plain Prometheus: every cluster, namespace and team,
// Grafana's usual intervals. Constant variables take their value from the
// dashboard itself.
var dashboardVariables = map[string]string{
	"cluster":         ".*",
	"namespace":       ".*",
	"team":            ".+",
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__interval_ms":   "15000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

var dashboardVariable = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// DashboardQueries returns every panel target's expression of the Grafana
// dashboard at path (rows' nested panels included), with $team replaced by
// `.+`, $cluster and $namespace by `.*`, a constant variable by its value,
// $__rate_interval by 1m and $__interval by 15s. A variable it does not know
// is an error, and so is a panel target without an expression.
func DashboardQueries(path string) ([]DashboardQuery, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	var dash struct {
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		return nil, fmt.Errorf("decode dashboard %s: %w", path, err)
	}
	variables := map[string]string{}
	for k, v := range dashboardVariables {
		variables[k] = v
	}
	for _, v := range dash.Templating.List {
		if v.Type != "constant" {
			continue
		}
		var value string
		if err := json.Unmarshal(v.Query, &value); err != nil {
			return nil, fmt.Errorf("%s: constant variable %s: query is not a string: %w", path, v.Name, err)
		}
		variables[v.Name] = value
	}
	var out []DashboardQuery
	var errs []error
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			walk(p.Panels)
			for _, target := range p.Targets {
				var unknown []string
				expr := dashboardVariable.ReplaceAllStringFunc(target.Expr, func(v string) string {
					m := dashboardVariable.FindStringSubmatch(v)
					name := m[1] + m[2]
					if value, ok := variables[name]; ok {
						return value
					}
					unknown = append(unknown, v)
					return v
				})
				switch {
				case strings.TrimSpace(target.Expr) == "":
					errs = append(errs, fmt.Errorf("%s: panel %q target %s: no expr", path, p.Title, target.RefID))
				case len(unknown) > 0:
					errs = append(errs, fmt.Errorf("%s: panel %q target %s: unknown variable %s", path, p.Title, target.RefID, strings.Join(slices.Compact(unknown), ", ")))
				default:
					out = append(out, DashboardQuery{Panel: p.Title, RefID: target.RefID, Expr: expr})
				}
			}
		}
	}
	walk(dash.Panels)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

type dashboardPanel struct {
	Title   string           `json:"title"`
	Panels  []dashboardPanel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}
