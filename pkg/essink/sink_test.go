package essink

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeES answers bulk requests with the responses a test scripts: each call
// of answer gets the parsed actions and sources and returns status and body.
type fakeES struct {
	mu      sync.Mutex
	calls   int
	answer  func(call int, actions []map[string]map[string]string, sources []string) (int, string)
	written []string // sources of confirmed documents, in order
}

func (f *fakeES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/_bulk") {
		fmt.Fprint(w, `{"version":{"number":"8.9.0"}}`)
		return
	}
	var actions []map[string]map[string]string
	var sources []string
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var a map[string]map[string]string
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			http.Error(w, "bad action line", 400)
			return
		}
		if !sc.Scan() {
			http.Error(w, "missing source", 400)
			return
		}
		if !json.Valid(sc.Bytes()) {
			http.Error(w, "bad source", 400)
			return
		}
		actions = append(actions, a)
		sources = append(sources, sc.Text())
	}
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	status, body := f.answer(call, actions, sources)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func item(action string, status int, errType string) string {
	if errType == "" {
		return fmt.Sprintf(`{%q:{"_index":"x","_id":"y","status":%d}}`, action, status)
	}
	return fmt.Sprintf(`{%q:{"_index":"x","_id":"y","status":%d,"error":{"type":%q,"reason":"failed to parse field [level]"}}}`, action, status, errType)
}

func bulkBody(items ...string) string {
	return `{"took":1,"errors":true,"items":[` + strings.Join(items, ",") + `]}`
}

func newTestSink(t *testing.T, es http.Handler) (*Sink, *prometheus.Registry) {
	t.Helper()
	srv := httptest.NewServer(es)
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	s, err := New(Options{
		URLs: []string{srv.URL}, Team: "t", Stream: "s",
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, BlockedRetry: 5 * time.Millisecond, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func items(n int) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{Index: "logs-t", ID: fmt.Sprintf("id-%d", i), Source: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	return out
}

func statuses(rs []Result) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Status.String()
		if r.Reason != "" {
			out[i] += ":" + r.Reason
		}
	}
	return strings.Join(out, " ")
}

func TestIndexItemResults(t *testing.T) {
	for _, tc := range []struct {
		name         string
		create       bool
		answer       func(call int, a []map[string]map[string]string, s []string) (int, string)
		wantCalls    int
		want         string
		wantRetry    map[string]float64
		wantSource   []string // sources of the last call
		wantReplayed float64
	}{
		{
			name: "all created",
			answer: func(int, []map[string]map[string]string, []string) (int, string) {
				return 200, bulkBody(item("index", 201, ""), item("index", 200, ""), item("index", 201, ""))
			},
			wantCalls: 1, want: "indexed indexed indexed",
		},
		{
			name: "a 429 item is sent again, alone",
			answer: func(call int, _ []map[string]map[string]string, s []string) (int, string) {
				if call == 1 {
					return 200, bulkBody(item("index", 201, ""), item("index", 429, "es_rejected_execution_exception"), item("index", 201, ""))
				}
				return 200, bulkBody(item("index", 201, ""))
			},
			wantCalls: 2, want: "indexed indexed indexed", wantRetry: map[string]float64{"item_429": 1}, wantSource: []string{`{"n":1}`},
		},
		{
			name: "a mapping conflict is the document's: rejected with its reason",
			answer: func(call int, a []map[string]map[string]string, s []string) (int, string) {
				return 200, bulkBody(item("index", 201, ""), item("index", 400, "mapper_parsing_exception"), item("index", 201, ""))
			},
			wantCalls: 1, want: "indexed rejected:mapper_parsing_exception indexed",
		},
		{
			name:   "a 409 on create is a replay already indexed",
			create: true,
			answer: func(int, []map[string]map[string]string, []string) (int, string) {
				return 200, bulkBody(item("create", 201, ""), item("create", 409, "version_conflict_engine_exception"), item("create", 201, ""))
			},
			wantCalls: 1, want: "indexed existed indexed", wantReplayed: 1,
		},
		{
			name: "a request-level 503 is retried whole",
			answer: func(call int, _ []map[string]map[string]string, _ []string) (int, string) {
				if call < 3 {
					return 503, `{"error":{"type":"unavailable_shards_exception","reason":"no"},"status":503}`
				}
				return 200, bulkBody(item("index", 201, ""), item("index", 201, ""), item("index", 201, ""))
			},
			wantCalls: 3, want: "indexed indexed indexed", wantRetry: map[string]float64{"request_error": 2},
		},
		{
			name: "a response missing items is not a confirmation",
			answer: func(call int, _ []map[string]map[string]string, _ []string) (int, string) {
				if call == 1 {
					return 200, ``
				}
				return 200, bulkBody(item("index", 201, ""), item("index", 201, ""), item("index", 201, ""))
			},
			wantCalls: 2, want: "indexed indexed indexed", wantRetry: map[string]float64{"request_error": 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lastSources []string
			es := &fakeES{answer: func(call int, a []map[string]map[string]string, s []string) (int, string) {
				lastSources = s
				return tc.answer(call, a, s)
			}}
			s, _ := newTestSink(t, es)
			its := items(3)
			for i := range its {
				its[i].Create = tc.create
			}
			results := make([]Result, 3)
			if err := s.Index(context.Background(), its, results); err != nil {
				t.Fatal(err)
			}
			if got := statuses(results); got != tc.want {
				t.Errorf("results %s, want %s", got, tc.want)
			}
			if got := testutil.ToFloat64(s.m.replayed); got != tc.wantReplayed {
				t.Errorf("replayed_total = %v, want %v", got, tc.wantReplayed)
			}
			if es.calls != tc.wantCalls {
				t.Errorf("got %d bulk calls, want %d", es.calls, tc.wantCalls)
			}
			for reason, want := range tc.wantRetry {
				if got := testutil.ToFloat64(s.m.retries.WithLabelValues(reason)); got != want {
					t.Errorf("retries %s = %v, want %v", reason, got, want)
				}
			}
			if tc.wantSource != nil && strings.Join(lastSources, "|") != strings.Join(tc.wantSource, "|") {
				t.Errorf("last call sent %q, want %q", lastSources, tc.wantSource)
			}
		})
	}
}

func TestIndexStopsOnContextAndReportsProgress(t *testing.T) {
	es := &fakeES{answer: func(call int, a []map[string]map[string]string, s []string) (int, string) {
		// The first document is confirmed; the second is refused forever.
		if len(a) == 2 {
			return 200, bulkBody(item("index", 201, ""), item("index", 503, "unavailable"))
		}
		return 200, bulkBody(item("index", 503, "unavailable"))
	}}
	s, _ := newTestSink(t, es)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	results := make([]Result, 2)
	err := s.Index(ctx, items(2), results)
	if err == nil {
		t.Fatal("got nil, want the context's error")
	}
	if got := statuses(results); got != "indexed pending" {
		t.Errorf("results %s, want indexed pending", got)
	}
}

func TestChunking(t *testing.T) {
	var sizes []int
	es := &fakeES{answer: func(_ int, a []map[string]map[string]string, _ []string) (int, string) {
		sizes = append(sizes, len(a))
		its := make([]string, len(a))
		for i := range its {
			its[i] = item("index", 201, "")
		}
		return 200, bulkBody(its...)
	}}
	s, _ := newTestSink(t, es)
	s.opts.MaxDocsPerRequest = 4
	results := make([]Result, 10)
	if err := s.Index(context.Background(), items(10), results); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[4 4 2]" {
		t.Errorf("request sizes %v, want [4 4 2]", sizes)
	}
}
