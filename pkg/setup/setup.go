// Package setup is what a team needs outside streambudget, as code: the
// Elasticsearch (or OpenSearch) index templates, lifecycle policy and
// least-privilege role for its targets (es-setup), and the AWS IAM policy
// its pods need for Kinesis and DynamoDB (iam-policy). Everything is built
// from the team's budget file.
package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
)

// Distributions es-setup writes for.
const (
	Elasticsearch = "elasticsearch"
	OpenSearch    = "opensearch"
)

// Request is one call that sets the cluster up.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   any    `json:"body"`
	// Why says what it is for.
	Why string `json:"why"`
}

// Team is one team's setup.
type Team struct {
	Team         string    `json:"team"`
	Distribution string    `json:"distribution"`
	Requests     []Request `json:"requests"`
}

// templatePriority is above the built-in logs template's 100, so that a
// team's own template wins for its names.
const templatePriority = 200

// Cluster returns the requests that set a cluster of the given distribution
// up for the team: a lifecycle policy when the budget gives a retention, an
// index template for each target (a data stream template for a data
// stream), and the role its pods need.
func Cluster(f *budget.File, distribution string) (Team, error) {
	if distribution != Elasticsearch && distribution != OpenSearch {
		return Team{}, fmt.Errorf("distribution %q: want %s or %s", distribution, Elasticsearch, OpenSearch)
	}
	t := Team{Team: f.Team, Distribution: distribution}
	name := "streambudget-" + f.Team
	es := f.Elasticsearch
	target, ds := es.Target()
	dlTarget, dlDS := es.DeadLetterTarget()
	patterns := []string{namePattern(target)}
	dlPatterns := []string{namePattern(dlTarget)}
	if es.Retention > 0 {
		t.Requests = append(t.Requests, lifecycle(name, distribution, es.Retention, append(patterns, dlPatterns...), ds || dlDS))
	}
	t.Requests = append(t.Requests,
		indexTemplate(name, distribution, patterns, ds, documentMappings(), es.Retention > 0),
		indexTemplate(name+"-deadletter", distribution, dlPatterns, dlDS, deadLetterMappings(), es.Retention > 0),
		role(name, distribution, append(patterns, dlPatterns...), ds && dlDS))
	return t, nil
}

// namePattern turns a target into the index pattern of every name it
// writes: the date tokens of a dated index become *.
func namePattern(target string) string {
	var b strings.Builder
	for rest := target; rest != ""; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		b.WriteByte('*')
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			break
		}
		rest = rest[i+j+1:]
	}
	return b.String()
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return strconv.Itoa(int(d/time.Hour)) + "h"
}

// lifecycle deletes a team's data after its retention: ILM on
// Elasticsearch, ISM on OpenSearch. Data streams roll over daily (or at 50
// GB a primary shard) so that retention is kept to within a day; dated
// indices are deleted by age.
func lifecycle(name, distribution string, retention time.Duration, patterns []string, rollover bool) Request {
	if distribution == OpenSearch {
		hot := map[string]any{"name": "hot", "actions": []any{},
			"transitions": []any{map[string]any{"state_name": "delete", "conditions": map[string]any{"min_index_age": days(retention)}}}}
		if rollover {
			hot["actions"] = []any{map[string]any{"rollover": map[string]any{"min_index_age": "1d", "min_primary_shard_size": "50gb"}}}
		}
		return Request{Method: "PUT", Path: "/_plugins/_ism/policies/" + name, Why: "delete the team's data after " + days(retention),
			Body: map[string]any{"policy": map[string]any{
				"description":   "streambudget: keep " + days(retention),
				"default_state": "hot",
				"states":        []any{hot, map[string]any{"name": "delete", "actions": []any{map[string]any{"delete": map[string]any{}}}, "transitions": []any{}}},
				"ism_template":  map[string]any{"index_patterns": dsBacking(patterns), "priority": templatePriority},
			}}}
	}
	hot := map[string]any{"actions": map[string]any{}}
	if rollover {
		hot["actions"] = map[string]any{"rollover": map[string]any{"max_age": "1d", "max_primary_shard_size": "50gb"}}
	}
	return Request{Method: "PUT", Path: "/_ilm/policy/" + name, Why: "delete the team's data after " + days(retention),
		Body: map[string]any{"policy": map[string]any{"phases": map[string]any{
			"hot":    hot,
			"delete": map[string]any{"min_age": days(retention), "actions": map[string]any{"delete": map[string]any{}}},
		}}}}
}

// dsBacking adds the backing indices of data streams (.ds-NAME-*) to the
// patterns, which ISM matches by index name.
func dsBacking(patterns []string) []string {
	out := append([]string(nil), patterns...)
	for _, p := range patterns {
		out = append(out, ".ds-"+p+"*")
	}
	return out
}

func indexTemplate(name, distribution string, patterns []string, dataStream bool, mappings map[string]any, policy bool) Request {
	settings := map[string]any{}
	if policy && distribution == Elasticsearch {
		settings["index.lifecycle.name"] = strings.TrimSuffix(name, "-deadletter")
	}
	body := map[string]any{
		"index_patterns": patterns,
		"priority":       templatePriority,
		"template":       map[string]any{"settings": settings, "mappings": mappings},
		"_meta":          map[string]any{"managed_by": "streambudget es-setup"},
	}
	why := "map the team's documents (a plain index of each name)"
	if dataStream {
		body["data_stream"] = map[string]any{}
		why = "make the team's target a data stream and map its documents"
	}
	if strings.HasSuffix(name, "-deadletter") {
		why = strings.Replace(why, "documents", "dead letters", 1)
	}
	return Request{Method: "PUT", Path: "/_index_template/" + name, Body: body, Why: why}
}

func keyword() map[string]any { return map[string]any{"type": "keyword"} }
func date() map[string]any    { return map[string]any{"type": "date"} }
func long() map[string]any    { return map[string]any{"type": "long"} }

func kinesis() map[string]any {
	return map[string]any{"properties": map[string]any{
		"stream": keyword(), "shard_id": keyword(), "sequence_number": keyword(), "sub_sequence": long(),
		"partition_key": keyword(), "arrival": date(), "read_at": date(), "event": long(),
	}}
}

// documentMappings are the fields streambudget adds to every document; the
// record's own fields are mapped dynamically.
func documentMappings() map[string]any {
	return map[string]any{"properties": map[string]any{
		"@timestamp": date(), "team": keyword(), "message": map[string]any{"type": "text"}, "kinesis": kinesis(),
	}}
}

// deadLetterMappings: a dead letter is searched by reason and coordinates;
// its raw bytes are kept, not indexed.
func deadLetterMappings() map[string]any {
	return map[string]any{"dynamic": false, "properties": map[string]any{
		"@timestamp": date(), "team": keyword(), "kinesis": kinesis(),
		"deadletter": map[string]any{"properties": map[string]any{
			"reason": keyword(), "detail": map[string]any{"type": "text"}, "index": keyword(),
			"raw_encoding": keyword(), "raw": map[string]any{"type": "text", "index": false},
			"raw_bytes": long(), "raw_sha256": keyword(), "withheld": map[string]any{"type": "text"},
		}},
	}}
}

// role is the least a pod needs: write documents (create them, for data
// streams), create the first index or data stream of a name, read the
// cluster's version and the targets' settings for the preflight.
func role(name, distribution string, patterns []string, onlyCreate bool) Request {
	if distribution == OpenSearch {
		return Request{Method: "PUT", Path: "/_plugins/_security/api/roles/" + name, Why: "what the team's pods need; map it to their user",
			Body: map[string]any{
				"cluster_permissions": []string{"cluster_monitor", "indices:data/write/bulk"},
				"index_permissions": []any{map[string]any{
					"index_patterns": dsBacking(patterns),
					"allowed_actions": []string{"indices:data/write/bulk*", "indices:data/write/index", "indices:admin/create",
						"indices:admin/data_stream/create", "indices:admin/mapping/put", "indices:admin/get", "indices:monitor/data_stream/stats"},
				}},
			}}
	}
	privs := []string{"index", "create_doc", "auto_configure", "view_index_metadata"}
	if onlyCreate {
		privs = []string{"create_doc", "auto_configure", "view_index_metadata"}
	}
	return Request{Method: "PUT", Path: "/_security/role/" + name, Why: "what the team's pods need; grant it to their user or API key",
		Body: map[string]any{"cluster": []string{"monitor"}, "indices": []any{map[string]any{"names": patterns, "privileges": privs}}}}
}

// Caller performs one request against the cluster (essink.Sink.Call).
type Caller interface {
	Call(ctx context.Context, method, path string, body any) (json.RawMessage, int, error)
}

// Apply sends a team's requests in order and reports each; it stops at the
// first the cluster refuses.
func Apply(ctx context.Context, c Caller, t Team, report func(r Request, status int)) error {
	for _, r := range t.Requests {
		body, status, err := c.Call(ctx, r.Method, r.Path, r.Body)
		if err == nil && (status < 200 || status > 299) {
			err = fmt.Errorf("HTTP %d: %s", status, truncate(string(body), 300))
		}
		if err != nil {
			return fmt.Errorf("%s %s for team %s: %w", r.Method, r.Path, t.Team, err)
		}
		report(r, status)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
