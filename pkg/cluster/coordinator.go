package cluster

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// Work-conserving budgets. Teams whose budget files name the same cluster
// share its capacity through one small table (DynamoDB, no new server):
// every pod writes its row every Interval (its team's guarantee, demand,
// opt-in, owned shards, the allowance it applies and its teammates that
// cannot coordinate) and reads every row; Allocate turns them into
// allowances. The per-shard pacing stays the only thing that admits
// records: coordination only moves its limit.
//
// Safety first. A pod that cannot read the table keeps the lower of its
// plain rate and its last applied rate while its own row may still look
// live to the others (they may be lending against it), and one interval
// more (they recompute once a round); only then does it fall back to its
// plain budget, never above it. Its teammates see it alive in the team's
// lease table without a live row, hold its plain rate back from the team's
// allowance and stop lending, so that the team's pods together never read
// above the team's allowance.
const (
	// Interval is how often a pod publishes and recomputes.
	Interval = 2 * time.Second
	// StaleAfter is when a row no longer counts: three intervals.
	StaleAfter = 3 * Interval
	// drainHorizon turns a backlog into demand: read it within a minute.
	drainHorizon = 60 * time.Second
	// heldBackShare is the share of the last interval a pod's shards spent
	// waiting on the limiter above which its team claims its whole
	// guarantee at once (its demand is above what it may read).
	heldBackShare = 0.2
	// lendShare is the part of the spare lent out: the rest absorbs the
	// batch each shard reads before it waits for tokens and the moments
	// pods apply new allowances, so 5 s windows stay within the capacity.
	lendShare = 0.85
	// forgetAfter is when any pod deletes a row its owner left behind.
	forgetAfter = time.Hour
)

// Table is the cluster table: every pod's row (NewDynamoTable, or
// NewMemTable in tests).
type Table interface {
	Ensure(ctx context.Context) error
	// Publish writes a pod's row, never over a newer one of the same pod.
	Publish(ctx context.Context, p Peer) error
	Read(ctx context.Context) ([]Peer, error)
	// Forget deletes a pod's row.
	Forget(ctx context.Context, team, pod string) error
}

// Teammate is a pod of the team, alive in the team's lease table.
type Teammate struct {
	Pod    string
	Shards int
}

// CoordinatorOptions configure a Coordinator.
type CoordinatorOptions struct {
	Cluster budget.Cluster
	Team    string
	Pod     string
	Table   Table
	// Guarantee is the team's plain budget now, in records/s.
	Guarantee func() float64
	// Demand is the team's tip rate plus its backlog over the drain
	// horizon's seconds, as the monitor measures it: Incoming + Backlog/60.
	Demand func() (incoming, backlog float64)
	// Owned is the shards this pod reads, and Waited their total time
	// held back by the pacer so far.
	Owned  func() int
	Waited func() time.Duration
	// Reading is the number of the team's shards being read.
	Reading func() int
	// Teammates are the team's live pods, from the lease table.
	Teammates func() []Teammate
	// Failover is the lease duration: a pod that lost the table stops
	// reading within it.
	Failover   time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Coordinator publishes this pod's row and computes its team's allowance
// and this pod's shard rate, every Interval.
type Coordinator struct {
	opts CoordinatorOptions
	log  *slog.Logger
	m    coordinatorMetrics

	mu    sync.Mutex
	team0 TeamAllocation
	// shardShare is the records/s each of this pod's shards may read,
	// computed over shareShards shards; 0: the plain budget.
	shardShare  float64
	shareShards int
	// computed is the last round's share, before increases wait a round.
	computed float64
	lastOK   time.Time
	used     float64
	prevWait time.Duration
	prevAt   time.Time
}

type coordinatorMetrics struct {
	allowance, borrowed, capacity, used, coordinated prometheus.Gauge
}

// NewCoordinator returns a coordinator; Run keeps it current.
func NewCoordinator(opts CoordinatorOptions, stream string) *Coordinator {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	labels := prometheus.Labels{"team": opts.Team, "stream": stream}
	fac := promauto.With(opts.Registerer)
	g := func(sub, name, help string) prometheus.Gauge {
		return fac.NewGauge(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: sub, Name: name, Help: help, ConstLabels: labels})
	}
	c := &Coordinator{
		opts: opts,
		log:  opts.Logger.With("cluster", opts.Cluster.Name),
		m: coordinatorMetrics{
			allowance:   g("team", "allowance_records_per_second", "What the team's pods may read together: its budget, plus what it borrows, minus what it lends."),
			borrowed:    g("team", "borrowed_records_per_second", "Records/s the team reads above its own budget, lent by quiet teams of its cluster."),
			capacity:    g("cluster", "capacity_records_per_second", "The capacity of the Elasticsearch cluster the team shares."),
			used:        g("cluster", "used_records_per_second", "The allowances of every team of the cluster, added up."),
			coordinated: g("cluster", "coordination_up", "1 while the cluster table is read and trusted; 0 means the plain budget applies."),
		},
	}
	c.m.capacity.Set(float64(opts.Cluster.Capacity))
	return c
}

// ShardRate is the rate each of this pod's shards may read, given the
// team's shards being read now, or ok false for the plain budget. It does
// not depend on how many shards the pod holds: a shard that moves between
// two rounds reads at the same rate on either side. More shards being read
// than the last round counted (a split's parent finished) share the same
// part.
func (c *Coordinator) ShardRate(reading int) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shardShare <= 0 {
		return 0, false
	}
	return c.shardShare * float64(c.shareShards) / float64(max(c.shareShards, reading, 1)), true
}

// Allocation is the team's current allocation (zero before the first
// round).
func (c *Coordinator) Allocation() TeamAllocation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.team0
}

// Run publishes and recomputes every Interval until ctx ends, then deletes
// this pod's row.
func (c *Coordinator) Run(ctx context.Context) error {
	if err := c.opts.Table.Ensure(ctx); err != nil {
		c.log.Warn("cluster table not ready; the plain budget applies until it is", "err", err)
	}
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = c.opts.Table.Forget(fctx, c.opts.Team, c.opts.Pod)
			cancel()
			return nil
		case now := <-t.C:
			c.round(ctx, now)
		}
	}
}

// demand is what the team would read if it could: the tip rate plus its
// backlog over drainHorizon, and at least its whole guarantee while this
// pod's shards are held back by their limiters.
func (c *Coordinator) demand(now time.Time, guarantee float64) float64 {
	incoming, backlog := c.opts.Demand()
	d := incoming + backlog/drainHorizon.Seconds()
	wait, owned := c.opts.Waited(), c.opts.Owned()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.prevAt.IsZero() && owned > 0 && wait >= c.prevWait {
		share := (wait - c.prevWait).Seconds() / (now.Sub(c.prevAt).Seconds() * float64(owned))
		if share >= heldBackShare {
			d = math.Max(d, guarantee)
		}
	}
	c.prevWait, c.prevAt = wait, now
	return d
}

// plainShare is what each shard reads at the plain budget.
func (c *Coordinator) plainShare(guarantee float64) float64 {
	return guarantee / float64(max(c.opts.Reading(), 1))
}

func (c *Coordinator) round(ctx context.Context, now time.Time) {
	guarantee := c.opts.Guarantee()
	owned := c.opts.Owned()
	d := c.demand(now, guarantee)
	c.mu.Lock()
	current := c.team0.Allowance
	c.mu.Unlock()
	me := Peer{Team: c.opts.Team, Pod: c.opts.Pod, Guarantee: guarantee, Demand: d, Borrow: c.opts.Cluster.Borrow,
		Shards: owned, Allowance: current, At: now}
	peers, err := c.exchange(ctx, me)
	if err == nil {
		// Our teammates alive in the lease table without a live row read
		// at their plain budget: say so, and hold their part back.
		me.Uncoordinated = uncoordinated(peers, c.opts.Teammates(), me, now, c.opts.Failover)
		if me.Uncoordinated > 0 {
			peers, err = c.exchange(ctx, me)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	plain := c.plainShare(guarantee)
	if err != nil {
		c.m.coordinated.Set(0)
		// Keep min(plain, last applied) while our row may still look live
		// to the others, and one interval more (they recompute once a
		// round); then the plain budget.
		if now.Sub(c.lastOK) > StaleAfter+Interval {
			c.team0, c.shardShare = Fallback(guarantee), 0
		} else if c.shardShare <= 0 || c.shardShare > plain {
			c.team0, c.shardShare = Fallback(guarantee), 0
		}
		c.shareShards = max(c.shareShards, c.opts.Reading())
		c.log.Debug("cluster table unreachable; plain budget", "err", err)
		c.publishMetrics()
		return
	}
	a := Allocate(Config{Capacity: float64(c.opts.Cluster.Capacity), StaleAfter: StaleAfter, LendShare: lendShare}, peers, now)
	team0 := a.For(c.opts.Team, guarantee)
	held := guarantee * float64(me.Uncoordinated) / float64(max(c.opts.Reading(), 1))
	share, shards := ShardShare(a, c.opts.Team, c.opts.Pod, peers, now, held, c.opts.Reading())
	if a.Stale || share <= 0 {
		share, shards = plain, max(c.opts.Reading(), 1)
	}
	// Pods apply their allocations at different moments within a round. A
	// decrease applies at once; an increase waits one round, so that the
	// pods whose allowance falls to make room have applied it first and the
	// cluster is never asked for more than its capacity in between.
	applied := share
	if c.computed > 0 {
		applied = min(share, c.computed)
	}
	c.computed = share
	c.team0, c.shardShare, c.shareShards = team0, applied, shards
	c.used = a.Used
	c.lastOK = now
	c.m.coordinated.Set(1)
	c.publishMetrics()
}

// uncoordinated counts the shards of the team's pods that read without a
// live row, at their plain budget: those alive in the lease table, and
// those whose row went stale less than the failover time ago (a pod that
// lost every table reads until its leases are fenced).
func uncoordinated(peers []Peer, team []Teammate, me Peer, now time.Time, failover time.Duration) int {
	liveRow := map[string]bool{}
	recent := map[string]int{}
	for _, p := range peers {
		if p.Team != me.Team || p.Pod == me.Pod {
			continue
		}
		if live(p, now, StaleAfter) {
			liveRow[p.Pod] = true
		} else if now.Sub(p.At) <= StaleAfter+failover {
			recent[p.Pod] = p.Shards
		}
	}
	n := 0
	for _, t := range team {
		if t.Pod != me.Pod && !liveRow[t.Pod] {
			n += t.Shards
			delete(recent, t.Pod)
		}
	}
	for _, shards := range recent {
		n += shards
	}
	return n
}

func (c *Coordinator) publishMetrics() {
	c.m.allowance.Set(c.team0.Allowance)
	c.m.borrowed.Set(c.team0.Borrowed)
	c.m.used.Set(c.used)
}

// exchange writes this pod's row and reads all, forgetting rows left
// behind for forgetAfter.
func (c *Coordinator) exchange(ctx context.Context, me Peer) ([]Peer, error) {
	ctx, cancel := context.WithTimeout(ctx, Interval)
	defer cancel()
	if err := c.opts.Table.Publish(ctx, me); err != nil {
		return nil, err
	}
	rows, err := c.opts.Table.Read(ctx)
	if err != nil {
		return nil, err
	}
	peers := rows[:0]
	for _, p := range rows {
		if me.At.Sub(p.At) > forgetAfter {
			_ = c.opts.Table.Forget(ctx, p.Team, p.Pod) // left behind by a pod that died
			continue
		}
		peers = append(peers, p)
	}
	return peers, nil
}
