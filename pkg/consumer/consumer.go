// Package consumer reads a team's Kinesis stream within its budget. It is
// the only user of vmware-go-kcl-v2: one library worker per pod, one record
// processor per leased shard. Each shard's records go through its ledger
// (pkg/consumer/ledger), which alone decides what may be checkpointed; its pacer
// (pacer.go) alone decides what may be read. The library's behaviours that
// would lose records or read above the budget are guarded by small named
// adapters (kcl.go).
package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	wk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"
	"golang.org/x/sync/errgroup"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/document"
	"github.com/streambudget/streambudget/pkg/kinesis"
	"github.com/streambudget/streambudget/pkg/lease"
)

// Options configure a Consumer.
type Options struct {
	Budget *budget.File
	// Schema builds the team's documents.
	Schema *document.Schema
	// Sink writes them; *essink.Sink in production.
	Sink Sink
	// AWS is the loaded AWS configuration (region, credentials, endpoints),
	// for the clients not given below.
	AWS aws.Config
	// Lister and Table replace the Kinesis client of the stream view and
	// the DynamoDB lease table (tests).
	Lister kinesis.Lister
	Table  lease.Table
	// Allowance, when set, gives the shard rate of a work-conserving
	// budget (pkg/cluster); nil means the plain budget.
	Allowance Allowance
	// ApplicationName names the KCL application and its lease table.
	// Default streambudget-<team>.
	ApplicationName string
	// WorkerID identifies this pod in the lease table. Default:
	// lease.DefaultWorker().
	WorkerID string
	// FromLatest starts shards without a checkpoint at the team's first
	// start instead of their oldest record (see startPosition).
	FromLatest bool
	// ShardSyncInterval is how often the library lists shards and takes at
	// most one new lease.
	ShardSyncInterval time.Duration // default 500ms
	// FailoverTime is the lease duration: a pod that does not renew within
	// it loses its shards to the others.
	FailoverTime time.Duration // default 10s
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration // default 30s

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Allowance is a work-conserving budget's say in the shard rate.
type Allowance interface {
	// ShardRate is the rate each of this pod's shards may read, given the
	// shards the team reads; ok false means the plain budget applies.
	ShardRate(reading int) (rate float64, ok bool)
}

// Consumer is one pod's reader of a team's stream.
type Consumer struct {
	opts   Options
	file   *budget.File
	budget budget.Budget
	schema *document.Schema
	sink   Sink
	log    *slog.Logger
	m      consumerMetrics
	shards *shardSet
	view   *kinesis.View
	table  lease.Table
	leases *lease.Manager

	softStop, hardStop context.Context
	stopSoft, stopHard context.CancelFunc
	ready              atomic.Bool
	// fatal ends Run with the error the library reported.
	fatalErr  chan error
	fatalOnce sync.Once

	mu         sync.Mutex
	processors map[string]*processor
}

// New checks the options and builds a consumer; Run starts it.
func New(opts Options) (*Consumer, error) {
	f := opts.Budget
	switch {
	case f == nil:
		return nil, errors.New("no budget")
	case opts.Schema == nil:
		return nil, errors.New("no document schema")
	case opts.Sink == nil:
		return nil, errors.New("no sink")
	case opts.AWS.Region == "":
		return nil, errors.New("AWS region is not set (AWS_REGION or the shared config)")
	}
	opts.ApplicationName = cmp.Or(opts.ApplicationName, f.ApplicationName())
	opts.WorkerID = cmp.Or(opts.WorkerID, lease.DefaultWorker())
	opts.ShardSyncInterval = cmp.Or(max(opts.ShardSyncInterval, 0), 500*time.Millisecond)
	opts.FailoverTime = cmp.Or(max(opts.FailoverTime, 0), 10*time.Second)
	opts.ShutdownTimeout = cmp.Or(max(opts.ShutdownTimeout, 0), 30*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Lister == nil {
		opts.Lister = awskinesis.NewFromConfig(opts.AWS, func(o *awskinesis.Options) { o.APIOptions = append(o.APIOptions, kinesis.FastGetRecords) })
	}
	if opts.Table == nil {
		opts.Table = lease.NewDynamoTable(dynamodb.NewFromConfig(opts.AWS), opts.ApplicationName)
	}
	log := opts.Logger.With("team", f.Team, "stream", f.StreamName())
	c := &Consumer{
		opts:       opts,
		file:       f,
		budget:     f.Budget,
		schema:     opts.Schema,
		sink:       opts.Sink,
		log:        log,
		shards:     &shardSet{shards: map[string]*shardState{}},
		view:       kinesis.NewView(opts.Lister, kinesis.Stream{Name: f.StreamName(), ARN: f.StreamARN}, log),
		table:      opts.Table,
		leases:     lease.New(lease.Options{Table: opts.Table, Worker: opts.WorkerID, Failover: opts.FailoverTime, Log: log}),
		fatalErr:   make(chan error, 1),
		processors: map[string]*processor{},
	}
	c.softStop, c.stopSoft = context.WithCancel(context.Background())
	c.hardStop, c.stopHard = context.WithCancel(context.Background())
	c.m = newConsumerMetrics(opts.Registerer, f.Team, f.StreamName(), c.shards)
	return c, nil
}

// View is the consumer's picture of its stream.
func (c *Consumer) View() *kinesis.View { return c.view }

// Leases are the pod's leases (and the team's heartbeats).
func (c *Consumer) Leases() *lease.Manager { return c.leases }

// Ready reports whether the worker runs.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// WorkerID is this pod's name in the lease table.
func (c *Consumer) WorkerID() string { return c.opts.WorkerID }

// viewRefresh is how often the stream's shards are listed again; a change
// the library's own listing sees (every shard sync) refreshes the view at
// once, so a reshard's new budget applies within about a second.
const viewRefresh = 10 * time.Second

// maxShardRate is the most one shard serves: 10,000 records a call, five
// calls a second.
const maxShardRate = budget.MaxRecordsPerCall * budget.MaxCallsPerSecond

// TeamRate is the team's budget now: maxRecords x open shards per poll
// interval, or recordsPerSecond. A shard read to its end counts as closed
// even before the stream's listing says so.
func (c *Consumer) TeamRate() float64 {
	return c.budget.TeamRate(max(c.view.OpenNow(c.leases.Finished), 1))
}

// Reading is the number of the team's shards being read or readable now:
// open ones and closed parents still draining, not children waiting for
// their parents.
func (c *Consumer) Reading() int { return c.view.Reading(c.leases.Finished) }

// shardRate is what each shard being read may read now, and the GetRecords
// limit that goes with it. The team's budget (or its allowance) is shared
// by every shard being read, parents still draining included, so that the
// team's reads summed over its shards never exceed it, through a reshard
// too.
func (c *Consumer) shardRate() (float64, int) {
	reading := max(c.Reading(), 1)
	r := 0.0
	if c.opts.Allowance != nil {
		if v, ok := c.opts.Allowance.ShardRate(reading); ok {
			r = v
		}
	}
	if r <= 0 {
		r = c.TeamRate() / float64(reading)
	}
	r = min(r, maxShardRate)
	limit := int(math.Ceil(r*c.budget.PollInterval.Seconds() - 1e-9))
	return r, min(max(limit, 1), budget.MaxRecordsPerCall)
}

// getRecordsLimit is the GetRecords limit of every shard of this pod.
func (c *Consumer) getRecordsLimit() int32 { _, limit := c.shardRate(); return int32(limit) }

func (c *Consumer) register(p *processor) {
	c.mu.Lock()
	old, ok := c.processors[p.shardID]
	c.processors[p.shardID] = p
	c.mu.Unlock()
	if ok && old != p {
		old.close()
	}
}

// renewalRefused tells the shard's processor that the library will stop
// reading the shard.
func (c *Consumer) renewalRefused(shardID string) {
	c.mu.Lock()
	p := c.processors[shardID]
	c.mu.Unlock()
	if p != nil {
		p.refuse()
	}
}

// released is called when the library releases a shard's lease, with or
// without a Shutdown call before it.
func (c *Consumer) released(shardID string) {
	c.mu.Lock()
	p, ok := c.processors[shardID]
	delete(c.processors, shardID)
	c.mu.Unlock()
	if ok {
		p.close()
	}
}

// fatal ends Run with err.
func (c *Consumer) fatal(err error) {
	c.fatalOnce.Do(func() { c.fatalErr <- err })
}

// Run reads the stream until ctx ends, then stops within ShutdownTimeout:
// no new leases, in-flight batches finish or are abandoned unconfirmed,
// checkpoints cover only what the sink confirmed, leases are released. It
// returns the first error that stopped it, or nil after a stop asked by ctx.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.stopHard()
	defer c.stopSoft()
	kc := awskinesis.NewFromConfig(c.opts.AWS, func(o *awskinesis.Options) {
		o.APIOptions = append(o.APIOptions, kinesis.KPLGuard, kinesis.FastGetRecords, kinesis.GetRecordsLimit(c.getRecordsLimit), kinesis.WatchListShards(c.view))
	})
	if err := retry(ctx, c.log, "stream not readable yet", c.view.Refresh); err != nil {
		return nil // stopped before it started
	}
	if open := c.view.Open(); open != c.file.Shards {
		c.log.Warn("the stream's open shards differ from the budget file's shards; the budget follows the live count",
			"open", open, "budget_file_shards", c.file.Shards, "team_budget_records_per_second", c.budget.TeamRate(open))
	}
	// The view keeps itself current from now on, however long the lease
	// table takes to answer: the rates read from it must not be stale.
	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	g, gctx := errgroup.WithContext(bg)
	g.Go(func() error { return c.view.Run(gctx, viewRefresh) })
	stop := func() error {
		stopBackground()
		return g.Wait()
	}
	if err := retry(ctx, c.log, "lease table not ready", c.table.Ensure); err != nil {
		return stop()
	}
	var firstStart time.Time
	var recreated *lease.StreamRecreatedError
	if err := retry(ctx, c.log, "read the team's first start", func(ctx context.Context) (err error) {
		firstStart, err = c.leases.FirstStart(ctx, c.view.Created())
		if errors.As(err, &recreated) {
			return nil
		}
		return err
	}); err != nil {
		return stop()
	}
	if recreated != nil {
		stop()
		return fmt.Errorf("stream %s, lease table %s: %w", c.file.StreamName(), c.opts.ApplicationName, recreated)
	}
	g.Go(func() error { return c.leases.Run(gctx, c.Reading) })

	kcfg := c.kclConfig(firstStart)
	var w *wk.Worker
	if err := retry(ctx, c.log, "start the KCL worker", func(context.Context) error {
		w = wk.NewWorker(c, kcfg).WithKinesis(kc).WithCheckpointer(checkpointer{c})
		return w.Start()
	}); err != nil {
		return stop()
	}
	c.ready.Store(true)
	c.log.Info("consumer running", "worker", c.opts.WorkerID, "application", c.opts.ApplicationName,
		"open_shards", c.view.Open(), "team_budget_records_per_second", c.TeamRate(), "from_latest", c.opts.FromLatest)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-c.fatalErr:
	case <-gctx.Done():
		runErr = fmt.Errorf("background task stopped: %w", context.Cause(gctx))
	}
	c.ready.Store(false)
	c.log.Info("stopping: no new leases, finishing in-flight batches", "timeout", c.opts.ShutdownTimeout)
	start := time.Now()
	c.stopSoft()
	// In-flight bulk requests get most of the timeout; what is not confirmed
	// by then is abandoned, unconfirmed, and read again by the next owner.
	hardAfter := time.AfterFunc(max(c.opts.ShutdownTimeout-3*time.Second, c.opts.ShutdownTimeout/2), c.stopHard)
	defer hardAfter.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Shutdown()
	}()
	select {
	case <-done:
	case <-time.After(c.opts.ShutdownTimeout - time.Second):
		c.log.Warn("worker did not stop in time; its leases expire after the failover time")
	}
	stopBackground()
	if err := g.Wait(); err != nil && runErr == nil {
		runErr = err
	}
	c.log.Info("consumer stopped", "took", time.Since(start).Round(time.Millisecond))
	return runErr
}

// retry calls f until it succeeds or ctx ends (then it returns ctx's
// error), backing off up to 15 s and logging each failure.
func retry(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn(what+"; retrying", "attempt", attempt, "err", err)
		if err := sleepCtx(ctx, min(time.Duration(attempt)*time.Second, 15*time.Second)); err != nil {
			return err
		}
	}
}
