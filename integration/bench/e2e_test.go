//go:build integration

// End-to-end figures on the local stack (kinesalite, dynalite, the search
// server), run by `make bench`: each Benchmark runs its scenario once and
// writes its figures to $STACK_DIR/bench/<name>.figures.json, which
// benchreport merges into the table. They measure; they assert nothing.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/olivere/elastic/v7"

	"github.com/streambudget/streambudget/integration/bench/report"
	h "github.com/streambudget/streambudget/integration/harness"
)

func writeFigures(b *testing.B, name string, figs []report.Figure) {
	b.Helper()
	dir := filepath.Join(os.Getenv("STACK_DIR"), "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	data, err := json.MarshalIndent(figs, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".figures.json"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, f := range figs {
		b.Logf("%s: %.3g %s (target %s)", f.Figure, f.Value, f.Unit, f.Target)
	}
}

func pass(ok bool) *bool { return &ok }

// cpuSeconds is a process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; USER_HZ is 100 on Linux
}

// BenchmarkEndToEnd: a budget far above what the stack can do, so the
// stack's own limit shows. Measured in the same run: a bare GetRecords loop
// over the same records, and bare Bulk() calls indexing them.
func BenchmarkEndToEnd(b *testing.B) {
	env := h.Load(b)
	kc := env.Kinesis(b, env.Kinesalite)
	const shards, n = 4, 40000
	stream := h.Unique("e2e")
	h.CreateStream(b, kc, stream, shards)
	recs := make([]h.Record, n)
	pad := strings.Repeat("x", 380)
	for i := range recs {
		recs[i] = h.Record{ID: fmt.Sprint(i), Key: fmt.Sprint(i % 64), Data: fmt.Appendf(nil,
			`{"@timestamp":"2026-01-02T03:04:05Z","level":"INFO","service":"api","id":"%s-%d","message":"handled request %d %s"}`, stream, i, i, pad)}
	}
	h.Put(b, kc, stream, recs)

	// Bare GetRecords, one goroutine per shard, as fast as the emulator goes.
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for s := 0; s < shards; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it, err := kc.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
				ShardId: aws.String(fmt.Sprintf("shardId-%012d", s)), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				b.Error(err)
				return
			}
			iter := it.ShardIterator
			for {
				out, err := kc.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				got += len(out.Records)
				mu.Unlock()
				if len(out.Records) == 0 {
					return
				}
				iter = out.NextShardIterator
			}
		}()
	}
	wg.Wait()
	bareGet := float64(got) / time.Since(start).Seconds()

	// Bare Bulk(): the same documents, 1000 per request, 4 at a time.
	client, err := elastic.NewSimpleClient(elastic.SetURL(env.ESURL), elastic.SetSniff(false), elastic.SetHealthcheck(false))
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	work := make(chan []h.Record)
	for w := 0; w < shards; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for chunk := range work {
				svc := client.Bulk()
				for _, r := range chunk {
					svc.Add(elastic.NewBulkIndexRequest().Index("bench-bare").Doc(json.RawMessage(r.Data)))
				}
				if _, err := svc.Do(context.Background()); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 0; i < n; i += 1000 {
		work <- recs[i:min(i+1000, n)]
	}
	close(work)
	wg.Wait()
	bareBulk := float64(n) / time.Since(start).Seconds()

	// streambudget with a budget of 10,000 records per 200ms call per shard.
	budget := h.Budget(b, stream, stream, shards, "maxRecords: 10000\npollInterval: 200ms", "")
	c := env.StartConsumer(b, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	var first time.Time
	var cpu0 float64
	var last time.Time
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		m, err := c.Metrics()
		if err != nil {
			continue
		}
		read, indexed := h.Sum(m, "streambudget_shard_records_read_total"), h.Sum(m, "streambudget_sink_indexed_total")
		if first.IsZero() && read > 0 {
			first, cpu0 = time.Now(), cpuSeconds(c.PID())
		}
		if indexed >= n {
			last = time.Now()
			break
		}
	}
	if last.IsZero() {
		b.Fatal("streambudget did not index all records within 5 minutes")
	}
	rate := n / last.Sub(first).Seconds()
	cpu := (cpuSeconds(c.PID()) - cpu0) / n * 100000
	limit := math.Min(bareGet, bareBulk)
	peak, err := h.PeakRSS(c.PID())
	if err != nil {
		b.Fatal(err)
	}
	writeFigures(b, "e2e", []report.Figure{
		{Figure: "end to end: streambudget throughput", Value: rate, Unit: "records/s", Note: fmt.Sprintf("%d records of 512 B over %d shards, budget above capacity", n, shards)},
		{Figure: "end to end: bare GetRecords loop", Value: bareGet, Unit: "records/s"},
		{Figure: "end to end: bare Bulk() calls", Value: bareBulk, Unit: "records/s"},
		{Figure: "end to end: share of the stack's limit", Value: rate / limit, Unit: "ratio", Target: ">= 0.80", Pass: pass(rate/limit >= 0.8)},
		{Figure: "end to end: CPU per 100,000 records", Value: cpu, Unit: "CPU s", Note: "streambudget process alone"},
		{Figure: "end to end: peak RSS", Value: float64(peak) / (1 << 20), Unit: "MiB"},
	})
}

// BenchmarkOutageMemory: RSS every second over a sink outage with a growing
// backlog (5 minutes; 10 with BENCH_LONG=1).
func BenchmarkOutageMemory(b *testing.B) {
	env := h.Load(b)
	kc := env.Kinesis(b, env.Kinesalite)
	stream := h.Unique("outage")
	h.CreateStream(b, kc, stream, 2)
	budget := h.Budget(b, stream, stream, 2, "maxRecords: 200\npollInterval: 1s", "")
	c := env.StartConsumer(b, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	outage := 5 * time.Minute
	if os.Getenv("BENCH_LONG") == "1" {
		outage = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // 200 records/s, all through the outage: the backlog grows
		for i := 0; ctx.Err() == nil; i++ {
			_ = h.PutErr(ctx, kc, stream, h.Records(fmt.Sprint(stream, "-", i), 200, 20))
			time.Sleep(time.Second)
		}
	}()
	time.Sleep(20 * time.Second)
	h.StopServer(b, "victorialogs")
	defer h.StartServer(b, "victorialogs")
	lo, hi := int64(math.MaxInt64), int64(0)
	for end := time.Now().Add(outage); time.Now().Before(end); time.Sleep(time.Second) {
		r, err := h.RSS(c.PID())
		if err != nil {
			b.Fatal(err)
		}
		lo, hi = min(lo, r), max(hi, r)
	}
	ratio := float64(hi) / float64(lo)
	writeFigures(b, "outage", []report.Figure{
		{Figure: fmt.Sprintf("memory over a %s sink outage: max/min RSS", outage), Value: ratio, Unit: "ratio", Target: "<= 1.10", Pass: pass(ratio <= 1.10),
			Note: fmt.Sprintf("RSS %d-%d KiB, backlog growing at 200 records/s", lo>>10, hi>>10)},
	})
}

// BenchmarkStartup: seconds from process start until one pod owns all 16
// shards of a 16-shard stream, and until two pods hold 8 each.
func BenchmarkStartup(b *testing.B) {
	env := h.Load(b)
	kc := env.Kinesis(b, env.Kinesalite)
	owned := func(c *h.Consumer) float64 {
		m, err := c.Metrics()
		if err != nil {
			return 0
		}
		return h.Sum(m, "streambudget_consumer_shards_owned")
	}
	wait := func(cond func() bool) float64 {
		start := time.Now()
		for time.Since(start) < 3*time.Minute && !cond() {
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start).Seconds()
	}
	one := h.Unique("start1")
	h.CreateStream(b, kc, one, 16)
	start := time.Now()
	c := env.StartConsumer(b, h.ConsumerOptions{Budget: h.Budget(b, one, one, 16, "maxRecords: 100", ""), Kinesis: env.Kinesalite})
	wait(func() bool { return owned(c) == 16 })
	single := time.Since(start).Seconds()
	c.Kill()

	two := h.Unique("start2")
	h.CreateStream(b, kc, two, 16)
	budget := h.Budget(b, two, two, 16, "maxRecords: 100", "")
	start = time.Now()
	x := env.StartConsumer(b, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-a"})
	y := env.StartConsumer(b, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-b"})
	wait(func() bool { return owned(x) == 8 && owned(y) == 8 })
	pair := time.Since(start).Seconds()
	writeFigures(b, "startup", []report.Figure{
		{Figure: "start-up: one pod owns all 16 shards", Value: single, Unit: "s", Target: "< 20", Pass: pass(single < 20)},
		{Figure: "start-up: two pods hold 8 shards each", Value: pair, Unit: "s", Target: "< 40", Pass: pass(pair < 40)},
	})
}

// BenchmarkDrainPrediction: a team at three times its budget for 30 s,
// then quiet: the first drain ETA the advice gives after the spike stops,
// against the drain time measured from that moment.
func BenchmarkDrainPrediction(b *testing.B) {
	env := h.Load(b)
	kc := env.Kinesis(b, env.Kinesalite)
	stream := h.Unique("drain")
	h.CreateStream(b, kc, stream, 2)
	budget := h.Budget(b, stream, stream, 2, "maxRecords: 50\npollInterval: 1s", "")
	c := env.StartConsumer(b, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	time.Sleep(5 * time.Second)
	s := c.Sample(500 * time.Millisecond)
	recs := h.Records(stream, 300*30, 20)
	start := time.Now()
	for i := 0; i < 30; i++ {
		h.Put(b, kc, stream, recs[i*300:(i+1)*300])
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second)))
	}
	stopped := time.Now()
	var eta float64
	var etaAt, drained time.Time
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline) && drained.IsZero(); time.Sleep(500 * time.Millisecond) {
		m, err := c.Metrics()
		if err != nil {
			continue
		}
		if etaAt.IsZero() && h.Sum(m, "streambudget_advice", `action="draining"`) == 1 {
			etaAt, eta = time.Now(), h.Sum(m, "streambudget_team_drain_eta_seconds")
		}
		if h.Sum(m, "streambudget_shard_records_read_total") >= float64(len(recs)) {
			drained = time.Now()
		}
	}
	s.Stop()
	if etaAt.IsZero() || drained.IsZero() {
		b.Fatal("no drain ETA or the backlog did not drain")
	}
	measured := drained.Sub(etaAt).Seconds()
	errShare := math.Abs(eta-measured) / measured
	writeFigures(b, "drain", []report.Figure{
		{Figure: "drain prediction: |ETA - measured| / measured", Value: errShare, Unit: "ratio", Target: "<= 0.10", Pass: pass(errShare <= 0.10),
			Note: fmt.Sprintf("ETA %.1fs given %.1fs after the spike stopped, measured %.1fs", eta, etaAt.Sub(stopped).Seconds(), measured)},
	})
}
