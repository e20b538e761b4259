//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	h "github.com/streambudget/streambudget/integration/harness"
)

// The fault scenarios: each produces records with unique ids and checks
// that every id is indexed (exactly once where the server de-duplicates by
// _id; on VictoriaLogs, which keeps replays, duplicates are bounded by what
// was read but not yet confirmed when the fault hit).

// trickle writes recs at rate records/s in the background; the returned
// function waits for it to finish and fails t on a put error.
func trickle(t *testing.T, kc *kinesis.Client, stream string, recs []h.Record, rate int) func() {
	t.Helper()
	var wg sync.WaitGroup
	var putErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		step := max(rate/10, 1)
		for i := 0; i < len(recs); i += step {
			if err := h.PutErr(context.Background(), kc, stream, recs[i:min(i+step, len(recs))]); err != nil {
				putErr = err
				return
			}
			time.Sleep(time.Until(start.Add(time.Duration(i+step) * time.Second / time.Duration(rate))))
		}
	}()
	return func() {
		wg.Wait()
		if putErr != nil {
			t.Fatal(putErr)
		}
	}
}

func dupBound(t *testing.T, env *h.Env, shards, maxRecords int) int {
	if env.Search.Dedups() {
		return 0
	}
	// Read but not confirmed when the fault hit: one batch per shard, and
	// the previous one if its checkpoint had not landed.
	return 2 * shards * maxRecords
}

// TestKillMidBulk: SIGKILL while bulk requests are in flight, then a new
// pod: no id missing, duplicates bounded by the unconfirmed window.
func TestKillMidBulk(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("kill")
	h.CreateStream(t, kc, team, 2)
	recs := h.Records(team, 4000, 20)
	h.Put(t, kc, team, recs)
	budget := h.Budget(t, team, team, 2, "maxRecords: 200\npollInterval: 1s", "")
	first := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-a"})
	h.Eventually(t, 30*time.Second, "reading under way", func() (bool, string) {
		m, err := first.Metrics()
		if err != nil {
			return false, err.Error()
		}
		n := h.Sum(m, "streambudget_sink_indexed_total")
		return n >= 600, fmt.Sprintf("%v indexed", n)
	})
	first.Kill()
	env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-b"})
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	exactlyOnce(t, counts, recs, dupBound(t, env, 2, 200))
	dups := 0
	for _, n := range counts {
		dups += n - 1
	}
	t.Logf("SIGKILL mid-run: %d records, %d missing, %d duplicated (bound %d)", len(recs), 0, dups, dupBound(t, env, 2, 200))
}

// TestTermWhileSinkRetries: SIGTERM while the search server is down and the
// sink retries: the pod exits within the shutdown timeout and checkpoints
// nothing it could not index, so a later pod indexes everything.
func TestTermWhileSinkRetries(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("term")
	h.CreateStream(t, kc, team, 2)
	budget := h.Budget(t, team, team, 2, "maxRecords: 100\npollInterval: 1s", "")
	first := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-a", Args: []string{"--shutdown-timeout", "10s"}})
	h.Eventually(t, 30*time.Second, "both shards owned", func() (bool, string) {
		m, err := first.Metrics()
		if err != nil {
			return false, err.Error()
		}
		return h.Sum(m, "streambudget_consumer_shards_owned") == 2, "not yet"
	})
	env.ES.SetDown(true)
	recs := h.Records(team, 600, 20)
	h.Put(t, kc, team, recs)
	h.Eventually(t, 30*time.Second, "sink retrying", func() (bool, string) {
		m, err := first.Metrics()
		if err != nil {
			return false, err.Error()
		}
		n := h.Sum(m, "streambudget_sink_retries_total")
		return n >= 3, fmt.Sprintf("%v retries", n)
	})
	took, err := first.Stop(15 * time.Second)
	if err != nil {
		t.Fatalf("SIGTERM while retrying: %v", err)
	}
	if took > 11*time.Second {
		t.Errorf("took %s to exit, want within the 10s shutdown timeout", took)
	}
	env.ES.SetDown(false)
	env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-b"})
	counts := waitIndexed(t, env, team, recs, 90*time.Second)
	exactlyOnce(t, counts, recs, 0)
	t.Logf("SIGTERM while the sink retried: exited in %s; all %d records indexed by the next pod", took.Round(100*time.Millisecond), len(recs))
}

// TestSearchOutage: the search server is down for 40 s while records keep
// arriving; all are indexed afterwards and the pod's memory stays flat.
func TestSearchOutage(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("outage")
	h.CreateStream(t, kc, team, 2)
	budget := h.Budget(t, team, team, 2, "maxRecords: 250\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	recs := h.Records(team, 100*60, 20) // 100/s for 60 s
	done := trickle(t, kc, team, recs, 100)

	rss := func() int64 {
		n, err := h.RSS(c.PID())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Warm up until the first records are indexed, then measure the level
	// before for 5 s.
	waitIndexed(t, env, team, recs[:200], 30*time.Second)
	var before int64
	for i := 0; i < 5; i++ {
		before = max(before, rss())
		time.Sleep(time.Second)
	}
	env.ES.SetDown(true)
	var during []int64
	for i := 0; i < 40; i++ {
		during = append(during, rss())
		time.Sleep(time.Second)
	}
	env.ES.SetDown(false)
	done()
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	after := rss()
	exactlyOnce(t, counts, recs, 0)
	sort.Slice(during, func(i, j int) bool { return during[i] < during[j] })
	peak := during[len(during)-1]
	if float64(peak) > 1.2*float64(before) {
		t.Errorf("RSS rose from %d to %d KiB during the outage: more than 20%%", before>>10, peak>>10)
	}
	t.Logf("search server down 40 s, %d records: RSS before %d KiB, during %d-%d KiB, after %d KiB",
		len(recs), before>>10, during[0]>>10, peak>>10, after>>10)
}

// leaseIntervals reads, from a pod's text log, when it held each shard.
func leaseIntervals(log string) map[string][][2]time.Time {
	out := map[string][][2]time.Time{}
	open := map[string]time.Time{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		field := func(k string) string {
			i := strings.Index(line, " "+k+"=")
			if i < 0 {
				return ""
			}
			v := line[i+len(k)+2:]
			if j := strings.IndexByte(v, ' '); j >= 0 {
				v = v[:j]
			}
			return strings.Trim(v, `"`)
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(line + " x")[0], "time="))
		if err != nil {
			continue
		}
		shard := field("shard")
		switch {
		case strings.Contains(line, `msg="shard lease taken"`):
			open[shard] = at
		case strings.Contains(line, `msg="lease ended"`) && !open[shard].IsZero():
			out[shard] = append(out[shard], [2]time.Time{open[shard], at})
			delete(open, shard)
		}
	}
	for shard, from := range open {
		out[shard] = append(out[shard], [2]time.Time{from, time.Now()})
	}
	return out
}

// TestDynamoDBOutage: the lease table is down for 20 s under two pods: no
// crash loop, never two pods on one shard, reading resumes, nothing lost.
func TestDynamoDBOutage(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("ddb")
	h.CreateStream(t, kc, team, 4)
	budget := h.Budget(t, team, team, 4, "maxRecords: 100\npollInterval: 1s", "")
	// The pods reach the lease table through a proxy this test can take
	// down without stopping it for the tests running beside it.
	ddb := h.NewTCPProxy(t, strings.TrimPrefix(env.DynamoDB, "http://"))
	viaProxy := []string{"AWS_ENDPOINT_URL_DYNAMODB=" + ddb.URL}
	a := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-a", Env: viaProxy})
	b := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-b", Env: viaProxy})
	recs := h.Records(team, 100*45, 20) // 100/s for 45 s
	done := trickle(t, kc, team, recs, 100)
	h.Eventually(t, 30*time.Second, "all four shards owned", func() (bool, string) {
		n := 0.0
		for _, c := range []*h.Consumer{a, b} {
			if m, err := c.Metrics(); err == nil {
				n += h.Sum(m, "streambudget_consumer_shards_owned")
			}
		}
		return n == 4, fmt.Sprintf("%v owned", n)
	})
	ddb.SetDown(true)
	time.Sleep(20 * time.Second)
	ddb.SetDown(false)
	if a.Exited() || b.Exited() {
		t.Fatal("a pod exited during the lease table outage")
	}
	done()
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	exactlyOnce(t, counts, recs, dupBound(t, env, 4, 100))
	if a.Exited() || b.Exited() {
		t.Fatal("a pod exited after the lease table outage")
	}
	ia, ib := leaseIntervals(a.Log()), leaseIntervals(b.Log())
	for shard, as := range ia {
		for _, x := range as {
			for _, y := range ib[shard] {
				if x[0].Before(y[1]) && y[0].Before(x[1]) {
					t.Errorf("%s held by both pods: pod-a %s-%s, pod-b %s-%s", shard,
						x[0].Format("15:04:05.000"), x[1].Format("15:04:05.000"), y[0].Format("15:04:05.000"), y[1].Format("15:04:05.000"))
				}
			}
		}
	}
	t.Logf("lease table down 20 s under 2 pods: %d records indexed, leases held a:%d b:%d intervals", len(recs), len(ia), len(ib))
}

// TestPodDies: two pods share a 4-shard stream, 2 shards each; one is
// killed and the other takes its shards after the failover time.
func TestPodDies(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("failover")
	h.CreateStream(t, kc, team, 4)
	budget := h.Budget(t, team, team, 4, "maxRecords: 100\npollInterval: 1s", "")
	a := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-a"})
	b := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite, WorkerID: "pod-b"})
	owned := func(c *h.Consumer) float64 {
		m, err := c.Metrics()
		if err != nil {
			return -1
		}
		return h.Sum(m, "streambudget_consumer_shards_owned")
	}
	h.Eventually(t, 60*time.Second, "2 shards each", func() (bool, string) {
		x, y := owned(a), owned(b)
		return x == 2 && y == 2, fmt.Sprintf("a %v, b %v", x, y)
	})
	recs := h.Records(team, 100*30, 20)
	done := trickle(t, kc, team, recs, 100)
	waitIndexed(t, env, team, recs[:300], 30*time.Second)
	b.Kill()
	killed := time.Now()
	h.Eventually(t, 60*time.Second, "pod-a owns all 4 shards", func() (bool, string) {
		x := owned(a)
		return x == 4, fmt.Sprintf("a %v", x)
	})
	takeover := time.Since(killed)
	done()
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	exactlyOnce(t, counts, recs, dupBound(t, env, 2, 100))
	t.Logf("pod killed: the other owned all 4 shards %.1fs later (failover time 10s); %d records indexed", takeover.Seconds(), len(recs))
}

// TestReshardSplitAndMerge: 2 -> 4 then 4 -> 2 under load: nothing lost and
// per-key order kept across both (a merge's child has two parents).
func TestReshardSplitAndMerge(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.KinesisLocal)
	team := h.Unique("merge")
	h.CreateStream(t, kc, team, 2)
	budget := h.Budget(t, team, team, 2, "maxRecords: 200\npollInterval: 1s", "")
	env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.KinesisLocal})
	recs := h.Records(team, 1800, 10)
	for i := 0; i < 18; i++ {
		switch i {
		case 5:
			reshard(t, kc, team, 4)
		case 11:
			reshard(t, kc, team, 2)
		}
		h.Put(t, kc, team, recs[i*100:(i+1)*100])
		time.Sleep(400 * time.Millisecond)
	}
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	exactlyOnce(t, counts, recs, 0)
	checkKeyOrder(t, env, team)
}

// throttlingProxy stands in front of a Kinesis endpoint and answers
// GetRecords with ProvisionedThroughputExceededException while throttle is
// set, as Kinesis does when a shard's read limits are exceeded.
type throttlingProxy struct {
	next      http.Handler
	throttle  atomic.Bool
	throttled atomic.Int64
}

func (p *throttlingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.throttle.Load() && strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetRecords") {
		p.throttled.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}`)
		return
	}
	p.next.ServeHTTP(w, r)
}

// TestThrottling: Kinesis refusing reads for a while is a slowdown, not an
// error exit; everything is indexed once the throttling stops.
func TestThrottling(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("throttle")
	h.CreateStream(t, kc, team, 2)
	target, err := url.Parse(env.Kinesalite)
	if err != nil {
		t.Fatal(err)
	}
	p := &throttlingProxy{next: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(p)
	defer srv.Close()
	budget := h.Budget(t, team, team, 2, "maxRecords: 100\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: srv.URL})
	recs := h.Records(team, 100*30, 20)
	done := trickle(t, kc, team, recs, 100)
	waitIndexed(t, env, team, recs[:200], 30*time.Second)
	p.throttle.Store(true)
	time.Sleep(15 * time.Second)
	p.throttle.Store(false)
	if c.Exited() {
		t.Fatal("the consumer exited under throttling")
	}
	done()
	counts := waitIndexed(t, env, team, recs, 90*time.Second)
	exactlyOnce(t, counts, recs, dupBound(t, env, 2, 100))
	if c.Exited() {
		t.Fatal("the consumer exited after throttling")
	}
	t.Logf("GetRecords throttled for 15 s (%d calls refused): consumer kept running, %d records indexed", p.throttled.Load(), len(recs))
}
