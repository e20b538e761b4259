package fleet

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/streambudget/streambudget/pkg/budget"
)

func files(t *testing.T) []*budget.File {
	t.Helper()
	fs, err := budget.LoadDir("../../budgets")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		name      string
		namespace string
		want      string
	}{
		{"any namespace", "", `teams:
  email:
    stream: email-logs
  payments:
    stream: payments-logs
  search:
    stream: search-logs
`},
		{"one namespace", "logging", `teams:
  email:
    stream: email-logs
    namespace: logging
  payments:
    stream: payments-logs
    namespace: logging
  search:
    stream: search-logs
    namespace: logging
`},
		{"a namespace per team", "logs-{team}", `teams:
  email:
    stream: email-logs
    namespace: logs-email
  payments:
    stream: payments-logs
    namespace: logs-payments
  search:
    stream: search-logs
    namespace: logs-search
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Values(files(t), Options{Namespace: tc.namespace})
			if err != nil {
				t.Fatal(err)
			}
			body := string(out)
			if !strings.HasPrefix(body, "# ") {
				t.Errorf("got no leading comment:\n%s", body)
			}
			if got := body[strings.Index(body, "teams:"):]; got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			var v struct {
				Teams map[string]Team `yaml:"teams"`
			}
			dec := yaml.NewDecoder(strings.NewReader(body))
			dec.KnownFields(true)
			if err := dec.Decode(&v); err != nil || len(v.Teams) != 3 {
				t.Errorf("decode the output: got %d teams, %v; want 3, no error", len(v.Teams), err)
			}
		})
	}
}

// TestValuesStreamARN checks that a team given by streamARN gets the stream's name.
func TestValuesStreamARN(t *testing.T) {
	f := &budget.File{Team: "edge", StreamARN: "arn:aws:kinesis:eu-central-1:123456789012:stream/edge-logs"}
	teams, err := Teams([]*budget.File{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := teams["edge"].Stream; got != "edge-logs" {
		t.Errorf("stream: got %q, want edge-logs", got)
	}
}

func TestValuesBadNamespace(t *testing.T) {
	for _, ns := range []string{"Logging", "logs_{team}", "-logs", strings.Repeat("a", 64)} {
		t.Run(ns, func(t *testing.T) {
			_, err := Values(files(t), Options{Namespace: ns})
			if err == nil || !strings.Contains(err.Error(), "want a Kubernetes namespace name") {
				t.Errorf("error: got %v, want one saying a namespace name is wanted", err)
			}
		})
	}
}
