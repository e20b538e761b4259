package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
)

// ESProxy stands between a consumer and the search server and injects the
// faults of a real cluster: a window of 403s (a revoked privilege), a
// cluster that is down (connections reset), a body size limit (413). In
// front of the stand-in (VictoriaLogs, which accepts anything) it also
// answers like a default Elasticsearch 8 cluster: GET / says 8.x, the
// built-in logs template makes every logs-*-* name a data stream, which
// takes only op create (an index op is refused with the answer Elasticsearch
// gives), a create of an _id already written is answered 409, and the
// preflight's questions (templates, data streams, privileges) get
// Elasticsearch's answers. In front of a real cluster
// (STREAMBUDGET_TEST_ES_URL) it only injects the faults: the cluster answers
// for itself.
type ESProxy struct {
	// URL is what a consumer is given as its Elasticsearch URL.
	URL string

	upstream *url.URL
	emulate  bool
	rp       *httputil.ReverseProxy

	mu          sync.Mutex
	forbidden   bool
	down        bool
	maxBytes    int
	dataStreams map[string]bool
	ids         map[string]int               // index + _id: writes confirmed
	replays     int                          // creates of an _id already written (409)
	refused     map[string]int               // by error type
	missing     []string                     // privileges _has_privileges says are missing
	mappings    map[string]map[string]string // index -> field path -> "object" or a value type
}

// NewESProxy starts a proxy in front of the environment's search server;
// it is closed when the test ends.
func (e *Env) NewESProxy(t testing.TB) *ESProxy {
	t.Helper()
	up, err := url.Parse(e.ESURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &ESProxy{upstream: up, emulate: !e.Search.Dedups(), dataStreams: map[string]bool{}, mappings: map[string]map[string]string{}, ids: map[string]int{}, refused: map[string]int{}}
	p.rp = httputil.NewSingleHostReverseProxy(up)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// SetForbidden makes every item answered 403 (security_exception) while on.
func (p *ESProxy) SetForbidden(on bool) { p.set(func() { p.forbidden = on }) }

// SetDown makes the cluster unreachable (connections reset) while on.
func (p *ESProxy) SetDown(on bool) { p.set(func() { p.down = on }) }

// SetMaxBytes answers 413 to bulk requests larger than n bytes (0: no
// limit), as http.max_content_length or a proxy in front of a cluster does.
func (p *ESProxy) SetMaxBytes(n int) { p.set(func() { p.maxBytes = n }) }

// SetMissingPrivileges makes _has_privileges report these missing.
func (p *ESProxy) SetMissingPrivileges(privs ...string) { p.set(func() { p.missing = privs }) }

func (p *ESProxy) set(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
}

// Writes is how many times the cluster confirmed a write of index/_id.
func (p *ESProxy) Writes(index, id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids[index+"\x00"+id]
}

// Replays is how many writes repeated a document the cluster already held
// (a create answered 409): the replays a crash or a lost confirmation
// caused, which a cluster de-duplicating by _id absorbs.
func (p *ESProxy) Replays() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replays
}

// Refused counts the items refused, by error type.
func (p *ESProxy) Refused() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.refused {
		out[k] = v
	}
	return out
}

// isDataStream reports whether name is (or would become) a data stream:
// the built-in logs template matches logs-*-*.
func (p *ESProxy) isDataStream(name string) bool {
	if p.dataStreams[name] {
		return true
	}
	ok, _ := path.Match("logs-*-*", name)
	return ok
}

func (p *ESProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close() // a connection reset, as from a cluster that is down
				return
			}
		}
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case strings.HasSuffix(r.URL.Path, "/_bulk"):
		p.bulk(w, r)
		return
	case !p.emulate:
		p.rp.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	switch {
	case rest == "" && r.Method == http.MethodGet:
		fmt.Fprint(w, `{"name":"es-8","cluster_name":"streambudget-test","version":{"number":"8.15.3","build_flavor":"default","lucene_version":"9.11.1","minimum_wire_compatibility_version":"7.17.0","minimum_index_compatibility_version":"7.0.0"},"tagline":"You Know, for Search"}`)
	case rest == "_index_template" && r.Method == http.MethodGet:
		fmt.Fprint(w, `{"index_templates":[{"name":"logs","index_template":{"index_patterns":["logs-*-*"],"priority":100,"data_stream":{"hidden":false,"allow_custom_routing":false},"composed_of":["logs@mappings","logs@settings","logs@custom","ecs@mappings"],"allow_auto_create":true}}]}`)
	case strings.HasPrefix(rest, "_data_stream/") && r.Method == http.MethodGet:
		name := strings.TrimPrefix(rest, "_data_stream/")
		p.mu.Lock()
		exists := p.dataStreams[name]
		p.mu.Unlock()
		if !exists {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [%s]"}],"type":"index_not_found_exception","reason":"no such index [%s]"},"status":404}`, name, name)
			return
		}
		fmt.Fprintf(w, `{"data_streams":[{"name":%q,"timestamp_field":{"name":"@timestamp"},"status":"GREEN","template":"logs"}]}`, name)
	case r.Method == http.MethodHead:
		w.WriteHeader(http.StatusNotFound)
	case rest == "_security/user/_has_privileges":
		p.mu.Lock()
		missing := p.missing
		p.mu.Unlock()
		if len(missing) == 0 {
			fmt.Fprint(w, `{"has_all_requested":true}`)
			return
		}
		privs := map[string]bool{}
		for _, m := range missing {
			privs[m] = false
		}
		b, _ := json.Marshal(map[string]any{"has_all_requested": false, "index": map[string]any{"*": privs}})
		w.Write(b)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"type":"resource_not_found_exception","reason":"not emulated"},"status":404}`)
	}
}

// bulk answers one bulk request: the items it refuses are answered here;
// the others are sent on to the search server in one request, and its
// answers merged back in order.
func (p *ESProxy) bulk(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	maxBytes, forbidden := p.maxBytes, p.forbidden
	p.mu.Unlock()
	if maxBytes > 0 && len(body) > maxBytes {
		w.WriteHeader(http.StatusRequestEntityTooLarge) // Elasticsearch's own: an empty body
		return
	}
	var items []item
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		action := append([]byte(nil), sc.Bytes()...)
		if !sc.Scan() {
			http.Error(w, "bulk body ends after an action line", http.StatusBadRequest)
			return
		}
		var a map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(action, &a); err != nil {
			http.Error(w, "bad action line", http.StatusBadRequest)
			return
		}
		it := item{action: action, source: append([]byte(nil), sc.Bytes()...)}
		for op, m := range a {
			it.op, it.index, it.id = op, m.Index, m.ID
		}
		items = append(items, it)
	}
	refuse := func(it *item, status int, typ, reason string) {
		it.answer = fmt.Sprintf(`{%q:{"_index":%q,"_id":%q,"status":%d,"error":{"type":%q,"reason":%q}}}`, it.op, it.index, it.id, status, typ, reason)
		p.refused[typ]++
	}
	var pass bytes.Buffer
	var passed []int
	p.mu.Lock()
	for i := range items {
		it := &items[i]
		switch {
		case forbidden:
			refuse(it, http.StatusForbidden, "security_exception", fmt.Sprintf("action [indices:data/write/bulk[s]] is unauthorized for user [streambudget] with roles [streambudget_writer] on indices [%s], this action is granted by the index privileges [create_doc,create,index,write,all]", it.index))
		case p.emulate && p.isDataStream(it.index) && it.op != "create":
			refuse(it, http.StatusBadRequest, "illegal_argument_exception", "only write ops with an op_type of create are allowed in data streams")
		case p.emulate && p.isDataStream(it.index) && !hasTimestamp(it.source):
			refuse(it, http.StatusBadRequest, "document_parsing_exception", "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing")
		case p.emulate && p.conflict(it) != "":
			refuse(it, http.StatusBadRequest, "document_parsing_exception", p.conflict(it))
		case p.emulate && it.op == "create" && p.ids[it.index+"\x00"+it.id] > 0:
			refuse(it, http.StatusConflict, "version_conflict_engine_exception", fmt.Sprintf("[%s]: version conflict, document already exists (current version [1])", it.id))
			p.replays++
		default:
			if p.emulate {
				p.mapFields(it)
			}
			pass.Write(it.action)
			pass.WriteByte('\n')
			pass.Write(it.source)
			pass.WriteByte('\n')
			passed = append(passed, i)
		}
	}
	p.mu.Unlock()
	if len(passed) > 0 {
		answers, status, err := p.forward(r, pass.Bytes())
		if err != nil || status != http.StatusOK || len(answers) != len(passed) {
			http.Error(w, fmt.Sprintf("search server: status %d, %d answers for %d items: %v", status, len(answers), len(passed), err), http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		for k, i := range passed {
			items[i].answer = string(answers[k])
			var res map[string]struct {
				Status int `json:"status"`
			}
			if json.Unmarshal(answers[k], &res) == nil {
				for _, v := range res {
					switch {
					case v.Status >= 200 && v.Status < 300:
						p.ids[items[i].index+"\x00"+items[i].id]++
						if p.emulate && p.isDataStream(items[i].index) {
							p.dataStreams[items[i].index] = true
						}
					case v.Status == http.StatusConflict:
						p.replays++ // the real cluster's own 409
					}
				}
			}
		}
		p.mu.Unlock()
	}
	out := make([]string, len(items))
	for i := range items {
		out[i] = items[i].answer
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(out, ","))
}

// item is one action of a bulk request.
type item struct {
	op, index, id string
	action        []byte
	source        []byte
	answer        string // set when refused here
}

// forward sends items on to the search server's bulk API.
func (p *ESProxy) forward(r *http.Request, body []byte) ([]json.RawMessage, int, error) {
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + "/_bulk"
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	for _, h := range []string{"Authorization"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, resp.StatusCode, err
	}
	return out.Items, resp.StatusCode, nil
}

func hasTimestamp(source []byte) bool {
	var doc map[string]json.RawMessage
	if json.Unmarshal(source, &doc) != nil {
		return false
	}
	_, ok := doc["@timestamp"]
	return ok
}

// fieldKinds lists a document's field paths with their kind: "object" for
// an object, the JSON type of a value otherwise (null says nothing).
func fieldKinds(prefix string, v any, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		if prefix != "" {
			out[prefix] = "object"
		}
		for k, val := range t {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			fieldKinds(key, val, out)
		}
	case []any:
		for _, e := range t {
			fieldKinds(prefix, e, out)
		}
	case string:
		out[prefix] = "keyword"
	case float64:
		out[prefix] = "long"
	case bool:
		out[prefix] = "boolean"
	}
}

// conflict returns Elasticsearch's reason when the item's fields clash
// with what dynamic mapping made of the index's earlier documents (an
// object where a value was, or the other way round), or "". Numbers and
// strings mix without a clash, as Elasticsearch coerces them.
func (p *ESProxy) conflict(it *item) string {
	var doc any
	if json.Unmarshal(it.source, &doc) != nil {
		return "[1:1] failed to parse: the document is not a JSON object"
	}
	kinds := map[string]string{}
	fieldKinds("", doc, kinds)
	have := p.mappings[it.index]
	fields := make([]string, 0, len(kinds))
	for f := range kinds {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		k, was := kinds[f], have[f]
		switch {
		case was == "" || k == was:
		case was == "object":
			return fmt.Sprintf("[1:1] object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", f, f)
		case k == "object":
			return fmt.Sprintf("[1:1] failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '{...}'", f, was, it.id)
		}
	}
	return ""
}

// mapFields records the item's fields as dynamic mapping would.
func (p *ESProxy) mapFields(it *item) {
	var doc any
	if json.Unmarshal(it.source, &doc) != nil {
		return
	}
	m := p.mappings[it.index]
	if m == nil {
		m = map[string]string{}
		p.mappings[it.index] = m
	}
	kinds := map[string]string{}
	fieldKinds("", doc, kinds)
	for f, k := range kinds {
		if m[f] == "" {
			m[f] = k
		}
	}
}
