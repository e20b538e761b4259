package consumer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// simES is a model of an Elasticsearch cluster's bulk API, in process: it
// keeps documents by index and _id (a replay overwrites; a create of an
// existing _id is answered 409), rejects "poison" documents as a mapping
// conflict would, and turns a chosen part of every request into the faults
// of a real cluster: down (503 for the whole request), throttled (429 per
// item) and forbidden (403 per item, a revoked privilege).
type simES struct {
	mu   sync.Mutex
	docs map[string]esDoc // index + "\x00" + _id
	// sent is the record ids in the order a document of theirs first
	// reached the cluster (whatever the answer), for the per-key order
	// check; seen holds those confirmed.
	sent    []int
	tried   map[int]bool
	first   []int
	seen    map[int]bool
	writes  int // documents confirmed, replays included
	records map[string]*simRecord
	// faults
	down, forbidden bool
	throttle        int // every n-th item is answered 429; 0 never
	n               int
}

type esDoc struct {
	record     *simRecord
	deadLetter bool
}

func newSimES(recs func(shard, seq string, sub int) *simRecord) *simES {
	return &simES{docs: map[string]esDoc{}, seen: map[int]bool{}, tried: map[int]bool{}, records: map[string]*simRecord{}}
}

// transport serves the sink's requests without a socket.
type transport struct{ h http.Handler }

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

func (es *simES) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(5 * time.Millisecond) // the cluster takes a while
	if !strings.HasSuffix(r.URL.Path, "/_bulk") {
		fmt.Fprint(w, `{"version":{"number":"8.15.0"}}`)
		return
	}
	es.mu.Lock()
	down := es.down
	es.mu.Unlock()
	if down {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"},"status":503}`)
		return
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 0, 16<<10), 64<<20)
	var items []string
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || !sc.Scan() {
			http.Error(w, "bad bulk body", http.StatusBadRequest)
			return
		}
		op := "index"
		if _, ok := action["create"]; ok {
			op = "create"
		}
		a := action[op]
		items = append(items, es.item(op, a.Index, a.ID, sc.Bytes()))
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(items, ","))
}

// item answers one bulk item and stores what it confirms.
func (es *simES) item(op, index, id string, source []byte) string {
	answer := func(status int, errType string) string {
		if errType == "" {
			return fmt.Sprintf(`{%q:{"_index":%q,"_id":%q,"status":%d}}`, op, index, id, status)
		}
		return fmt.Sprintf(`{%q:{"_index":%q,"_id":%q,"status":%d,"error":{"type":%q,"reason":"simulated"}}}`, op, index, id, status, errType)
	}
	var doc struct {
		Poison  bool `json:"poison"`
		Kinesis struct {
			Shard string `json:"shard_id"`
			Seq   string `json:"sequence_number"`
			Sub   int    `json:"sub_sequence"`
		} `json:"kinesis"`
		DeadLetter *struct{} `json:"deadletter"`
	}
	if err := json.Unmarshal(source, &doc); err != nil {
		return answer(400, "document_parsing_exception")
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	rec := es.records[doc.Kinesis.Shard+"/"+doc.Kinesis.Seq+"/"+fmt.Sprint(doc.Kinesis.Sub)]
	if rec == nil {
		return answer(400, "unknown_record")
	}
	if !es.tried[rec.id] {
		es.tried[rec.id] = true
		es.sent = append(es.sent, rec.id)
	}
	es.n++
	switch {
	case es.forbidden:
		return answer(403, "security_exception")
	case es.throttle > 0 && es.n%es.throttle == 0:
		return answer(429, "es_rejected_execution_exception")
	case doc.Poison && doc.DeadLetter == nil:
		return answer(400, "mapper_parsing_exception")
	}
	key := index + "\x00" + id
	if _, ok := es.docs[key]; ok && op == "create" {
		return answer(409, "version_conflict_engine_exception")
	}
	es.docs[key] = esDoc{record: rec, deadLetter: doc.DeadLetter != nil}
	es.writes++
	if !es.seen[rec.id] {
		es.seen[rec.id] = true
		es.first = append(es.first, rec.id)
	}
	return answer(201, "")
}

// learn makes the records known to the cluster (to map documents back to
// them).
func (es *simES) learn(recs []*simRecord) {
	es.mu.Lock()
	defer es.mu.Unlock()
	for _, r := range recs {
		es.records[r.shard+"/"+r.seq+"/"+fmt.Sprint(r.sub)] = r
	}
}

// has reports whether record id has a document or a dead letter.
func (es *simES) has(id int) bool {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.seen[id]
}

func (es *simES) set(f func(es *simES)) {
	es.mu.Lock()
	defer es.mu.Unlock()
	f(es)
}
