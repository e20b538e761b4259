package consumer

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/document"
	"github.com/streambudget/streambudget/pkg/lease"
)

// The simulation: a seeded model of a stream (shards that split and merge,
// records with keys, some dropped by a rule, some rejected by the cluster,
// some undecodable), pods that join, stop, are killed and come back, a
// cluster that goes down, throttles and refuses writes, a lease table that
// is unreachable for a while and a stream listing that fails, all driven
// through the real processor, ledger, pacer, document builder, sink (over an
// in-process cluster model) and lease code, in a synctest bubble: time is
// virtual, so minutes pass in milliseconds.
//
// The library itself (vmware-go-kcl-v2) cannot run on virtual time, so its
// polling loop and shard sync are modelled in simPod with the behaviours
// the adapters guard against: it polls again at once after a non-empty
// read, takes one lease per shard sync, waits only for ParentShardId (and
// not at all when the parent has no checkpoint row), calls
// Shutdown(TERMINATE) at a shard's end whatever the processor did, and
// starts shards without a checkpoint at the configured initial position.
// kcl_test.go runs the library itself for the same behaviours.
//
// After every checkpoint the table is asked to write, and at the end, it
// checks: no checkpoint beyond what the cluster confirmed, no SHARD_END
// with a record unconfirmed, per-key order, the team's read rate within its
// budget over every window, each shard's buffers within their bound; and
// at the end every record indexed, dead-lettered or dropped by its rule.
// A failing seed prints its schedule; -sim.seed replays it.

var (
	simSeeds = flag.Int("sim.seeds", defaultSimSeeds, "simulated schedules (make test runs thousands without the race detector)")
	simFirst = flag.Uint64("sim.first", 1, "the first seed of -sim.seeds or -sim.for")
	simFor   = flag.Duration("sim.for", 0, "simulate new schedules for this long instead of -sim.seeds (make fuzz)")
	simSeed  = flag.Uint64("sim.seed", 0, "replay this seed only")
	simLog   = flag.Bool("sim.log", false, "print the pods' logs of a failing seed")
)

func TestSimulation(t *testing.T) {
	var failed atomic.Int32
	simulate := func(t *testing.T, seed uint64) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := newSim(t, seed)
				s.run()
				if t.Failed() {
					failed.Add(1)
					if *simLog {
						t.Log(s.logs.String())
					}
					t.Logf("seed %d failed; replay with: go test ./pkg/consumer -run 'TestSimulation/^%d$' -sim.seed %d\nschedule:\n%s",
						seed, seed, seed, strings.Join(s.schedule, "\n"))
				}
			})
		})
	}
	switch {
	case *simSeed != 0:
		simulate(t, *simSeed)
	case *simFor > 0:
		// Batches of parallel schedules until the time is up: a batch's
		// subtests finish before the next starts.
		deadline, seed, batches := time.Now().Add(*simFor), *simFirst, 0
		for ; time.Now().Before(deadline) && failed.Load() == 0; batches++ {
			t.Run(fmt.Sprintf("batch%d", batches), func(t *testing.T) {
				for range 64 {
					simulate(t, seed)
					seed++
				}
			})
		}
		t.Logf("%d schedules simulated, seeds %d to %d", seed-*simFirst, *simFirst, seed-1)
	default:
		for seed := *simFirst; seed < *simFirst+uint64(*simSeeds) && failed.Load() < 3; seed++ {
			simulate(t, seed)
		}
	}
}

// sim is one simulated schedule.
type sim struct {
	t        *testing.T
	seed     uint64
	rnd      *rand.Rand
	stream   *simStream
	es       *simES
	table    *lease.MemTable
	file     *budget.File
	schema   *document.Schema
	start    time.Time
	schedule []string

	mu     sync.Mutex
	pods   []*simPod
	nextID int
	reads  []readEvent
	// tableDown makes the lease table unreachable for every pod.
	tableDown atomic.Bool
	// memory is the largest a shard's builder held.
	memory int
	// done ends the faults' timers; logs holds the pods' logs.
	done chan struct{}
	logs syncBuffer
}

// syncBuffer is a buffer for several goroutines' logs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// after runs f after d, unless the simulation ends first.
func (s *sim) after(d time.Duration, f func()) {
	go func() {
		select {
		case <-time.After(d):
			f()
		case <-s.done:
		}
	}()
}

type readEvent struct {
	at    time.Time
	n     int
	lease string // pod/shard/lease number
	limit int
}

func newSim(t *testing.T, seed uint64) *sim {
	rnd := rand.New(rand.NewPCG(seed, 0x5eed))
	s := &sim{t: t, seed: seed, rnd: rnd, start: time.Now(), done: make(chan struct{})}
	shards := 1 + rnd.IntN(4)
	s.stream = newSimStream(shards)
	bud := budget.Budget{MaxRecords: 2 + rnd.IntN(8), PollInterval: time.Second}
	if rnd.IntN(3) == 0 {
		bud = budget.Budget{RecordsPerSecond: 4 + rnd.IntN(20), PollInterval: time.Second}
	}
	s.file = &budget.File{Team: "sim", Stream: "sim-logs", Shards: shards, Budget: bud, Pods: 1, Decode: budget.DecodeJSON,
		Elasticsearch: budget.Elasticsearch{Index: "logs-sim-{yyyy.MM.dd}", DeadLetterIndex: "deadletter-sim"}}
	var err error
	s.schema, err = document.New(document.Options{Team: "sim", Stream: "sim-logs", Index: s.file.Elasticsearch.Index,
		DeadLetterIndex: s.file.Elasticsearch.DeadLetterIndex, Decode: decode.Options{Format: budget.DecodeJSON},
		Drop:   []budget.DropRule{{Name: "debug", Field: "level", In: []string{"DEBUG"}}},
		Redact: []budget.RedactRule{{Pattern: budget.PatternEmail}}, MaxDocs: 2 + rnd.IntN(10)})
	if err != nil {
		t.Fatal(err)
	}
	s.es = newSimES(nil)
	s.stream.onPut = s.es.learn
	s.table = lease.NewMemTable()
	s.table.Fail = func(op, key string) error {
		if s.tableDown.Load() {
			return lease.ErrUnavailable
		}
		return nil
	}
	return s
}

func (s *sim) logf(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.schedule = append(s.schedule, fmt.Sprintf("%6.1fs ", time.Since(s.start).Seconds())+fmt.Sprintf(format, a...))
}

// run plays the schedule: writes for a while with faults, then a quiet
// period until everything is read, then checks.
func (s *sim) run() {
	const writeFor = 60 * time.Second
	fromLatest := s.rnd.IntN(4) == 0
	s.logf("seed %d: %d shards, budget %+v, from-latest %v", s.seed, len(s.stream.shards), s.file.Budget, fromLatest)
	pods := 1 + s.rnd.IntN(3)
	for range pods {
		s.startPod(fromLatest)
	}
	// The writer: keys spread over the hash space, at a rate around the
	// budget with spikes, with KPL aggregates now and then.
	writes := make(chan struct{})
	wrnd := rand.New(rand.NewPCG(s.seed, 0x3717e5)) // the writer's own: the faults use s.rnd
	go func() {
		defer close(writes)
		rate := max(int(s.file.Budget.TeamRate(len(s.stream.shards))), 5)
		for time.Since(s.start) < writeFor {
			n := wrnd.IntN(2*rate + 1)
			keys := make([]int, n)
			for i := range keys {
				keys[i] = wrnd.IntN(64) * (hashSpace / 64)
			}
			agg := 1
			if wrnd.IntN(8) == 0 {
				agg = 2 + wrnd.IntN(3)
			}
			pick := func() string {
				switch x := wrnd.IntN(100); {
				case x < 5:
					return "drop"
				case x < 10:
					return "poison"
				case x < 12:
					return "bad"
				}
				return ""
			}
			s.stream.put(keys, agg, pick)
			time.Sleep(time.Second)
		}
	}()
	// The faults, at random times while the writer writes.
	for ev := 0; ev < 6+s.rnd.IntN(10); ev++ {
		time.Sleep(time.Duration(s.rnd.IntN(int(writeFor/time.Second)/6)+1) * time.Second)
		s.fault(fromLatest)
	}
	<-writes
	s.set(func() {}) // end every fault
	s.es.set(func(es *simES) { es.down, es.forbidden, es.throttle = false, false, 0 })
	s.tableDown.Store(false)
	s.stream.setListFails(false)
	if s.livePods() == 0 {
		s.startPod(fromLatest)
	}
	// Quiet: everything is read within the budget's time plus failovers;
	// no progress for five minutes is a stall.
	progress, lastProgress := -1, time.Now()
	for {
		n, all := s.resolved()
		if all {
			break
		}
		if n > progress {
			progress, lastProgress = n, time.Now()
		}
		if time.Since(lastProgress) > 5*time.Minute {
			s.t.Errorf("no record confirmed for 5 minutes with %d of %d left: stalled", len(s.stream.recs)-n, len(s.stream.recs))
			break
		}
		if s.livePods() == 0 {
			s.startPod(fromLatest)
		}
		time.Sleep(5 * time.Second)
	}
	close(s.done)
	s.stopAll()
	s.check()
}

func (s *sim) set(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// fault applies one random fault.
func (s *sim) fault(fromLatest bool) {
	switch k := s.rnd.IntN(10); k {
	case 0:
		s.logf("pod joins")
		s.startPod(fromLatest)
	case 1:
		if p := s.somePod(); p != nil {
			s.logf("pod %s stops (SIGTERM)", p.name)
			p.gone.Store(true)
			go p.stop()
		}
	case 2:
		if p := s.somePod(); p != nil {
			s.logf("pod %s is killed", p.name)
			p.kill()
			if s.rnd.IntN(2) == 0 {
				s.logf("a pod restarts")
				s.startPod(fromLatest)
			}
		}
	case 3:
		if what := s.stream.split(s.rnd.IntN(8)); what != "" {
			s.logf("%s", what)
		}
	case 4:
		if what := s.stream.merge(s.rnd.IntN(8)); what != "" {
			s.logf("%s", what)
		}
	case 5:
		d := time.Duration(2+s.rnd.IntN(30)) * time.Second
		s.logf("cluster down for %s", d)
		s.es.set(func(es *simES) { es.down = true })
		s.after(d, func() { s.es.set(func(es *simES) { es.down = false }) })
	case 6:
		d := time.Duration(2+s.rnd.IntN(20)) * time.Second
		s.logf("cluster throttles for %s", d)
		s.es.set(func(es *simES) { es.throttle = 2 + s.rnd.IntN(4) })
		s.after(d, func() { s.es.set(func(es *simES) { es.throttle = 0 }) })
	case 7:
		d := time.Duration(2+s.rnd.IntN(20)) * time.Second
		s.logf("cluster refuses writes (403) for %s", d)
		s.es.set(func(es *simES) { es.forbidden = true })
		s.after(d, func() { s.es.set(func(es *simES) { es.forbidden = false }) })
	case 8:
		d := time.Duration(2+s.rnd.IntN(25)) * time.Second
		s.logf("lease table unreachable for %s", d)
		s.tableDown.Store(true)
		s.after(d, func() { s.tableDown.Store(false) })
	case 9:
		d := time.Duration(2+s.rnd.IntN(20)) * time.Second
		s.logf("shard listing fails for %s", d)
		s.stream.setListFails(true)
		s.after(d, func() { s.stream.setListFails(false) })
	}
}

func (s *sim) livePods() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.pods {
		if !p.gone.Load() {
			n++
		}
	}
	return n
}

func (s *sim) somePod() *simPod {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []*simPod
	for _, p := range s.pods {
		if !p.gone.Load() {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[s.rnd.IntN(len(live))]
}

// resolved counts the records indexed, dead-lettered or dropped, and
// reports whether that is all of them.
func (s *sim) resolved() (int, bool) {
	s.stream.mu.Lock()
	recs := append([]*simRecord(nil), s.stream.recs...)
	s.stream.mu.Unlock()
	n := 0
	for _, r := range recs {
		if r.kind == "drop" || s.es.has(r.id) {
			n++
		}
	}
	return n, n == len(recs)
}

func (s *sim) stopAll() {
	s.mu.Lock()
	pods := append([]*simPod(nil), s.pods...)
	s.mu.Unlock()
	for _, p := range pods {
		p.stop()
	}
	for _, p := range pods {
		p.wg.Wait()
	}
}

// check is what must hold at the end.
func (s *sim) check() {
	t := s.t
	missing := 0
	for _, r := range s.stream.recs {
		if r.kind != "drop" && !s.es.has(r.id) {
			missing++
			if missing <= 5 {
				t.Errorf("record %d (key %d #%d, %s %s/%d, %q) never indexed nor dead-lettered", r.id, r.key, r.kseq, r.shard, r.seq, r.sub, r.kind)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d records lost", missing, len(s.stream.recs))
	}
	// Per-key order: each record of a key first reaches the cluster in the
	// order the key's records were written (what a bulk retry confirms
	// later does not change the order they were read and sent in).
	byID := map[int]*simRecord{}
	for _, r := range s.stream.recs {
		byID[r.id] = r
	}
	last := map[int]int{}
	s.es.mu.Lock()
	first := append([]int(nil), s.es.first...)
	sent := append([]int(nil), s.es.sent...)
	writes := s.es.writes
	s.es.mu.Unlock()
	for _, id := range sent {
		r := byID[id]
		if prev, ok := last[r.key]; ok && r.kseq < prev {
			t.Errorf("key %d: record #%d first sent after #%d", r.key, r.kseq, prev)
		}
		last[r.key] = max(last[r.key], r.kseq)
	}
	s.checkRates()
	if s.memory > document.MaxShardBytes {
		t.Errorf("a shard's builder held %d bytes, above the bound of %d", s.memory, document.MaxShardBytes)
	}
	t.Logf("%d records, %d confirmed writes (%d replays), %d reads", len(s.stream.recs), writes, writes-len(first), len(s.reads))
}

// checkRates: over every window of 10 s, the team read no more than its
// budget (the highest it had during the window) plus one batch for every
// lease active in it: a token bucket that starts empty lets each reader be
// one batch ahead of its rate, never more.
func (s *sim) checkRates() {
	const window = 10 * time.Second
	s.mu.Lock()
	reads := append([]readEvent(nil), s.reads...)
	s.mu.Unlock()
	sort.Slice(reads, func(i, j int) bool { return reads[i].at.Before(reads[j].at) })
	for i := range reads {
		from := reads[i].at
		n := 0
		slack := map[string]int{}
		for j := i; j < len(reads) && reads[j].at.Sub(from) < window; j++ {
			n += reads[j].n
			// A reader may be a batch ahead of its rate, plus a full
			// bucket (one limit's worth) saved while it was caught up.
			slack[reads[j].lease] = max(slack[reads[j].lease], reads[j].n+reads[j].limit)
		}
		extra := 0
		for _, l := range slack {
			extra += l
		}
		// The budget with the most shards open during the window.
		budget := s.file.Budget.TeamRate(s.stream.maxOpen(from, from.Add(window)))
		if float64(n) > budget*window.Seconds()+float64(extra) {
			s.t.Errorf("read %d records in the %s from %.1fs, above the budget of %.0f/s plus %d (one batch of %d leases)",
				n, window, from.Sub(s.start).Seconds(), budget, extra, len(slack))
			for j := i; j < len(reads) && reads[j].at.Sub(from) < window; j++ {
				s.t.Logf("  %.3fs %s: %d records (limit %d)", reads[j].at.Sub(s.start).Seconds(), reads[j].lease, reads[j].n, reads[j].limit)
			}
			return
		}
	}
}
