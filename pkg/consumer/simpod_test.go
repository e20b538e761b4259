package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"
	wk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"

	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/lease"
)

// simPod is one pod: a real Consumer (processors, ledgers, pacers, lease
// manager, stream view, sink) under a model of the KCL library's worker.
type simPod struct {
	s    *sim
	name string
	c    *Consumer
	rnd  *rand.Rand
	kcfg *config.KinesisClientLibConfiguration

	// dead: killed; every call it makes fails, as if it had vanished.
	dead atomic.Bool
	// gone: stopping, stopped or killed.
	gone     atomic.Bool
	stopCh   chan struct{} // the library's stop channel
	cancelBg context.CancelFunc
	wg       sync.WaitGroup
	// ending is set by the first stop or kill; the others wait for ended
	// (a sync.Once would block them on a mutex, which synctest cannot see
	// through: virtual time would stop).
	ending atomic.Bool
	ended  chan struct{}
	leases atomic.Int64
}

var errDead = errors.New("pod killed")

func (s *sim) startPod(fromLatest bool) *simPod {
	s.mu.Lock()
	name := fmt.Sprintf("pod-%d", s.nextID)
	s.nextID++
	p := &simPod{s: s, name: name, rnd: rand.New(rand.NewPCG(s.seed, uint64(s.nextID))), stopCh: make(chan struct{}), ended: make(chan struct{})}
	s.pods = append(s.pods, p)
	s.mu.Unlock()
	sink, err := essink.New(essink.Options{URLs: []string{"http://es.sim:9200"}, Team: "sim", Stream: "sim-logs",
		HTTPClient: &http.Client{Transport: podTransport{p}}, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, BlockedRetry: 2 * time.Second})
	if err != nil {
		s.t.Fatal(err)
	}
	p.c, err = New(Options{Budget: s.file, Schema: s.schema, Sink: sink, AWS: aws.Config{Region: "sim"},
		Lister: podLister{p}, Table: podTable{p}, WorkerID: name, FromLatest: fromLatest,
		ShardSyncInterval: 500 * time.Millisecond, FailoverTime: 10 * time.Second, ShutdownTimeout: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("pod", name)})
	if err != nil {
		s.t.Fatal(err)
	}
	bg, cancel := context.WithCancel(context.Background())
	p.cancelBg = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// As Consumer.Run starts: the view, the table, the first start,
		// then the background loops and the library's worker.
		c := p.c
		if retry(bg, c.log, "view", c.view.Refresh) != nil {
			return
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); _ = c.view.Run(bg, viewRefresh) }()
		if retry(bg, c.log, "table", c.table.Ensure) != nil {
			return
		}
		var first time.Time
		if retry(bg, c.log, "first start", func(ctx context.Context) (err error) { first, err = c.leases.FirstStart(ctx, time.Time{}); return err }) != nil {
			return
		}
		p.kcfg = c.kclConfig(first)
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _ = c.leases.Run(bg, c.Reading) }()
		go func() { defer p.wg.Done(); p.worker() }()
	}()
	return p
}

// stop is SIGTERM, as Consumer.Run handles it: no new leases, in-flight
// batches finish until the hard stop, the library stops its shards, then
// the background loops end.
func (p *simPod) stop() {
	if !p.ending.CompareAndSwap(false, true) {
		<-p.ended
		return
	}
	defer close(p.ended)
	p.gone.Store(true)
	c := p.c
	c.stopSoft()
	hard := time.AfterFunc(c.opts.ShutdownTimeout-3*time.Second, c.stopHard)
	close(p.stopCh)
	p.waitShards(c.opts.ShutdownTimeout - time.Second)
	hard.Stop()
	c.stopHard()
	p.cancelBg()
}

// kill makes the pod vanish: its calls fail from now on and its goroutines
// end without releasing anything.
func (p *simPod) kill() {
	if !p.ending.CompareAndSwap(false, true) {
		<-p.ended
		return
	}
	defer close(p.ended)
	p.dead.Store(true)
	p.gone.Store(true)
	p.c.stopSoft()
	p.c.stopHard()
	close(p.stopCh)
	p.cancelBg()
}

// waitShards waits for the shard loops, at most d.
func (p *simPod) waitShards(d time.Duration) {
	deadline := time.Now().Add(d)
	for p.leases.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}

// worker is the library's event loop: every shard-sync interval (jittered)
// it lists the shards and takes at most one new lease.
func (p *simPod) worker() {
	cp := checkpointer{p.c}
	statuses := map[string]*par.ShardStatus{}
	every := p.kcfg.ShardSyncIntervalMillis
	for {
		select {
		case <-p.stopCh:
			return
		case <-time.After(time.Duration(every/2+p.rnd.IntN(every)) * time.Millisecond):
		}
		if p.dead.Load() {
			return
		}
		shards, err := p.s.stream.list()
		if err != nil {
			continue
		}
		for _, sh := range shards {
			if _, ok := statuses[sh.id]; !ok {
				st := &par.ShardStatus{ID: sh.id, Mux: &sync.RWMutex{}}
				if len(sh.parents) > 0 {
					st.ParentShardId = sh.parents[0] // the library keeps only the first parent
				}
				statuses[sh.id] = st
			}
		}
		ids := make([]string, 0, len(statuses))
		for id := range statuses {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		p.rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] }) // a map's order
		for _, id := range ids {
			st := statuses[id]
			if st.GetLeaseOwner() == p.name {
				continue
			}
			if err := cp.FetchCheckpoint(st); err != nil && !errors.Is(err, chk.ErrSequenceIDNotFound) {
				continue
			}
			if st.GetCheckpoint() == chk.ShardEnd {
				continue
			}
			if err := cp.GetLease(st, p.name); err != nil {
				continue
			}
			p.wg.Add(1)
			p.leases.Add(1)
			go func() {
				defer p.wg.Done()
				defer p.leases.Add(-1)
				p.shard(st)
			}()
			break // one lease per sync
		}
	}
}

// shard is the library's polling shard consumer.
func (p *simPod) shard(st *par.ShardStatus) {
	cp := checkpointer{p.c}
	ctx, cancelRenew := context.WithCancel(context.Background())
	defer func() {
		cancelRenew()
		st.SetLeaseOwner("")
		_ = cp.RemoveLeaseOwner(st.ID)
	}()
	// It waits for ParentShardId only, and not at all when the parent has
	// no checkpoint row.
	if st.ParentShardId != "" {
		parent := &par.ShardStatus{ID: st.ParentShardId, Mux: &sync.RWMutex{}}
		for {
			if err := cp.FetchCheckpoint(parent); err != nil {
				if errors.Is(err, chk.ErrSequenceIDNotFound) {
					break
				}
				return
			}
			if parent.GetCheckpoint() == chk.ShardEnd {
				break
			}
			time.Sleep(time.Duration(p.kcfg.ParentShardPollIntervalMillis) * time.Millisecond)
		}
	}
	// The starting position: the checkpoint, else the configured initial
	// position (for children too).
	if err := cp.FetchCheckpoint(st); err != nil && !errors.Is(err, chk.ErrSequenceIDNotFound) {
		return
	}
	checkpoint := st.GetCheckpoint()
	var iter string
	switch {
	case checkpoint != "":
		iter = p.s.stream.iterator(st.ID, checkpoint, nil)
	case p.kcfg.InitialPositionInStream == config.AT_TIMESTAMP:
		iter = p.s.stream.iterator(st.ID, "", p.kcfg.InitialPositionInStreamExtended.Timestamp)
	case p.kcfg.InitialPositionInStream == config.LATEST:
		iter = p.s.stream.latest(st.ID)
	default:
		iter = p.s.stream.iterator(st.ID, "", nil)
	}
	proc := p.c.CreateProcessor()
	proc.Initialize(&kcl.InitializationInput{ShardId: st.ID, ExtendedSequenceNumber: &kcl.ExtendedSequenceNumber{SequenceNumber: aws.String(checkpoint)}})
	rpc := wk.NewRecordProcessorCheckpoint(st, cp)
	renewErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(p.kcfg.LeaseRefreshWaitTime) * time.Millisecond):
			}
			if err := cp.GetLease(st, p.name); err != nil {
				renewErr <- err
				return
			}
		}
	}()
	lease := fmt.Sprintf("%s/%s/%d", p.name, st.ID, time.Now().UnixNano())
	for {
		if p.dead.Load() {
			return
		}
		limit := int(p.c.getRecordsLimit())
		recs, next, behind := p.s.stream.getRecords(iter, limit)
		if len(recs) > 0 {
			p.s.noteRead(readEvent{at: time.Now(), n: len(recs), lease: lease, limit: limit})
		}
		proc.ProcessRecords(&kcl.ProcessRecordsInput{Records: recs, MillisBehindLatest: behind, Checkpointer: rpc})
		p.noteMemory(st.ID)
		if next == "" {
			proc.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.TERMINATE, Checkpointer: rpc})
			return
		}
		iter = next
		if len(recs) == 0 && behind < int64(p.kcfg.IdleTimeBetweenReadsInMillis) {
			time.Sleep(time.Duration(p.kcfg.IdleTimeBetweenReadsInMillis) * time.Millisecond)
		}
		select {
		case <-p.stopCh:
			proc.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.REQUESTED, Checkpointer: rpc})
			return
		case <-renewErr:
			return
		default:
		}
	}
}

func (p *simPod) noteMemory(shardID string) {
	p.c.mu.Lock()
	proc := p.c.processors[shardID]
	p.c.mu.Unlock()
	if proc == nil {
		return
	}
	held := proc.builder.Held(&proc.chunk)
	p.s.mu.Lock()
	p.s.memory = max(p.s.memory, held)
	p.s.mu.Unlock()
}

func (s *sim) noteRead(e readEvent) {
	s.mu.Lock()
	s.reads = append(s.reads, e)
	s.mu.Unlock()
}

// podTable is the lease table as one pod reaches it: unreachable when the
// pod is dead or the table is down; and every checkpoint that is written
// is checked against what the cluster has confirmed.
type podTable struct{ p *simPod }

func (t podTable) up() error {
	if t.p.dead.Load() {
		return errDead
	}
	return nil
}

func (t podTable) Ensure(ctx context.Context) error {
	if err := t.up(); err != nil {
		return err
	}
	return t.p.s.table.Ensure(ctx)
}

func (t podTable) Get(ctx context.Context, key string) (lease.Row, bool, error) {
	if err := t.up(); err != nil {
		return lease.Row{}, false, err
	}
	return t.p.s.table.Get(ctx, key)
}

func (t podTable) Scan(ctx context.Context) ([]lease.Row, error) {
	if err := t.up(); err != nil {
		return nil, err
	}
	return t.p.s.table.Scan(ctx)
}

func (t podTable) Take(ctx context.Context, key string, prev, next lease.Lease, parent string) error {
	if err := t.up(); err != nil {
		return err
	}
	return t.p.s.table.Take(ctx, key, prev, next, parent)
}

func (t podTable) SetCheckpoint(ctx context.Context, key, owner, checkpoint string) error {
	if err := t.up(); err != nil {
		return err
	}
	if err := t.p.s.table.SetCheckpoint(ctx, key, owner, checkpoint); err != nil {
		return err
	}
	t.p.s.checkCheckpoint(key, checkpoint)
	return nil
}

func (t podTable) Release(ctx context.Context, key, owner string) error {
	if err := t.up(); err != nil {
		return err
	}
	return t.p.s.table.Release(ctx, key, owner)
}

func (t podTable) Put(ctx context.Context, row lease.Row) error {
	if err := t.up(); err != nil {
		return err
	}
	return t.p.s.table.Put(ctx, row)
}

func (t podTable) PutIfAbsent(ctx context.Context, row lease.Row) error {
	if err := t.up(); err != nil {
		return err
	}
	return t.p.s.table.PutIfAbsent(ctx, row)
}

func (t podTable) Delete(ctx context.Context, key string) error {
	if err := t.up(); err != nil {
		return err
	}
	return t.p.s.table.Delete(ctx, key)
}

// checkCheckpoint: a checkpoint written at seq (or SHARD_END) passes no
// record that is not indexed, dead-lettered or dropped by its rule.
func (s *sim) checkCheckpoint(shardID, checkpoint string) {
	s.stream.mu.Lock()
	sh := s.stream.byID[shardID]
	recs := append([]*simRecord(nil), sh.recs...)
	closed := sh.closed
	s.stream.mu.Unlock()
	if checkpoint == lease.ShardEnd && !closed {
		s.t.Errorf("SHARD_END written for open shard %s", shardID)
	}
	for _, r := range recs {
		if checkpoint != lease.ShardEnd && r.seq > checkpoint {
			break
		}
		if r.kind != "drop" && !s.es.has(r.id) {
			s.t.Errorf("%s checkpointed at %s past record %d (%s/%d, %q), which the cluster never confirmed", shardID, checkpoint, r.id, r.seq, r.sub, r.kind)
			return
		}
	}
}

// podLister is the stream listing as one pod reaches it.
type podLister struct{ p *simPod }

func (l podLister) ListShards(ctx context.Context, in *awskinesis.ListShardsInput, o ...func(*awskinesis.Options)) (*awskinesis.ListShardsOutput, error) {
	if l.p.dead.Load() {
		return nil, errDead
	}
	return l.p.s.stream.ListShards(ctx, in, o...)
}

func (l podLister) DescribeStreamSummary(ctx context.Context, in *awskinesis.DescribeStreamSummaryInput, o ...func(*awskinesis.Options)) (*awskinesis.DescribeStreamSummaryOutput, error) {
	if l.p.dead.Load() {
		return nil, errDead
	}
	return l.p.s.stream.DescribeStreamSummary(ctx, in, o...)
}

// podTransport is the cluster as one pod reaches it.
type podTransport struct{ p *simPod }

func (t podTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.p.dead.Load() {
		return nil, errDead
	}
	return transport{t.p.s.es}.RoundTrip(r)
}
