package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/cluster"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// Work-conserving budgets. Teams whose budget files name the same cluster
// share its capacity through one small DynamoDB table (the KCL's DynamoDB,
// no new server): every pod writes its row every borrowInterval (its team's
// guarantee, demand, opt-in, owned shards and the allowance it applies) and
// reads every row; pkg/cluster turns them into allowances. The per-shard
// pacing stays the only thing that admits records: borrowing only moves its
// limit. Safety first: when the table cannot be read, a pod keeps the lower
// of its guarantee and its last allowance until its own row has gone stale
// for the others, then falls back to its plain guarantee, never above it.
const (
	borrowInterval = 2 * time.Second
	// borrowStaleAfter is when a row no longer counts: three intervals.
	borrowStaleAfter = 3 * borrowInterval
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

type borrower struct {
	c         *Consumer
	db        *dynamodb.Client
	table     string
	cluster   budget.Cluster
	team, pod string
	log       *slog.Logger

	mu       sync.Mutex
	team0    cluster.TeamAllocation
	podShare float64 // records/s this pod may read over its shards; 0: plain budget
	// computed is the last round's pod share, before increases wait a round.
	computed float64
	lastOK   time.Time
	used     float64
	prevWait time.Duration
	prevAt   time.Time
	m        borrowMetrics
}

type borrowMetrics struct {
	allowance, borrowed, capacity, used prometheus.Gauge
	coordinated                         prometheus.Gauge
}

func newBorrower(c *Consumer, db *dynamodb.Client, f *budget.File, reg prometheus.Registerer) *borrower {
	labels := prometheus.Labels{"team": f.Team, "stream": f.StreamName()}
	fac := promauto.With(reg)
	g := func(sub, name, help string) prometheus.Gauge {
		return fac.NewGauge(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: sub, Name: name, Help: help, ConstLabels: labels})
	}
	b := &borrower{
		c: c, db: db, table: "streambudget-cluster-" + f.Cluster.Name, cluster: *f.Cluster,
		team: f.Team, pod: c.opts.WorkerID, log: c.log.With("cluster", f.Cluster.Name),
		m: borrowMetrics{
			allowance:   g("team", "allowance_records_per_second", "What the team's pods may read together: its budget, plus what it borrows, minus what it lends."),
			borrowed:    g("team", "borrowed_records_per_second", "Records/s the team reads above its own budget, lent by quiet teams of its cluster."),
			capacity:    g("cluster", "capacity_records_per_second", "The capacity of the Elasticsearch cluster the team shares."),
			used:        g("cluster", "used_records_per_second", "The allowances of every team of the cluster, added up."),
			coordinated: g("cluster", "coordination_up", "1 while the cluster table is read and trusted; 0 means the plain budget applies."),
		},
	}
	b.m.capacity.Set(float64(f.Cluster.Capacity))
	return b
}

// shardRate is the rate one of this pod's shards may read: its share of the
// pod's part of the team allowance, or 0 to use the plain budget.
func (b *borrower) shardRate(owned int) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.podShare <= 0 || owned <= 0 {
		return 0
	}
	return b.podShare / float64(owned)
}

// Allowance is the team's current allowance and what it borrows, for a
// team in a cluster (ok false otherwise, or before the first round).
func (c *Consumer) Allowance() (allowance, borrowed float64, ok bool) {
	if c.borrow == nil {
		return 0, 0, false
	}
	a := c.borrow.allocation()
	return a.Allowance, a.Borrowed, a.Allowance > 0
}

// allocation is the team's current allocation (its guarantee when none).
func (b *borrower) allocation() cluster.TeamAllocation {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.team0
}

func (b *borrower) run(ctx context.Context) {
	if err := b.ensureTable(ctx); err != nil {
		b.log.Warn("cluster table not ready; the plain budget applies until it is", "err", err)
	}
	t := time.NewTicker(borrowInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.forget(b.pod)
			return
		case now := <-t.C:
			b.round(ctx, now)
		}
	}
}

func (b *borrower) ensureTable(ctx context.Context) error {
	_, err := b.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(b.table)})
	if err == nil {
		return nil
	}
	_, err = b.db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(b.table),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("Key"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("Key"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	})
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create cluster table %s: %w", b.table, err)
	}
	return nil
}

// demand is what the team would read if it could: the tip rate plus its
// backlog over drainHorizon, and at least its whole guarantee while this
// pod's shards are held back by their limiters.
func (b *borrower) demand(now time.Time) float64 {
	ts := b.c.Team()
	d := ts.Snapshot.Incoming + ts.Snapshot.Backlog/drainHorizon.Seconds()
	var wait time.Duration
	owned := 0
	for _, st := range b.c.shards.states() {
		st.mu.Lock()
		wait += st.waitTotal
		st.mu.Unlock()
		owned++
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.prevAt.IsZero() && owned > 0 {
		share := (wait - b.prevWait).Seconds() / (now.Sub(b.prevAt).Seconds() * float64(owned))
		if share >= heldBackShare {
			d = math.Max(d, b.c.guarantee())
		}
	}
	b.prevWait, b.prevAt = wait, now
	return d
}

func (b *borrower) round(ctx context.Context, now time.Time) {
	guarantee := b.c.guarantee()
	owned := b.c.shards.count()
	d := b.demand(now)
	b.mu.Lock()
	current := b.team0.Allowance
	b.mu.Unlock()
	me := cluster.Peer{Team: b.team, Pod: b.pod, Guarantee: guarantee, Demand: d, Borrow: b.cluster.Borrow, Shards: owned, Allowance: current, At: now}
	peers, err := b.exchange(ctx, me)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		// Keep min(guarantee, last allowance) while our row may still be
		// live for the others (they may be lending against it), then the
		// plain guarantee.
		b.m.coordinated.Set(0)
		if now.Sub(b.lastOK) > borrowStaleAfter {
			b.team0, b.podShare = cluster.Fallback(guarantee), 0
		} else if b.team0.Allowance > guarantee {
			b.team0 = cluster.Fallback(guarantee)
			b.podShare = 0
		}
		b.log.Debug("cluster table unreachable; plain budget", "err", err)
		b.publishMetrics()
		return
	}
	a := cluster.Allocate(cluster.Config{Capacity: float64(b.cluster.Capacity), StaleAfter: borrowStaleAfter, LendShare: lendShare}, peers, now)
	team0 := a.For(b.team, guarantee)
	share := cluster.PodShare(a, b.team, b.pod, peers, now)
	if a.Stale || share <= 0 {
		share = guarantee * float64(owned) / float64(max(b.c.view.open(), 1)) // the plain budget
	}
	// Pods apply their allocations at different moments within a round. A
	// decrease applies at once; an increase waits one round, so that the
	// pods whose allowance falls to make room have applied it first and the
	// cluster is never asked for more than its capacity in between.
	applied := share
	if b.computed > 0 {
		applied = min(share, b.computed)
	}
	b.computed = share
	if applied < share && team0.Allowance > 0 {
		team0.Allowance *= applied / share
		team0.Borrowed = max(team0.Allowance-team0.Guarantee, 0)
	}
	b.team0, b.podShare = team0, applied
	b.used = a.Used
	b.lastOK = now
	b.m.coordinated.Set(1)
	b.publishMetrics()
}

func (b *borrower) publishMetrics() {
	b.m.allowance.Set(b.team0.Allowance)
	b.m.borrowed.Set(b.team0.Borrowed)
	b.m.used.Set(b.used)
}

// exchange writes this pod's row (never over a newer one) and reads all.
func (b *borrower) exchange(ctx context.Context, me cluster.Peer) ([]cluster.Peer, error) {
	ctx, cancel := context.WithTimeout(ctx, borrowInterval)
	defer cancel()
	num := func(v float64) ddbtypes.AttributeValue {
		return &ddbtypes.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'g', -1, 64)}
	}
	at := me.At.UnixMilli()
	borrow := "0"
	if me.Borrow {
		borrow = "1"
	}
	_, err := b.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(b.table),
		Item: map[string]ddbtypes.AttributeValue{
			"Key":       &ddbtypes.AttributeValueMemberS{Value: me.Team + "#" + me.Pod},
			"Team":      &ddbtypes.AttributeValueMemberS{Value: me.Team},
			"Pod":       &ddbtypes.AttributeValueMemberS{Value: me.Pod},
			"Guarantee": num(me.Guarantee),
			"Demand":    num(me.Demand),
			"Borrow":    &ddbtypes.AttributeValueMemberN{Value: borrow},
			"Shards":    num(float64(me.Shards)),
			"Allowance": num(me.Allowance),
			"At":        num(float64(at)),
		},
		ConditionExpression:       aws.String("attribute_not_exists(#at) OR #at < :at"),
		ExpressionAttributeNames:  map[string]string{"#at": "At"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":at": num(float64(at))},
	})
	var cond *ddbtypes.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &cond) {
		return nil, fmt.Errorf("publish to %s: %w", b.table, err)
	}
	out, err := b.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(b.table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.table, err)
	}
	peers := make([]cluster.Peer, 0, len(out.Items))
	for _, item := range out.Items {
		p := cluster.Peer{Team: attr(item, "Team"), Pod: attr(item, "Pod")}
		p.Guarantee, p.Demand, p.Allowance = numAttr(item, "Guarantee"), numAttr(item, "Demand"), numAttr(item, "Allowance")
		p.Borrow = numAttr(item, "Borrow") == 1
		p.Shards = int(numAttr(item, "Shards"))
		p.At = time.UnixMilli(int64(numAttr(item, "At")))
		if me.At.Sub(p.At) > forgetAfter {
			b.forget(p.Team + "#" + p.Pod) // left behind by a pod that died
			continue
		}
		peers = append(peers, p)
	}
	return peers, nil
}

func numAttr(item map[string]ddbtypes.AttributeValue, key string) float64 {
	if v, ok := item[key].(*ddbtypes.AttributeValueMemberN); ok {
		f, err := strconv.ParseFloat(v.Value, 64)
		if err == nil {
			return f
		}
	}
	return math.NaN()
}

// forget deletes a row: this pod's on shutdown, so its team's guarantee is
// not held for a pod that is gone, or one left behind for an hour.
func (b *borrower) forget(key string) {
	if key == b.pod {
		key = b.team + "#" + b.pod
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = b.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(b.table),
		Key:       map[string]ddbtypes.AttributeValue{"Key": &ddbtypes.AttributeValueMemberS{Value: key}},
	})
}
