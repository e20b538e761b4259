package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"
	wk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/document"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/lease"
)

// fakeSink indexes everything at once, or as index says; it keeps the ids
// it confirmed.
type fakeSink struct {
	mu      sync.Mutex
	written []string
	index   func(ctx context.Context, i int, it essink.Item) (essink.Result, error)
	calls   int
}

func (f *fakeSink) Index(ctx context.Context, items []essink.Item, results []essink.Result) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	for i, it := range items {
		if results[i].Final() {
			continue
		}
		r := essink.Result{Status: essink.Indexed}
		if f.index != nil {
			var err error
			if r, err = f.index(ctx, i, it); err != nil {
				return err
			}
		}
		results[i] = r
		if r.Written() {
			f.written = append(f.written, it.ID)
		}
	}
	return nil
}

// harness is one consumer over a model stream, a lease table in memory and
// a fake sink, driven by the test in place of the library.
type harness struct {
	t      *testing.T
	c      *Consumer
	stream *simStream
	table  *lease.MemTable
	sink   *fakeSink
	// checkpoints are the checkpoints written, in order.
	mu          sync.Mutex
	checkpoints []string
}

// recordingTable notes every checkpoint written.
type recordingTable struct {
	*lease.MemTable
	h *harness
}

func (r recordingTable) SetCheckpoint(ctx context.Context, key, owner, checkpoint string) error {
	if err := r.MemTable.SetCheckpoint(ctx, key, owner, checkpoint); err != nil {
		return err
	}
	r.h.mu.Lock()
	r.h.checkpoints = append(r.h.checkpoints, checkpoint)
	r.h.mu.Unlock()
	return nil
}

func newHarness(t *testing.T, bud budget.Budget, stream *simStream, maxDocs int) *harness {
	t.Helper()
	h := &harness{t: t, stream: stream, table: lease.NewMemTable(), sink: &fakeSink{}}
	f := &budget.File{Team: "t", Stream: "t-logs", Shards: len(stream.open()), Budget: bud, Decode: budget.DecodeJSON,
		Elasticsearch: budget.Elasticsearch{Index: "logs-t", DeadLetterIndex: "deadletter-t"}}
	schema, err := document.New(document.Options{Team: "t", Stream: "t-logs", Index: "logs-t", DeadLetterIndex: "deadletter-t",
		Decode: decode.Options{Format: budget.DecodeJSON}, MaxDocs: maxDocs})
	if err != nil {
		t.Fatal(err)
	}
	h.c, err = New(Options{Budget: f, Schema: schema, Sink: h.sink, AWS: aws.Config{Region: "test"}, Lister: stream,
		Table: recordingTable{h.table, h}, WorkerID: "pod-a", FailoverTime: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.view.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

// lease takes the shard's lease and starts its processor, as the library
// does; it returns the processor, the library's checkpointer object and
// the shard's status.
func (h *harness) lease(shardID string) (kcl.IRecordProcessor, kcl.IRecordProcessorCheckpointer, *par.ShardStatus) {
	h.t.Helper()
	st := &par.ShardStatus{ID: shardID, Mux: &sync.RWMutex{}}
	cp := checkpointer{h.c}
	if err := cp.GetLease(st, "pod-a"); err != nil {
		h.t.Fatalf("take the lease on %s: %v", shardID, err)
	}
	proc := h.c.CreateProcessor()
	proc.Initialize(&kcl.InitializationInput{ShardId: shardID, ExtendedSequenceNumber: &kcl.ExtendedSequenceNumber{SequenceNumber: aws.String("")}})
	return proc, wk.NewRecordProcessorCheckpoint(st, cp), st
}

// batches reads the whole shard in batches of limit records.
func (h *harness) batches(shardID string, limit int) [][]types.Record {
	var out [][]types.Record
	iter := h.stream.iterator(shardID, "", nil)
	for iter != "" {
		recs, next, _ := h.stream.getRecords(iter, limit)
		if len(recs) > 0 {
			out = append(out, recs)
		}
		iter = next
	}
	return out
}

func (h *harness) row(shardID string) lease.Row {
	row, _, _ := h.table.Get(context.Background(), shardID)
	return row
}

func (h *harness) scan() {
	// One heartbeat round: the lease manager reads the table (finished
	// shards, live pods).
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.c.leases.Run(ctx, h.c.Reading); close(done) }()
	synctest.Wait()
	cancel()
	<-done
}

// closedStream is one shard, closed, holding n plain records.
func closedStream(n int) *simStream {
	s := newSimStream(1)
	keys := make([]int, n)
	for i := range keys {
		s.put(keys[i:i+1], 1, func() string { return "" })
	}
	s.shards[0].closed = true
	return s
}

// TestShardEndAfterSkippedBatch: the library calls Shutdown(TERMINATE) at a
// shard's end whatever the processor did with the last batch. Before the
// ledger, a last batch skipped (the lease being shed, the pod stopping)
// was followed by SHARD_END: the children started and the skipped records
// were gone (indexed [1 2], checkpoints [2, SHARD_END] for a three-batch
// shard). Now SHARD_END waits for every record, and the next reader
// resumes from the last checkpoint.
func TestShardEndAfterSkippedBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		skip func(h *harness, st *par.ShardStatus)
	}{
		{"lease shed for balance", func(h *harness, st *par.ShardStatus) {
			h.c.leases.GiveUp(st.ID, "given up to balance shards across pods")
			// The library's renewal goroutine: refused, so the library stops.
			go func() { time.Sleep(2500 * time.Millisecond); _ = checkpointer{h.c}.GetLease(st, "pod-a") }()
		}},
		{"pod stopping", func(h *harness, _ *par.ShardStatus) { h.c.stopSoft() }},
		{"lease lost", func(h *harness, st *par.ShardStatus) {
			h.table.Fail = func(string, string) error { return lease.ErrUnavailable }
			go func() { time.Sleep(2500 * time.Millisecond); _ = checkpointer{h.c}.GetLease(st, "pod-a") }()
			time.Sleep(9 * time.Second) // fenced before its deadline
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, budget.Budget{MaxRecords: 1, PollInterval: time.Second}, closedStream(3), 10)
				shard := h.stream.shards[0].id
				h.scan()
				proc, rpc, st := h.lease(shard)
				b := h.batches(shard, 1)
				proc.ProcessRecords(&kcl.ProcessRecordsInput{Records: b[0], Checkpointer: rpc})
				proc.ProcessRecords(&kcl.ProcessRecordsInput{Records: b[1], Checkpointer: rpc})
				tc.skip(h, st)
				proc.ProcessRecords(&kcl.ProcessRecordsInput{Records: b[2], Checkpointer: rpc})
				proc.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.TERMINATE, Checkpointer: rpc})
				h.table.Fail = nil
				if got := h.row(shard).Checkpoint; got == lease.ShardEnd || got != *b[1][0].SequenceNumber {
					t.Errorf("checkpoint %q after a skipped last batch; want the second batch's %s and no SHARD_END (checkpoints %v)", got, *b[1][0].SequenceNumber, h.checkpoints)
				}
				if len(h.sink.written) != 2 {
					t.Errorf("indexed %d, want 2 (the third batch was skipped)", len(h.sink.written))
				}
				h.c.stopHard()
			})
		})
	}
}

// TestShardEndWhenAllDone: the normal end writes SHARD_END, after the last
// record's checkpoint.
func TestShardEndWhenAllDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, budget.Budget{MaxRecords: 2, PollInterval: time.Second}, closedStream(5), 10)
		shard := h.stream.shards[0].id
		h.scan()
		proc, rpc, _ := h.lease(shard)
		for _, b := range h.batches(shard, 2) {
			proc.ProcessRecords(&kcl.ProcessRecordsInput{Records: b, Checkpointer: rpc})
		}
		proc.Shutdown(&kcl.ShutdownInput{ShutdownReason: kcl.TERMINATE, Checkpointer: rpc})
		if got := h.row(shard).Checkpoint; got != lease.ShardEnd {
			t.Errorf("checkpoint %q, want SHARD_END (checkpoints %v)", got, h.checkpoints)
		}
		if len(h.sink.written) != 5 {
			t.Errorf("indexed %d, want 5", len(h.sink.written))
		}
		h.c.stopHard()
	})
}

// TestChunksCheckpointAsConfirmed: a batch is indexed in chunks bounded in
// documents and bytes, and checkpointed as each chunk is confirmed; a chunk
// that fails (the sink down until the lease ends) stops the checkpoint
// before its first record.
func TestChunksCheckpointAsConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, budget.Budget{MaxRecords: 10, PollInterval: time.Second}, closedStream(5), 2)
		shard := h.stream.shards[0].id
		h.scan()
		var sizes []int
		h.sink.index = func(ctx context.Context, i int, it essink.Item) (essink.Result, error) {
			if i == 0 {
				sizes = append(sizes, 0)
			}
			sizes[len(sizes)-1]++
			if len(sizes) == 3 {
				<-ctx.Done() // the third chunk never gets through
				return essink.Result{}, ctx.Err()
			}
			return essink.Result{Status: essink.Indexed}, nil
		}
		proc, rpc, st := h.lease(shard)
		b := h.batches(shard, 10)
		seqs := make([]string, len(b[0]))
		for i, r := range b[0] {
			seqs[i] = *r.SequenceNumber
		}
		go func() { time.Sleep(time.Minute); h.c.stopHard() }()
		go func() { time.Sleep(time.Minute); _ = checkpointer{h.c}.GetLease(st, "pod-a") }()
		proc.ProcessRecords(&kcl.ProcessRecordsInput{Records: b[0], Checkpointer: rpc})
		if fmt.Sprint(sizes) != "[2 2 1]" {
			t.Errorf("chunks of %v documents, want [2 2 1]", sizes)
		}
		if want := []string{seqs[1], seqs[3]}; fmt.Sprint(h.checkpoints) != fmt.Sprint(want) {
			t.Errorf("checkpoints %v, want %v (one per confirmed chunk, none past the failed one)", h.checkpoints, want)
		}
	})
}

// TestRejectedIsNotConfirmedUntilItsDeadLetter: a document the cluster
// rejects is replaced by its dead letter; if the reader stops between the
// two (here: the rejection comes back while another item of the request
// is still retried, and the lease ends), the record is not done and no
// checkpoint passes it. Found by the simulation: a rejection counted as
// confirmed.
func TestRejectedIsNotConfirmedUntilItsDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, budget.Budget{MaxRecords: 10, PollInterval: time.Second}, closedStream(3), 10)
		shard := h.stream.shards[0].id
		h.scan()
		h.sink.index = func(ctx context.Context, i int, it essink.Item) (essink.Result, error) {
			switch i {
			case 1:
				return essink.Result{Status: essink.Rejected, Reason: "mapper_parsing_exception"}, nil
			case 2:
				h.c.stopHard() // the pod stops while the third is retried
				return essink.Result{}, context.Canceled
			}
			return essink.Result{Status: essink.Indexed}, nil
		}
		proc, rpc, _ := h.lease(shard)
		b := h.batches(shard, 10)
		proc.ProcessRecords(&kcl.ProcessRecordsInput{Records: b[0], Checkpointer: rpc})
		if want := []string{*b[0][0].SequenceNumber}; fmt.Sprint(h.checkpoints) != fmt.Sprint(want) {
			t.Errorf("checkpoints %v, want %v: not past the rejected record whose dead letter was never written", h.checkpoints, want)
		}
	})
}

// TestChildLeaseWaitsForParents: the library starts a child before its
// parents are done (it waits only for ParentShardId, and not at all when
// the parent has no checkpoint row). A child's lease is taken only when
// every parent is finished; before, a child missing from the stream view
// made the processor refresh it, and a failed refresh dropped the batch
// (records 10-12 never indexed, checkpoint at 14). Now no processor
// refreshes anything: the lease waits.
func TestChildLeaseWaitsForParents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(2)
		h := newHarness(t, budget.Budget{MaxRecords: 10, PollInterval: time.Second}, s, 10)
		s.merge(0) // the view has not seen it
		child := s.shards[2]
		s.setListFails(true)
		cp := checkpointer{h.c}
		h.scan()
		st := &par.ShardStatus{ID: child.id, ParentShardId: child.parents[0], Mux: &sync.RWMutex{}}
		if err := cp.GetLease(st, "pod-a"); err == nil {
			t.Fatal("took a child the view does not know, with the listing failing")
		}
		s.setListFails(false)
		if err := h.c.view.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := cp.GetLease(st, "pod-a"); err == nil {
			t.Fatal("took the child of a merge before its parents were finished")
		}
		// One parent done (the one the library waits for) is not enough.
		_ = h.table.Put(context.Background(), lease.Row{Key: child.parents[0], Checkpoint: lease.ShardEnd})
		h.scan()
		if err := cp.GetLease(st, "pod-a"); err == nil {
			t.Fatal("took the child of a merge with its adjacent parent unfinished")
		}
		_ = h.table.Put(context.Background(), lease.Row{Key: child.parents[1], Checkpoint: lease.ShardEnd})
		h.scan()
		if err := cp.GetLease(st, "pod-a"); err != nil {
			t.Fatalf("parents finished, the child's lease was refused: %v", err)
		}
	})
}

// TestShardRateSharesTheBudget: every shard being read, closed parents
// draining included, shares the team's budget, so a merge 2->1 no longer
// reads at twice the budget and a scale-up with recordsPerSecond no longer
// at half of it; the GetRecords limit follows.
func TestShardRateSharesTheBudget(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bud       budget.Budget
		reshard   func(s *simStream)
		want      float64 // each draining parent's rate
		wantLimit int
	}{
		{"merge 2->1, maxRecords 100", budget.Budget{MaxRecords: 100, PollInterval: time.Second}, func(s *simStream) { s.merge(0) }, 50, 50},
		{"scale-up 2->4, recordsPerSecond 1000", budget.Budget{RecordsPerSecond: 1000, PollInterval: time.Second},
			func(s *simStream) { s.split(0); s.split(2) }, 500, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSimStream(2)
				h := newHarness(t, tc.bud, s, 10)
				tc.reshard(s)
				if err := h.c.view.Refresh(context.Background()); err != nil {
					t.Fatal(err)
				}
				h.scan()
				rate, limit := h.c.shardRate()
				if rate != tc.want || limit != tc.wantLimit || h.c.Reading() != 2 {
					t.Errorf("2 parents draining: %v records/s, limit %d, reading %d; want %v, %d and 2", rate, limit, h.c.Reading(), tc.want, tc.wantLimit)
				}
				if got := rate * float64(h.c.Reading()); got != h.c.TeamRate() {
					t.Errorf("the shards being read add up to %v records/s, the team's budget is %v", got, h.c.TeamRate())
				}
			})
		})
	}
}

// TestFromLatestStartsAtFirstStart: with --from-latest the library starts
// shards without a checkpoint at AT_TIMESTAMP of the team's first start, so
// a child created by a reshard later starts at its beginning (before, at
// LATEST, it skipped what was written to it while its parents drained).
func TestFromLatestStartsAtFirstStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(1)
		s.put([]int{0}, 1, func() string { return "" }) // before the first start: skipped by design
		time.Sleep(time.Second)
		h := newHarness(t, budget.Budget{MaxRecords: 10, PollInterval: time.Second}, s, 10)
		h.c.opts.FromLatest = true
		first, err := h.c.leases.FirstStart(context.Background(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		kcfg := h.c.kclConfig(first)
		if kcfg.InitialPositionInStream != config.AT_TIMESTAMP || !kcfg.InitialPositionInStreamExtended.Timestamp.Equal(first) {
			t.Fatalf("initial position %v at %v, want AT_TIMESTAMP at the first start %v", kcfg.InitialPositionInStream, kcfg.InitialPositionInStreamExtended.Timestamp, first)
		}
		time.Sleep(time.Minute)
		s.split(0)
		s.put([]int{0, 1 << 15}, 1, func() string { return "" })
		at := kcfg.InitialPositionInStreamExtended.Timestamp
		if got := s.iterator(s.shards[0].id, "", at); got != s.shards[0].id+"/1" {
			t.Errorf("the shard open at the first start starts at %s, want after the record written before it", got)
		}
		for _, sh := range s.shards[1:] {
			if got, want := s.iterator(sh.id, "", at), s.iterator(sh.id, "", nil); got != want {
				t.Errorf("child %s starts at %s, want its beginning %s", sh.id, got, want)
			}
		}
		h.c.opts.FromLatest = false
		if kcfg := h.c.kclConfig(first); kcfg.InitialPositionInStream != config.TRIM_HORIZON {
			t.Errorf("without --from-latest: %v, want TRIM_HORIZON", kcfg.InitialPositionInStream)
		}
	})
}

// TestOwnerInRowIsNotHeld: a lease whose release failed keeps this pod's
// name in its row; the library would take that for a lease it holds and
// skip the shard forever. Found by the simulation (a pod that lost the
// table at the wrong moment never read two of its shards again).
func TestOwnerInRowIsNotHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, budget.Budget{MaxRecords: 10, PollInterval: time.Second}, newSimStream(1), 10)
		shard := h.stream.shards[0].id
		ctx := context.Background()
		_ = h.table.Put(ctx, lease.Row{Key: shard, Owner: "pod-a", Timeout: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano), Checkpoint: "42"})
		st := &par.ShardStatus{ID: shard, Mux: &sync.RWMutex{}}
		if err := (checkpointer{h.c}).FetchCheckpoint(st); err != nil {
			t.Fatal(err)
		}
		if got := st.GetLeaseOwner(); got == "pod-a" {
			t.Fatalf("owner %q: the library would skip the shard as held", got)
		}
		h.scan()
		if err := (checkpointer{h.c}).GetLease(st, "pod-a"); err != nil {
			t.Fatalf("the pod could not take its stale lease back: %v", err)
		}
	})
}
