package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"
)

// workerRowPrefix marks the heartbeat rows pods write into the lease table.
// The library only ever reads rows for shard ids it lists from Kinesis, so
// these rows are invisible to it.
const workerRowPrefix = "worker#"

// errLeaseEnded is what a checkpoint gets once this pod no longer holds the
// shard's lease: writing it could overwrite the new owner's progress.
var errLeaseEnded = errors.New("lease on the shard has ended")

// leases wraps the library's DynamoDB checkpointer. It is how streambudget
// guards the library from our own code, without patching it:
//
//   - Balance: every pod heartbeats a row; a pod takes new leases only up to
//     its fair share (open shards / live pods, rounded up) and gives up the
//     excess by refusing its own renewal, so pods end within one shard of each
//     other and a dead pod's shards are taken once its leases expire.
//   - Fencing: every held lease has a deadline (last renewal + failover time);
//     its shard's context ends a safety margin before that, so a pod never
//     processes a shard another pod may have taken.
//   - Checkpoints are conditional on still owning the lease; the library's own
//     write is unconditional.
type leases struct {
	*chk.DynamoCheckpoint
	db       *dynamodb.Client
	table    string
	workerID string
	failover time.Duration
	margin   time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu          sync.Mutex
	held        map[string]*heldLease
	fairShare   int
	liveWorkers int
	// ended shards refuse renewals until the library releases them, so a
	// consumer goroutine that outlived its lease cannot win it back.
	ended map[string]bool
	// onRelease is told when the library releases a shard.
	onRelease func(shardID string)
	// report is this pod's latest measurements, published with the
	// heartbeat; peers are every live pod's, ours included, as last read.
	report Report
	peers  []Report
}

// Report is what one pod measures of the shards it owns, shared with the
// team's other pods through its heartbeat row.
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

var reportFields = []string{"Shards", "Incoming", "IncomingBytes", "Read", "Backlog", "MaxLag", "WaitShare"}

func (r Report) values() []float64 {
	return []float64{float64(r.Shards), r.Incoming, r.IncomingBytes, r.Read, r.Backlog, r.MaxLag, r.WaitShare}
}

func reportFrom(worker string, item map[string]ddbtypes.AttributeValue) Report {
	v := make([]float64, len(reportFields))
	for i, f := range reportFields {
		if n, ok := item["r_"+f].(*ddbtypes.AttributeValueMemberN); ok {
			v[i], _ = strconv.ParseFloat(n.Value, 64)
		}
	}
	return Report{Worker: worker, Shards: int(v[0]), Incoming: v[1], IncomingBytes: v[2], Read: v[3], Backlog: v[4], MaxLag: v[5], WaitShare: v[6]}
}

// publish sets the measurements the next heartbeat carries.
func (l *leases) publish(r Report) {
	l.mu.Lock()
	l.report = r
	l.mu.Unlock()
}

// team returns every live pod's last report and how many pods are live.
func (l *leases) team() ([]Report, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Report(nil), l.peers...), l.liveWorkers
}

type heldLease struct {
	deadline time.Time
	shed     bool
	// cancel ends the shard's hard context: the lease is gone or going.
	cancel context.CancelFunc
	ctx    context.Context
}

func newLeases(base *chk.DynamoCheckpoint, db *dynamodb.Client, table, workerID string, failover time.Duration, log *slog.Logger) *leases {
	return &leases{
		DynamoCheckpoint: base,
		db:               db,
		table:            table,
		workerID:         workerID,
		failover:         failover,
		margin:           max(failover/5, time.Second),
		now:              time.Now,
		log:              log,
		held:             map[string]*heldLease{},
		ended:            map[string]bool{},
		fairShare:        math.MaxInt32,
		liveWorkers:      1,
	}
}

// GetLease takes a new lease within the fair share, or renews a held one.
func (l *leases) GetLease(shard *par.ShardStatus, worker string) error {
	start := l.now()
	l.mu.Lock()
	h, renewal := l.held[shard.ID]
	switch {
	case l.ended[shard.ID]:
		l.mu.Unlock()
		return chk.ErrLeaseNotAcquired{}
	case renewal && h.shed:
		// Given up for balance: failing the renewal makes the library stop
		// the shard's consumer and release the lease.
		l.mu.Unlock()
		l.end(shard.ID, "given up to balance shards across pods")
		return fmt.Errorf("lease on %s given up for balance", shard.ID)
	case !renewal && len(l.held) >= l.fairShare:
		l.mu.Unlock()
		return chk.ErrLeaseNotAcquired{}
	}
	l.mu.Unlock()

	if err := l.DynamoCheckpoint.GetLease(shard, worker); err != nil {
		if renewal {
			l.end(shard.ID, "renewal failed: "+err.Error())
		}
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[shard.ID]; ok {
		h.deadline = start.Add(l.failover)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.held[shard.ID] = &heldLease{deadline: start.Add(l.failover), cancel: cancel, ctx: ctx}
	return nil
}

// shardContext is the context a shard's work runs under: it ends when the
// lease ends or is about to.
func (l *leases) shardContext(shardID string) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[shardID]; ok {
		return h.ctx
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// shedding reports whether the shard is being given up for balance.
func (l *leases) shedding(shardID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[shardID]
	return !ok || h.shed
}

// end forgets a lease and cancels its shard's work.
func (l *leases) end(shardID, why string) {
	l.mu.Lock()
	h, ok := l.held[shardID]
	if ok {
		delete(l.held, shardID)
		l.ended[shardID] = true
	}
	l.mu.Unlock()
	if ok {
		h.cancel()
		l.log.Info("lease ended", "shard", shardID, "reason", why)
	}
}

// RemoveLeaseOwner is the library releasing a lease when a shard's consumer
// stops; after it the shard may be taken again, by us or another pod.
func (l *leases) RemoveLeaseOwner(shardID string) error {
	l.end(shardID, "released")
	l.mu.Lock()
	delete(l.ended, shardID)
	l.mu.Unlock()
	if l.onRelease != nil {
		l.onRelease(shardID)
	}
	return l.DynamoCheckpoint.RemoveLeaseOwner(shardID)
}

// CheckpointSequence writes the checkpoint only while this pod holds the
// lease, enforced by DynamoDB as well as by the local deadline.
func (l *leases) CheckpointSequence(shard *par.ShardStatus) error {
	l.mu.Lock()
	h, ok := l.held[shard.ID]
	valid := ok && l.now().Before(h.deadline)
	l.mu.Unlock()
	if !valid {
		return errLeaseEnded
	}
	item := map[string]ddbtypes.AttributeValue{
		chk.LeaseKeyKey:       &ddbtypes.AttributeValueMemberS{Value: shard.ID},
		chk.SequenceNumberKey: &ddbtypes.AttributeValueMemberS{Value: shard.GetCheckpoint()},
		chk.LeaseOwnerKey:     &ddbtypes.AttributeValueMemberS{Value: l.workerID},
		chk.LeaseTimeoutKey:   &ddbtypes.AttributeValueMemberS{Value: shard.GetLeaseTimeout().UTC().Format(time.RFC3339Nano)},
	}
	if shard.ParentShardId != "" {
		item[chk.ParentShardIdKey] = &ddbtypes.AttributeValueMemberS{Value: shard.ParentShardId}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(l.table),
		Item:                      item,
		ConditionExpression:       aws.String("AssignedTo = :me"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":me": &ddbtypes.AttributeValueMemberS{Value: l.workerID}},
	})
	var cond *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cond) {
		l.end(shard.ID, "another pod owns the lease")
		return errLeaseEnded
	}
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", shard.ID, err)
	}
	return nil
}

// heldCount is the number of leases this pod holds.
func (l *leases) heldCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// run heartbeats, recomputes the fair share, sheds excess leases and ends
// leases whose deadline is near, until ctx ends.
func (l *leases) run(ctx context.Context, shards func() []shardInfo) {
	beat := time.NewTicker(max(l.failover/4, 500*time.Millisecond))
	defer beat.Stop()
	fence := time.NewTicker(200 * time.Millisecond)
	defer fence.Stop()
	l.heartbeat(ctx, shards())
	for {
		select {
		case <-ctx.Done():
			l.removeHeartbeat()
			return
		case <-fence.C:
			l.expire()
		case <-beat.C:
			l.heartbeat(ctx, shards())
		}
	}
}

func (l *leases) expire() {
	now := l.now()
	var gone []string
	l.mu.Lock()
	for id, h := range l.held {
		if !now.Before(h.deadline.Add(-l.margin)) {
			gone = append(gone, id)
		}
	}
	l.mu.Unlock()
	for _, id := range gone {
		l.end(id, "not renewed in time")
	}
}

func (l *leases) heartbeat(ctx context.Context, listed []shardInfo) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := l.now()
	item := map[string]ddbtypes.AttributeValue{
		chk.LeaseKeyKey:     &ddbtypes.AttributeValueMemberS{Value: workerRowPrefix + l.workerID},
		chk.LeaseTimeoutKey: &ddbtypes.AttributeValueMemberS{Value: now.Add(l.failover).UTC().Format(time.RFC3339Nano)},
	}
	l.mu.Lock()
	for i, v := range l.report.values() {
		item["r_"+reportFields[i]] = &ddbtypes.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'g', -1, 64)}
	}
	l.mu.Unlock()
	_, err := l.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(l.table), Item: item})
	if err != nil {
		l.log.Warn("lease table heartbeat failed", "err", err)
		return
	}
	out, err := l.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(l.table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		l.log.Warn("lease table scan failed", "err", err)
		return
	}
	workers := 0
	var peers []Report
	finished := map[string]bool{}
	for _, item := range out.Items {
		id := attr(item, chk.LeaseKeyKey)
		if w, ok := strings.CutPrefix(id, workerRowPrefix); ok {
			if t, err := time.Parse(time.RFC3339Nano, attr(item, chk.LeaseTimeoutKey)); err == nil && now.Before(t) {
				workers++
				peers = append(peers, reportFrom(w, item))
			}
			continue
		}
		if attr(item, chk.SequenceNumberKey) == chk.ShardEnd {
			finished[id] = true
		}
	}
	need := 0
	for _, s := range listed {
		if !finished[s.id] {
			need++
		}
	}
	workers = max(workers, 1)
	fair := max((need+workers-1)/workers, 1)
	if len(listed) == 0 {
		fair = math.MaxInt32 // shards not known yet: do not hold back
	}
	l.mu.Lock()
	l.fairShare, l.liveWorkers, l.peers = fair, workers, peers
	excess := len(l.held) - fair
	var ids []string
	for id, h := range l.held {
		if !h.shed {
			ids = append(ids, id)
		} else {
			excess--
		}
	}
	sort.Strings(ids)
	for i := 0; i < excess && i < len(ids); i++ {
		l.held[ids[len(ids)-1-i]].shed = true
	}
	l.mu.Unlock()
}

func (l *leases) removeHeartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = l.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(l.table),
		Key:       map[string]ddbtypes.AttributeValue{chk.LeaseKeyKey: &ddbtypes.AttributeValueMemberS{Value: workerRowPrefix + l.workerID}},
	})
}

// parentFinished reports whether a parent shard has been read to its end,
// by its checkpoint row.
func (l *leases) parentFinished(ctx context.Context, shardID string) (bool, error) {
	out, err := l.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.table),
		ConsistentRead: aws.Bool(true),
		Key:            map[string]ddbtypes.AttributeValue{chk.LeaseKeyKey: &ddbtypes.AttributeValueMemberS{Value: shardID}},
	})
	if err != nil {
		return false, err
	}
	return attr(out.Item, chk.SequenceNumberKey) == chk.ShardEnd, nil
}

func attr(item map[string]ddbtypes.AttributeValue, key string) string {
	if v, ok := item[key].(*ddbtypes.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}
