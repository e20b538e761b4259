package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	wk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/kinesis"
	"github.com/streambudget/streambudget/pkg/lease"
)

// Paths found by an adversarial review of the consumer; each test failed
// before its fix.

// TestAgedOutParentDoesNotBlockChild (found by review): a parent that aged out of the
// stream (no longer listed: its records are past retention) while its row
// still holds a sequence-number checkpoint. The parent gate lets the
// child's lease be taken ("finished or no longer listed"), then the
// library's waitOnParentShard polls the parent's row for SHARD_END forever,
// before Initialize and before the renewal goroutine: the child is never
// read on this pod (nor on any other that takes it after the lease
// expires), and Worker.Shutdown never returns, unless FetchCheckpoint
// reports the aged-out parent finished. Real time (the library's
// loop never ends, which a synctest bubble cannot outlive).
func TestAgedOutParentDoesNotBlockChild(t *testing.T) {
	s := newSimStream(1)
	fill(s, 3)
	s.split(0)
	fill(s, 3) // records in the children
	parent := s.shards[0]
	// The parent ages out of the listing.
	s.mu.Lock()
	s.shards = s.shards[1:]
	delete(s.byID, parent.id)
	s.mu.Unlock()
	h := newHarness(t, budget.Budget{MaxRecords: 20, PollInterval: time.Second}, s, 10)
	_ = h.table.Put(context.Background(), lease.Row{Key: parent.id, Checkpoint: "00000000000000000002"})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = h.c.leases.Run(ctx, h.c.Reading) }()
	api := &kinesisAPI{s: s, iterators: map[string]string{}}
	kc := awskinesis.New(awskinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://kinesis.test"),
		HTTPClient: api, Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	kcfg := h.c.kclConfig(time.Now())
	kcfg.ShardSyncIntervalMillis = 200
	kcfg.ParentShardPollIntervalMillis = 100
	w := wk.NewWorker(h.c, kcfg).WithKinesis(kc).WithCheckpointer(checkpointer{h.c})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	h.sink.mu.Lock()
	got := len(h.sink.written)
	h.sink.mu.Unlock()
	want := 0
	for _, r := range s.recs {
		if r.shard != parent.id {
			want++
		}
	}
	held := h.c.leases.Held()
	done := make(chan struct{})
	go func() { w.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Errorf("Worker.Shutdown did not return within 3 s")
	}
	if got != want {
		t.Errorf("indexed %d of the children's %d records in 6 s (leases held: %d)", got, want, held)
	}
}

// TestFailedShardEndDoesNotStrandChildren (found by review): an empty closed parent (a split
// of a quiet stream) has no checkpoint row value. Its SHARD_END write fails
// and the lease ends meanwhile (the table unreachable for a while). The
// library's RecordProcessorCheckpointer set SHARD_END in its in-memory
// ShardStatus before the write; the adapter's FetchCheckpoint returns
// ErrSequenceIDNotFound for an empty row without resetting it, so the
// library's event loop skips the parent for good ("closed and processed").
// With one pod nobody else takes it: the parent never gets SHARD_END, the
// children are never leased, their records are never read, unless
// FetchCheckpoint resets the checkpoint in memory to the row's.
func TestFailedShardEndDoesNotStrandChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(1)
		s.split(0)
		fill(s, 5) // into the children
		parent := s.shards[0].id
		h := newHarness(t, budget.Budget{MaxRecords: 20, PollInterval: time.Second}, s, 10)
		var down atomic.Bool
		down.Store(true)
		var takes atomic.Int32
		h.table.Fail = func(op, key string) error {
			if !down.Load() || key != parent {
				return nil
			}
			switch op {
			case "checkpoint":
				return lease.ErrUnavailable
			case "take":
				if takes.Add(1) > 1 { // renewals fail; the first take works
					return lease.ErrUnavailable
				}
			}
			return nil
		}
		go func() { time.Sleep(30 * time.Second); down.Store(false) }()
		ctx, stop := context.WithCancel(context.Background())
		go func() { _ = h.c.leases.Run(ctx, h.c.Reading) }()
		runLibrary(t, s, h.c, checkpointer{h.c}, config.TRIM_HORIZON, 3*time.Minute)
		stop()
		h.c.stopHard()
		if got := len(h.sink.written); got != len(s.recs) {
			t.Errorf("indexed %d of %d records 2.5 minutes after the table came back; parent row %+v", got, len(s.recs), h.row(parent))
		}
		synctest.Wait()
	})
}

// TestMergeBudgetAppliesAtOnce (found by review): after a merge 2->1 the
// budget is maxRecords x 1 open shard; the parents, still draining, must
// share it. The view refreshed only every viewRefresh (10 s), reading twice
// the budget until then; the library's own listing (every shard sync) now
// shows the view the change, which refreshes within a second.
func TestMergeBudgetAppliesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(2)
		h := newHarness(t, budget.Budget{MaxRecords: 100, PollInterval: time.Second}, s, 10)
		h.scan()
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go func() { _ = h.c.view.Run(ctx, viewRefresh) }()
		s.merge(0)
		// The library lists the shards, through the consumer's client option.
		kc := awskinesis.New(awskinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://kinesis.test"),
			HTTPClient: &kinesisAPI{s: s, iterators: map[string]string{}}, Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1,
			APIOptions: []func(*middleware.Stack) error{kinesis.WatchListShards(h.c.view)}})
		if _, err := kc.ListShards(ctx, &awskinesis.ListShardsInput{StreamName: aws.String("t-logs")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		rate, _ := h.c.shardRate()
		team := rate * float64(h.c.Reading())
		if want := h.c.budget.TeamRate(1); team > want {
			t.Errorf("1.5 s after the merge the parents read %v records/s together (%v each); the budget with 1 open shard is %v", team, rate, want)
		}
	})
}

// TestKPLAggregatesIndexedWithinBudget (found by review): the GetRecords limit counts Kinesis
// records, and a KPL aggregate is one of them however many user records it
// holds; the pacer only pays for them after the batch is indexed. One shard,
// maxRecords 2 per 1 s: within the first 3 s the team may read 2 x 3 plus one
// burst (2) = 8 records. A producer aggregating 50 records per Kinesis record
// got 100 read and indexed at once; each chunk now waits for the budget
// before it is sent.
func TestKPLAggregatesIndexedWithinBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(1)
		for range 5 {
			s.put([]int{0}, 50, func() string { return "" })
		}
		h := newHarness(t, budget.Budget{MaxRecords: 2, PollInterval: time.Second}, s, 1000)
		var mu sync.Mutex
		var at []time.Time
		h.sink.index = func(ctx context.Context, i int, it essink.Item) (essink.Result, error) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			return essink.Result{Status: essink.Indexed}, nil
		}
		ctx, stop := context.WithCancel(context.Background())
		go func() { _ = h.c.leases.Run(ctx, h.c.Reading) }()
		go func() {
			time.Sleep(25 * time.Second)
			h.c.stopHard()
		}()
		runLibrary(t, s, h.c, checkpointer{h.c}, config.TRIM_HORIZON, 26*time.Second)
		stop()
		h.c.stopHard()
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(at) < 30 {
			t.Fatalf("indexed %d records in 25 s at 2/s; want about 50", len(at))
		}
		for i := range at {
			n := 0
			for _, u := range at[i:] {
				if u.Sub(at[i]) < 3*time.Second {
					n++
				}
			}
			if n > 8 {
				t.Fatalf("indexed %d records in the 3 s from %v; the budget allows 2/s x 3 s + one burst of 2 = 8", n, at[i].Sub(at[0]))
			}
		}
	})
}

type stepAllowance struct{ rate atomic.Uint64 }

func (a *stepAllowance) ShardRate(int) (float64, bool) { return float64(a.rate.Load()), true }

// TestRateCutAppliesWithinABatch (found by the second review): a batch of
// KPL aggregates lasts many poll intervals; an allowance cut during it (a
// borrower giving back, a reshard) applies from the next chunk, not when the
// batch ends.
func TestRateCutAppliesWithinABatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(1)
		for range 3 {
			s.put([]int{0}, 200, func() string { return "" })
		}
		h := newHarness(t, budget.Budget{MaxRecords: 20, PollInterval: time.Second}, s, 1000)
		al := &stepAllowance{}
		al.rate.Store(20)
		h.c.opts.Allowance = al
		var mu sync.Mutex
		var at []time.Time
		start := time.Now()
		h.sink.index = func(ctx context.Context, i int, it essink.Item) (essink.Result, error) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			return essink.Result{Status: essink.Indexed}, nil
		}
		go func() { time.Sleep(3 * time.Second); al.rate.Store(1) }() // the allowance falls to 1/s
		ctx, stop := context.WithCancel(context.Background())
		go func() { _ = h.c.leases.Run(ctx, h.c.Reading) }()
		go func() { time.Sleep(25 * time.Second); h.c.stopHard() }()
		runLibrary(t, s, h.c, checkpointer{h.c}, config.TRIM_HORIZON, 26*time.Second)
		stop()
		h.c.stopHard()
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, u := range at {
			if d := u.Sub(start); d >= 5*time.Second && d < 10*time.Second {
				n++
			}
		}
		if n > 5+1 {
			t.Errorf("indexed %d records between 5 s and 10 s; the allowance was cut to 1/s at 3 s (want <= 6)", n)
		}
	})
}
