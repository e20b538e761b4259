package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestLintExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"example budgets", []string{"lint", "../../budgets"}, 0, "3 budget file(s) ok, 0 warning(s)"},
		{"maxRecords 0", []string{"lint", "testdata/maxrecords-zero.bad.yaml"}, 1, "testdata/maxrecords-zero.bad.yaml:6:15: budget.maxRecords: must be between 1 and 10000, got 0"},
		{"[DEBUG] regex warns", []string{"lint", "testdata/debug-regex.warn.yaml"}, 0, `warning: drop[0].regex: "[DEBUG]" is a character class`},
		{"[DEBUG] regex fails --strict", []string{"lint", "--strict", "testdata/debug-regex.warn.yaml"}, 1, "2 warning(s)"},
		{"plan", []string{"plan", "--cluster-capacity", "500", "../../budgets"}, 0, "above the cluster capacity of 500"},
		{"unknown command", []string{"nope"}, 2, `unknown command "nope"`},
		{"flags after the paths", []string{"lint", "testdata/debug-regex.warn.yaml", "--strict"}, 1, "2 warning(s)"},
		{"-- ends the flags", []string{"lint", "--", "--strict"}, 1, "--strict: no such file or directory"},
		{"lint -h", []string{"lint", "-h"}, 0, "usage: streambudget lint"},
		{"lint --help", []string{"lint", "--help"}, 0, "usage: streambudget lint"},
		{"run -h", []string{"run", "-h"}, 0, "usage: streambudget run"},
		{"unknown flag", []string{"lint", "--nope", "../../budgets"}, 2, "flag provided but not defined: -nope"},
		{"lint without paths", []string{"lint"}, 2, "streambudget lint: no budget files or directories given"},
		{"run without --budget", []string{"run", "--listen", "127.0.0.1:0"}, 2, "streambudget run: --budget is required"},
		{"run with a stray argument", []string{"run", "--budget", "x.yaml", "extra"}, 2, `unexpected argument "extra"`},
		{"sample warnings pass without --strict", []string{"lint", "--sample", "testdata/errors.log", "testdata/drops-errors.yaml"}, 0, "warning: rule noisy-failures drops 1 ERROR lines"},
		{"sample warnings fail --strict", []string{"lint", "--strict", "--sample", "testdata/errors.log", "testdata/drops-errors.yaml"}, 1, "1 budget file(s) ok, 1 warning(s)"},
		{"es-setup --dry-run, Elasticsearch", []string{"es-setup", "--dry-run", "../../budgets"}, 0, `"path": "/_ilm/policy/streambudget-payments"`},
		{"es-setup --dry-run, OpenSearch", []string{"es-setup", "--dry-run", "--distribution", "opensearch", "../../budgets"}, 0, `"path": "/_plugins/_ism/policies/streambudget-payments"`},
		{"es-setup of a bad budget", []string{"es-setup", "--dry-run", "testdata/maxrecords-zero.bad.yaml"}, 1, "budget.maxRecords"},
		{"iam-policy", []string{"iam-policy", "../../budgets/payments.yaml"}, 0, `"arn:aws:dynamodb:*:*:table/streambudget-payments"`},
		{"iam-policy needs one file", []string{"iam-policy", "../../budgets"}, 2, "give exactly one budget file"},
		{"monitoring values", []string{"monitoring-values", "--namespace", "logging", "../../budgets"}, 0, "  payments:\n    stream: payments-logs\n    namespace: logging\n"},
		{"monitoring values of a bad budget", []string{"monitoring-values", "testdata/maxrecords-zero.bad.yaml"}, 1, "testdata/maxrecords-zero.bad.yaml:6:15: budget.maxRecords"},
		{"monitoring values, bad namespace", []string{"monitoring-values", "--namespace", "Logs", "../../budgets"}, 1, `namespace "Logs" for team email: want a Kubernetes namespace name`},
		{"monitoring values without a path", []string{"monitoring-values"}, 2, "usage: streambudget monitoring-values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs strings.Builder
			code := run(context.Background(), tc.args, &out, &errs)
			all := out.String() + errs.String()
			if code != tc.code || !strings.Contains(all, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, all, tc.code, tc.want)
			}
		})
	}
}

// Credentials in --es-url would show in pod specs, process listings and
// es-setup's output: refused, and never echoed.
func TestESURLCredentialsRefused(t *testing.T) {
	const secret = "S3cr3t-admin-pw"
	for _, args := range [][]string{
		{"run", "--budget", "../../budgets/payments.yaml", "--listen", "127.0.0.1:0", "--es-url", "http://elastic:" + secret + "@127.0.0.1:1"},
		{"es-setup", "--es-url", "https://127.0.0.1:1,http://elastic:" + secret + "@127.0.0.1:1", "../../budgets/payments.yaml"},
		{"es-setup", "--es-url", "elastic:" + secret + "@127.0.0.1:1", "../../budgets/payments.yaml"},
	} {
		var out, errs strings.Builder
		code := run(context.Background(), args, &out, &errs)
		all := out.String() + errs.String()
		if code != 2 || !strings.Contains(all, "--es-url must") || strings.Contains(all, secret) {
			t.Errorf("%v: exit %d, output:\n%s\nwant exit 2, the reason, and no password", args, code, all)
		}
	}
}

// es-setup --dry-run prints one JSON document for every budget, for both
// distributions.
func TestESSetupDryRunJSON(t *testing.T) {
	for _, dist := range []string{"elasticsearch", "opensearch"} {
		var out, errs strings.Builder
		if code := run(context.Background(), []string{"es-setup", "--dry-run", "--distribution", dist, "../../budgets"}, &out, &errs); code != 0 {
			t.Fatalf("%s: exit %d: %s", dist, code, errs.String())
		}
		var teams []map[string]any
		if err := json.Unmarshal([]byte(out.String()), &teams); err != nil || len(teams) != 3 {
			t.Errorf("%s: %d teams, %v; want valid JSON for the 3 example budgets:\n%s", dist, len(teams), err, out.String())
		}
	}
}
