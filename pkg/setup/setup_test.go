package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
)

func file(es budget.Elasticsearch) *budget.File {
	return &budget.File{Team: "payments", Stream: "payments-logs", Elasticsearch: es}
}

// find returns the request to path's prefix, decoded as generic JSON.
func find(t *testing.T, team Team, prefix string) map[string]any {
	t.Helper()
	for _, r := range team.Requests {
		if strings.HasPrefix(r.Path, prefix) {
			b, err := json.Marshal(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no request to %s in %+v", prefix, team.Requests)
	return nil
}

func TestClusterSetup(t *testing.T) {
	stream := budget.Elasticsearch{DataStream: "logs-payments-prod", DeadLetterIndex: "deadletter-payments-{yyyy.MM}", Retention: 30 * 24 * time.Hour}
	dated := budget.Elasticsearch{Index: "app-payments-{yyyy.MM.dd}", DeadLetterIndex: "deadletter-payments"}
	for _, tc := range []struct {
		name, dist string
		es         budget.Elasticsearch
		check      func(t *testing.T, team Team)
	}{
		{"a data stream with retention, Elasticsearch", Elasticsearch, stream, func(t *testing.T, team Team) {
			if len(team.Requests) != 4 || team.Requests[0].Path != "/_ilm/policy/streambudget-payments" {
				t.Fatalf("requests %+v, want the lifecycle policy first, then two templates and the role", team.Requests)
			}
			ilm := find(t, team, "/_ilm/policy/")
			if got := fmt.Sprint(ilm["policy"].(map[string]any)["phases"].(map[string]any)["delete"]); !strings.Contains(got, "min_age:30d") {
				t.Errorf("delete phase %s, want min_age 30d", got)
			}
			tpl := find(t, team, "/_index_template/streambudget-payments")
			if _, ok := tpl["data_stream"]; !ok || fmt.Sprint(tpl["index_patterns"]) != "[logs-payments-prod]" || tpl["priority"] != float64(200) {
				t.Errorf("template %v, want a data stream template for exactly logs-payments-prod above the built-in logs one", tpl)
			}
			if !strings.Contains(fmt.Sprint(tpl), "index.lifecycle.name:streambudget-payments") {
				t.Errorf("template %v does not attach the lifecycle policy", tpl)
			}
			dl := find(t, team, "/_index_template/streambudget-payments-deadletter")
			if _, ok := dl["data_stream"]; ok || fmt.Sprint(dl["index_patterns"]) != "[deadletter-payments-*]" {
				t.Errorf("dead-letter template %v, want a plain index pattern deadletter-payments-*", dl)
			}
			role := find(t, team, "/_security/role/")
			if got := fmt.Sprint(role["indices"]); !strings.Contains(got, "create_doc") || !strings.Contains(got, "index ") || !strings.Contains(got, "auto_configure") {
				t.Errorf("role %v: the dead-letter index is written with op index: want index, create_doc and auto_configure", got)
			}
		}},
		{"dated indices, no retention, OpenSearch", OpenSearch, dated, func(t *testing.T, team Team) {
			if len(team.Requests) != 3 {
				t.Fatalf("%d requests, want two templates and the role (no retention: no policy)", len(team.Requests))
			}
			tpl := find(t, team, "/_index_template/streambudget-payments")
			if _, ok := tpl["data_stream"]; ok || fmt.Sprint(tpl["index_patterns"]) != "[app-payments-*]" {
				t.Errorf("template %v, want index pattern app-payments-* and no data stream", tpl)
			}
			role := find(t, team, "/_plugins/_security/api/roles/")
			if got := fmt.Sprint(role["index_permissions"]); !strings.Contains(got, "indices:data/write/bulk*") {
				t.Errorf("OpenSearch role %s lacks bulk writes", got)
			}
		}},
		{"retention on OpenSearch is ISM", OpenSearch, stream, func(t *testing.T, team Team) {
			ism := find(t, team, "/_plugins/_ism/policies/streambudget-payments")
			s := fmt.Sprint(ism)
			if !strings.Contains(s, "min_index_age:30d") || !strings.Contains(s, ".ds-logs-payments-prod*") {
				t.Errorf("ISM policy %s, want deletion at 30d of the data stream's backing indices", s)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			team, err := Cluster(file(tc.es), tc.dist)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(team); err != nil {
				t.Fatal(err)
			}
			tc.check(t, team)
		})
	}
	if _, err := Cluster(file(dated), "solr"); err == nil {
		t.Error("an unknown distribution was accepted")
	}
}

type fakeCaller struct {
	calls []string
	fail  string
}

func (f *fakeCaller) Call(_ context.Context, method, path string, _ any) (json.RawMessage, int, error) {
	f.calls = append(f.calls, method+" "+path)
	if path == f.fail {
		return json.RawMessage(`{"error":{"type":"security_exception"}}`), 403, nil
	}
	return json.RawMessage(`{"acknowledged":true}`), 200, nil
}

func TestApply(t *testing.T) {
	team, _ := Cluster(file(budget.Elasticsearch{DataStream: "logs-payments-prod", DeadLetterIndex: "deadletter-payments"}), Elasticsearch)
	c := &fakeCaller{}
	n := 0
	if err := Apply(context.Background(), c, team, func(Request, int) { n++ }); err != nil || n != 3 {
		t.Fatalf("applied %d, %v; want 3 and no error", n, err)
	}
	c = &fakeCaller{fail: "/_security/role/streambudget-payments"}
	err := Apply(context.Background(), c, team, func(Request, int) {})
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") {
		t.Errorf("got %v, want the refused request named with its status", err)
	}
}

func TestIAM(t *testing.T) {
	f := file(budget.Elasticsearch{})
	f.StreamARN, f.Stream = "arn:aws:kinesis:eu-west-1:123456789012:stream/payments-logs", ""
	f.Cluster = &budget.Cluster{Name: "logs-prod"}
	p := IAM(f, Account{})
	b, _ := json.Marshal(p)
	s := string(b)
	for _, want := range []string{
		`"Resource":["arn:aws:kinesis:eu-west-1:123456789012:stream/payments-logs"]`,
		"arn:aws:dynamodb:eu-west-1:123456789012:table/streambudget-payments",
		"arn:aws:dynamodb:eu-west-1:123456789012:table/streambudget-cluster-logs-prod",
		"kinesis:GetRecords", "dynamodb:UpdateItem",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("policy lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, `"*"`) || strings.Contains(s, "kinesis:*") {
		t.Errorf("policy grants a wildcard action or resource:\n%s", s)
	}
	g := IAM(file(budget.Elasticsearch{}), Account{Region: "us-east-1"})
	if got := g.Statement[0].Resource[0]; got != "arn:aws:kinesis:us-east-1:*:stream/payments-logs" {
		t.Errorf("stream resource %s", got)
	}
}
