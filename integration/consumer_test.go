//go:build integration

package integration

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	h "github.com/streambudget/streambudget/integration/harness"
)

// waitIndexed waits until every id of recs is in the search server and
// returns the id counts.
func waitIndexed(t *testing.T, env *h.Env, team string, recs []h.Record, timeout time.Duration) map[string]int {
	t.Helper()
	var counts map[string]int
	h.Eventually(t, timeout, "all records indexed", func() (bool, string) {
		c, err := h.IDCounts(context.Background(), env.Search, team)
		if err != nil {
			return false, err.Error()
		}
		counts = c
		missing := 0
		for _, r := range recs {
			if c[r.ID] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d missing", missing, len(recs))
	})
	return counts
}

// exactlyOnce fails t unless every record is indexed once (or, on a server
// that does not de-duplicate by _id, at most once more than maxDup times in
// total).
func exactlyOnce(t *testing.T, counts map[string]int, recs []h.Record, maxDup int) {
	t.Helper()
	dups := 0
	for _, r := range recs {
		switch n := counts[r.ID]; {
		case n == 0:
			t.Errorf("record %s missing", r.ID)
		case n > 1:
			dups += n - 1
		}
	}
	if dups > maxDup {
		t.Errorf("got %d duplicate documents, want at most %d", dups, maxDup)
	}
}

// rates returns the read rate over every window of the given length whose
// start lies in [from, to], from the summed per-shard read counters.
func rates(samples []h.Sample, window time.Duration, from, to time.Time, team string) []float64 {
	var out []float64
	for i, a := range samples {
		if a.At.Before(from) || a.At.After(to) {
			continue
		}
		for _, b := range samples[i+1:] {
			if b.At.Sub(a.At) >= window {
				n := h.Sum(b.Metrics, "streambudget_shard_records_read_total", `team="`+team+`"`) -
					h.Sum(a.Metrics, "streambudget_shard_records_read_total", `team="`+team+`"`)
				out = append(out, n/b.At.Sub(a.At).Seconds())
				break
			}
		}
	}
	return out
}

// TestBudgetHolds: 2 shards at maxRecords 50 per 1s is a budget of 100
// records/s. 3,000 records are queued before the consumer starts; it must
// read them at 100/s (±5% over every 20 s window) and index all of them,
// each once.
func TestBudgetHolds(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("holds")
	h.CreateStream(t, kc, team, 2)
	recs := h.Records(team, 3000, 20)
	h.Put(t, kc, team, recs)

	budget := h.Budget(t, team, team, 2, "maxRecords: 50\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	s := c.Sample(500 * time.Millisecond)
	counts := waitIndexed(t, env, team, recs, 90*time.Second)
	samples := s.Stop()
	exactlyOnce(t, counts, recs, 0)

	// Windows start once both shards read and end while both still have a
	// backlog (keys hash unevenly, so one shard finishes first).
	shardCount := func(m map[string]float64, id string) float64 {
		return h.Sum(m, "streambudget_shard_records_read_total", `shard="shardId-00000000000`+id+`"`)
	}
	final := samples[len(samples)-1].Metrics
	finalA, finalB := shardCount(final, "0"), shardCount(final, "1")
	var started, last time.Time
	for _, sm := range samples {
		a, b := shardCount(sm.Metrics, "0"), shardCount(sm.Metrics, "1")
		if started.IsZero() && a > 0 && b > 0 {
			started = sm.At.Add(time.Second)
		}
		if a <= finalA-100 && b <= finalB-100 {
			last = sm.At
		}
	}
	if started.IsZero() {
		t.Fatal("the two shards never both read")
	}
	rs := rates(samples, 20*time.Second, started, last.Add(-20*time.Second), team)
	if len(rs) < 3 {
		t.Fatalf("only %d full 20 s windows while the backlog lasted; want at least 3", len(rs))
	}
	lo, hi := rs[0], rs[0]
	for _, r := range rs {
		lo, hi = min(lo, r), max(hi, r)
		if r < 95 || r > 105 {
			t.Errorf("read rate %.1f records/s over a 20 s window, want 100 ±5%%", r)
		}
	}
	t.Logf("budget 100 records/s: %d windows of 20 s, observed %.1f to %.1f records/s", len(rs), lo, hi)
}

// TestOverBudgetDrains: a team logging at three times its budget is read
// at its budget, the excess waits in Kinesis, and it all drains afterwards.
// The advice says over_budget during the spike, then draining with an ETA
// close to the drain time measured.
func TestOverBudgetDrains(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("spike")
	h.CreateStream(t, kc, team, 2)
	budget := h.Budget(t, team, team, 2, "maxRecords: 50\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	h.Eventually(t, 30*time.Second, "both shards owned", func() (bool, string) {
		m, err := c.Metrics()
		if err != nil {
			return false, err.Error()
		}
		n := h.Sum(m, "streambudget_consumer_shards_owned")
		return n == 2, fmt.Sprintf("%v owned", n)
	})

	s := c.Sample(time.Second)
	const perSecond, seconds = 300, 20 // three times the budget of 100/s
	recs := h.Records(team, perSecond*seconds, 20)
	spikeStart := time.Now()
	for i := 0; i < seconds; i++ {
		h.Put(t, kc, team, recs[i*perSecond:(i+1)*perSecond])
		time.Sleep(time.Until(spikeStart.Add(time.Duration(i+1) * time.Second)))
	}
	spikeEnd := time.Now()
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	time.Sleep(2 * time.Second)
	samples := s.Stop()
	exactlyOnce(t, counts, recs, 0)

	var drained time.Time
	for _, sm := range samples {
		if drained.IsZero() && h.Sum(sm.Metrics, "streambudget_shard_records_read_total") >= float64(len(recs)) {
			drained = sm.At
		}
	}
	// A token bucket admits its rate plus one burst (maxRecords per shard)
	// in any window: over 10 s that is 100/s + 100/10 s, and 2% for sampling.
	for _, r := range rates(samples, 10*time.Second, spikeStart.Add(5*time.Second), drained.Add(-12*time.Second), team) {
		if r > (100+100.0/10)*1.02 {
			t.Errorf("read %.1f records/s over a 10 s window, above the budget of 100 plus one burst", r)
		}
	}
	var peakLag float64
	var sawOver bool
	var etaAt time.Time
	var eta float64
	for _, sm := range samples {
		peakLag = max(peakLag, maxSeries(sm.Metrics, "streambudget_shard_lag_seconds"))
		if h.Sum(sm.Metrics, "streambudget_advice", `action="over_budget"`) == 1 && sm.At.Before(spikeEnd.Add(5*time.Second)) {
			sawOver = true
		}
		if etaAt.IsZero() && sm.At.After(spikeEnd) && h.Sum(sm.Metrics, "streambudget_advice", `action="draining"`) == 1 {
			etaAt, eta = sm.At, h.Sum(sm.Metrics, "streambudget_team_drain_eta_seconds")
		}
	}
	if peakLag < 5 {
		t.Errorf("peak lag %.1fs, want the backlog to show as lag (> 5s)", peakLag)
	}
	if !sawOver {
		t.Error("the advice never said over_budget during the spike")
	}
	if etaAt.IsZero() {
		t.Fatal("the advice never said draining after the spike")
	}
	measured := drained.Sub(etaAt).Seconds()
	if math.Abs(eta-measured) > 0.2*measured {
		t.Errorf("drain ETA %.1fs when draining began, measured %.1fs: more than 20%% off", eta, measured)
		for _, sm := range samples {
			if sm.At.After(spikeEnd.Add(-5*time.Second)) && sm.At.Before(etaAt.Add(5*time.Second)) {
				t.Logf("%s after the spike: read total %.0f, backlog %.0f, incoming %.1f/s, read %.1f/s, ETA %.1fs, lag %.1fs",
					sm.At.Sub(spikeEnd).Round(100*time.Millisecond), h.Sum(sm.Metrics, "streambudget_shard_records_read_total"),
					h.Sum(sm.Metrics, "streambudget_team_backlog_records"), h.Sum(sm.Metrics, "streambudget_team_incoming_records_per_second"),
					h.Sum(sm.Metrics, "streambudget_team_read_records_per_second"),
					h.Sum(sm.Metrics, "streambudget_team_drain_eta_seconds"), maxSeries(sm.Metrics, "streambudget_shard_lag_seconds"))
			}
		}
	}
	t.Logf("spike of %d records at %d/s against a budget of 100/s: peak lag %.1fs; draining reported %.1fs after the spike with ETA %.1fs, measured %.1fs",
		len(recs), perSecond, peakLag, etaAt.Sub(spikeEnd).Seconds(), eta, measured)
}

func maxSeries(m map[string]float64, name string) float64 {
	best := 0.0
	for series, v := range m {
		if len(series) > len(name) && series[:len(name)+1] == name+"{" {
			best = max(best, v)
		}
	}
	return best
}

// checkKeyOrder fails t unless, for every key, documents were read in the
// order they were written (kinesis.read_at does not go back as seq grows).
func checkKeyOrder(t *testing.T, env *h.Env, team string) {
	t.Helper()
	docs, err := env.Search.Docs(context.Background(), team, false, "id", "key", "seq", "kinesis.read_at", "kinesis.shard_id")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq   int
		at    time.Time
		shard string
	}
	byKey := map[string][]row{}
	for _, d := range docs {
		seq, err := strconv.Atoi(d["seq"])
		if err != nil {
			t.Fatalf("doc %s: seq %q: %v", d["id"], d["seq"], err)
		}
		at, err := time.Parse(time.RFC3339Nano, d["kinesis.read_at"])
		if err != nil {
			t.Fatalf("doc %s: read_at %q: %v", d["id"], d["kinesis.read_at"], err)
		}
		byKey[d["key"]] = append(byKey[d["key"]], row{seq, at, d["kinesis.shard_id"]})
	}
	shardsSeen := map[string]bool{}
	for key, rows := range byKey {
		sort.Slice(rows, func(i, j int) bool { return rows[i].seq < rows[j].seq })
		for i := 1; i < len(rows); i++ {
			shardsSeen[rows[i].shard] = true
			if rows[i].at.Before(rows[i-1].at) {
				t.Errorf("key %s: seq %d (shard %s) read at %s, before seq %d (shard %s) read at %s",
					key, rows[i].seq, rows[i].shard, rows[i].at.Format(time.RFC3339Nano), rows[i-1].seq, rows[i-1].shard, rows[i-1].at.Format(time.RFC3339Nano))
				break
			}
		}
	}
	if len(shardsSeen) < 3 {
		t.Errorf("documents came from %d shards; the reshard should have spread them over parents and children", len(shardsSeen))
	}
}

func reshard(t *testing.T, kc *kinesis.Client, stream string, to int) {
	t.Helper()
	_, err := kc.UpdateShardCount(context.Background(), &kinesis.UpdateShardCountInput{
		StreamName: aws.String(stream), TargetShardCount: aws.Int32(int32(to)), ScalingType: types.ScalingTypeUniformScaling,
	})
	if err != nil {
		t.Fatalf("reshard %s to %d: %v", stream, to, err)
	}
	h.WaitActive(t, kc, stream)
}

// TestReshardUnderLoad: a 2 -> 4 reshard in the middle of a run loses
// nothing and keeps per-key order (children wait for their parents).
func TestReshardUnderLoad(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.KinesisLocal)
	team := h.Unique("reshard")
	h.CreateStream(t, kc, team, 2)
	budget := h.Budget(t, team, team, 2, "maxRecords: 200\npollInterval: 1s", "")
	env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.KinesisLocal})

	recs := h.Records(team, 1200, 10)
	for i := 0; i < 12; i++ {
		if i == 5 {
			reshard(t, kc, team, 4)
		}
		h.Put(t, kc, team, recs[i*100:(i+1)*100])
		time.Sleep(500 * time.Millisecond)
	}
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	exactlyOnce(t, counts, recs, 0)
	checkKeyOrder(t, env, team)
}

// TestStartOnReshardedStream: a consumer started on a stream that was
// resharded before it ever ran reads parents before children for every key
// (the library would start a child whose parent has no checkpoint row).
func TestStartOnReshardedStream(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.KinesisLocal)
	team := h.Unique("resharded")
	h.CreateStream(t, kc, team, 2)
	recs := h.Records(team, 800, 10)
	h.Put(t, kc, team, recs[:400])
	reshard(t, kc, team, 4)
	h.Put(t, kc, team, recs[400:])

	budget := h.Budget(t, team, team, 4, "maxRecords: 200\npollInterval: 1s", "")
	env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.KinesisLocal})
	counts := waitIndexed(t, env, team, recs, 120*time.Second)
	exactlyOnce(t, counts, recs, 0)
	checkKeyOrder(t, env, team)
}

// TestMergeHoldsBudget: a merge 2->1 with a backlog in both parents. The
// budget falls from 200 to 100 records/s (maxRecords 100 x 1 open shard)
// and the draining parents share it: the team reads no more than 100/s
// plus one burst over any 10 s window after the merge (it read 200/s when
// the parents counted as open until the next listing). Read times come
// from the documents' kinesis.read_at.
func TestMergeHoldsBudget(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.KinesisLocal)
	team := h.Unique("merge1")
	h.CreateStream(t, kc, team, 2)
	recs := h.Records(team, 4000, 20)
	h.Put(t, kc, team, recs)
	budget := h.Budget(t, team, team, 2, "maxRecords: 100\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.KinesisLocal})
	h.Eventually(t, 30*time.Second, "both shards read", func() (bool, string) {
		m, err := c.Metrics()
		if err != nil {
			return false, err.Error()
		}
		n := h.Sum(m, "streambudget_shard_records_read_total")
		return n >= 600, fmt.Sprintf("%v read", n)
	})
	merged := time.Now()
	reshard(t, kc, team, 1)
	waitIndexed(t, env, team, recs, 120*time.Second)
	docs, err := env.Search.Docs(context.Background(), team, false, "kinesis.read_at")
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, d := range docs {
		ts, err := time.Parse(time.RFC3339Nano, d["kinesis.read_at"])
		if err != nil {
			t.Fatalf("read_at %q: %v", d["kinesis.read_at"], err)
		}
		at = append(at, ts)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	const window = 10 * time.Second
	worst, before := 0.0, 0.0
	for i, a := range at {
		n := sort.Search(len(at), func(j int) bool { return !at[j].Before(a.Add(window)) }) - i
		if a.Add(window).After(at[len(at)-1]) {
			break
		}
		r := float64(n) / window.Seconds()
		// The listing that shows the merge comes within a second or two.
		if a.After(merged.Add(3 * time.Second)) {
			worst = max(worst, r)
		}
	}
	if n := sort.Search(len(at), func(j int) bool { return !at[j].Before(merged) }); n > 0 {
		before = float64(n) / merged.Sub(at[0]).Seconds()
	}
	if limit := (100*window.Seconds() + 100) / window.Seconds() * 1.02; worst > limit {
		t.Errorf("after the merge the team read %.1f records/s over a 10 s window; the budget is 100/s (plus one burst: %.1f)", worst, limit)
	}
	t.Logf("merge 2->1 with a backlog: %.1f records/s before it (budget 200), at most %.1f over 10 s after (budget 100)", before, worst)
}
