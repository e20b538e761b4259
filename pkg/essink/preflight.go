package essink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"
)

// Target is one place the sink writes to, as the budget names it.
type Target struct {
	// Role says what goes there: "documents" or "dead letters".
	Role string
	// Field is the budget file's key, for the message (elasticsearch.index).
	Field string
	// Name is the name written to now (a dated index formatted for today).
	Name string
	// DataStream says the budget names a data stream (op create).
	DataStream bool
}

// Cluster is what the preflight learnt of the cluster.
type Cluster struct {
	// Distribution is "elasticsearch" or "opensearch" ("" when the cluster
	// did not say).
	Distribution string
	Version      string
	Major        int
}

func (c Cluster) String() string {
	if c.Distribution == "" {
		return "an unknown cluster"
	}
	return c.Distribution + " " + c.Version
}

// Refusal is a preflight finding that makes writing as configured
// impossible: one sentence that names the fix. The pod does not start.
type Refusal struct{ Sentence string }

func (r *Refusal) Error() string { return r.Sentence }

// Preflight asks the cluster what it is and what each target resolves to,
// and whether the credentials may write there. It returns a *Refusal when
// the targets cannot be written as configured (an index target that is a
// data stream, missing privileges, credentials refused), any other error
// when the cluster could not be asked (retry later), and notes: what could
// not be checked or looks wrong without making writes impossible.
func (s *Sink) Preflight(ctx context.Context, targets []Target) (Cluster, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var cl Cluster
	var notes []string
	root, status, err := s.get(ctx, "/")
	switch {
	case status == http.StatusUnauthorized:
		return cl, nil, &Refusal{fmt.Sprintf("Elasticsearch refuses the credentials (401 on GET /): set ELASTICSEARCH_API_KEY, or ELASTICSEARCH_USERNAME and ELASTICSEARCH_PASSWORD, to a user allowed to write to %s", names(targets))}
	case status == http.StatusForbidden:
		notes = append(notes, "the user may not read the cluster's version (403 on GET /: no monitor privilege); its distribution is unknown")
	case err != nil:
		return cl, nil, fmt.Errorf("preflight: ask the cluster what it is: %w", err)
	default:
		cl = clusterOf(root)
	}
	if cl.Distribution == "elasticsearch" && cl.Major > 0 && cl.Major < 7 {
		return cl, nil, &Refusal{fmt.Sprintf("Elasticsearch %s is too old: streambudget writes typeless bulk requests, which need Elasticsearch 7 or later (7.17, 8 and 9 are tested)", cl.Version)}
	}
	templates, tnote := s.templates(ctx)
	if tnote != "" {
		notes = append(notes, tnote)
	}
	exists := make([]bool, len(targets))
	for i, t := range targets {
		r, err := s.resolve(ctx, t, templates)
		if err != nil {
			return cl, notes, err
		}
		exists[i] = r.exists
		switch {
		case r.dataStream && !t.DataStream:
			return cl, notes, &Refusal{fmt.Sprintf("%s %q is a data stream on this cluster (%s), which takes only op create: write it as %s: %s in the budget file, or pick an index name no data stream template matches",
				t.Field, t.Name, r.why, dataStreamField(t.Field), t.Name)}
		case r.index && t.DataStream:
			notes = append(notes, fmt.Sprintf("%s %q is not a data stream on this cluster (%s): documents go into it with op create, but it never rolls over; run streambudget es-setup for a data stream template", t.Field, t.Name, r.why))
		case r.unknown != "":
			notes = append(notes, fmt.Sprintf("cannot tell what %s %q is on this cluster: %s", t.Field, t.Name, r.unknown))
		}
	}
	if cl.Distribution == "opensearch" {
		notes = append(notes, "privileges are not checked on OpenSearch (its security plugin has no has-privileges API); a missing one shows as streambudget_sink_blocked{reason=\"forbidden\"}")
		return cl, notes, nil
	}
	note, err := s.privileges(ctx, targets, exists)
	if note != "" {
		notes = append(notes, note)
	}
	return cl, notes, err
}

func names(ts []Target) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return strings.Join(out, " and ")
}

func dataStreamField(field string) string {
	if strings.HasSuffix(field, "deadLetterIndex") {
		return "elasticsearch.deadLetterDataStream"
	}
	return "elasticsearch.dataStream"
}

// get performs a GET and returns the body and status; a status other than
// 2xx is an error unless it is 4xx, then returned with the status.
func (s *Sink) get(ctx context.Context, p string) (json.RawMessage, int, error) {
	return s.do(ctx, http.MethodGet, p, nil)
}

// Call performs one request (es-setup's) and returns the body and status.
func (s *Sink) Call(ctx context.Context, method, path string, body any) (json.RawMessage, int, error) {
	return s.do(ctx, method, path, body)
}

// Cluster asks the cluster what it is.
func (s *Sink) Cluster(ctx context.Context) (Cluster, error) {
	root, status, err := s.get(ctx, "/")
	if err != nil || status != http.StatusOK {
		return Cluster{}, fmt.Errorf("ask the cluster what it is: %s", statusText(status, err))
	}
	return clusterOf(root), nil
}

func (s *Sink) do(ctx context.Context, method, p string, body any) (json.RawMessage, int, error) {
	res, err := s.client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: method, Path: p, Body: body,
		IgnoreErrors: []int{400, 401, 403, 404, 405, 500, 501}})
	if err != nil {
		var ee *elastic.Error
		if errors.As(err, &ee) {
			return nil, ee.Status, err
		}
		return nil, 0, err
	}
	return res.Body, res.StatusCode, nil
}

func clusterOf(root json.RawMessage) Cluster {
	var info struct {
		Version struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	}
	_ = json.Unmarshal(root, &info)
	cl := Cluster{Distribution: "elasticsearch", Version: info.Version.Number}
	if info.Version.Distribution == "opensearch" || strings.Contains(info.Tagline, "OpenSearch") {
		cl.Distribution = "opensearch"
		if info.Version.Distribution == "" {
			cl.Version = "(reporting " + cl.Version + " for compatibility)"
			return cl // compatibility mode: the number is not OpenSearch's
		}
	}
	major, _, _ := strings.Cut(info.Version.Number, ".")
	cl.Major, _ = strconv.Atoi(major)
	return cl
}

// template is one composable index template.
type template struct {
	name       string
	patterns   []string
	priority   int
	dataStream bool
}

// templates lists the composable index templates; a note says why not.
func (s *Sink) templates(ctx context.Context) ([]template, string) {
	body, status, err := s.get(ctx, "/_index_template")
	if err != nil || status != http.StatusOK {
		return nil, fmt.Sprintf("the index templates could not be read (%s)", statusText(status, err))
	}
	var out struct {
		IndexTemplates []struct {
			Name          string `json:"name"`
			IndexTemplate struct {
				IndexPatterns patterns        `json:"index_patterns"`
				Priority      int             `json:"priority"`
				DataStream    json.RawMessage `json:"data_stream"`
			} `json:"index_template"`
		} `json:"index_templates"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, "the index templates could not be read: " + err.Error()
	}
	var ts []template
	for _, t := range out.IndexTemplates {
		ds := len(t.IndexTemplate.DataStream) > 0 && string(t.IndexTemplate.DataStream) != "null"
		ts = append(ts, template{t.Name, t.IndexTemplate.IndexPatterns, t.IndexTemplate.Priority, ds})
	}
	return ts, ""
}

// patterns reads index_patterns, a list or (older clusters) one string.
type patterns []string

func (p *patterns) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*p = []string{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*p = many
	return err
}

// matching is the template a new index of that name would get: the
// highest priority one whose patterns match.
func matching(ts []template, name string) (template, bool) {
	var best template
	found := false
	for _, t := range ts {
		for _, p := range t.patterns {
			if ok, _ := path.Match(p, name); ok && (!found || t.priority > best.priority) {
				best, found = t, true
			}
		}
	}
	return best, found
}

// resolution is what a name is on the cluster.
type resolution struct {
	dataStream, index bool
	exists            bool
	why               string // how it is known
	unknown           string // why it cannot be told
}

func (s *Sink) resolve(ctx context.Context, t Target, ts []template) (resolution, error) {
	body, status, err := s.get(ctx, "/_data_stream/"+url.PathEscape(t.Name))
	switch {
	case err != nil && status == 0:
		return resolution{}, fmt.Errorf("preflight: ask about %s: %w", t.Name, err)
	case status == http.StatusOK:
		var out struct {
			DataStreams []struct {
				Name string `json:"name"`
			} `json:"data_streams"`
		}
		if json.Unmarshal(body, &out) == nil && len(out.DataStreams) > 0 {
			return resolution{dataStream: true, exists: true, why: "an existing data stream"}, nil
		}
	case status == http.StatusNotFound:
		// Not a data stream (yet). An index or alias of that name?
		_, st, err := s.do(ctx, http.MethodHead, "/"+url.PathEscape(t.Name), nil)
		switch {
		case err != nil && st == 0:
			return resolution{}, fmt.Errorf("preflight: ask about %s: %w", t.Name, err)
		case st == http.StatusOK:
			return resolution{index: true, exists: true, why: "an existing index or alias"}, nil
		}
		if tpl, ok := matching(ts, t.Name); ok {
			if tpl.dataStream {
				return resolution{dataStream: true, why: fmt.Sprintf("index template %q matches %s and makes it a data stream", tpl.name, strings.Join(tpl.patterns, ","))}, nil
			}
			return resolution{index: true, why: fmt.Sprintf("index template %q matches it without a data stream", tpl.name)}, nil
		}
		if ts == nil {
			return resolution{unknown: "the index templates could not be read"}, nil
		}
		return resolution{index: true, why: "no template matches it: the first write creates a plain index"}, nil
	}
	return resolution{unknown: "it does not answer the data stream API (" + statusText(status, err) + ")"}, nil
}

func statusText(status int, err error) string {
	if status != 0 {
		return fmt.Sprintf("HTTP %d", status)
	}
	if err != nil {
		return err.Error()
	}
	return "no answer"
}

// privileges asks Elasticsearch whether the credentials may write to the
// targets.
func (s *Sink) privileges(ctx context.Context, targets []Target, exists []bool) (string, error) {
	type indexPrivs struct {
		Names      []string `json:"names"`
		Privileges []string `json:"privileges"`
	}
	req := struct {
		Index []indexPrivs `json:"index"`
	}{}
	for i, t := range targets {
		privs := []string{"index"}
		if t.DataStream {
			privs = []string{"create_doc"}
		}
		if !exists[i] {
			privs = append(privs, "auto_configure") // the first write creates it
		}
		req.Index = append(req.Index, indexPrivs{Names: []string{t.Name}, Privileges: privs})
	}
	body, status, err := s.do(ctx, http.MethodPost, "/_security/user/_has_privileges", req)
	switch {
	case status == http.StatusUnauthorized:
		return "", &Refusal{fmt.Sprintf("Elasticsearch refuses the credentials (401): set ELASTICSEARCH_API_KEY, or ELASTICSEARCH_USERNAME and ELASTICSEARCH_PASSWORD, to a user allowed to write to %s", names(targets))}
	case err != nil && status == 0:
		return "", fmt.Errorf("preflight: check privileges: %w", err)
	case status != http.StatusOK:
		// Security off (500 or 400 on a cluster without it): nothing to check.
		return fmt.Sprintf("privileges not checked: the cluster has no security API (%s)", statusText(status, err)), nil
	}
	var out struct {
		HasAll bool                       `json:"has_all_requested"`
		Index  map[string]map[string]bool `json:"index"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "privileges not checked: " + err.Error(), nil
	}
	if out.HasAll {
		return "", nil
	}
	var missing []string
	for name, privs := range out.Index {
		for p, ok := range privs {
			if !ok {
				missing = append(missing, fmt.Sprintf("%s on %s", p, name))
			}
		}
	}
	sort.Strings(missing)
	return "", &Refusal{fmt.Sprintf("the Elasticsearch user lacks %s: grant the role streambudget es-setup prints for this team", strings.Join(missing, ", "))}
}
