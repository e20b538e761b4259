// Package monitor measures a team beside the flow of records: the rate at
// the tip of each owned shard (by probes), the backlog between the read
// positions and the tips, and the team's snapshot, shared with the team's
// other pods through their lease-table heartbeats, from which pkg/advice
// says what to do. It reads figures; it never reads or writes records.
package monitor

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"

	"github.com/streambudget/streambudget/pkg/advice"
	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/kinesis"
	"github.com/streambudget/streambudget/pkg/lease"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// How the tip of the stream is measured. The records being read cannot
// tell: after a spike ends, they were still written at the spike's rate. So
// every probeEvery, each shard that is behind gets a probe (from the monitor,
// never blocking the reads): an AT_TIMESTAMP iterator probeBack seconds back
// and a GetRecords call (see probeWindow), counting what arrived in a
// one-second window. The call is one of the shard's five GetRecords a
// second (Shard.CallSlot), so a processor reading at that limit waits one
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
	probeEvery = 5 * time.Second
	probeBack  = 5 * time.Second
	// rateWindow is what read rates are measured over: reads come in
	// polls, one per pollInterval, so a window of a few seconds is off by
	// a whole poll (20% over 5 s); rateWindowPolls polls, and at least
	// rateWindow, keep it within 5%.
	rateWindow      = 20 * time.Second
	rateWindowPolls = 20
	probeLimit      = 1000
	monitorEvery    = 5 * time.Second
	probeTimeout    = time.Second
	// probeCallTimeout bounds each GetRecords call of a probe.
	probeCallTimeout = 10 * time.Second
	// minFillGap is the spacing of the history below which it is not filled,
	// and fillsPerRound the extra windows probed per shard per round.
	minFillGap    = time.Second
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

// Shard is what the monitor reads of one owned shard from its reader.
type Shard struct {
	ID                    string
	ReadTotal, BytesTotal int64
	WaitTotal             time.Duration
	Lag                   time.Duration
	LastArrival           time.Time
	CaughtUp              bool
	// CallSlot waits for one of the shard's GetRecords calls, shared with
	// its reader.
	CallSlot func(context.Context) error
}

// Prober is what the probes need of a Kinesis client; *kinesis.Client is
// one.
type Prober interface {
	GetShardIterator(ctx context.Context, in *awskinesis.GetShardIteratorInput, optFns ...func(*awskinesis.Options)) (*awskinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *awskinesis.GetRecordsInput, optFns ...func(*awskinesis.Options)) (*awskinesis.GetRecordsOutput, error)
}

// StreamView is what the monitor needs of the stream view.
type StreamView interface {
	Open() int
	Retention() time.Duration
	Stream() kinesis.Stream
}

// Heartbeats are the team's pods' heartbeats (lease.Manager).
type Heartbeats interface {
	Publish(numbers map[string]float64)
	Team() ([]lease.Heartbeat, int)
}

// Options configure a Monitor.
type Options struct {
	Team, Stream string
	Worker       string
	Budget       budget.Budget
	// Shards returns the shards this pod owns now.
	Shards  func() []Shard
	Kinesis Prober
	View    StreamView
	// Reading, when set, counts the shards being read: the open ones and
	// closed parents not read to their end (the budget is shared by them).
	Reading    func() int
	Heartbeats Heartbeats
	// Allowance, when set, is the team's allowance of a work-conserving
	// budget (ok false when there is none yet).
	Allowance func() (allowance float64, ok bool)
	// ProbeTimeout replaces probeTimeout (tests on a loaded machine).
	ProbeTimeout time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// Monitor measures one pod's shards and computes its team's status.
type Monitor struct {
	opts Options
	log  *slog.Logger
	tm   teamMetrics

	mu     sync.Mutex
	tracks map[string]*track
	team   teamStatus
}

// New returns a monitor; Run measures until its context ends.
func New(opts Options) *Monitor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	return &Monitor{opts: opts, log: opts.Logger, tm: newTeamMetrics(opts.Registerer, opts.Team, opts.Stream), tracks: map[string]*track{}}
}

// track is what the monitor keeps of one owned shard between rounds.
type track struct {
	mu   sync.Mutex
	cur  Shard
	tips []tipSample
	// lastProbe is when the shard was last probed.
	lastProbe time.Time
	// counts are the shard's totals at recent measures (the oldest at or
	// before rateWindow ago), for rates.
	counts []countSample
	last   figures
}

// countSample is a shard's running totals at one measure.
type countSample struct {
	at          time.Time
	read, bytes int64
	wait        time.Duration
}

// tracks updates the tracks to the shards owned now and returns them.
func (m *Monitor) current() []*track {
	shards := m.opts.Shards()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]bool, len(shards))
	out := make([]*track, 0, len(shards))
	for _, s := range shards {
		seen[s.ID] = true
		t := m.tracks[s.ID]
		if t == nil {
			t = &track{}
			m.tracks[s.ID] = t
		}
		t.mu.Lock()
		t.cur = s
		t.mu.Unlock()
		out = append(out, t)
	}
	for id := range m.tracks {
		if !seen[id] {
			delete(m.tracks, id) // lease gone: its history goes with it
		}
	}
	return out
}

// ShardFigures are one owned shard's rates and backlog, as of the last
// measure.
type ShardFigures struct {
	Read, Incoming, Backlog float64
}

// Shard returns the figures of an owned shard (zero before its first
// measure).
func (m *Monitor) Shard(id string) ShardFigures {
	m.mu.Lock()
	t := m.tracks[id]
	m.mu.Unlock()
	if t == nil {
		return ShardFigures{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return ShardFigures{Read: t.last.read, Incoming: t.last.incoming, Backlog: t.last.backlog}
}

// probeWindow measures the records and bytes per second that arrived at the
// shard in the one-second window starting at from. The first call asks for
// a little more than the shard's highest rate seen so far, not probeLimit:
// every record returned is decoded whole (up to 10 MB a call), and most of
// them lie past the window. When that is not enough to reach the window's
// end, one more call reads on with probeLimit. Each call takes one of the
// shard's call slots, which it shares with the reader's.
func (m *Monitor) probeWindow(ctx context.Context, t *track, from time.Time) (tipSample, error) {
	t.mu.Lock()
	sh := t.cur
	t.mu.Unlock()
	from = from.Truncate(time.Millisecond)
	to := from.Add(time.Second)
	s := tipSample{at: from.Add(time.Second / 2)}
	if err := sh.CallSlot(ctx); err != nil {
		return tipSample{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, cmp.Or(m.opts.ProbeTimeout, probeTimeout))
	defer cancel()
	stream := m.opts.View.Stream()
	it, err := m.opts.Kinesis.GetShardIterator(pctx, &awskinesis.GetShardIteratorInput{
		StreamName: stream.NameInput(), StreamARN: stream.ARNInput(), ShardId: aws.String(sh.ID),
		ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(from),
	}, noRetry)
	if err != nil {
		if pctx.Err() != nil && ctx.Err() == nil {
			return s, nil // unanswered: an empty window (see above)
		}
		return tipSample{}, err
	}
	iter, limit := it.ShardIterator, t.probeHint()
	for {
		rctx, cancel := context.WithTimeout(ctx, probeCallTimeout)
		out, err := m.opts.Kinesis.GetRecords(rctx, &awskinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(int32(limit))}, noRetry)
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
		if err := sh.CallSlot(ctx); err != nil {
			return tipSample{}, err
		}
		iter, limit = out.NextShardIterator, probeLimit
	}
}

// noRetry keeps a probe to the calls it took slots for: the SDK would retry
// a throttled call, and a lost probe costs only one sample.
func noRetry(o *awskinesis.Options) { o.RetryMaxAttempts = 1 }

// probeHint is the first probe call's limit: a quarter more than the
// highest rate in the shard's history, or probeLimit when it has none.
func (s *track) probeHint() int {
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
func (s *track) addTip(t tipSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.tips), func(i int) bool { return s.tips[i].at.After(t.at) })
	s.tips = slices.Insert(s.tips, i, t)
	drop := 0
	for drop+1 < len(s.tips) && !s.tips[drop+1].at.After(s.cur.LastArrival) {
		drop++
	}
	if len(s.tips)-drop > maxTips {
		drop = len(s.tips) - maxTips
	}
	s.tips = slices.Delete(s.tips, 0, drop)
}

// probeDue reports whether the shard is behind and due a probe, and if so
// books the probe time.
func (s *track) probeDue(now time.Time, okLag time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.CaughtUp || s.cur.LastArrival.IsZero() || now.Sub(s.cur.LastArrival) <= okLag || now.Sub(s.lastProbe) < probeEvery-time.Second {
		return false
	}
	s.lastProbe = now
	return true
}

// probe measures the tips of the owned shards that are behind, at most
// probeParallel at a time.
func (m *Monitor) probe(ctx context.Context, now time.Time, tracks []*track) {
	okLag := max(advice.OKLagPolls*m.opts.Budget.PollInterval, advice.MinOKLag)
	var g errgroup.Group
	g.SetLimit(probeParallel)
	for _, t := range tracks {
		if !t.probeDue(now, okLag) {
			continue
		}
		g.Go(func() error {
			tip, err := m.probeWindow(ctx, t, time.Now().Add(-probeBack))
			if err != nil {
				m.log.Debug("tip probe failed", "shard", t.cur.ID, "err", err)
				return nil
			}
			t.addTip(tip)
			for range fillsPerRound {
				at, ok := t.fillPoint()
				if !ok {
					break
				}
				past, err := m.probeWindow(ctx, t, at.Add(-time.Second/2))
				if err != nil {
					break
				}
				t.addTip(past)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// fillPoint is where the history most needs a sample: the middle of the gap
// (between the read position and the newest sample) whose possible error in
// the backlog is largest. With nearest-sample integration a gap can be off
// by up to half its width times the rate change across it; the gap before
// the oldest sample, with no rate on its far side, by its width times the
// oldest rate. Gaps narrower than minFillGap are left alone.
func (s *track) fillPoint() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.LastArrival.IsZero() || len(s.tips) == 0 {
		return time.Time{}, false
	}
	var best time.Time
	worst := 1.0 // records: below this, nothing is worth a call
	prev, prevRate, first := s.cur.LastArrival, 0.0, true
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
func (s *track) backlogLocked(now time.Time) float64 {
	if s.cur.CaughtUp || s.cur.LastArrival.IsZero() || len(s.tips) == 0 {
		return 0
	}
	from := s.cur.LastArrival
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

// measure returns the shard's figures: the backlog now, rates over the
// last window.
func (s *track) measure(now time.Time, window time.Duration) figures {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cur
	f := figures{backlog: s.backlogLocked(now), lag: c.Lag}
	if n := len(s.counts); n > 0 && c.ReadTotal < s.counts[n-1].read {
		s.counts = s.counts[:0] // the totals restarted (a new lease)
	}
	s.counts = append(s.counts, countSample{at: now, read: c.ReadTotal, bytes: c.BytesTotal, wait: c.WaitTotal})
	for len(s.counts) > 2 && !s.counts[1].at.After(now.Add(-window)) {
		s.counts = s.counts[1:]
	}
	if first := s.counts[0]; len(s.counts) > 1 {
		if dt := now.Sub(first.at).Seconds(); dt > 0 {
			f.read = float64(c.ReadTotal-first.read) / dt
			f.readBytes = float64(c.BytesTotal-first.bytes) / dt
			f.waitShare = math.Min((c.WaitTotal-first.wait).Seconds()/dt, 1)
		}
	}
	switch {
	case c.CaughtUp || f.lag <= advice.MinOKLag:
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

type figures struct {
	lag                     time.Duration
	backlog                 float64
	read, readBytes         float64
	incoming, incomingBytes float64
	waitShare               float64
}

// teamStatus is the latest per-team picture, for metrics and the status
// page.
type teamStatus struct {
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
func (m *Monitor) Team() TeamStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return TeamStatus{At: m.team.at, Snapshot: m.team.snapshot, Advice: m.team.advice}
}

type teamMetrics struct {
	openShards, reading, pods, budget, retention, headroom, incoming, read, backlog, drainETA, recommended prometheus.Gauge
	advice                                                                                                 *prometheus.GaugeVec
}

func newTeamMetrics(reg prometheus.Registerer, team, stream string) teamMetrics {
	labels := prometheus.Labels{"team": team, "stream": stream}
	f := promauto.With(reg)
	g := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "team", Name: name, Help: help, ConstLabels: labels})
	}
	return teamMetrics{
		openShards:  g("open_shards", "Open shards of the team's stream."),
		reading:     g("reading_shards", "Shards being read: the open ones and closed parents not yet read to their end, which share the budget (above open_shards while a reshard drains)."),
		read:        g("read_records_per_second", "Records/s the team's pods read, over the last 20 polls (at least 20 s)."),
		pods:        g("pods", "Live pods of the team (heartbeats in the lease table)."),
		budget:      g("budget_records_per_second", "The team's budget: maxRecords x open shards per pollInterval (or recordsPerSecond); with cluster:, its allowance."),
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

// Run measures the owned shards, shares the figures with the team's other
// pods and computes the team's advice, every monitorEvery, until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(monitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			m.probe(ctx, now, m.current())
			// The shards' totals again, read at the time they are
			// measured at: the probes can take seconds, and totals from
			// before them measured against the time after would
			// understate the read rate.
			at := time.Now()
			m.updateTeam(at, m.current())
		}
	}
}

// Report is what one pod measures of the shards it owns, shared with the
// team's other pods through its heartbeat.
type Report struct {
	Worker string
	// Shards is how many shards the pod owns.
	Shards int
	// Incoming and IncomingBytes are the tip rates of its shards.
	Incoming, IncomingBytes float64
	// Read is the rate it reads records.
	Read float64
	// Backlog is the records between its read positions and the tips.
	Backlog float64
	// MaxLag is its largest shard lag, in seconds.
	MaxLag float64
	// WaitShare is the share of time its shards waited on the budget.
	WaitShare float64
}

// numbers is the report as a heartbeat's payload.
func (r Report) numbers() map[string]float64 {
	return map[string]float64{"Shards": float64(r.Shards), "Incoming": r.Incoming, "IncomingBytes": r.IncomingBytes,
		"Read": r.Read, "Backlog": r.Backlog, "MaxLag": r.MaxLag, "WaitShare": r.WaitShare}
}

func reportOf(h lease.Heartbeat) Report {
	n := h.Numbers
	return Report{Worker: h.Worker, Shards: int(n["Shards"]), Incoming: n["Incoming"], IncomingBytes: n["IncomingBytes"],
		Read: n["Read"], Backlog: n["Backlog"], MaxLag: n["MaxLag"], WaitShare: n["WaitShare"]}
}

func (r *Report) add(o Report) {
	r.Shards += o.Shards
	r.Incoming += o.Incoming
	r.IncomingBytes += o.IncomingBytes
	r.Read += o.Read
	r.Backlog += o.Backlog
	r.MaxLag = math.Max(r.MaxLag, o.MaxLag)
}

func (m *Monitor) updateTeam(now time.Time, tracks []*track) {
	mine := Report{Worker: m.opts.Worker}
	for _, t := range tracks {
		f := t.measure(now, max(rateWindow, rateWindowPolls*m.opts.Budget.PollInterval))
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
	m.mu.Lock()
	primed := m.team.primed
	m.team.primed = true
	m.mu.Unlock()
	if !primed {
		return // the first round only sets the baseline for rates
	}
	m.opts.Heartbeats.Publish(mine.numbers())

	beats, pods := m.opts.Heartbeats.Team()
	var sum Report
	seen := false
	waitWeight := 0.0
	for _, h := range beats {
		r := reportOf(h)
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
	open := m.opts.View.Open()
	b := m.opts.Budget
	snap := advice.Snapshot{
		PollInterval:    b.PollInterval,
		Budget:          b.TeamRate(open),
		ShardBudget:     b.ShardRate(open),
		ShardByteBudget: float64(b.MaxBytesPerSecond),
		OpenShards:      open,
		Pods:            pods,
		Retention:       m.opts.View.Retention(),
		Lag:             time.Duration(sum.MaxLag * float64(time.Second)),
		Incoming:        sum.Incoming,
		IncomingBytes:   sum.IncomingBytes,
		Read:            sum.Read,
		Backlog:         sum.Backlog,
	}
	if sum.Shards > 0 {
		snap.WaitShare = waitWeight / float64(sum.Shards)
	}
	if m.opts.Allowance != nil {
		if a, ok := m.opts.Allowance(); ok {
			snap.Guarantee, snap.Budget = snap.Budget, a
		}
	}
	m.mu.Lock()
	low := snap.Incoming < advice.ScaleDownShare*float64(open*advice.ShardWriteRecords) &&
		snap.IncomingBytes < advice.ScaleDownShare*float64(open*advice.ShardWriteBytes)
	switch {
	case !low:
		m.team.lowSince = time.Time{}
	case m.team.lowSince.IsZero():
		m.team.lowSince = now
	}
	if !m.team.lowSince.IsZero() {
		snap.LowUtilisationFor = now.Sub(m.team.lowSince)
	}
	a := advice.For(snap)
	m.team.snapshot, m.team.advice, m.team.at = snap, a, now
	m.mu.Unlock()

	tm := m.tm
	tm.openShards.Set(float64(open))
	tm.pods.Set(float64(pods))
	tm.budget.Set(snap.Budget)
	tm.retention.Set(snap.Retention.Seconds())
	tm.headroom.Set(a.Headroom.Seconds())
	tm.incoming.Set(snap.Incoming)
	tm.read.Set(snap.Read)
	if m.opts.Reading != nil {
		tm.reading.Set(float64(m.opts.Reading()))
	} else {
		tm.reading.Set(float64(open))
	}
	tm.backlog.Set(snap.Backlog)
	switch {
	case a.DrainETA < 0:
		tm.drainETA.Set(-1)
	default:
		tm.drainETA.Set(a.DrainETA.Seconds())
	}
	tm.recommended.Set(float64(a.RecommendedShards))
	for _, act := range advice.Actions {
		v := 0.0
		if act == a.Action {
			v = 1
		}
		tm.advice.WithLabelValues(string(act)).Set(v)
	}
}
