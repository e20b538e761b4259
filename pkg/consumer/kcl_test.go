package consumer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	chk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	par "github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"
	wk "github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/lease"
)

// These tests run the KCL library itself (vmware-go-kcl-v2 v1.0.0) on
// virtual time against a model stream served over the Kinesis JSON API in
// process, to show each library behaviour an adapter guards against. The
// simulation models the same behaviours; if the library changed, these
// tests say so.

// kinesisAPI serves ListShards, GetShardIterator, GetRecords and
// DescribeStreamSummary over a simStream; iterator types as asked are
// recorded per shard.
type kinesisAPI struct {
	s         *simStream
	mu        sync.Mutex
	iterators map[string]string // shard -> the ShardIteratorType asked
}

func (k *kinesisAPI) Do(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	k.ServeHTTP(w, r)
	return w.Result(), nil
}

func (k *kinesisAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct {
		ShardId, ShardIteratorType, StartingSequenceNumber, ShardIterator string
		Timestamp                                                         float64
		Limit                                                             int
	}
	_ = json.Unmarshal(body, &in)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	out := map[string]any{}
	switch op := r.Header.Get("X-Amz-Target"); {
	case strings.HasSuffix(op, ".ListShards"):
		res, err := k.s.ListShards(r.Context(), nil)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"LimitExceededException","message":"rate exceeded"}`)
			return
		}
		out["Shards"] = res.Shards
	case strings.HasSuffix(op, ".DescribeStreamSummary"):
		out["StreamDescriptionSummary"] = map[string]any{"RetentionPeriodHours": 24, "StreamStatus": "ACTIVE"}
	case strings.HasSuffix(op, ".GetShardIterator"):
		k.mu.Lock()
		k.iterators[in.ShardId] = in.ShardIteratorType
		k.mu.Unlock()
		switch in.ShardIteratorType {
		case "AFTER_SEQUENCE_NUMBER":
			out["ShardIterator"] = k.s.iterator(in.ShardId, in.StartingSequenceNumber, nil)
		case "AT_TIMESTAMP":
			at := time.UnixMilli(int64(in.Timestamp * 1000))
			out["ShardIterator"] = k.s.iterator(in.ShardId, "", &at)
		case "LATEST":
			out["ShardIterator"] = k.s.latest(in.ShardId)
		default:
			out["ShardIterator"] = k.s.iterator(in.ShardId, "", nil)
		}
	case strings.HasSuffix(op, ".GetRecords"):
		recs, next, behind := k.s.getRecords(in.ShardIterator, max(in.Limit, 1))
		var rs []map[string]any
		for _, r := range recs {
			rs = append(rs, map[string]any{"Data": base64.StdEncoding.EncodeToString(r.Data), "PartitionKey": *r.PartitionKey,
				"SequenceNumber": *r.SequenceNumber, "ApproximateArrivalTimestamp": float64(r.ApproximateArrivalTimestamp.UnixMilli()) / 1000})
		}
		out["Records"] = rs
		out["MillisBehindLatest"] = behind
		if next != "" {
			out["NextShardIterator"] = next
		}
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"InvalidArgumentException","message":"unexpected %s"}`, op)
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

// plainCheckpointer is a lease table that grants every lease and keeps
// checkpoints, with no fencing, balance or parent gate: the library's own
// assumptions, to watch it behave.
type plainCheckpointer struct {
	mu          sync.Mutex
	checkpoints map[string]string
	owner       map[string]string
	leases      []time.Time
	// ownerInRow makes FetchCheckpoint report this worker as the owner;
	// refuse refuses that many leases first.
	ownerInRow string
	refuse     int
}

func (p *plainCheckpointer) Init() error { return nil }
func (p *plainCheckpointer) GetLease(s *par.ShardStatus, w string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse > 0 {
		p.refuse--
		return chk.ErrLeaseNotAcquired{}
	}
	if p.owner[s.ID] != w {
		p.leases = append(p.leases, time.Now())
	}
	p.owner[s.ID] = w
	s.SetLeaseOwner(w)
	return nil
}
func (p *plainCheckpointer) CheckpointSequence(s *par.ShardStatus) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkpoints[s.ID] = s.GetCheckpoint()
	return nil
}
func (p *plainCheckpointer) FetchCheckpoint(s *par.ShardStatus) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.checkpoints[s.ID]
	if !ok {
		return chk.ErrSequenceIDNotFound
	}
	s.SetCheckpoint(c)
	if p.ownerInRow != "" {
		s.SetLeaseOwner(p.ownerInRow)
	}
	return nil
}
func (p *plainCheckpointer) RemoveLeaseInfo(string) error { return nil }
func (p *plainCheckpointer) RemoveLeaseOwner(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.owner, id)
	return nil
}
func (p *plainCheckpointer) GetLeaseOwner(id string) (string, error) { return p.owner[id], nil }
func (p *plainCheckpointer) ListActiveWorkers(map[string]*par.ShardStatus) (map[string][]*par.ShardStatus, error) {
	return nil, nil
}
func (p *plainCheckpointer) ClaimShard(*par.ShardStatus, string) error { return nil }

// recorder is a record processor that does what a test says and records
// the calls.
type recorder struct {
	mu       sync.Mutex
	shard    string
	inits    map[string]time.Time
	batches  map[string][]time.Time
	shutdown map[string]kcl.ShutdownReason
	// process, when set, decides about each batch; by default every
	// record is checkpointed.
	process func(shard string, in *kcl.ProcessRecordsInput)
}

type recorderFactory struct{ r *recorder }

func (f recorderFactory) CreateProcessor() kcl.IRecordProcessor { return &recorderProc{r: f.r} }

type recorderProc struct {
	r     *recorder
	shard string
}

func (p *recorderProc) Initialize(in *kcl.InitializationInput) {
	p.shard = in.ShardId
	p.r.mu.Lock()
	p.r.inits[in.ShardId] = time.Now()
	p.r.mu.Unlock()
}

func (p *recorderProc) ProcessRecords(in *kcl.ProcessRecordsInput) {
	if len(in.Records) == 0 {
		return
	}
	p.r.mu.Lock()
	p.r.batches[p.shard] = append(p.r.batches[p.shard], time.Now())
	process := p.r.process
	p.r.mu.Unlock()
	if process != nil {
		process(p.shard, in)
		return
	}
	_ = in.Checkpointer.Checkpoint(in.Records[len(in.Records)-1].SequenceNumber)
}

func (p *recorderProc) Shutdown(in *kcl.ShutdownInput) {
	p.r.mu.Lock()
	p.r.shutdown[p.shard] = in.ShutdownReason
	p.r.mu.Unlock()
	if in.ShutdownReason == kcl.TERMINATE {
		_ = in.Checkpointer.Checkpoint(nil)
	}
}

func newRecorder() *recorder {
	return &recorder{inits: map[string]time.Time{}, batches: map[string][]time.Time{}, shutdown: map[string]kcl.ShutdownReason{}}
}

// runLibrary runs a KCL worker for d over the stream, with the given
// processor factory, checkpointer and initial position.
func runLibrary(t *testing.T, s *simStream, f kcl.IRecordProcessorFactory, cp chk.Checkpointer, pos config.InitialPositionInStream, d time.Duration) *kinesisAPI {
	t.Helper()
	api := &kinesisAPI{s: s, iterators: map[string]string{}}
	kc := awskinesis.New(awskinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://kinesis.test"),
		HTTPClient: api, Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	kcfg := config.NewKinesisClientLibConfig("app", "stream", "us-east-1", "w").
		WithMaxRecords(2).WithShardSyncIntervalMillis(1000).WithFailoverTimeMillis(10000).WithLeaseRefreshWaitTime(2500).
		WithIdleTimeBetweenReadsInMillis(1000).WithInitialPositionInStream(pos).
		WithLogger(kclLogger{l: slog.New(slog.DiscardHandler), fatal: func(err error) { t.Error(err) }})
	kcfg.ParentShardPollIntervalMillis = 1000
	w := wk.NewWorker(f, kcfg).WithKinesis(kc).WithCheckpointer(cp)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	w.Shutdown()
	return api
}

func plain() *plainCheckpointer {
	return &plainCheckpointer{checkpoints: map[string]string{}, owner: map[string]string{}}
}

func fill(s *simStream, n int) {
	for range n {
		s.put([]int{0, hashSpace / 2}, 1, func() string { return "" })
	}
}

// The library polls again at once after a batch with records: the GetRecords
// limit alone is no rate (pacer.go).
func TestLibraryPollsAgainAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(1)
		fill(s, 40) // 40 records per... one shard: 40 x 2 keys
		r := newRecorder()
		runLibrary(t, s, recorderFactory{r}, plain(), config.TRIM_HORIZON, 20*time.Second)
		b := r.batches[s.shards[0].id]
		if len(b) < 20 {
			t.Fatalf("%d batches", len(b))
		}
		// It waits only for its own limit of five calls a second, never
		// the idle time between reads (1 s here) after a batch with records.
		if span := b[19].Sub(b[0]); span >= 10*time.Second {
			t.Errorf("20 batches of 2 took %v: the library waited between non-empty reads", span)
		}
	})
}

// The library takes one lease per shard sync: a pod would own every shard
// before a second pod starts (the fair share in pkg/lease).
func TestLibraryTakesOneLeasePerSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(4)
		cp := plain()
		stop := time.Now().Add(10 * time.Second)
		runLibrary(t, s, recorderFactory{newRecorder()}, cp, config.TRIM_HORIZON, 10*time.Second)
		// While the worker shuts down it releases its leases shard by
		// shard, and a renewal still running takes one again: count those
		// taken before.
		var leases []time.Time
		cp.mu.Lock()
		taken := append([]time.Time(nil), cp.leases...)
		cp.mu.Unlock()
		for _, at := range taken {
			if at.Before(stop) {
				leases = append(leases, at)
			}
		}
		if len(leases) != 4 {
			t.Fatalf("%d leases taken, want 4", len(leases))
		}
		for i := 1; i < 4; i++ {
			if gap := leases[i].Sub(leases[i-1]); gap < 400*time.Millisecond {
				t.Errorf("leases %d and %d taken %v apart, want one per sync", i-1, i, gap)
			}
		}
	})
}

// The library starts a child before its parents are read to their end: it
// waits for ParentShardId only (never the adjacent parent of a merge), and
// not at all when the parent has no checkpoint row (the parent gate in
// checkpointer.GetLease).
func TestLibraryStartsChildBeforeParents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(2)
		fill(s, 50)
		s.merge(0)
		r := newRecorder()
		r.process = func(string, *kcl.ProcessRecordsInput) {} // read, never checkpoint: the parents never finish
		runLibrary(t, s, recorderFactory{r}, plain(), config.TRIM_HORIZON, 20*time.Second)
		child := s.shards[2].id
		if _, started := r.inits[child]; !started {
			t.Fatal("the library did not start the child with its parents unfinished; the gate would be unneeded")
		}
	})
}

// The library calls Shutdown(TERMINATE) at a shard's end whatever the
// processor did with the last batch (the SHARD_END rule in Shutdown).
func TestLibraryTerminatesAfterSkippedBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := closedStream(6)
		r := newRecorder()
		n := 0
		r.process = func(_ string, in *kcl.ProcessRecordsInput) {
			if n++; n < 3 { // the last batch is skipped
				_ = in.Checkpointer.Checkpoint(in.Records[len(in.Records)-1].SequenceNumber)
			}
		}
		cp := plain()
		runLibrary(t, s, recorderFactory{r}, cp, config.TRIM_HORIZON, 10*time.Second)
		if got := r.shutdown[s.shards[0].id]; got != kcl.TERMINATE {
			t.Fatalf("shutdown reason %v, want TERMINATE after a skipped last batch", got)
		}
	})
}

// The library starts every shard without a checkpoint at the configured
// initial position, children created long after the first start included
// (startPosition).
func TestLibraryStartsChildrenAtInitialPosition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(1)
		fill(s, 5)
		s.split(0)
		fill(s, 5)
		cp := plain()
		api := runLibrary(t, s, recorderFactory{newRecorder()}, cp, config.LATEST, 20*time.Second)
		for _, sh := range s.shards[1:] {
			if got := api.iterators[sh.id]; got != "LATEST" {
				t.Errorf("child %s started at %q, want the configured LATEST", sh.id, got)
			}
		}
	})
}

// The library skips, at every later shard sync, a shard whose row named
// this worker as its owner when a lease was refused once (the owner check
// in checkpointer.FetchCheckpoint): a lease whose release failed would
// never be read again by its pod.
func TestLibrarySkipsShardOwnedInRow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(1)
		fill(s, 5)
		cp := plain()
		cp.checkpoints[s.shards[0].id] = "00000000000000000001"
		cp.ownerInRow = "w"
		cp.refuse = 1
		r := newRecorder()
		runLibrary(t, s, recorderFactory{r}, cp, config.TRIM_HORIZON, 10*time.Second)
		if len(r.inits) != 0 {
			t.Errorf("the library read a shard whose row named it as owner; the adapter would be unneeded")
		}
	})
}

// TestLibraryWithTheAdapters runs the library with streambudget's own
// checkpointer and processors over a merged stream: the child waits for
// both parents, and the parents end with SHARD_END once every record is
// indexed.
func TestLibraryWithTheAdapters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimStream(2)
		fill(s, 30)
		s.merge(0)
		fill(s, 10)
		h := newHarness(t, budget.Budget{MaxRecords: 20, PollInterval: time.Second}, s, 10)
		ctx, stop := context.WithCancel(context.Background())
		go func() { _ = h.c.leases.Run(ctx, h.c.Reading) }()
		runLibrary(t, s, h.c, checkpointer{h.c}, config.TRIM_HORIZON, 2*time.Minute)
		stop()
		h.c.stopHard()
		for _, p := range s.shards[:2] {
			if row := h.row(p.id); row.Checkpoint != lease.ShardEnd {
				t.Errorf("parent %s checkpoint %q, want SHARD_END", p.id, row.Checkpoint)
			}
		}
		if got := len(h.sink.written); got != len(s.recs) {
			t.Errorf("indexed %d of %d", got, len(s.recs))
		}
		synctest.Wait()
	})
}
