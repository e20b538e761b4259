package prometheus

import (
	"strings"
	"testing"
)

// runbookSection returns the text of docs/runbook.md under "## name", up to
// the next section.
func runbookSection(t *testing.T, name string) string {
	t.Helper()
	doc := string(readFile(t, "../../docs/runbook.md"))
	_, rest, ok := strings.Cut(doc, "\n## "+name+"\n")
	if !ok {
		t.Fatalf("docs/runbook.md: no section \"## %s\"", name)
	}
	section, _, _ := strings.Cut(rest, "\n## ")
	return strings.Join(strings.Fields(section), " ") // a phrase may wrap
}

// TestRunbookSinkSections checks that the runbook's Elasticsearch sections
// quote what the pods, es-setup and the chart really say and take: each
// phrase must be in the section and in the file it comes from (as code
// spells it, when that differs), so that renaming a log line, a flag or a
// value breaks this test rather than the operator's search.
func TestRunbookSinkSections(t *testing.T) {
	const (
		appPreflight  = "../../pkg/app/preflight.go"
		appRoutes     = "../../pkg/app/app.go"
		sinkPreflight = "../../pkg/essink/preflight.go"
		sinkIndex     = "../../pkg/essink/index.go"
		esSetup       = "../../cmd/streambudget/essetup.go"
		values        = "../../helm/streambudget/values.yaml"
		helpers       = "../../helm/streambudget/templates/_helpers.tpl"
	)
	cases := []struct {
		section, phrase, source string
		code                    string // how the source spells it; empty: phrase
	}{
		// What the preflight checks.
		{"StreambudgetSinkPreflightFailed", "GET /", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "/_data_stream/", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "/_index_template", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "/_security/user/_has_privileges", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "create_doc", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "auto_configure", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "streambudget_sink_preflight_ok", appPreflight, ""},
		// Where its answer is read.
		{"StreambudgetSinkPreflightFailed", "the targets cannot be written as configured", appPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "preflight after a recovery of the sink failed", appPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "preflight: the cluster does not answer yet; retrying", appPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "preflight passed", appPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "not checked yet", appPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "preflight: ", appRoutes, `"preflight: "+err.Error()`},
		{"StreambudgetSinkPreflightFailed", "ask the cluster what it is", sinkPreflight, ""},
		// The sentences and their fixes.
		{"StreambudgetSinkPreflightFailed", "Elasticsearch refuses the credentials (401", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "is a data stream on this cluster (", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "which takes only op create: write it as", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "grant the role streambudget es-setup prints for this team", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "is too old", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "elasticsearch.dataStream", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "deadLetterDataStream", sinkPreflight, ""},
		{"StreambudgetSinkPreflightFailed", "--dry-run", esSetup, `"dry-run"`},
		{"StreambudgetSinkPreflightFailed", "--es-url", esSetup, `"es-url"`},
		{"StreambudgetSinkPreflightFailed", "--es-ca", esSetup, `"es-ca"`},
		{"StreambudgetSinkPreflightFailed", "--distribution", esSetup, `"distribution"`},
		{"StreambudgetSinkPreflightFailed", "ELASTICSEARCH_API_KEY", esSetup, ""},
		{"StreambudgetSinkPreflightFailed", "esSetup", values, ""},
		{"StreambudgetSinkPreflightFailed", "existingSecret", values, ""},
		{"StreambudgetSinkPreflightFailed", "job/TEAM-streambudget-es-setup", helpers, `printf "%s-es-setup" (include "streambudget.fullname"`},
		// The blocked sink.
		{"StreambudgetSinkBlocked", "Elasticsearch refuses the writes; retrying slowly, nothing is dead-lettered", sinkIndex, ""},
		{"StreambudgetSinkBlocked", "data_stream_mismatch", sinkIndex, ""},
		{"StreambudgetSinkBlocked", "index_not_found", sinkIndex, ""},
		{"StreambudgetSinkBlocked", "elasticsearch.existingSecret", values, ""},
		{"StreambudgetSinkBlocked", "apiKeyKey", values, ""},
	}
	sources := map[string]string{}
	for _, tc := range cases {
		section := runbookSection(t, tc.section)
		if !strings.Contains(section, tc.phrase) {
			t.Errorf("docs/runbook.md ## %s: does not mention %q", tc.section, tc.phrase)
		}
		src, ok := sources[tc.source]
		if !ok {
			src = string(readFile(t, tc.source))
			sources[tc.source] = src
		}
		code := tc.code
		if code == "" {
			code = tc.phrase
		}
		if !strings.Contains(src, code) {
			t.Errorf("docs/runbook.md ## %s quotes %q, but %s has no %q (any more?)", tc.section, tc.phrase, strings.TrimPrefix(tc.source, "../../"), code)
		}
	}
	for _, name := range []string{"StreambudgetSinkPreflightFailed", "StreambudgetSinkBlocked"} {
		for _, fix := range []string{"streambudget es-setup budgets/TEAM.yaml", "streambudget-TEAM"} {
			if !strings.Contains(runbookSection(t, name), fix) {
				t.Errorf("docs/runbook.md ## %s: does not give the fix %q", name, fix)
			}
		}
	}
}
