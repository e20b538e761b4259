package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"
	kcllogger "github.com/vmware/vmware-go-kcl-v2/logger"

	"github.com/streambudget/streambudget/pkg/lease"
)

// This file holds the adapters between the KCL library (vmware-go-kcl-v2
// v1.0.0, archived upstream) and streambudget. Each guards against one
// behaviour of the library, named in its comment and shown by a test in
// kcl_test.go that runs the library itself; the pacer (pacer.go), the
// Shutdown rule (processor.go), the KPL guard and the GetRecords limit
// (pkg/kinesis) are the others.

// kclConfig is the library's configuration for a consumer.
func (c *Consumer) kclConfig(firstStart time.Time) *config.KinesisClientLibConfiguration {
	o := c.opts
	kcfg := config.NewKinesisClientLibConfig(o.ApplicationName, c.file.StreamName(), o.AWS.Region, o.WorkerID).
		WithMaxRecords(c.budget.MaxRecordsFor(max(c.view.Open(), 1))). // replaced per call (kinesis.GetRecordsLimit)
		WithShardSyncIntervalMillis(int(o.ShardSyncInterval.Milliseconds())).
		WithFailoverTimeMillis(int(o.FailoverTime.Milliseconds())).
		WithLeaseRefreshWaitTime(int(o.FailoverTime.Milliseconds() / 4)).
		WithIdleTimeBetweenReadsInMillis(int(c.budget.PollInterval.Milliseconds())).
		WithCallProcessRecordsEvenForEmptyRecordList(true).
		WithMaxRetryCount(1 << 20). // throttling is a slowdown, never a reason to drop the lease
		WithLogger(kclLogger{l: c.log.With("component", "kcl"), fatal: c.fatal})
	kcfg.ParentShardPollIntervalMillis = 1000
	return startPosition(kcfg, o.FromLatest, firstStart)
}

// startPosition guards against a library behaviour: the KCL starts every
// shard without a checkpoint at the configured initial position, children
// created by a reshard long after the first start included, so "start at
// the tip" (LATEST) would skip everything written to the children while
// their parents drained. With --from-latest the position is instead
// AT_TIMESTAMP at the team's first start, kept in the lease table: a shard
// open then starts where the tip was then (and a pod that restarts before
// its first checkpoint loses nothing since), while a child, created later,
// holds only records that arrived after it: it starts at its beginning.
// Without --from-latest every shard starts at its oldest record.
func startPosition(kcfg *config.KinesisClientLibConfiguration, fromLatest bool, firstStart time.Time) *config.KinesisClientLibConfiguration {
	if !fromLatest {
		return kcfg.WithInitialPositionInStream(config.TRIM_HORIZON)
	}
	t := firstStart
	return kcfg.WithTimestampAtInitialPositionInStream(&t)
}

// checkpointer is the library's lease table, backed by pkg/lease. The
// library's own DynamoDB checkpointer writes checkpoints unconditionally
// and knows nothing of balance or fencing; pkg/lease does both. It also
// guards against two library behaviours:
//
//   - The library takes one lease per shard sync, so a pod would take
//     every shard before a second pod starts: leases are taken only up to
//     the pod's fair share (lease.Manager), with a short sync interval.
//   - The library can start a child before its parent is read to its end:
//     it waits only for ParentShardId (never for the adjacent parent of a
//     merge) and not at all when the parent has no checkpoint row yet (a
//     consumer started on a stream resharded earlier). A child's lease is
//     therefore not taken until every parent is finished (SHARD_END) or no
//     longer listed, so per-key order holds and no reader holds a lease it
//     cannot read.
type checkpointer struct{ c *Consumer }

var _ chk.Checkpointer = checkpointer{}

func (a checkpointer) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// Init creates the lease table when it does not exist.
func (a checkpointer) Init() error {
	ctx, cancel := a.ctx()
	defer cancel()
	return a.c.table.Ensure(ctx)
}

// GetLease renews a held lease or takes a new one.
func (a checkpointer) GetLease(shard *par.ShardStatus, worker string) error {
	ctx, cancel := a.ctx()
	defer cancel()
	c := a.c
	if shard.GetLeaseOwner() == worker {
		// A renewal (the library asks only for shards it believes it holds):
		// a lease that ended is never taken again in its place, or the
		// library would go on reading with the ended lease's processor.
		err := lease.ErrLeaseEnded
		if c.leases.Holds(shard.ID) {
			err = c.leases.Renew(ctx, shard.ID)
		}
		if err != nil {
			c.renewalRefused(shard.ID)
			return err
		}
		shard.SetLeaseTimeout(time.Now().Add(c.opts.FailoverTime))
		return nil
	}
	switch {
	case c.softStop.Err() != nil:
		return chk.ErrLeaseNotAcquired{}
	case !c.leases.Scanned() || !c.view.ParentsDone(shard.ID, c.leases.Finished):
		// Parents not known done yet (or the shard not in the view yet):
		// the next sync asks again.
		return chk.ErrLeaseNotAcquired{}
	}
	row, err := c.leases.Acquire(ctx, shard.ID, shard.ParentShardId)
	if err != nil {
		if errors.Is(err, lease.ErrNotAcquired) {
			return chk.ErrLeaseNotAcquired{}
		}
		return err
	}
	shard.Mux.Lock()
	shard.AssignedTo, shard.LeaseTimeout, shard.Checkpoint = worker, time.Now().Add(c.opts.FailoverTime), row.Checkpoint
	shard.Mux.Unlock()
	return nil
}

// CheckpointSequence writes the shard's checkpoint while the lease is held.
func (a checkpointer) CheckpointSequence(shard *par.ShardStatus) error {
	ctx, cancel := a.ctx()
	defer cancel()
	return a.c.leases.Checkpoint(ctx, shard.ID, shard.GetCheckpoint())
}

// FetchCheckpoint reads the shard's checkpoint and lease. It guards against
// three library behaviours:
//
//   - The library skips, at every shard sync, a shard whose row names this
//     pod as its owner, believing it holds the lease; a lease whose release
//     failed (the table was unreachable when its reader stopped) keeps this
//     pod's name in the row, and the pod would never read the shard again.
//     The owner is reported only while this pod does hold the lease.
//   - The library sets a shard's checkpoint to SHARD_END in memory before
//     writing it, and skips a shard whose checkpoint in memory is SHARD_END:
//     when that write failed, the shard (and its children) would never be
//     read again by this pod. The checkpoint in memory is always the row's.
//   - A child's reader waits until its parent's checkpoint is SHARD_END,
//     forever for a parent that aged out of the stream unfinished (its
//     lease is taken because the parent is no longer listed). Such a parent
//     is reported finished: nothing more can be read from it.
func (a checkpointer) FetchCheckpoint(shard *par.ShardStatus) error {
	ctx, cancel := a.ctx()
	defer cancel()
	if a.c.view.AgedOut(shard.ID) {
		shard.SetCheckpoint(chk.ShardEnd)
		return nil
	}
	row, ok, err := a.c.leases.Fetch(ctx, shard.ID)
	if err != nil {
		return err
	}
	if !ok || row.Checkpoint == "" {
		shard.SetCheckpoint("")
		return chk.ErrSequenceIDNotFound
	}
	if row.Owner == a.c.opts.WorkerID && !a.c.leases.Holds(shard.ID) {
		row.Owner = ""
	}
	shard.SetCheckpoint(row.Checkpoint)
	shard.SetLeaseOwner(row.Owner)
	if t, err := time.Parse(time.RFC3339Nano, row.Timeout); err == nil {
		shard.SetLeaseTimeout(t)
	}
	return nil
}

// RemoveLeaseInfo deletes the row of a shard no longer listed (aged out).
func (a checkpointer) RemoveLeaseInfo(shardID string) error {
	ctx, cancel := a.ctx()
	defer cancel()
	return a.c.table.Delete(ctx, shardID)
}

// RemoveLeaseOwner is the library releasing a lease when a shard's reader
// stops; after it the shard may be taken again, by this pod or another.
func (a checkpointer) RemoveLeaseOwner(shardID string) error {
	a.c.released(shardID)
	ctx, cancel := a.ctx()
	defer cancel()
	return a.c.leases.Release(ctx, shardID)
}

// GetLeaseOwner is for lease stealing, which is off.
func (a checkpointer) GetLeaseOwner(shardID string) (string, error) {
	ctx, cancel := a.ctx()
	defer cancel()
	row, _, err := a.c.leases.Fetch(ctx, shardID)
	return row.Owner, err
}

// ListActiveWorkers is for lease stealing, which is off.
func (checkpointer) ListActiveWorkers(map[string]*par.ShardStatus) (map[string][]*par.ShardStatus, error) {
	return nil, errors.New("lease stealing is off")
}

// ClaimShard is for lease stealing, which is off.
func (checkpointer) ClaimShard(*par.ShardStatus, string) error {
	return errors.New("lease stealing is off")
}

// CreateProcessor is the library's factory hook: one processor per lease.
// The processor is made when the library knows its shard (Initialize).
func (c *Consumer) CreateProcessor() kcl.IRecordProcessor { return &procHandle{c: c} }

// procHandle is the library's record processor; it registers the
// processor once it knows its shard.
type procHandle struct {
	c *Consumer
	p *processor
}

func (h *procHandle) Initialize(in *kcl.InitializationInput) {
	h.p = h.c.newProcessor(in.ShardId)
	h.c.register(h.p)
	if in.ExtendedSequenceNumber != nil && in.ExtendedSequenceNumber.SequenceNumber != nil {
		h.p.log.Info("shard lease taken", "checkpoint", *in.ExtendedSequenceNumber.SequenceNumber)
	}
}
func (h *procHandle) ProcessRecords(in *kcl.ProcessRecordsInput) { h.p.ProcessRecords(in) }
func (h *procHandle) Shutdown(in *kcl.ShutdownInput)             { h.p.Shutdown(in) }

// kclLogger adapts slog to the library's logger. The library's chatter
// stays at debug. Its Fatalf (the library calls it only when it has to
// build its own AWS clients, which it is never asked to) stops the consumer
// with an error instead of exiting the process.
type kclLogger struct {
	l     *slog.Logger
	fatal func(error)
}

func (k kclLogger) Debugf(f string, a ...any) { k.l.Debug(fmt.Sprintf(f, a...)) }
func (k kclLogger) Infof(f string, a ...any)  { k.l.Debug(fmt.Sprintf(f, a...)) }
func (k kclLogger) Warnf(f string, a ...any)  { k.l.Warn(fmt.Sprintf(f, a...)) }
func (k kclLogger) Errorf(f string, a ...any) { k.l.Error(fmt.Sprintf(f, a...)) }
func (k kclLogger) Fatalf(f string, a ...any) {
	err := fmt.Errorf("KCL library: %s", fmt.Sprintf(f, a...))
	k.l.Error(err.Error())
	k.fatal(err)
}
func (k kclLogger) Panicf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (k kclLogger) WithFields(fields kcllogger.Fields) kcllogger.Logger {
	args := make([]any, 0, 2*len(fields))
	for key, v := range fields {
		args = append(args, key, v)
	}
	return kclLogger{l: k.l.With(args...), fatal: k.fatal}
}
