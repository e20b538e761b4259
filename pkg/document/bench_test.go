package document

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/essink"
)

// The pipeline benchmarks run one GetRecords call's worth of records
// (benchBatch lines, or 100 CloudWatch Logs records) through a Builder with
// testOptions' drop and redact rules, chunk by chunk, then write the bulk body (action line and source per item) into a
// reused buffer, as the sink sends it. One op is one batch; the per-record
// figures are reported as custom metrics that integration/bench reads:
// ns/record, records/s (one goroutine, so per core), B/record, allocs/record.

const benchBatch = 500

// benchArrival is the records' ApproximateArrivalTimestamp.
var benchArrival = time.Date(2024, 5, 14, 9, 21, 34, 0, time.UTC)

// benchSchema compiles opts for benchmarks.
func benchSchema(tb testing.TB, opts Options) *Schema {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

var (
	benchServices = []string{"checkout", "payments", "orders", "inventory", "auth", "search"}
	benchLoggers  = []string{"com.example.PaymentService", "com.example.OrderController", "com.example.InventoryClient", "com.example.AuthFilter"}
	benchPaths    = []string{"/api/v1/payments", "/api/v1/orders", "/api/v1/stock/reserve", "/api/v1/login", "/api/v1/search"}
	benchMethods  = []string{"GET", "POST", "PUT"}
	benchWords    = []string{"amount=129.95", "currency=EUR", "provider=adyen", "cache=hit", "attempt=1", "region=eu-west-1", "items=3", "tier=gold", "retry=false", "pool=main"}
)

// jsonLines returns n realistic JSON log lines of about size bytes each, the
// shape of pkg/decode/testdata/log512.json with varying values. Of every 100
// lines, 4 are DEBUG (dropped by level), 2 hold "[DEBUG]" in the message
// (dropped by the contains rule), 4 have an e-mail address and 2 a password
// field (redacted); the rest are indexed as they are.
func jsonLines(n, size int) [][]byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	lines := make([][]byte, n)
	for i := range lines {
		ts := benchArrival.Add(-time.Duration(n-i) * 3 * time.Millisecond)
		level := []string{"INFO", "INFO", "INFO", "WARN", "ERROR"}[rnd.IntN(5)]
		var msg strings.Builder
		extra := ""
		switch k := i % 100; {
		case k < 4:
			level = "DEBUG"
			msg.WriteString("cache lookup for key order:")
		case k < 6:
			msg.WriteString("[DEBUG] pool state after checkout of connection")
		case k < 10:
			fmt.Fprintf(&msg, "receipt sent to customer%d@example.com for order", rnd.IntN(100000))
		case k < 12:
			extra = fmt.Sprintf(`,"password":"hunter%d"`, rnd.IntN(1000))
			msg.WriteString("login attempt for user")
		default:
			msg.WriteString("payment authorised for order")
		}
		fmt.Fprintf(&msg, " %08x-%04x-4c55-9a0e-%012x latency_ms=%d", rnd.Uint32(), rnd.IntN(1<<16), rnd.Uint64()&(1<<48-1), rnd.IntN(2000))
		head := fmt.Sprintf(`{"@timestamp":%q,"level":%q,"logger":%q,"thread":"http-exec-%d","message":"`,
			ts.Format("2006-01-02T15:04:05.000Z07:00"), level, benchLoggers[rnd.IntN(len(benchLoggers))], rnd.IntN(200))
		tail := fmt.Sprintf(`","trace_id":"%016x%016x","span_id":"%016x","service":%q,"env":"prod","host":"ip-10-12-%d-%d.eu-west-1.compute.internal",`+
			`"http":{"method":%q,"path":%q,"status":%d},"user_id":%d%s,"retry":false}`,
			rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), benchServices[rnd.IntN(len(benchServices))], rnd.IntN(256), rnd.IntN(256),
			benchMethods[rnd.IntN(len(benchMethods))], benchPaths[rnd.IntN(len(benchPaths))], []int{200, 200, 201, 404, 500}[rnd.IntN(5)],
			rnd.IntN(100000000), extra)
		for len(head)+msg.Len()+len(tail) < size-12 {
			msg.WriteByte(' ')
			msg.WriteString(benchWords[rnd.IntN(len(benchWords))])
		}
		lines[i] = []byte(head + msg.String() + tail)
	}
	return lines
}

// textLines returns n plain-text log lines of about size bytes, 2 in 100
// holding "[DEBUG]" (dropped) and 4 an e-mail address (redacted).
func textLines(n, size int) [][]byte {
	rnd := rand.New(rand.NewPCG(3, 4))
	lines := make([][]byte, n)
	for i := range lines {
		ts := benchArrival.Add(-time.Duration(n-i) * 3 * time.Millisecond)
		var b strings.Builder
		level := "INFO "
		if i%100 < 2 {
			level = "[DEBUG]"
		}
		fmt.Fprintf(&b, "%s %s [http-exec-%d] %s - ", ts.Format("2006-01-02 15:04:05.000"), level, rnd.IntN(200), benchLoggers[rnd.IntN(len(benchLoggers))])
		if k := i % 100; k >= 2 && k < 6 {
			fmt.Fprintf(&b, "receipt sent to customer%d@example.com ", rnd.IntN(100000))
		}
		fmt.Fprintf(&b, "payment authorised for order %08x-%04x amount=129.95 currency=EUR trace_id=%016x%016x service=%s method=%s path=%s status=200 \"quoted\" tab\there",
			rnd.Uint32(), rnd.IntN(1<<16), rnd.Uint64(), rnd.Uint64(), benchServices[rnd.IntN(len(benchServices))],
			benchMethods[rnd.IntN(len(benchMethods))], benchPaths[rnd.IntN(len(benchPaths))])
		for b.Len() < size-1 {
			b.WriteByte(' ')
			b.WriteString(benchWords[rnd.IntN(len(benchWords))])
		}
		b.WriteByte('\n')
		lines[i] = []byte(b.String())
	}
	return lines
}

// cloudWatchRecords returns n gzip CloudWatch Logs DATA_MESSAGE payloads of
// perRecord events each: three fifths JSON lines (as jsonLines) and two
// fifths plain text, as a Lambda function writes them.
func cloudWatchRecords(tb testing.TB, n, perRecord int) [][]byte {
	tb.Helper()
	type event struct {
		ID        string `json:"id"`
		Timestamp int64  `json:"timestamp"`
		Message   string `json:"message"`
	}
	type payload struct {
		MessageType         string   `json:"messageType"`
		Owner               string   `json:"owner"`
		LogGroup            string   `json:"logGroup"`
		LogStream           string   `json:"logStream"`
		SubscriptionFilters []string `json:"subscriptionFilters"`
		LogEvents           []event  `json:"logEvents"`
	}
	js := jsonLines(n*perRecord, 300)
	txt := textLines(n*perRecord, 200)
	out := make([][]byte, n)
	for r := range out {
		p := payload{MessageType: "DATA_MESSAGE", Owner: "123456789012", LogGroup: "/aws/lambda/orders-handler",
			LogStream: "2024/05/14/[$LATEST]0f9e8d7c6b5a49382716", SubscriptionFilters: []string{"streambudget-orders"}}
		for e := range perRecord {
			k := r*perRecord + e
			msg := string(js[k]) + "\n"
			if e%5 >= 3 {
				msg = string(txt[k])
			}
			p.LogEvents = append(p.LogEvents, event{ID: fmt.Sprintf("372%053d", k), Timestamp: benchArrival.UnixMilli() - int64(n*perRecord-k), Message: msg})
		}
		raw, err := json.Marshal(p)
		if err != nil {
			tb.Fatal(err)
		}
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		if _, err := w.Write(raw); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		out[r] = b.Bytes()
	}
	return out
}

// kinesisRecords wraps payloads as one GetRecords call's records.
func kinesisRecords(data [][]byte) []Record {
	records := make([]Record, len(data))
	for i, d := range data {
		records[i] = Record{
			SequenceNumber: fmt.Sprintf("4959033827149025660855969253836157109592157598913%07d", i),
			PartitionKey:   fmt.Sprintf("pk-%d", i%64),
			Arrival:        benchArrival,
			Data:           d,
		}
	}
	return records
}

// appendBulk appends the bulk request body for items: an action line and a
// source line each.
func appendBulk(body []byte, items []essink.Item) []byte {
	for i := range items {
		it := &items[i]
		body = append(body, `{"index":{"_index":`...)
		body = decode.AppendString(body, it.Index)
		body = append(body, `,"_id":`...)
		body = decode.AppendString(body, it.ID)
		body = append(body, "}}\n"...)
		body = append(body, it.Source...)
		body = append(body, '\n')
	}
	return body
}

// benchBuild runs records through a Builder and the bulk body for b.N
// batches and reports per-unit figures; perOp is the number of units
// (records, or log events) in one batch.
func benchBuild(b *testing.B, opts Options, records []Record, unit string, perOp int) {
	s := benchSchema(b, opts)
	bl := s.NewBuilder("shardId-000000000001")
	var c Chunk
	size := 0
	for i := range records {
		size += len(records[i].Data)
	}
	// One batch first: it checks the output and grows the reused buffers
	// to their working size, as a shard's first call does.
	var body []byte
	items, dropped := 0, 0
	bl.Start(records, benchArrival, 0)
	for bl.Next(&c) {
		body = appendBulk(body, c.Items)
		items += len(c.Items)
		dropped += len(c.Dropped)
		for i, it := range c.Items {
			if it.DeadLetter != "" || !json.Valid(it.Source) {
				b.Fatalf("item %d: dead letter %q, source %.200s", i, it.DeadLetter, it.Source)
			}
		}
	}
	bl.Done(&c)
	if items+dropped != perOp {
		b.Fatalf("%d items and %d dropped, want %d %ss", items, dropped, perOp, unit)
	}

	b.SetBytes(int64(size))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		body = body[:0]
		bl.Start(records, benchArrival, 0)
		for bl.Next(&c) {
			body = appendBulk(body, c.Items)
		}
		bl.Done(&c)
	}
	runtime.ReadMemStats(&after)
	reportPer(b, unit, perOp, before, after)
}

// reportPer reports the per-unit figures of a benchmark whose op handles
// perOp units.
func reportPer(b *testing.B, unit string, perOp int, before, after runtime.MemStats) {
	units := float64(b.N) * float64(perOp)
	ns := float64(b.Elapsed().Nanoseconds()) / units
	b.ReportMetric(ns, "ns/"+unit)
	b.ReportMetric(1e9/ns, unit+"s/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/units, "allocs/"+unit)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/units, "B/"+unit)
}

// BenchmarkPipelineJSON: 500 JSON log lines of about 512 bytes, decode auto.
func BenchmarkPipelineJSON(b *testing.B) {
	lines := jsonLines(benchBatch, 512)
	benchBuild(b, testOptions(), kinesisRecords(lines), "record", len(lines))
}

// BenchmarkPipelineCloudWatch: 100 gzip CloudWatch Logs records of 50 log
// events each (5,000 events, 10 times a JSON batch); the figures are per
// log event.
func BenchmarkPipelineCloudWatch(b *testing.B) {
	const records, perRecord = 100, 50
	data := cloudWatchRecords(b, records, perRecord)
	benchBuild(b, testOptions(), kinesisRecords(data), "event", records*perRecord)
}

// BenchmarkPipelineText: 500 plain-text lines of about 512 bytes, decode text.
func BenchmarkPipelineText(b *testing.B) {
	opts := testOptions()
	opts.Decode.Format = budget.DecodeText
	lines := textLines(benchBatch, 512)
	benchBuild(b, opts, kinesisRecords(lines), "record", len(lines))
}

// naiveEmail is how a naive implementation finds e-mail addresses.
var naiveEmail = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)

// BenchmarkNaiveJSON is the baseline BenchmarkPipelineJSON is measured
// against, on the same lines: the same work done the obvious way, with
// encoding/json into a map[string]any and back. It drops and redacts as
// testOptions does, adds @timestamp, team and kinesis, and writes the same
// bulk body (the index name and _id come from the same helpers).
func BenchmarkNaiveJSON(b *testing.B) {
	opts := testOptions()
	s := benchSchema(b, opts)
	lines := jsonLines(benchBatch, 512)
	records := kinesisRecords(lines)
	shardID := "shardId-000000000001"
	var body bytes.Buffer
	run := func() (kept int) {
		body.Reset()
		readAt := time.Now().UTC().Format(time.RFC3339Nano)
		for i := range records {
			r := &records[i]
			var m map[string]any
			if err := json.Unmarshal(r.Data, &m); err != nil {
				b.Fatal(err)
			}
			level, _ := m["level"].(string)
			msg, _ := m["message"].(string)
			if level == "DEBUG" || strings.Contains(msg, "[DEBUG]") {
				continue
			}
			if _, ok := m["password"]; ok {
				m["password"] = "[REDACTED]"
			}
			for k, v := range m {
				if s, ok := v.(string); ok && strings.IndexByte(s, '@') >= 0 {
					m[k] = naiveEmail.ReplaceAllString(s, "[REDACTED]")
				}
			}
			ts := r.Arrival.UTC()
			if s, ok := m["@timestamp"].(string); ok {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					ts = t.UTC()
				}
			}
			seq := r.SequenceNumber
			m["@timestamp"] = ts.Format(time.RFC3339Nano)
			m["team"] = opts.Team
			m["kinesis"] = map[string]any{
				"stream": opts.Stream, "shard_id": shardID, "sequence_number": seq, "sub_sequence": 0,
				"partition_key": r.PartitionKey, "arrival": r.Arrival.UTC().Format(time.RFC3339Nano),
				"read_at": readAt,
			}
			at := Coordinates{ShardID: shardID, SequenceNumber: seq}
			action, err := json.Marshal(map[string]any{"index": map[string]any{"_index": s.index.Format(ts), "_id": ID(opts.Stream, &at, 0, kindDocument)}})
			if err != nil {
				b.Fatal(err)
			}
			source, err := json.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			body.Write(action)
			body.WriteByte('\n')
			body.Write(source)
			body.WriteByte('\n')
			kept++
		}
		return kept
	}
	if kept := run(); kept != benchBatch-6*benchBatch/100 {
		b.Fatalf("kept %d of %d lines, want %d", kept, benchBatch, benchBatch-6*benchBatch/100)
	}
	size := 0
	for _, l := range lines {
		size += len(l)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		run()
	}
	runtime.ReadMemStats(&after)
	reportPer(b, "record", len(records), before, after)
}
