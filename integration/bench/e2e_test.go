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
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/olivere/elastic/v7"
	"golang.org/x/time/rate"

	"github.com/streambudget/streambudget/integration/bench/report"
	h "github.com/streambudget/streambudget/integration/harness"
	sbkinesis "github.com/streambudget/streambudget/pkg/kinesis"
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
//
// The bare loop keeps to the read limits Kinesis sets on every shard (five
// calls a second; 2 MB/s, a 10 MB call then cooling off for 5 s) as the
// KCL library does and as real Kinesis would force it to; the emulator does
// not enforce them, so its raw speed is reported beside it, not used as the
// limit. A run of a few seconds on two shared cores is noisy, so the three
// measurements are made in each of e2eRounds rounds over the same records
// (streambudget under a new application name each time, so from the
// oldest record), and the figures are the medians; the share is the median
// of each round's share.
func BenchmarkEndToEnd(b *testing.B) {
	env := h.Load(b)
	kc := env.Kinesis(b, env.Kinesalite)
	const shards, n, e2eRounds = 4, 120000, 3
	stream := h.Unique("e2e")
	h.CreateStream(b, kc, stream, shards)
	recs := make([]h.Record, n)
	pad := strings.Repeat("x", 380)
	for i := range recs {
		recs[i] = h.Record{ID: fmt.Sprint(i), Key: fmt.Sprint(i % 64), Data: fmt.Appendf(nil,
			`{"@timestamp":"2026-01-02T03:04:05Z","level":"INFO","service":"api","id":"%s-%d","message":"handled request %d %s"}`, stream, i, i, pad)}
	}
	h.Put(b, kc, stream, recs)
	// The bare loop decodes answers as streambudget does, so that what it
	// measures is the stack, not the SDK's slower decoder.
	fast := kinesis.New(kc.Options(), func(o *kinesis.Options) { o.APIOptions = append(o.APIOptions, sbkinesis.FastGetRecords) })
	client, err := elastic.NewSimpleClient(elastic.SetURL(env.ESURL), elastic.SetSniff(false), elastic.SetHealthcheck(false))
	if err != nil {
		b.Fatal(err)
	}
	budget := h.Budget(b, stream, stream, shards, "maxRecords: 2000\npollInterval: 200ms", "")

	var bareGet, rawGet, bareBulk, bareBoth, rate, share, ownShare, cpu []float64
	cores := make([][]float64, 1+len(stackServers))
	var peak int64
	for round := range e2eRounds {
		bareGet = append(bareGet, bareGetRecords(b, fast, stream, shards, true))
		rawGet = append(rawGet, bareGetRecords(b, fast, stream, shards, false))
		bareBulk = append(bareBulk, bareBulkCalls(b, client, recs, shards))
		bareBoth = append(bareBoth, bareConsumer(b, fast, client, stream, shards))
		profile := "" // the first round's CPU profile, for the top entries
		if round == 0 {
			profile = filepath.Join(os.Getenv("STACK_DIR"), "bench", "e2e-cpu.pb.gz")
		}
		run := streambudgetRun(b, env, budget, fmt.Sprintf("%s-%d", stream, round), n, profile)
		rate, cpu, peak = append(rate, run.rate), append(cpu, run.cpu), max(peak, run.peak)
		share = append(share, run.rate/math.Min(bareGet[round], bareBulk[round]))
		ownShare = append(ownShare, run.rate/bareBoth[round])
		for i, c := range run.cores {
			cores[i] = append(cores[i], c)
		}
	}
	spread := func(v []float64) string {
		return fmt.Sprintf("median of %d rounds (%.0f to %.0f)", len(v), slices.Min(v), slices.Max(v))
	}
	writeFigures(b, "e2e", []report.Figure{
		{Figure: "end to end: streambudget throughput", Value: median(rate), Unit: "records/s",
			Note: fmt.Sprintf("%d records of 512 B over %d shards, budget above capacity, between 10%% and 90%% indexed; %s", n, shards, spread(rate))},
		{Figure: "end to end: bare GetRecords loop", Value: median(bareGet), Unit: "records/s", Note: "keeping to Kinesis's per-shard read limits; " + spread(bareGet)},
		{Figure: "end to end: bare GetRecords loop, emulator's raw speed", Value: median(rawGet), Unit: "records/s",
			Note: "ignoring the read limits, as the emulator allows; not a limit real Kinesis reaches; " + spread(rawGet)},
		{Figure: "end to end: bare Bulk() calls", Value: median(bareBulk), Unit: "records/s", Note: spread(bareBulk)},
		{Figure: "end to end: share of the stack's limit", Value: median(share), Unit: "ratio", Target: ">= 0.80", Pass: pass(median(share) >= 0.8),
			Note: fmt.Sprintf("against the slower of the bare loop (with Kinesis's limits) and bare Bulk() in the same round; median of %d rounds (%.2f to %.2f)",
				len(share), slices.Min(share), slices.Max(share))},
		{Figure: "end to end: bare consumer, GetRecords then Bulk() shard by shard", Value: median(bareBoth), Unit: "records/s",
			Note: "both stages at once on the same cores, as streambudget runs them, with nothing between: " + spread(bareBoth)},
		{Figure: "end to end: share of the bare consumer", Value: median(ownShare), Unit: "ratio",
			Note: fmt.Sprintf("what decoding, rules, enrichment, pacing and checkpoints cost; median of %d rounds (%.2f to %.2f)", len(ownShare), slices.Min(ownShare), slices.Max(ownShare))},
		{Figure: "end to end: CPU per 100,000 records", Value: median(cpu), Unit: "CPU s", Note: "streambudget process alone"},
		{Figure: "end to end: peak RSS", Value: float64(peak) / (1 << 20), Unit: "MiB"},
		{Figure: "end to end: kinesalite's CPU while streambudget reads", Value: median(cores[1]), Unit: "cores",
			Note: fmt.Sprintf("one Node.js thread: 1 core is its limit; victorialogs %.2f, dynalite %.2f, streambudget %.2f cores (medians); 2 cores in all",
				median(cores[2]), median(cores[3]), median(cores[0]))},
	})
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bareConsumer reads every shard from the oldest record, 2,000 records per
// call within Kinesis's read limits, and indexes each batch as it is with
// one Bulk() call before reading on: streambudget's reads and writes, shard
// by shard as the KCL library runs them, with nothing in between. It
// returns records/s.
func bareConsumer(b *testing.B, kc *kinesis.Client, client *elastic.Client, stream string, shards int) float64 {
	return readShards(b, kc, stream, shards, 2000, true, func(recs []types.Record) error {
		svc := client.Bulk()
		for _, r := range recs {
			svc.Add(elastic.NewBulkIndexRequest().Index("bench-bare").Doc(json.RawMessage(r.Data)))
		}
		_, err := svc.Do(context.Background())
		return err
	})
}

// bareBulkCalls indexes the records as they are with bare Bulk() calls,
// 1,000 documents per request, one worker per shard, and returns records/s.
func bareBulkCalls(b *testing.B, client *elastic.Client, recs []h.Record, workers int) float64 {
	b.Helper()
	start := time.Now()
	work := make(chan []h.Record)
	var wg sync.WaitGroup
	for range workers {
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
	for i := 0; i < len(recs); i += 1000 {
		work <- recs[i:min(i+1000, len(recs))]
	}
	close(work)
	wg.Wait()
	return float64(len(recs)) / time.Since(start).Seconds()
}

// streambudgetRun reads the stream from its oldest record with a consumer
// under a new application name, 2,000 records per call and five calls a
// second per shard (the most Kinesis allows: a budget of 40,000 records/s,
// above what the stack does), until n records are indexed. It returns the
// rate between 10% and 90% indexed (lease taking at start and the last
// batches do not count), the CPU seconds per 100,000 records over the same
// span, and the peak RSS. /metrics is read every 200 ms (more often would
// take CPU from the stack) and the moments the count crossed 10% and 90% are
// interpolated. With profile set, a 3 s CPU profile taken from 10% on is
// written there.
func streambudgetRun(b *testing.B, env *h.Env, budget, application string, n float64, profile string) (run e2eRun) {
	b.Helper()
	// Straight to the search server, as the bare Bulk() calls it is
	// compared with: the harness's Elasticsearch 8 proxy would cost time of
	// its own.
	c := env.StartConsumer(b, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, ES: env.ESURL, Args: []string{"--application", application, "--pprof"}})
	defer c.Kill()
	var profiled sync.WaitGroup
	defer profiled.Wait()
	// CPU seconds of streambudget and of each server, to tell where the
	// limit lies.
	pids := []int{c.PID()}
	for _, name := range stackServers {
		pids = append(pids, serverPID(b, name))
	}
	type sample struct {
		at      time.Time
		indexed float64
		cpu     []float64
	}
	var prev, s10, s90 sample
	crossed := func(at float64, a, z sample) sample {
		f := (at - a.indexed) / (z.indexed - a.indexed)
		x := sample{at: a.at.Add(time.Duration(f * float64(z.at.Sub(a.at)))), indexed: at}
		for i := range a.cpu {
			x.cpu = append(x.cpu, a.cpu[i]+f*(z.cpu[i]-a.cpu[i]))
		}
		return x
	}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline) && s90.at.IsZero(); time.Sleep(200 * time.Millisecond) {
		m, err := c.Metrics()
		if err != nil {
			continue
		}
		cur := sample{at: time.Now(), indexed: h.Sum(m, "streambudget_sink_indexed_total")}
		for _, pid := range pids {
			cur.cpu = append(cur.cpu, cpuSeconds(pid))
		}
		if s10.at.IsZero() && cur.indexed >= n/10 && !prev.at.IsZero() {
			s10 = crossed(n/10, prev, cur)
			if profile != "" {
				profiled.Add(1)
				go func() {
					defer profiled.Done()
					savePprof(b, c, "profile?seconds=3", profile)
				}()
			}
		}
		if !s10.at.IsZero() && cur.indexed >= n*9/10 {
			s90 = crossed(n*9/10, prev, cur)
		}
		prev = cur
	}
	if s90.at.IsZero() {
		b.Fatal("streambudget did not index 90% of the records within 5 minutes")
	}
	peak, err := h.PeakRSS(c.PID())
	if err != nil {
		b.Fatal(err)
	}
	secs := s90.at.Sub(s10.at).Seconds()
	run = e2eRun{rate: (s90.indexed - s10.indexed) / secs, cpu: (s90.cpu[0] - s10.cpu[0]) / (s90.indexed - s10.indexed) * 100000, peak: peak}
	for i := range pids {
		run.cores = append(run.cores, (s90.cpu[i]-s10.cpu[i])/secs)
	}
	return run
}

// e2eRun is one streambudget run: records/s, CPU seconds per 100,000
// records, peak RSS, and the cores used by streambudget and each of
// stackServers over the measured span.
type e2eRun struct {
	rate, cpu float64
	peak      int64
	cores     []float64
}

var stackServers = []string{"kinesalite", "victorialogs", "dynalite"}

func serverPID(b *testing.B, name string) int {
	data, err := os.ReadFile(filepath.Join(os.Getenv("STACK_DIR"), "run", name+".pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		b.Fatalf("%s.pid: %v", name, err)
	}
	return pid
}

// bareGetRecords reads every shard of stream from the oldest record to the
// tip, 10,000 records per call, and returns records/s; with limits, within
// Kinesis's per-shard read limits.
func bareGetRecords(b *testing.B, kc *kinesis.Client, stream string, shards int, limits bool) float64 {
	return readShards(b, kc, stream, shards, 10000, limits, func([]types.Record) error { return nil })
}

// readShards reads every shard of stream from the oldest record to the tip,
// one goroutine per shard, limit records per call, handing each page to
// page before the next call, and returns records/s up to the last page
// handled. With limits it keeps to Kinesis's per-shard read limits: five
// calls a second, and after a call of B bytes no call until 2 MB/s has paid
// for them (up to 10 MB in advance, as the service allows one 10 MB call).
func readShards(b *testing.B, kc *kinesis.Client, stream string, shards int, limit int32, limits bool, page func([]types.Record) error) float64 {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	var last time.Time // when the last page was handled
	for s := 0; s < shards; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls, bytes := rate.NewLimiter(5, 1), rate.NewLimiter(2e6, 10e6)
			it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
				ShardId: aws.String(fmt.Sprintf("shardId-%012d", s)), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				b.Error(err)
				return
			}
			for iter := it.ShardIterator; ; {
				if limits {
					if err := calls.Wait(ctx); err != nil {
						b.Error(err)
						return
					}
				}
				out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(limit)})
				if err != nil {
					b.Error(err)
					return
				}
				if len(out.Records) == 0 {
					return
				}
				if err := page(out.Records); err != nil {
					b.Error(err)
					return
				}
				size := 0
				for _, r := range out.Records {
					size += len(r.Data)
				}
				mu.Lock()
				got += len(out.Records)
				last = time.Now()
				mu.Unlock()
				if limits {
					time.Sleep(bytes.ReserveN(time.Now(), min(size, bytes.Burst())).Delay())
				}
				iter = out.NextShardIterator
			}
		}()
	}
	wg.Wait()
	return float64(got) / last.Sub(start).Seconds()
}

// BenchmarkOutageMemory: RSS every second over a sink outage with a growing
// backlog (5 minutes; 10 with BENCH_LONG=1). Beside the figure it writes the
// timeline (RSS, its anonymous and file-backed parts, the Go heap:
// outage.csv) and heap profiles taken just before the outage and at its end
// (outage-heap-{start,end}.pb.gz), so that growth can be traced:
// go tool pprof -base start end.
func BenchmarkOutageMemory(b *testing.B) {
	env := h.Load(b)
	kc := env.Kinesis(b, env.Kinesalite)
	stream := h.Unique("outage")
	h.CreateStream(b, kc, stream, 2)
	budget := h.Budget(b, stream, stream, 2, "maxRecords: 200\npollInterval: 1s", "")
	c := env.StartConsumer(b, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, Args: []string{"--pprof"}})
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
	// The first profile before the outage: writing one pages in code and
	// symbol tables (about 1 MiB of RSS), which would count as growth.
	dir := filepath.Join(os.Getenv("STACK_DIR"), "bench")
	saveHeap(b, c, filepath.Join(dir, "outage-heap-start.pb.gz"))
	env.ES.SetDown(true)
	defer env.ES.SetDown(false)
	var csv strings.Builder
	csv.WriteString("second,rss_kib,rss_anon_kib,rss_file_kib,heap_inuse_kib,heap_alloc_kib,stack_inuse_kib,gc_cycles,backlog_records\n")
	lo, hi := int64(math.MaxInt64), int64(0)
	lo10, hi10 := lo, hi // from the 10th second on
	heapLo, heapHi := math.Inf(1), 0.0
	start := time.Now()
	for i := 0; time.Since(start) < outage; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second)))
		r, err := h.RSS(c.PID())
		if err != nil {
			b.Fatal(err)
		}
		lo, hi = min(lo, r), max(hi, r)
		if i >= 10 {
			lo10, hi10 = min(lo10, r), max(hi10, r)
		}
		anon, file, _ := h.RSSParts(c.PID())
		fmt.Fprintf(&csv, "%d,%d,%d,%d", i, r>>10, anon>>10, file>>10)
		if i%10 != 0 { // /metrics every 10 s, about as often as Prometheus would
			csv.WriteString(",,,,,\n")
			continue
		}
		m, _ := c.Metrics()
		heap := h.Sum(m, "go_memstats_heap_inuse_bytes")
		heapLo, heapHi = min(heapLo, heap), max(heapHi, heap)
		fmt.Fprintf(&csv, ",%.0f,%.0f,%.0f,%.0f,%.0f\n",
			heap/1024, h.Sum(m, "go_memstats_heap_alloc_bytes")/1024,
			h.Sum(m, "go_memstats_stack_inuse_bytes")/1024, h.Sum(m, "go_gc_duration_seconds_count"),
			h.Sum(m, "streambudget_team_backlog_records"))
	}
	saveHeap(b, c, filepath.Join(dir, "outage-heap-end.pb.gz"))
	if err := os.WriteFile(filepath.Join(dir, "outage.csv"), []byte(csv.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	ratio := float64(hi) / float64(lo)
	writeFigures(b, "outage", []report.Figure{
		{Figure: fmt.Sprintf("memory over a %s sink outage: max/min RSS", outage), Value: ratio, Unit: "ratio", Target: "<= 1.10", Pass: pass(ratio <= 1.10),
			Note: fmt.Sprintf("RSS %d-%d KiB (from the 10th second on %d-%d, %.2f); Go heap in use %.1f-%.1f MiB; backlog growing at 200 records/s; timeline in outage.csv",
				lo>>10, hi>>10, lo10>>10, hi10>>10, float64(hi10)/float64(lo10), heapLo/(1<<20), heapHi/(1<<20))},
	})
}

// saveHeap writes the consumer's heap profile (after a GC) to path.
func saveHeap(b *testing.B, c *h.Consumer, path string) { savePprof(b, c, "heap?gc=1", path) }

// savePprof writes one of the consumer's /debug/pprof/ profiles to path.
func savePprof(b *testing.B, c *h.Consumer, profile, path string) {
	resp, err := http.Get("http://" + c.Addr + "/debug/pprof/" + profile)
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		b.Errorf("profile %s: %v", profile, err)
	}
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
