package document

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/kinesis"
	"github.com/streambudget/streambudget/pkg/loadgen"
)

func testOptions() Options {
	return Options{
		Team: "payments", Stream: "payments-logs",
		Index: "logs-payments-{yyyy.MM.dd}", DeadLetterIndex: "deadletter-payments",
		Decode: decode.Options{Format: budget.DecodeAuto},
		Drop:   []budget.DropRule{{Name: "debug", Field: "level", In: []string{"DEBUG"}}, {Contains: "[DEBUG]"}},
		Redact: []budget.RedactRule{{Field: "password"}, {Pattern: budget.PatternEmail}},
	}
}

func schema(t testing.TB, opts Options) *Schema {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rec(seq, data string) Record {
	return Record{SequenceNumber: seq, Data: []byte(data), PartitionKey: "k", Arrival: time.Unix(100, 0)}
}

// built is everything a batch produced, chunks merged.
type built struct {
	items   []essink.Item
	of      []int
	dropped []Drop
	skipped []int
	sealed  []int
	chunks  int
}

func build(t testing.TB, s *Schema, recs []Record) built {
	t.Helper()
	b := s.NewBuilder("shardId-1")
	var c Chunk
	var out built
	b.Start(recs, time.Unix(200, 0), 0)
	for b.Next(&c) {
		out.chunks++
		for _, it := range c.Items {
			it.Source = bytes.Clone(it.Source) // the arena is reused
			out.items = append(out.items, it)
		}
		out.of = append(out.of, c.Of...)
		out.dropped = append(out.dropped, c.Dropped...)
		out.skipped = append(out.skipped, c.Skipped...)
		out.sealed = append(out.sealed, c.Sealed...)
	}
	b.Done(&c)
	return out
}

// checkSources fails t unless every item is one line of valid JSON.
func checkSources(t *testing.T, items []essink.Item) {
	t.Helper()
	for i, it := range items {
		if !json.Valid(it.Source) || bytes.ContainsAny(it.Source, "\n\r") {
			t.Errorf("item %d (dead letter %q) is not one line of JSON: %q", i, it.DeadLetter, it.Source)
		}
	}
}

func TestBuildBatch(t *testing.T) {
	s := schema(t, testOptions())
	recs := []Record{
		rec("1", `{"level":"INFO","message":"ERROR with D E B U G letters","password":"hunter2","@timestamp":"2026-03-04T05:06:07Z"}`),
		rec("2", `{"level":"DEBUG","message":"noise"}`),
		rec("3", `{"message":"x [DEBUG] y"}`),
		rec("4", "\xff\xfe not utf-8 \xff"),
		rec("5", `plain text from alice@example.com`),
		rec("6", ""),
	}
	recs[0].Arrival = time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC)
	out := build(t, s, recs)
	if got, want := len(out.items), 4; got != want {
		t.Fatalf("got %d items, want %d (2 dropped)", got, want)
	}
	checkSources(t, out.items)
	if fmt.Sprint(out.of) != "[0 3 4 5]" || fmt.Sprint(out.sealed) != "[0 1 2 3 4 5]" {
		t.Errorf("items of records %v, sealed %v; want [0 3 4 5] and every record", out.of, out.sealed)
	}
	if fmt.Sprint(out.dropped) != "[{1 debug} {2 drop[1]}]" {
		t.Errorf("dropped = %v, want record 1 by debug and record 2 by drop[1]", out.dropped)
	}
	var first map[string]any
	if err := json.Unmarshal(out.items[0].Source, &first); err != nil {
		t.Fatalf("item 0 is not JSON: %v: %s", err, out.items[0].Source)
	}
	if first["password"] != "[REDACTED]" || first["team"] != "payments" || first["@timestamp"] != "2026-03-04T05:06:07Z" {
		t.Errorf("item 0 = %v, want password redacted, team and the record's @timestamp", first)
	}
	if got := out.items[0].Index; got != "logs-payments-2026.03.04" {
		t.Errorf("index = %q, want logs-payments-2026.03.04", got)
	}
	k := first["kinesis"].(map[string]any)
	if k["shard_id"] != "shardId-1" || k["sequence_number"] != "1" || k["read_at"] == nil {
		t.Errorf("kinesis = %v, want the record's coordinates and read_at", k)
	}
	if dl := out.items[1]; dl.DeadLetter != decode.ReasonInvalidUTF8 || dl.Index != "deadletter-payments" {
		t.Errorf("item 1 = %q in %q, want an invalid_utf8 dead letter", dl.DeadLetter, dl.Index)
	}
	if bytes.Contains(out.items[2].Source, []byte("alice@example.com")) {
		t.Errorf("email not redacted: %s", out.items[2].Source)
	}
	if out.items[3].DeadLetter != decode.ReasonEmpty {
		t.Errorf("item 3 reason %q, want %q", out.items[3].DeadLetter, decode.ReasonEmpty)
	}
	ids := map[string]bool{}
	for _, it := range out.items {
		if ids[it.ID] {
			t.Errorf("duplicate id %s", it.ID)
		}
		ids[it.ID] = true
	}
}

// TestBuildEveryDeadLetterKind runs every kind the load generator sends to
// the dead-letter path between good records: each good record is indexed,
// each bad one is a dead letter with its reason, all in order.
func TestBuildEveryDeadLetterKind(t *testing.T) {
	s := schema(t, testOptions())
	recs := []Record{rec("0", `{"message":"first",`+"\n"+`"nested": {`+"\r\n"+`"a": 1}}`)}
	for i, bad := range loadgen.BadRecords() {
		recs = append(recs, rec(fmt.Sprint(i+1), string(bad)))
	}
	recs = append(recs, rec("99", `{"message":"last"}`), rec("100", string(kinesis.BadKPLPrefix)+"\xf3\x89\x9a\xc2junk"))
	out := build(t, s, recs)
	if len(out.items) != len(recs) {
		t.Fatalf("got %d items for %d records", len(out.items), len(recs))
	}
	checkSources(t, out.items)
	// Under decode auto, JSON nested too deep is indexed as text (where the
	// team's field rule, password, redacts it whole if it may hold one).
	want := []string{"", decode.ReasonEmpty, decode.ReasonInvalidUTF8, "", decode.ReasonBadGzip, decode.ReasonDecompressedTooLarge, decode.ReasonBadCloudWatchLogs, "", "bad_kpl_aggregate"}
	for i, w := range want {
		if got := out.items[i].DeadLetter; got != w {
			t.Errorf("item %d reason %q, want %q", i, got, w)
		}
	}
}

// TestDeadLetterRedaction: a dead letter keeps a record's bytes only where
// no secret can hide in them; otherwise its size, hash and coordinates,
// saying why. The partition key is pattern-redacted everywhere.
func TestDeadLetterRedaction(t *testing.T) {
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
		return b.String()[:b.Len()/2] // truncated: bad_gzip
	}
	patterns := []budget.RedactRule{{Pattern: budget.PatternEmail}}
	fields := []budget.RedactRule{{Field: "password"}, {Pattern: budget.PatternEmail}}
	for _, tc := range []struct {
		name     string
		redact   []budget.RedactRule
		format   string
		data     string
		pk       string
		encoding string // raw_encoding
		absent   []string
	}{
		{"no rules: raw kept", nil, budget.DecodeJSON, `{"a":"bob@example.com"`, "k", "utf-8", nil},
		{"patterns on plain text", patterns, budget.DecodeJSON, `{"a":"bob@example.com"`, "k", "utf-8", []string{"bob@example.com"}},
		{"escapes hide what patterns see", patterns, budget.DecodeJSON, `{"a":"bob\u0040example.com"`, "k", "withheld", []string{"example.com"}},
		{"field rules need a document", fields, budget.DecodeJSON, `{"password":"hunter2",`, "k", "withheld", []string{"hunter2"}},
		{"not text", patterns, budget.DecodeText, "bob@example.com \xff", "k", "withheld", []string{"example.com"}},
		{"gzip is opaque", patterns, budget.DecodeAuto, gz(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"bob@example.com"}]}`), "k", "withheld", nil},
		{"partition key", patterns, budget.DecodeJSON, `{"a":`, "user-bob@example.com", "utf-8", []string{"bob@example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			opts.Drop, opts.Redact, opts.Decode.Format = nil, tc.redact, tc.format
			r := rec("1", tc.data)
			r.PartitionKey = tc.pk
			out := build(t, schema(t, opts), []Record{r})
			if len(out.items) != 1 || out.items[0].DeadLetter == "" {
				t.Fatalf("got %d items (%v), want one dead letter", len(out.items), out.items)
			}
			var dl struct {
				DeadLetter struct {
					Encoding string `json:"raw_encoding"`
					Raw      string `json:"raw"`
					Bytes    int    `json:"raw_bytes"`
					SHA      string `json:"raw_sha256"`
					Detail   string `json:"detail"`
				} `json:"deadletter"`
			}
			src := out.items[0].Source
			if err := json.Unmarshal(src, &dl); err != nil {
				t.Fatal(err)
			}
			if dl.DeadLetter.Encoding != tc.encoding || dl.DeadLetter.Bytes != len(tc.data) || len(dl.DeadLetter.SHA) != 64 {
				t.Errorf("raw_encoding %q, %d bytes, sha %q; want %q, %d bytes and a hash", dl.DeadLetter.Encoding, dl.DeadLetter.Bytes, dl.DeadLetter.SHA, tc.encoding, len(tc.data))
			}
			if tc.encoding == "withheld" && (dl.DeadLetter.Raw != "" || !strings.Contains(dl.DeadLetter.Detail, "raw bytes withheld")) {
				t.Errorf("raw %q, detail %q: want no raw bytes and a detail that says why", dl.DeadLetter.Raw, dl.DeadLetter.Detail)
			}
			for _, a := range tc.absent {
				if bytes.Contains(src, []byte(a)) {
					t.Errorf("dead letter holds %q: %s", a, src)
				}
			}
		})
	}
}

// TestDeadLetterDeterministic: a dead letter's _id, index and @timestamp come
// from the record, not the clock, so a replay on another day writes the same
// one again; a data-stream target gets create.
func TestDeadLetterDeterministic(t *testing.T) {
	opts := testOptions()
	opts.DeadLetterIndex, opts.DeadLetterDataStream = "logs-deadletter-payments", true
	s := schema(t, opts)
	r := rec("7", "")
	r.Arrival = time.Date(2026, 5, 1, 23, 59, 0, 0, time.UTC)
	a := build(t, s, []Record{r}).items[0]
	b := s.NewBuilder("shardId-1")
	var c Chunk
	b.Start([]Record{r}, time.Date(2026, 9, 9, 0, 0, 0, 0, time.UTC), 0) // read again months later
	b.Next(&c)
	if c.Items[0].ID != a.ID || c.Items[0].Index != a.Index || !c.Items[0].Create {
		t.Errorf("replayed dead letter %s in %s (create %v), first %s in %s: want the same id and index, and create", c.Items[0].ID, c.Items[0].Index, c.Items[0].Create, a.ID, a.Index)
	}
	if !bytes.Contains(a.Source, []byte(`"@timestamp":"2026-05-01T23:59:00Z"`)) {
		t.Errorf("dead letter's @timestamp is not the record's arrival: %s", a.Source)
	}
	if a.ID == ID("payments-logs", &Coordinates{ShardID: "shardId-1", SequenceNumber: "7"}, 0, kindDocument) {
		t.Error("a dead letter's id equals its document's")
	}
	rej := s.Rejected(essink.Item{Index: "logs-payments-2026.05.01", Source: []byte(`{"a":1}`)}, &Coordinates{ShardID: "shardId-1", SequenceNumber: "7", Arrival: r.Arrival}, 3, time.Now(), "mapper_parsing_exception", "failed to parse", "")
	if rej.Index != a.Index || !rej.Create || rej.DeadLetter != "mapper_parsing_exception" || !json.Valid(rej.Source) {
		t.Errorf("rejected document's dead letter = %+v", rej)
	}
}

func TestIDStable(t *testing.T) {
	at := func(shard, seq string, sub int) *Coordinates {
		return &Coordinates{ShardID: shard, SequenceNumber: seq, SubSequence: sub}
	}
	a := ID("s", at("shard-1", "123", 0), 0, kindDocument)
	if a != ID("s", at("shard-1", "123", 0), 0, kindDocument) {
		t.Fatal("ID is not deterministic")
	}
	for _, other := range []string{ID("s", at("shard-1", "123", 1), 0, kindDocument), ID("s", at("shard-1", "123", 0), 1, kindDocument),
		ID("s", at("shard-2", "123", 0), 0, kindDocument), ID("t", at("shard-1", "123", 0), 0, kindDocument), ID("s", at("shard-1", "123", 0), 0, kindDeadLetter)} {
		if other == a {
			t.Errorf("ID collides across coordinates: %s", a)
		}
	}
}

// cloudWatchBomb is a gzip CloudWatch Logs record of n events of size
// bytes each: a small record that inflates to n x size.
func cloudWatchBomb(t testing.TB, n, size int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	fmt.Fprint(w, `{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[`)
	msg := strings.Repeat("x", size)
	for i := range n {
		if i > 0 {
			fmt.Fprint(w, ",")
		}
		fmt.Fprintf(w, `{"id":"%d","timestamp":1700000000000,"message":"%s"}`, i, msg)
	}
	fmt.Fprint(w, "]}")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestChunksBoundedInBytes: records that inflate to many documents are
// indexed in chunks of at most MaxDocs documents and about MaxBytes, so a
// batch's memory does not follow what its records inflate to. Every
// document is in exactly one chunk, and a record is sealed only in the
// chunk that holds its last document.
func TestChunksBoundedInBytes(t *testing.T) {
	opts := testOptions()
	opts.MaxDocs, opts.MaxBytes = 500, 1<<20
	s := schema(t, opts)
	const events, size = 3350, 2000 // one record: 6.7 MB of documents
	recs := []Record{rec("1", string(cloudWatchBomb(t, events, size))), rec("2", `{"message":"after"}`), rec("3", string(cloudWatchBomb(t, 10, 10)))}
	b := s.NewBuilder("shardId-1")
	var c Chunk
	b.Start(recs, time.Now(), 0)
	docs, chunks := 0, 0
	sealedAt := map[int]int{}
	for b.Next(&c) {
		chunks++
		if len(c.Items) > opts.MaxDocs || c.Bytes > opts.MaxBytes+size+1024 {
			t.Fatalf("chunk %d: %d items, %d bytes; want at most %d and about %d", chunks, len(c.Items), c.Bytes, opts.MaxDocs, opts.MaxBytes)
		}
		docs += len(c.Items)
		for _, r := range c.Sealed {
			sealedAt[r] = chunks
		}
		if got := cap(c.arena); got > 2*opts.MaxBytes+4*size {
			t.Fatalf("chunk arena holds %d bytes", got)
		}
	}
	b.Done(&c)
	if docs != events+1+10 {
		t.Errorf("%d documents, want %d", docs, events+1+10)
	}
	if chunks < 7 {
		t.Errorf("%d chunks for 6.7 MB, want at least 7 of 1 MiB", chunks)
	}
	if len(sealedAt) != 3 || sealedAt[0] != sealedAt[1] {
		t.Errorf("records sealed in chunks %v: want all three, the first with the second", sealedAt)
	}
}

// batchPeak builds recs with a fresh builder and returns the peak of the Go
// heap above where it started, sampled after every chunk, and what the
// builder holds once the batch is done.
func batchPeak(t testing.TB, s *Schema, recs []Record) (peak uint64, held int) {
	// The heap's peak depends on the collector's pace: measure at the
	// default, whatever GOGC the tests run with.
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	b := s.NewBuilder("shardId-1")
	var c Chunk
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	b.Start(recs, time.Now(), 0)
	for b.Next(&c) {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc-min(base, ms.HeapAlloc))
	}
	b.Done(&c)
	return peak, b.Held(&c)
}

// bombs is total bytes of gzip CloudWatch Logs records that inflate to
// about 16 MiB each (the decompression limit).
func bombs(t testing.TB, total int) []Record {
	one := cloudWatchBomb(t, 7900, 2000)
	var recs []Record
	for n := 0; n < total; n += len(one) {
		recs = append(recs, rec(fmt.Sprint(len(recs)), string(one)))
	}
	return recs
}

// TestBatchMemoryBound: while a shard's builder works through gzip records
// that each inflate to 16 MiB of documents, the Go heap stays near one
// record's inflated payload and one chunk, not the batch's documents (the
// full 10 MB answer is BenchmarkBatchMemory); and once the batch is done
// the builder lets go of its large buffers.
func TestBatchMemoryBound(t *testing.T) {
	s := schema(t, testOptions())
	// 320 KB of gzip: 7 records, 112 MiB of documents, above the bound
	// (BenchmarkBatchMemory measures a whole 10 MB answer).
	recs := bombs(t, 320<<10)
	peak, held := batchPeak(t, s, recs)
	const bound = MaxShardBytes
	t.Logf("%d gzip records inflating to 16 MiB each: peak heap %d MiB, held after %d KiB", len(recs), peak>>20, held>>10)
	if peak > bound {
		t.Errorf("peak heap %d MiB while building, want under %d MiB", peak>>20, bound>>20)
	}
	if held > keepBytes+DefaultMaxBytes {
		t.Errorf("the builder holds %d KiB after the batch, want at most %d KiB", held>>10, (keepBytes+DefaultMaxBytes)>>10)
	}
}

// BenchmarkBatchMemory: a 10 MB GetRecords answer of gzip CloudWatch Logs
// records that inflate to 16 MiB each, built chunk by chunk. It reports the
// peak of the Go heap while building (peak-MiB) against MaxShardBytes.
func BenchmarkBatchMemory(b *testing.B) {
	s := schema(b, testOptions())
	recs := bombs(b, 10<<20)
	var peak uint64
	for b.Loop() {
		p, _ := batchPeak(b, s, recs)
		peak = max(peak, p)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	b.ReportMetric(float64(MaxShardBytes)/(1<<20), "bound-MiB")
	b.ReportMetric(float64(len(recs)*16), "inflated-MiB")
}

// TestIndexFollowsArrivalWhenTimeIsFar: a dated index is named for the
// document's own time, within a day of its record's arrival; a document
// stamped further away goes to its arrival day's index (found by review: a
// skewed producer clock sent documents to an index long made read-only,
// where they waited forever and held their shard back).
func TestIndexFollowsArrivalWhenTimeIsFar(t *testing.T) {
	opts := testOptions()
	opts.Drop, opts.Redact = nil, nil
	s := schema(t, opts)
	arrival := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ts, want string
	}{
		{"2026-12-01T10:00:00Z", "logs-payments-2026.12.01"},
		{"2026-11-30T23:30:00Z", "logs-payments-2026.11.30"}, // late by under a day: its own day
		{"2026-12-02T05:00:00Z", "logs-payments-2026.12.02"},
		{"2025-01-01T00:00:00Z", "logs-payments-2026.12.01"}, // a clock a year behind
		{"2031-01-01T00:00:00Z", "logs-payments-2026.12.01"},
	} {
		r := rec("1", `{"@timestamp":"`+tc.ts+`","message":"m"}`)
		r.Arrival = arrival
		out := build(t, s, []Record{r})
		if len(out.items) != 1 || out.items[0].Index != tc.want {
			t.Errorf("@timestamp %s arriving %s: index %v, want %s", tc.ts, arrival.Format(time.RFC3339), out.items, tc.want)
		}
		if !bytes.Contains(out.items[0].Source, []byte(`"@timestamp":"`+tc.ts+`"`)) {
			t.Errorf("@timestamp %s not kept in the document: %s", tc.ts, out.items[0].Source)
		}
	}
}
