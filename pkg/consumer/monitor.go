package consumer

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streambudget/streambudget/pkg/advice"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// How the tip of the stream is measured. The records being read cannot
// tell: after a spike ends, they were still written at the spike's rate. So
// every probeEvery, each shard that is behind gets a probe (from the monitor,
// never blocking the reads): an AT_TIMESTAMP iterator probeBack seconds back
// and a GetRecords call (see probeWindow), counting what arrived in a
// one-second window. The call is one of the shard's five GetRecords a
// second (shardState.calls), so a processor reading at that limit waits one
// call slot more; one reading slower does not wait. A caught-up shard's tip
// rate is its read rate.
//
// The backlog in records is the integral of the tip-rate history from the
// read position to now. While a shard is behind, each probe round also fills
// the history backwards: one more window probed at the middle of the widest
// gap between the read position and now, so a backlog written before this
// pod owned the shard is measured too after a few rounds. Limits: a rate is
// known at probe times and held until the next sample, so a burst narrower
// than the spacing of the samples can be under- or over-counted until the
// history is dense around it.
//
// A probe whose AT_TIMESTAMP iterator is not answered within probeTimeout
// counts as an empty window: the kinesalite emulator never answers
// AT_TIMESTAMP past its newest record (Kinesis answers at once with an
// iterator at the tip), so there it means nothing arrived. Elsewhere a lost
// call costs one sample.
const (
	probeEvery   = 5 * time.Second
	probeBack    = 5 * time.Second
	probeLimit   = 1000
	monitorEvery = 5 * time.Second
	probeTimeout = time.Second
	// probeCallTimeout bounds each GetRecords call of a probe.
	probeCallTimeout = 10 * time.Second
	// minFillGap is the spacing of the history below which it is not filled,
	// and fillsPerRound the extra windows probed per shard per round.
	minFillGap    = 2 * time.Second
	fillsPerRound = 2
	// maxTips bounds each shard's history: a day at probeEvery.
	maxTips = int(24 * time.Hour / probeEvery)
	// probeParallel bounds the probes in flight.
	probeParallel = 8
	// probeHintSlack is added to a probe's first limit, so that a shard
	// that has been quiet still sees a rise in one call.
	probeHintSlack = 50
)

type tipSample struct {
	at          time.Time
	rate, bytes float64
}

// probeWindow measures the records and bytes per second that arrived at the
// shard in the one-second window starting at from. The first call asks for
// a little more than the shard's highest rate seen so far, not probeLimit:
// every record returned is decoded whole (up to 10 MB a call), and most of
// them lie past the window. When that is not enough to reach the window's
// end, one more call reads on with probeLimit. Each call takes one of the
// shard's call slots, which it shares with the processor's reads.
func (c *Consumer) probeWindow(ctx context.Context, st *shardState, from time.Time) (tipSample, error) {
	from = from.Truncate(time.Millisecond)
	to := from.Add(time.Second)
	s := tipSample{at: from.Add(time.Second / 2)}
	if err := st.callSlot(ctx); err != nil {
		return tipSample{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, cmp.Or(c.probeTimeout, probeTimeout))
	defer cancel()
	it, err := c.kc.GetShardIterator(pctx, &kinesis.GetShardIteratorInput{
		StreamName: c.view.streamName(), StreamARN: c.view.streamARN(), ShardId: aws.String(st.id),
		ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(from),
	}, noRetry)
	if err != nil {
		if pctx.Err() != nil && ctx.Err() == nil {
			return s, nil // unanswered: an empty window (see above)
		}
		return tipSample{}, err
	}
	iter, limit := it.ShardIterator, st.probeHint()
	for {
		rctx, cancel := context.WithTimeout(ctx, probeCallTimeout)
		out, err := c.kc.GetRecords(rctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(int32(limit))}, noRetry)
		cancel()
		if err != nil {
			return tipSample{}, err
		}
		for _, r := range out.Records {
			at := aws.ToTime(r.ApproximateArrivalTimestamp)
			if at.Before(from) {
				continue
			}
			if !at.Before(to) {
				return s, nil
			}
			s.rate++
			s.bytes += float64(len(r.Data))
		}
		// The page ended before the window did. Read on (once) if it was
		// cut by the limit or the shard has more behind it: Kinesis may
		// return a short page with records after it.
		more := len(out.Records) == limit || aws.ToInt64(out.MillisBehindLatest) > 0
		if !more || limit == probeLimit || out.NextShardIterator == nil {
			return s, nil
		}
		if err := st.callSlot(ctx); err != nil {
			return tipSample{}, err
		}
		iter, limit = out.NextShardIterator, probeLimit
	}
}

// noRetry keeps a probe to the calls it took slots for: the SDK would retry
// a throttled call, and a lost probe costs only one sample.
func noRetry(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

// probeHint is the first probe call's limit: a quarter more than the
// highest rate in the shard's history, or probeLimit when it has none.
func (s *shardState) probeHint() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tips) == 0 {
		return probeLimit
	}
	peak := 0.0
	for _, t := range s.tips {
		peak = max(peak, t.rate)
	}
	return min(int(peak*1.25)+probeHintSlack, probeLimit)
}

// addTip keeps a sample in the shard's bounded history, in time order.
// Samples before the read position are of no more use but the last one.
func (s *shardState) addTip(t tipSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.tips), func(i int) bool { return s.tips[i].at.After(t.at) })
	s.tips = slices.Insert(s.tips, i, t)
	drop := 0
	for drop+1 < len(s.tips) && !s.tips[drop+1].at.After(s.lastArrival) {
		drop++
	}
	if len(s.tips)-drop > maxTips {
		drop = len(s.tips) - maxTips
	}
	s.tips = slices.Delete(s.tips, 0, drop)
}

// probeDue reports whether the shard is behind and due a probe, and if so
// books the probe time.
func (s *shardState) probeDue(now time.Time, okLag time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caughtUp || s.lastArrival.IsZero() || now.Sub(s.lastArrival) <= okLag || now.Sub(s.lastProbe) < probeEvery-time.Second {
		return false
	}
	s.lastProbe = now
	return true
}

// probe measures the tips of the owned shards that are behind.
func (c *Consumer) probe(ctx context.Context, now time.Time) {
	okLag := max(advice.OKLagPolls*c.budget.PollInterval, advice.MinOKLag)
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for _, st := range c.shards.states() {
		if !st.probeDue(now, okLag) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tip, err := c.probeWindow(ctx, st, time.Now().Add(-probeBack))
			if err != nil {
				c.log.Debug("tip probe failed", "shard", st.id, "err", err)
				return
			}
			st.addTip(tip)
			for range fillsPerRound {
				at, ok := st.fillPoint()
				if !ok {
					break
				}
				past, err := c.probeWindow(ctx, st, at.Add(-time.Second/2))
				if err != nil {
					break
				}
				st.addTip(past)
			}
		}()
	}
	wg.Wait()
}

// fillPoint is where the history most needs a sample: the middle of the gap
// (between the read position and the newest sample) whose possible error in
// the backlog is largest. With nearest-sample integration a gap can be off
// by up to half its width times the rate change across it; the gap before
// the oldest sample, with no rate on its far side, by its width times the
// oldest rate. Gaps narrower than minFillGap are left alone.
func (s *shardState) fillPoint() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastArrival.IsZero() || len(s.tips) == 0 {
		return time.Time{}, false
	}
	var best time.Time
	worst := 1.0 // records: below this, nothing is worth a call
	prev, prevRate, first := s.lastArrival, 0.0, true
	for _, t := range s.tips {
		if !t.at.After(prev) {
			prevRate, first = t.rate, false
			continue
		}
		gap := t.at.Sub(prev)
		bound := math.Abs(t.rate-prevRate) * gap.Seconds() / 2
		if first {
			bound = t.rate * gap.Seconds()
		}
		if gap >= minFillGap && bound > worst {
			worst, best = bound, prev.Add(gap/2)
		}
		prev, prevRate, first = t.at, t.rate, false
	}
	return best, !best.IsZero()
}

// backlogLocked integrates the rate history from the read position to now.
// Each sample stands for the time nearer to it than to its neighbours (the
// oldest reaches back, the newest up to now), so a rate change between two
// samples costs at most half their spacing.
func (s *shardState) backlogLocked(now time.Time) float64 {
	if s.caughtUp || s.lastArrival.IsZero() || len(s.tips) == 0 {
		return 0
	}
	from := s.lastArrival
	total := 0.0
	for i, t := range s.tips {
		start, end := from, now
		if i > 0 {
			start = s.tips[i-1].at.Add(t.at.Sub(s.tips[i-1].at) / 2)
		}
		if i+1 < len(s.tips) {
			end = t.at.Add(s.tips[i+1].at.Sub(t.at) / 2)
		}
		if start.Before(from) {
			start = from
		}
		if end.After(start) {
			total += t.rate * end.Sub(start).Seconds()
		}
	}
	return total
}

// measure returns the shard's figures over the time since the last call.
func (s *shardState) measure(now time.Time) shardFigures {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := shardFigures{backlog: s.backlogLocked(now), lag: s.lagLocked(now)}
	if !s.prevAt.IsZero() {
		dt := now.Sub(s.prevAt).Seconds()
		if dt > 0 {
			f.read = float64(s.readTotal-s.prevRead) / dt
			f.readBytes = float64(s.bytesTotal-s.prevBytes) / dt
			f.waitShare = math.Min((s.waitTotal-s.prevWait).Seconds()/dt, 1)
		}
	}
	s.prevAt, s.prevRead, s.prevBytes, s.prevWait = now, s.readTotal, s.bytesTotal, s.waitTotal
	switch {
	case s.caughtUp || f.lag <= advice.MinOKLag:
		f.incoming, f.incomingBytes = f.read, f.readBytes
	case len(s.tips) > 0:
		last := s.tips[len(s.tips)-1]
		f.incoming, f.incomingBytes = last.rate, last.bytes
	default:
		f.incoming, f.incomingBytes = f.read, f.readBytes
	}
	s.last = f
	return f
}

type shardFigures struct {
	lag                     time.Duration
	backlog                 float64
	read, readBytes         float64
	incoming, incomingBytes float64
	waitShare               float64
}

// teamStatus is the latest per-team picture, for metrics and the status
// page.
type teamStatus struct {
	mu       sync.Mutex
	snapshot advice.Snapshot
	advice   advice.Advice
	at       time.Time
	lowSince time.Time
	primed   bool
}

// TeamStatus is the team as this pod last computed it.
type TeamStatus struct {
	At       time.Time
	Snapshot advice.Snapshot
	Advice   advice.Advice
}

// Team returns the latest team status; At is zero before the first one.
func (c *Consumer) Team() TeamStatus {
	c.team.mu.Lock()
	defer c.team.mu.Unlock()
	return TeamStatus{At: c.team.at, Snapshot: c.team.snapshot, Advice: c.team.advice}
}

type teamMetrics struct {
	openShards, pods, budget, retention, headroom, incoming, backlog, drainETA, recommended prometheus.Gauge
	advice                                                                                  *prometheus.GaugeVec
}

func newTeamMetrics(reg prometheus.Registerer, team, stream string) teamMetrics {
	labels := prometheus.Labels{"team": team, "stream": stream}
	f := promauto.With(reg)
	g := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "team", Name: name, Help: help, ConstLabels: labels})
	}
	return teamMetrics{
		openShards:  g("open_shards", "Open shards of the team's stream."),
		pods:        g("pods", "Live pods of the team (heartbeats in the lease table)."),
		budget:      g("budget_records_per_second", "The team's budget: maxRecords x open shards per pollInterval."),
		retention:   g("retention_seconds", "The stream's retention period."),
		headroom:    g("retention_headroom_seconds", "Retention minus the age of the oldest unread record: time before Kinesis deletes unread data."),
		incoming:    g("incoming_records_per_second", "Records/s arriving at the tip of the stream (measured by probes, not by what is read)."),
		backlog:     g("backlog_records", "Records between the read positions and the tip."),
		drainETA:    g("drain_eta_seconds", "Time to read the backlog at the current rates; 0 with none, -1 when it does not shrink."),
		recommended: g("recommended_shards", "Shards the incoming rate needs with 25% to spare."),
		advice: f.NewGaugeVec(prometheus.GaugeOpts{Namespace: metrics.Namespace, Name: "advice", ConstLabels: labels,
			Help: "1 for the current advice, 0 for the others."}, []string{"action"}),
	}
}

// monitor measures the owned shards, shares the figures with the team's
// other pods and computes the team's advice, every monitorEvery.
func (c *Consumer) monitor(ctx context.Context) {
	t := time.NewTicker(monitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.probe(ctx, now)
			c.updateTeam(time.Now())
		}
	}
}

func (c *Consumer) updateTeam(now time.Time) {
	var mine Report
	mine.Worker = c.opts.WorkerID
	states := c.shards.states()
	for _, st := range states {
		f := st.measure(now)
		mine.Shards++
		mine.Incoming += f.incoming
		mine.IncomingBytes += f.incomingBytes
		mine.Read += f.read
		mine.Backlog += f.backlog
		mine.MaxLag = math.Max(mine.MaxLag, f.lag.Seconds())
		mine.WaitShare += f.waitShare
	}
	if mine.Shards > 0 {
		mine.WaitShare /= float64(mine.Shards)
	}
	c.team.mu.Lock()
	primed := c.team.primed
	c.team.primed = true
	c.team.mu.Unlock()
	if !primed {
		return // the first round only sets the baseline for rates
	}
	c.leases.publish(mine)

	peers, pods := c.leases.team()
	var sum Report
	seen := false
	waitWeight := 0.0
	for _, r := range peers {
		if r.Worker == mine.Worker {
			r, seen = mine, true
		}
		sum.add(r)
		waitWeight += r.WaitShare * float64(r.Shards)
	}
	if !seen {
		sum.add(mine)
		waitWeight += mine.WaitShare * float64(mine.Shards)
		pods = max(pods, 1)
	}
	open := c.view.open()
	snap := advice.Snapshot{
		PollInterval:    c.budget.PollInterval,
		Budget:          c.budget.TeamRate(open),
		ShardBudget:     c.budget.ShardRate(open),
		ShardByteBudget: float64(c.budget.MaxBytesPerSecond),
		OpenShards:      open,
		Pods:            pods,
		Retention:       c.view.retentionPeriod(),
		Lag:             time.Duration(sum.MaxLag * float64(time.Second)),
		Incoming:        sum.Incoming,
		IncomingBytes:   sum.IncomingBytes,
		Read:            sum.Read,
		Backlog:         sum.Backlog,
	}
	if sum.Shards > 0 {
		snap.WaitShare = waitWeight / float64(sum.Shards)
	}
	if c.borrow != nil {
		if a := c.borrow.allocation(); a.Allowance > 0 {
			snap.Guarantee, snap.Budget = snap.Budget, a.Allowance
		}
	}
	c.team.mu.Lock()
	low := snap.Incoming < advice.ScaleDownShare*float64(open*advice.ShardWriteRecords) &&
		snap.IncomingBytes < advice.ScaleDownShare*float64(open*advice.ShardWriteBytes)
	switch {
	case !low:
		c.team.lowSince = time.Time{}
	case c.team.lowSince.IsZero():
		c.team.lowSince = now
	}
	if !c.team.lowSince.IsZero() {
		snap.LowUtilisationFor = now.Sub(c.team.lowSince)
	}
	a := advice.For(snap)
	c.team.snapshot, c.team.advice, c.team.at = snap, a, now
	c.team.mu.Unlock()

	m := c.tm
	m.openShards.Set(float64(open))
	m.pods.Set(float64(pods))
	m.budget.Set(snap.Budget)
	m.retention.Set(snap.Retention.Seconds())
	m.headroom.Set(a.Headroom.Seconds())
	m.incoming.Set(snap.Incoming)
	m.backlog.Set(snap.Backlog)
	switch {
	case a.DrainETA < 0:
		m.drainETA.Set(-1)
	default:
		m.drainETA.Set(a.DrainETA.Seconds())
	}
	m.recommended.Set(float64(a.RecommendedShards))
	for _, act := range advice.Actions {
		v := 0.0
		if act == a.Action {
			v = 1
		}
		m.advice.WithLabelValues(string(act)).Set(v)
	}
}

func (r *Report) add(o Report) {
	r.Shards += o.Shards
	r.Incoming += o.Incoming
	r.IncomingBytes += o.IncomingBytes
	r.Read += o.Read
	r.Backlog += o.Backlog
	r.MaxLag = math.Max(r.MaxLag, o.MaxLag)
}
