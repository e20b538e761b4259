package consumer

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// shardState is what the consumer knows of one owned shard, read at scrape
// time and by the status page.
type shardState struct {
	mu             sync.Mutex
	id             string
	budget         float64 // records/s
	lastArrival    time.Time
	millisBehind   int64
	caughtUp       bool
	lastCheckpoint time.Time
	taken          time.Time

	// Totals, for the monitor's rates.
	readTotal, bytesTotal int64
	waitTotal             time.Duration
	// calls paces the shard's GetRecords calls, which Kinesis serves five
	// a second: the processor's reads and the tip probes take from it. Its
	// burst is one, so no second ever holds more than five.
	calls *rate.Limiter
}

func newShardState(id string, recordsPerSecond float64) *shardState {
	return &shardState{id: id, budget: recordsPerSecond, taken: time.Now(),
		calls: rate.NewLimiter(budget.MaxCallsPerSecond, 1)}
}

// callSlot waits until the shard may be sent one more GetRecords call.
func (s *shardState) callSlot(ctx context.Context) error { return s.calls.Wait(ctx) }

// count adds a processed batch to the totals.
func (s *shardState) count(records, bytes int, waited time.Duration) {
	s.mu.Lock()
	s.readTotal += int64(records)
	s.bytesTotal += int64(bytes)
	s.waitTotal += waited
	s.mu.Unlock()
}

func (s *shardState) observe(records []types.Record, millisBehind int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.millisBehind = millisBehind
	if len(records) == 0 {
		// An empty read with nothing behind it: the shard is caught up.
		s.caughtUp = millisBehind == 0
		return
	}
	s.caughtUp = false
	if t := aws.ToTime(records[len(records)-1].ApproximateArrivalTimestamp); t.After(s.lastArrival) {
		s.lastArrival = t
	}
}

func (s *shardState) setBudget(r float64) {
	s.mu.Lock()
	s.budget = r
	s.mu.Unlock()
}

func (s *shardState) checkpointed(t time.Time) {
	s.mu.Lock()
	s.lastCheckpoint = t
	s.mu.Unlock()
}

// ShardSnapshot is one owned shard as of now.
type ShardSnapshot struct {
	ID string
	// Budget is the shard's budget in records/s.
	Budget float64
	// Lag is the larger of MillisBehindLatest and the age of the last record
	// read, so it works on emulators that report 0; zero when caught up.
	Lag time.Duration
	// CheckpointAge is the time since the last checkpoint (since the lease
	// was taken when there was none).
	CheckpointAge time.Duration
	// The totals since the lease was taken, what the last read saw, and
	// the shard's GetRecords call slot (which the monitor's probes share).
	ReadTotal, BytesTotal int64
	WaitTotal             time.Duration
	LastArrival           time.Time
	CaughtUp              bool
	CallSlot              func(context.Context) error
}

// lagLocked is the larger of MillisBehindLatest and the age of the last
// record read, or 0 when the shard is caught up.
func (s *shardState) lagLocked(now time.Time) time.Duration {
	if s.caughtUp {
		return 0
	}
	lag := time.Duration(s.millisBehind) * time.Millisecond
	if !s.lastArrival.IsZero() {
		lag = max(lag, now.Sub(s.lastArrival))
	}
	return lag
}

func (s *shardState) snapshot(now time.Time) ShardSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := ShardSnapshot{ID: s.id, Budget: s.budget, Lag: s.lagLocked(now),
		ReadTotal: s.readTotal, BytesTotal: s.bytesTotal, WaitTotal: s.waitTotal,
		LastArrival: s.lastArrival, CaughtUp: s.caughtUp, CallSlot: s.callSlot}
	last := s.lastCheckpoint
	if last.IsZero() {
		last = s.taken
	}
	snap.CheckpointAge = now.Sub(last)
	return snap
}

// shardSet is the set of shards this pod owns.
type shardSet struct {
	mu     sync.Mutex
	shards map[string]*shardState
}

func (s *shardSet) add(id string, budget float64) *shardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := newShardState(id, budget)
	s.shards[id] = st
	return st
}

// remove forgets st and reports whether it was the shard's current state:
// a processor closed after a new one for the same shard started must not
// remove the new one's.
func (s *shardSet) remove(id string, st *shardState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shards[id] != st {
		return false
	}
	delete(s.shards, id)
	return true
}

func (s *shardSet) states() []*shardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*shardState, 0, len(s.shards))
	for _, st := range s.shards {
		out = append(out, st)
	}
	return out
}

// Snapshot returns every owned shard, sorted by id.
func (s *shardSet) Snapshot(now time.Time) []ShardSnapshot {
	states := s.states()
	out := make([]ShardSnapshot, 0, len(states))
	for _, st := range states {
		out = append(out, st.snapshot(now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Shards returns the shards this pod owns, sorted by id.
func (c *Consumer) Shards() []ShardSnapshot { return c.shards.Snapshot(time.Now()) }

// consumerMetrics are the consumer's series; per-shard ones are deleted
// when the shard's lease ends.
type consumerMetrics struct {
	recordsRead *prometheus.CounterVec
	bytesRead   *prometheus.CounterVec
	budgetWait  *prometheus.CounterVec
	abandoned   *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	skipped     prometheus.Counter
}

func newConsumerMetrics(reg prometheus.Registerer, team, stream string, shards *shardSet) consumerMetrics {
	labels := prometheus.Labels{"team": team, "stream": stream}
	f := promauto.With(reg)
	m := consumerMetrics{
		recordsRead: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "shard", Name: "records_read_total", ConstLabels: labels,
			Help: "Records read from the shard (after KPL de-aggregation).",
		}, []string{"shard"}),
		bytesRead: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "shard", Name: "bytes_read_total", ConstLabels: labels,
			Help: "Record payload bytes read from the shard.",
		}, []string{"shard"}),
		budgetWait: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "shard", Name: "budget_wait_seconds_total", ConstLabels: labels,
			Help: "Time the shard spent waiting on its budget limiter: it had records and was held back.",
		}, []string{"shard"}),
		abandoned: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "shard", Name: "records_abandoned_total", ConstLabels: labels,
			Help: "Records this pod gave up on unconfirmed (stopping, lease given up, sink unreachable at shutdown): the next reader reads them again.",
		}, []string{"shard"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "rules", Name: "dropped_total", ConstLabels: labels,
			Help: "Documents dropped by a drop rule of the budget file, by rule.",
		}, []string{"rule"}),
		skipped: f.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "decode", Name: "control_messages_total", ConstLabels: labels,
			Help: "CloudWatch Logs CONTROL_MESSAGE records skipped (they carry no log event).",
		}),
	}
	reg.MustRegister(&shardCollector{shards: shards, labels: labels})
	return m
}

func (m consumerMetrics) deleteShard(id string) {
	m.recordsRead.DeleteLabelValues(id)
	m.bytesRead.DeleteLabelValues(id)
	m.budgetWait.DeleteLabelValues(id)
	m.abandoned.DeleteLabelValues(id)
}

// shardCollector reports the per-shard gauges from the owned shards at
// scrape time, so a released shard's series disappear with it.
type shardCollector struct {
	shards *shardSet
	labels prometheus.Labels
}

func (c *shardCollector) desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, name), help, labels, c.labels)
}

func (c *shardCollector) descs() (budget, lag, age, owned *prometheus.Desc) {
	return c.desc("shard", "budget_records_per_second", "The shard's budget: the team's budget (or allowance, with cluster:) divided over the shards being read.", "shard"),
		c.desc("shard", "lag_seconds", "How far behind the shard's tip reading is: the larger of MillisBehindLatest and the age of the last record read; 0 when caught up.", "shard"),
		c.desc("shard", "checkpoint_age_seconds", "Time since the shard was last checkpointed by this pod.", "shard"),
		c.desc("consumer", "shards_owned", "Shard leases this pod holds.")
}

func (c *shardCollector) Describe(ch chan<- *prometheus.Desc) {
	budget, lag, age, owned := c.descs()
	ch <- budget
	ch <- lag
	ch <- age
	ch <- owned
}

func (c *shardCollector) Collect(ch chan<- prometheus.Metric) {
	snaps := c.shards.Snapshot(time.Now())
	budget, lag, age, owned := c.descs()
	for _, s := range snaps {
		ch <- prometheus.MustNewConstMetric(budget, prometheus.GaugeValue, s.Budget, s.ID)
		ch <- prometheus.MustNewConstMetric(lag, prometheus.GaugeValue, s.Lag.Seconds(), s.ID)
		ch <- prometheus.MustNewConstMetric(age, prometheus.GaugeValue, s.CheckpointAge.Seconds(), s.ID)
	}
	ch <- prometheus.MustNewConstMetric(owned, prometheus.GaugeValue, float64(len(snaps)))
}
