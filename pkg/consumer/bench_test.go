package consumer

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/rules"
)

// The pipeline benchmarks run one GetRecords call's worth of records
// (benchBatch lines, or 100 CloudWatch Logs records) through pipeline.build with testBudget's drop and redact
// rules, then write the bulk body (action line and source per item) into a
// reused buffer, as the sink sends it. One op is one batch; the per-record
// figures are reported as custom metrics that integration/bench reads:
// ns/record, records/s (one goroutine, so per core), B/record, allocs/record.

const benchBatch = 500

// benchArrival is the records' ApproximateArrivalTimestamp.
var benchArrival = time.Date(2024, 5, 14, 9, 21, 34, 0, time.UTC)

// benchPipeline is newPipeline for benchmarks.
func benchPipeline(tb testing.TB, f *budget.File) (*pipeline, *essink.Sink) {
	tb.Helper()
	idx, err := budget.ParseIndexPattern(f.Elasticsearch.Index)
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := rules.Compile(f.Drop, f.Redact)
	if err != nil {
		tb.Fatal(err)
	}
	sink, err := essink.New(essink.Options{URLs: []string{"http://127.0.0.1:1"}, DeadLetterIndex: f.Elasticsearch.DeadLetterIndex, Team: f.Team, Stream: f.Stream})
	if err != nil {
		tb.Fatal(err)
	}
	return &pipeline{team: f.Team, stream: f.Stream, index: idx, rules: rs, decodeOpts: decode.Options{Format: f.Decode}}, sink
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
func kinesisRecords(data [][]byte) []types.Record {
	records := make([]types.Record, len(data))
	for i, d := range data {
		records[i] = types.Record{
			SequenceNumber:              aws.String(fmt.Sprintf("4959033827149025660855969253836157109592157598913%07d", i)),
			PartitionKey:                aws.String(fmt.Sprintf("pk-%d", i%64)),
			ApproximateArrivalTimestamp: aws.Time(benchArrival),
			Data:                        d,
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

// benchBuild runs records through build and the bulk body for b.N batches
// and reports per-unit figures; perOp is the number of units (records, or
// log events) in one batch.
func benchBuild(b *testing.B, f *budget.File, records []types.Record, unit string, perOp int) {
	p, sink := benchPipeline(b, f)
	bt := &batch{dec: decode.New(p.decodeOpts), dropped: map[string]int{}}
	size := 0
	for i := range records {
		size += len(records[i].Data)
	}
	// One batch first: it checks the output and grows the reused buffers
	// to their working size, as a shard's first call does.
	p.build(bt, "shardId-000000000001", records, sink)
	body := appendBulk(nil, bt.items)
	dropped := 0
	for _, n := range bt.dropped {
		dropped += n
	}
	for i, it := range bt.items {
		if it.Reason != "" || !json.Valid(it.Source) {
			b.Fatalf("item %d: reason %q, source %.200s", i, it.Reason, it.Source)
		}
	}
	if len(bt.items)+dropped != perOp {
		b.Fatalf("%d items and %d dropped, want %d %ss", len(bt.items), dropped, perOp, unit)
	}

	b.SetBytes(int64(size))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		p.build(bt, "shardId-000000000001", records, sink)
		body = appendBulk(body[:0], bt.items)
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
	benchBuild(b, testBudget(), kinesisRecords(lines), "record", len(lines))
}

// BenchmarkPipelineCloudWatch: 100 gzip CloudWatch Logs records of 50 log
// events each (5,000 events, 10 times a JSON batch); the figures are per
// log event.
func BenchmarkPipelineCloudWatch(b *testing.B) {
	const records, perRecord = 100, 50
	data := cloudWatchRecords(b, records, perRecord)
	benchBuild(b, testBudget(), kinesisRecords(data), "event", records*perRecord)
}

// BenchmarkPipelineText: 500 plain-text lines of about 512 bytes, decode text.
func BenchmarkPipelineText(b *testing.B) {
	f := testBudget()
	f.Decode = budget.DecodeText
	lines := textLines(benchBatch, 512)
	benchBuild(b, f, kinesisRecords(lines), "record", len(lines))
}

// naiveEmail is how a naive implementation finds e-mail addresses.
var naiveEmail = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)

// BenchmarkNaiveJSON is the baseline BenchmarkPipelineJSON is measured
// against, on the same lines: the same work done the obvious way, with
// encoding/json into a map[string]any and back. It drops and redacts as
// testBudget does, adds @timestamp, team and kinesis, and writes the same
// bulk body (the index name and _id come from the same helpers).
func BenchmarkNaiveJSON(b *testing.B) {
	f := testBudget()
	p, _ := benchPipeline(b, f)
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
			ts := aws.ToTime(r.ApproximateArrivalTimestamp).UTC()
			if s, ok := m["@timestamp"].(string); ok {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					ts = t.UTC()
				}
			}
			seq := aws.ToString(r.SequenceNumber)
			m["@timestamp"] = ts.Format(time.RFC3339Nano)
			m["team"] = f.Team
			m["kinesis"] = map[string]any{
				"stream": f.Stream, "shard_id": shardID, "sequence_number": seq, "sub_sequence": 0,
				"partition_key": aws.ToString(r.PartitionKey), "arrival": aws.ToTime(r.ApproximateArrivalTimestamp).UTC().Format(time.RFC3339Nano),
				"read_at": readAt,
			}
			action, err := json.Marshal(map[string]any{"index": map[string]any{"_index": p.index.Format(ts), "_id": docID(f.Stream, shardID, seq, 0, 0)}})
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

// BenchmarkBudgetAccuracy runs the real pacer on a virtual clock against an
// unlimited source: every GetRecords call returns a full batch of
// maxRecords at once. All shards of a team run in one loop on a shared
// clock (the shard whose next call is due first goes next), for 5 minutes
// of virtual time. Records are counted in 30 s windows by the time their
// call returned; the first window (which holds the free first burst) is
// left out. It reports the largest and smallest window's observed/budget,
// where budget is the team's recordsPerSecond. An op is one simulation.
//
// Shards start one after another, spread over one call interval, as leases
// are taken one at a time and each processor polls on its own clock. The
// aligned-* metrics are the worst case where every shard's calls land on
// the same instants: a window then holds a whole batch more or less of
// every shard at once.
func BenchmarkBudgetAccuracy(b *testing.B) {
	for _, shards := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			for _, perSecond := range []int{100, 333, 1000, 5000, 20000} {
				bud := budget.Budget{RecordsPerSecond: perSecond, PollInterval: time.Second}
				if perSecond/shards > budget.MaxRecordsPerCall {
					// Over 10,000 records per call: a budget file must
					// poll more often (lint says so), and so does this.
					bud.PollInterval = 500 * time.Millisecond
				}
				b.Run(fmt.Sprintf("budget=%d", perSecond), func(b *testing.B) {
					var acc, aligned accuracy
					for b.Loop() {
						acc = simulateBudget(bud, shards, 5*time.Minute, 30*time.Second, true)
					}
					aligned = simulateBudget(bud, shards, 5*time.Minute, 30*time.Second, false)
					b.ReportMetric(acc.max, "max-ratio")
					b.ReportMetric(acc.min, "min-ratio")
					b.ReportMetric(aligned.max, "aligned-max-ratio")
					b.ReportMetric(aligned.min, "aligned-min-ratio")
					// What the rounding of recordsPerSecond into a whole
					// maxRecords per shard leaves of the budget.
					b.ReportMetric(bud.TeamRate(shards)/float64(perSecond), "configured-ratio")
				})
			}
		})
	}
}

type accuracy struct{ min, max float64 }

// simulateBudget runs shards pacers for d of virtual time and returns the
// extremes of delivered/budget over the windows after the first. With
// stagger, shard i makes its first call i/shards of a call interval after
// the first shard.
func simulateBudget(bud budget.Budget, shards int, d, window time.Duration, stagger bool) accuracy {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	start := clk.t
	type shard struct {
		p    *pacer
		next time.Time // when its next GetRecords call returns
	}
	n := bud.MaxRecordsFor(shards)
	interval := time.Duration(float64(n) / bud.ShardRate(shards) * float64(time.Second))
	ss := make([]shard, shards)
	for i := range ss {
		p := newPacer(bud.ShardRate(shards), n, bud.MaxBytesPerSecond, clk.now)
		p.sleep = clk.sleep
		ss[i] = shard{p: p, next: start}
		if stagger {
			ss[i].next = start.Add(interval * time.Duration(i) / time.Duration(shards))
		}
	}
	counts := make([]int, int(d/window))
	ctx := context.Background()
	for {
		s := &ss[0]
		for i := range ss {
			if ss[i].next.Before(s.next) {
				s = &ss[i]
			}
		}
		w := int(s.next.Sub(start) / window)
		if w >= len(counts) {
			break
		}
		clk.t = s.next
		counts[w] += n // the call returned a full batch
		s.p.setRate(bud.ShardRate(shards), n, bud.PollInterval)
		if _, err := s.p.wait(ctx, n, 0); err != nil {
			panic(err)
		}
		s.next = clk.t
	}
	acc := accuracy{min: 1e9}
	want := float64(bud.RecordsPerSecond) * window.Seconds()
	for _, c := range counts[1:] {
		r := float64(c) / want
		acc.min, acc.max = min(acc.min, r), max(acc.max, r)
	}
	return acc
}
