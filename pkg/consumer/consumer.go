// Package consumer reads a team's Kinesis stream within its budget. It is the
// only user of vmware-go-kcl-v2: one library worker per pod, one record
// processor per leased shard, leases and checkpoints in DynamoDB. Each shard
// is paced to maxRecords per pollInterval, and checkpointed only up to what
// the sink confirmed.
package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	wk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/rules"
)

// Options configure a Consumer.
type Options struct {
	Budget *budget.File
	// AWS is the loaded AWS configuration (region, credentials, endpoints).
	AWS aws.Config
	// Sink writes the documents; *essink.Sink in production.
	Sink indexer
	// ApplicationName names the KCL application and its lease table.
	// Default streambudget-<team>.
	ApplicationName string
	// WorkerID identifies this pod in the lease table. Default: host name
	// and a random suffix.
	WorkerID string
	// FromLatest starts shards without a checkpoint at the tip instead of
	// the oldest record (the default: a new deployment loses nothing).
	FromLatest bool
	// ShardSyncInterval is how often the library lists shards and takes at
	// most one new lease: short, so a pod owns its shards within seconds.
	ShardSyncInterval time.Duration // default 500ms
	// FailoverTime is the lease duration: a pod that does not renew within
	// it loses its shards to the others.
	FailoverTime time.Duration // default 10s
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration // default 30s
	// DataStream indexes with op_type create.
	DataStream bool

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Consumer is one pod's reader of a team's stream.
type Consumer struct {
	// probeTimeout replaces the constant of that name when set (tests on a
	// loaded machine).
	probeTimeout time.Duration

	opts   Options
	budget budget.Budget
	pipe   *pipeline
	sink   indexer
	log    *slog.Logger
	m      consumerMetrics
	shards *shardSet

	view   *streamView
	leases *leases
	kc     *kinesis.Client
	team   teamStatus
	tm     teamMetrics
	// borrow coordinates a work-conserving budget; nil without cluster:.
	borrow *borrower

	softStop, hardStop context.Context
	ready              atomic.Bool

	mu         sync.Mutex
	processors map[string]*processor
}

// New checks the options and builds a consumer; Run starts it.
func New(opts Options) (*Consumer, error) {
	f := opts.Budget
	if f == nil {
		return nil, errors.New("no budget")
	}
	if opts.Sink == nil {
		return nil, errors.New("no sink")
	}
	if opts.AWS.Region == "" {
		return nil, errors.New("AWS region is not set (AWS_REGION or the shared config)")
	}
	if opts.ApplicationName == "" {
		opts.ApplicationName = f.ApplicationName()
	}
	if opts.WorkerID == "" {
		opts.WorkerID = defaultWorkerID()
	}
	if opts.ShardSyncInterval <= 0 {
		opts.ShardSyncInterval = 500 * time.Millisecond
	}
	if opts.FailoverTime <= 0 {
		opts.FailoverTime = 10 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	idx, err := budget.ParseIndexPattern(f.Elasticsearch.Index)
	if err != nil {
		return nil, fmt.Errorf("index pattern: %w", err)
	}
	rs, err := rules.Compile(f.Drop, f.Redact)
	if err != nil {
		return nil, fmt.Errorf("compile rules: %w", err)
	}
	log := opts.Logger.With("team", f.Team, "stream", f.StreamName())
	c := &Consumer{
		opts:   opts,
		budget: f.Budget,
		sink:   opts.Sink,
		log:    log,
		shards: &shardSet{shards: map[string]*shardState{}},
		pipe: &pipeline{
			team: f.Team, stream: f.StreamName(), index: idx, rules: rs, dataStream: opts.DataStream,
			decodeOpts: decode.Options{Format: f.Decode, MaxDecompressedBytes: f.Limits.MaxDecompressedBytes},
		},
		processors: map[string]*processor{},
	}
	c.m = newConsumerMetrics(opts.Registerer, f.Team, f.StreamName(), c.shards)
	c.tm = newTeamMetrics(opts.Registerer, f.Team, f.StreamName())
	return c, nil
}

func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "streambudget"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// CreateProcessor is the library's factory hook: one processor per lease.
func (c *Consumer) CreateProcessor() kcl.IRecordProcessor {
	return &procHandle{p: &processor{c: c}}
}

// procHandle registers the processor once it knows its shard.
type procHandle struct{ p *processor }

func (h *procHandle) Initialize(in *kcl.InitializationInput) {
	h.p.Initialize(in)
	c := h.p.c
	c.mu.Lock()
	if old, ok := c.processors[in.ShardId]; ok && old != h.p {
		defer old.close()
	}
	c.processors[in.ShardId] = h.p
	c.mu.Unlock()
}
func (h *procHandle) ProcessRecords(in *kcl.ProcessRecordsInput) { h.p.ProcessRecords(in) }
func (h *procHandle) Shutdown(in *kcl.ShutdownInput)             { h.p.Shutdown(in) }

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

// guarantee is the team's own budget with the current open shards.
func (c *Consumer) guarantee() float64 { return c.budget.TeamRate(c.view.open()) }

// shardRate is what one shard may read now: its share of the team's
// allowance when the team borrows or lends, else the plain budget.
func (c *Consumer) shardRate(open int) float64 {
	if c.borrow != nil {
		if r := c.borrow.shardRate(c.shards.count()); r > 0 {
			return r
		}
	}
	return c.budget.ShardRate(open)
}

// Ready reports whether the worker runs.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Shards returns the shards this pod owns.
func (c *Consumer) Shards() []ShardSnapshot { return c.shards.Snapshot(time.Now()) }

// OpenShards is the stream's open-shard count as last seen.
func (c *Consumer) OpenShards() int { return c.view.open() }

// Retention is the stream's retention period as last seen.
func (c *Consumer) Retention() time.Duration { return c.view.retentionPeriod() }

// WorkerID is this pod's name in the lease table.
func (c *Consumer) WorkerID() string { return c.opts.WorkerID }

// Run reads the stream until ctx ends, then stops within ShutdownTimeout:
// no new leases, in-flight batches finish or are abandoned unconfirmed,
// leases are released.
func (c *Consumer) Run(ctx context.Context) error {
	f := c.opts.Budget
	kc := kinesis.NewFromConfig(c.opts.AWS, func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, kplGuard, FastGetRecords)
	})
	db := dynamodb.NewFromConfig(c.opts.AWS)
	c.kc = kc
	if f.Cluster != nil {
		c.borrow = newBorrower(c, db, f, c.opts.Registerer)
	}

	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	soft, stopSoft := context.WithCancel(context.Background())
	hard, stopHard := context.WithCancel(context.Background())
	defer stopHard()
	defer stopSoft()
	c.softStop, c.hardStop = soft, hard

	c.view = newStreamView(kc, f.StreamName(), f.StreamARN, c.log)
	for attempt := 1; ; attempt++ {
		err := c.view.refresh(ctx)
		if err == nil {
			break
		}
		c.log.Warn("stream not readable yet; retrying", "attempt", attempt, "err", err)
		if sleepCtx(ctx, min(time.Duration(attempt)*time.Second, 15*time.Second)) != nil {
			return nil
		}
	}
	if open := c.view.open(); open != f.Shards {
		c.log.Warn("the stream's open shards differ from the budget file's shards; the budget follows the live count",
			"open", open, "budget_file_shards", f.Shards, "team_budget_records_per_second", c.budget.TeamRate(open))
	}
	go c.view.run(bg, 10*time.Second)

	kcfg := config.NewKinesisClientLibConfig(c.opts.ApplicationName, f.StreamName(), c.opts.AWS.Region, c.opts.WorkerID).
		WithMaxRecords(c.budget.MaxRecordsFor(c.view.open())).
		WithShardSyncIntervalMillis(int(c.opts.ShardSyncInterval.Milliseconds())).
		WithFailoverTimeMillis(int(c.opts.FailoverTime.Milliseconds())).
		WithLeaseRefreshWaitTime(int(c.opts.FailoverTime.Milliseconds() / 4)).
		WithIdleTimeBetweenReadsInMillis(int(c.budget.PollInterval.Milliseconds())).
		WithCallProcessRecordsEvenForEmptyRecordList(true).
		WithMaxRetryCount(1 << 20). // throttling is a slowdown, never a reason to drop the lease
		WithLogger(kclLogger{c.log.With("component", "kcl")})
	kcfg.ParentShardPollIntervalMillis = 1000
	if c.opts.FromLatest {
		kcfg = kcfg.WithInitialPositionInStream(config.LATEST)
	} else {
		kcfg = kcfg.WithInitialPositionInStream(config.TRIM_HORIZON)
	}
	base := chk.NewDynamoCheckpoint(kcfg).WithDynamoDB(db)
	c.leases = newLeases(base, db, kcfg.TableName, c.opts.WorkerID, c.opts.FailoverTime, c.log)
	c.leases.onRelease = c.released

	var w *wk.Worker
	for attempt := 1; ; attempt++ {
		w = wk.NewWorker(c, kcfg).WithKinesis(kc).WithCheckpointer(c.leases)
		err := w.Start()
		if err == nil {
			break
		}
		c.log.Warn("start the KCL worker; retrying", "attempt", attempt, "err", err)
		if sleepCtx(ctx, min(time.Duration(attempt)*time.Second, 15*time.Second)) != nil {
			return nil
		}
	}
	leasesDone := make(chan struct{})
	go func() {
		defer close(leasesDone)
		c.leases.run(bg, c.view.list)
	}()
	go c.monitor(bg)
	if c.borrow != nil {
		go c.borrow.run(bg)
	}
	c.ready.Store(true)
	c.log.Info("consumer running", "worker", c.opts.WorkerID, "application", c.opts.ApplicationName,
		"open_shards", c.view.open(), "team_budget_records_per_second", c.budget.TeamRate(c.view.open()))

	<-ctx.Done()
	c.ready.Store(false)
	c.log.Info("stopping: no new leases, finishing in-flight batches", "timeout", c.opts.ShutdownTimeout)
	start := time.Now()
	stopSoft()
	// In-flight bulk requests get most of the timeout; what is not confirmed
	// by then is abandoned, unconfirmed, and read again by the next owner.
	hardAfter := time.AfterFunc(max(c.opts.ShutdownTimeout-3*time.Second, c.opts.ShutdownTimeout/2), stopHard)
	defer hardAfter.Stop()
	done := make(chan struct{})
	go func() {
		w.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(c.opts.ShutdownTimeout - time.Second):
		c.log.Warn("worker did not stop in time; its leases expire after the failover time")
	}
	stopBackground()
	<-leasesDone
	c.log.Info("consumer stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}
