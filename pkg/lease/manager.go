package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrNotAcquired is a lease not taken: another pod holds it, or this pod
// holds its fair share already.
var ErrNotAcquired = errors.New("lease not acquired")

// ErrLeaseEnded is a write refused because this pod no longer holds the
// shard's lease: writing could overwrite the new owner's progress.
var ErrLeaseEnded = errors.New("lease on the shard has ended")

// workerPrefix marks the heartbeat rows.
const workerPrefix = "worker#"

// firstStartKey is the row holding when the team first started.
const firstStartKey = "streambudget#first-start"

// DefaultWorker is a pod's name in the lease table when none is given: the
// host name and a random suffix.
func DefaultWorker() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "streambudget"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// Options configure a Manager.
type Options struct {
	Table  Table
	Worker string
	// Failover is the lease duration: a lease not renewed within it may be
	// taken by another pod.
	Failover time.Duration
	Log      *slog.Logger
	// CallTimeout bounds each table call; default 10s.
	CallTimeout time.Duration
}

// Manager holds one pod's leases.
//
//   - Fencing: every held lease has a deadline, the start of its last
//     successful renewal plus the failover time. Its shard's context ends a
//     margin before that, so a pod stops working a shard before another pod
//     can take it; a checkpoint after the deadline is refused locally, and
//     every checkpoint is conditional on still owning the lease in the table.
//   - Balance: every pod heartbeats a row; a pod takes new leases only up to
//     its fair share (shards to read / live pods, rounded up) and gives the
//     excess up by refusing its own renewal, so pods end within one shard of
//     each other, and a dead pod's shards are taken once its leases expire.
type Manager struct {
	table    Table
	worker   string
	failover time.Duration
	margin   time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	held map[string]*held
	// ended shards refuse renewals until released, so that a reader that
	// outlived its lease cannot win it back.
	ended       map[string]bool
	fairShare   int
	liveWorkers int
	finished    map[string]bool
	payload     map[string]float64
	peers       []Heartbeat
	scanned     bool
}

type held struct {
	lease    Lease // as last written
	deadline time.Time
	giveUp   string // why the next renewal is refused; "" to renew
	ctx      context.Context
	cancel   context.CancelFunc
}

// Heartbeat is one live pod's last heartbeat.
type Heartbeat struct {
	Worker  string
	Numbers map[string]float64
}

// New returns a Manager; Run keeps its heartbeat and fences.
func New(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	return &Manager{
		table:       opts.Table,
		worker:      opts.Worker,
		failover:    opts.Failover,
		margin:      max(opts.Failover/5, time.Second),
		timeout:     opts.CallTimeout,
		log:         opts.Log,
		held:        map[string]*held{},
		ended:       map[string]bool{},
		finished:    map[string]bool{},
		fairShare:   math.MaxInt32,
		liveWorkers: 1,
	}
}

// Worker is this pod's name in the table.
func (m *Manager) Worker() string { return m.worker }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Holds reports whether this pod holds the shard's lease.
func (m *Manager) Holds(shardID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.held[shardID]
	return ok
}

// Held is the number of leases this pod holds.
func (m *Manager) Held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

// Fetch reads the shard's row; ok is false when it has none.
func (m *Manager) Fetch(ctx context.Context, shardID string) (Row, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	return m.table.Get(ctx, shardID)
}

// Acquire takes a new lease on a shard no live pod holds, within this pod's
// fair share. It returns the shard's row as it was (its checkpoint).
func (m *Manager) Acquire(ctx context.Context, shardID, parent string) (Row, error) {
	m.mu.Lock()
	_, holds := m.held[shardID]
	full := len(m.held) >= m.fairShare
	m.mu.Unlock()
	switch {
	case holds:
		return Row{}, fmt.Errorf("acquire %s: held already", shardID)
	case full:
		return Row{}, ErrNotAcquired
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	start := time.Now()
	row, _, err := m.table.Get(ctx, shardID)
	if err != nil {
		return Row{}, err
	}
	prev := Lease{Owner: row.Owner, Timeout: row.Timeout}
	if row.Owner != "" {
		t, err := time.Parse(time.RFC3339Nano, row.Timeout)
		if err == nil && start.Before(t) && row.Owner != m.worker {
			return Row{}, ErrNotAcquired
		}
	}
	next := Lease{Owner: m.worker, Timeout: stamp(start.Add(m.failover))}
	if err := m.table.Take(ctx, shardID, prev, next, parent); err != nil {
		if errors.Is(err, ErrConflict) {
			return Row{}, ErrNotAcquired
		}
		return Row{}, err
	}
	lctx, lcancel := context.WithCancel(context.Background())
	m.mu.Lock()
	delete(m.ended, shardID)
	m.held[shardID] = &held{lease: next, deadline: start.Add(m.failover), ctx: lctx, cancel: lcancel}
	m.mu.Unlock()
	return row, nil
}

// Renew extends a held lease. A lease being given up, lost to another pod
// or failing to renew ends: its context is cancelled and the error says so.
func (m *Manager) Renew(ctx context.Context, shardID string) error {
	m.mu.Lock()
	h, ok := m.held[shardID]
	switch {
	case !ok || m.ended[shardID]:
		m.mu.Unlock()
		return ErrLeaseEnded
	case h.giveUp != "":
		why := h.giveUp
		m.mu.Unlock()
		m.end(shardID, why)
		return fmt.Errorf("lease on %s given up: %s", shardID, why)
	}
	prev := h.lease
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	start := time.Now()
	next := Lease{Owner: m.worker, Timeout: stamp(start.Add(m.failover))}
	if err := m.table.Take(ctx, shardID, prev, next, ""); err != nil {
		m.end(shardID, "renewal failed: "+err.Error())
		return fmt.Errorf("renew the lease on %s: %w", shardID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.held[shardID]; ok && h.giveUp == "" {
		h.lease, h.deadline = next, start.Add(m.failover)
	}
	return nil
}

// Context is what a shard's work runs under: it ends when the lease ends or
// is about to (a margin before its deadline). A shard not held has an ended
// context.
func (m *Manager) Context(shardID string) context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.held[shardID]; ok {
		return h.ctx
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// GiveUp makes the shard's next renewal fail, so that its reader stops and
// the lease is released for another reader (this pod or another) to resume
// from the last checkpoint.
func (m *Manager) GiveUp(shardID, why string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.held[shardID]; ok && h.giveUp == "" {
		h.giveUp = why
		m.log.Info("giving up lease", "shard", shardID, "reason", why)
	}
}

// GivingUp reports whether the shard is being given up (or not held).
func (m *Manager) GivingUp(shardID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.held[shardID]
	return !ok || h.giveUp != ""
}

// end forgets a lease and cancels its shard's work.
func (m *Manager) end(shardID, why string) {
	m.mu.Lock()
	h, ok := m.held[shardID]
	if ok {
		delete(m.held, shardID)
		m.ended[shardID] = true
	}
	m.mu.Unlock()
	if ok {
		h.cancel()
		m.log.Info("lease ended", "shard", shardID, "reason", why)
	}
}

// Release ends the lease and removes this pod as the shard's owner, so that
// any pod may take it at once.
func (m *Manager) Release(ctx context.Context, shardID string) error {
	m.end(shardID, "released")
	m.mu.Lock()
	delete(m.ended, shardID)
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	if err := m.table.Release(ctx, shardID, m.worker); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// Checkpoint writes the shard's checkpoint while this pod holds its lease,
// enforced locally (the deadline) and by the table (the owner). A refused
// write ends the lease and returns ErrLeaseEnded.
func (m *Manager) Checkpoint(ctx context.Context, shardID, checkpoint string) error {
	m.mu.Lock()
	h, ok := m.held[shardID]
	valid := ok && time.Now().Before(h.deadline)
	m.mu.Unlock()
	if !valid {
		return ErrLeaseEnded
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	if err := m.table.SetCheckpoint(ctx, shardID, m.worker, checkpoint); err != nil {
		if errors.Is(err, ErrConflict) {
			m.end(shardID, "another pod owns the lease")
			return ErrLeaseEnded
		}
		return err
	}
	if checkpoint == ShardEnd {
		m.mu.Lock()
		m.finished[shardID] = true
		m.mu.Unlock()
	}
	return nil
}

// Finished reports whether the shard was read to its end, as of the last
// scan of the table (or this pod's own SHARD_END).
func (m *Manager) Finished(shardID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.finished[shardID]
}

// Scanned reports whether the table has been read at least once, so that
// Finished and FairShare mean something.
func (m *Manager) Scanned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.scanned
}

// Publish sets the numbers the next heartbeat carries.
func (m *Manager) Publish(numbers map[string]float64) {
	m.mu.Lock()
	m.payload = numbers
	m.mu.Unlock()
}

// Team returns every live pod's last heartbeat (this pod's included, as last
// read) and the number of live pods.
func (m *Manager) Team() ([]Heartbeat, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Heartbeat(nil), m.peers...), m.liveWorkers
}

// FirstStart returns when the team first started reading its stream, as
// recorded in the table by the first pod that ever ran (now, if this is it).
func (m *Manager) FirstStart(ctx context.Context, streamCreated time.Time) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	first := Row{Key: firstStartKey, Timeout: stamp(time.Now())}
	if !streamCreated.IsZero() {
		first.Numbers = map[string]float64{streamCreatedKey: float64(streamCreated.Unix())}
	}
	err := m.table.PutIfAbsent(ctx, first)
	if err != nil && !errors.Is(err, ErrConflict) {
		return time.Time{}, err
	}
	row, ok, err := m.table.Get(ctx, firstStartKey)
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return time.Time{}, fmt.Errorf("read %s: row missing right after it was written", firstStartKey)
	}
	t, err := time.Parse(time.RFC3339Nano, row.Timeout)
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", firstStartKey, err)
	}
	if streamCreated.IsZero() {
		return t, nil
	}
	was, ok := row.Numbers[streamCreatedKey]
	switch {
	case !ok && t.Before(streamCreated.Add(-firstStartSkew)):
		// A table from before the creation time was recorded, that started
		// before the stream of that name existed: another stream's.
		return time.Time{}, &StreamRecreatedError{Recorded: t.UTC(), Now: streamCreated.UTC(), FirstStart: true}
	case !ok:
		// A table from before the stream's creation was recorded.
		row.Numbers = maps.Clone(row.Numbers)
		if row.Numbers == nil {
			row.Numbers = map[string]float64{}
		}
		row.Numbers[streamCreatedKey] = float64(streamCreated.Unix())
		if err := m.table.Put(ctx, row); err != nil {
			return time.Time{}, err
		}
	case int64(was) != streamCreated.Unix():
		return time.Time{}, &StreamRecreatedError{Recorded: time.Unix(int64(was), 0).UTC(), Now: streamCreated.UTC()}
	}
	return t, nil
}

// streamCreatedKey holds, in the first-start row, when the stream the
// table's checkpoints belong to was created.
const streamCreatedKey = "stream_created"

// StreamRecreatedError is a lease table holding the checkpoints of a
// stream since deleted: the stream of that name now was created later, its
// shard ids start over, and the old rows (SHARD_END among them) would make
// the new shards be skipped.
type StreamRecreatedError struct {
	Recorded, Now time.Time
	// FirstStart: Recorded is the table's first start (the stream's
	// creation time was not recorded yet), before the stream existed.
	FirstStart bool
}

func (e *StreamRecreatedError) Error() string {
	was := "holds the checkpoints of a stream created at " + e.Recorded.Format(time.RFC3339)
	if e.FirstStart {
		was = "was first used at " + e.Recorded.Format(time.RFC3339) + ", before the stream existed"
	}
	return fmt.Sprintf("the lease table %s, but the stream of that name was created at %s: "+
		"its new shards reuse the old shard ids, and the old checkpoints would skip them. Delete the lease table (it is re-created empty) or name a new one with --application",
		was, e.Now.Format(time.RFC3339))
}

// firstStartSkew is the clock difference allowed between a pod's first
// start and Kinesis's creation time of the stream.
const firstStartSkew = 10 * time.Minute

// Run heartbeats every failover/4, recomputes the fair share from need (the
// shards the team should be reading) and the live pods, gives up excess
// leases and fences leases whose deadline is near, until ctx ends; then it
// removes its heartbeat.
func (m *Manager) Run(ctx context.Context, need func() int) error {
	beat := time.NewTicker(max(m.failover/4, 500*time.Millisecond))
	defer beat.Stop()
	fence := time.NewTicker(200 * time.Millisecond)
	defer fence.Stop()
	m.heartbeat(ctx, need)
	for {
		select {
		case <-ctx.Done():
			m.removeHeartbeat()
			return nil
		case <-fence.C:
			m.expire()
		case <-beat.C:
			m.heartbeat(ctx, need)
		}
	}
}

func (m *Manager) expire() {
	now := time.Now()
	var gone []string
	m.mu.Lock()
	for id, h := range m.held {
		if !now.Before(h.deadline.Add(-m.margin)) {
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		m.end(id, "not renewed in time")
	}
}

func (m *Manager) heartbeat(ctx context.Context, need func() int) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	now := time.Now()
	m.mu.Lock()
	row := Row{Key: workerPrefix + m.worker, Timeout: stamp(now.Add(m.failover)), Numbers: m.payload}
	m.mu.Unlock()
	if err := m.table.Put(ctx, row); err != nil {
		m.log.Warn("lease table heartbeat failed", "err", err)
		return
	}
	rows, err := m.table.Scan(ctx)
	if err != nil {
		m.log.Warn("lease table scan failed", "err", err)
		return
	}
	workers := 0
	var peers []Heartbeat
	finished := map[string]bool{}
	for _, r := range rows {
		if w, ok := strings.CutPrefix(r.Key, workerPrefix); ok {
			if t, err := time.Parse(time.RFC3339Nano, r.Timeout); err == nil && now.Before(t) {
				workers++
				peers = append(peers, Heartbeat{Worker: w, Numbers: r.Numbers})
			}
			continue
		}
		if r.Checkpoint == ShardEnd {
			finished[r.Key] = true
		}
	}
	m.mu.Lock()
	for id := range m.finished {
		finished[id] = true // our own SHARD_END, never undone
	}
	m.finished, m.peers, m.scanned = finished, peers, true
	m.mu.Unlock()

	n := need()
	workers = max(workers, 1)
	fair := max((n+workers-1)/workers, 1)
	if n == 0 {
		fair = math.MaxInt32 // shards not known yet: do not hold back
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fairShare, m.liveWorkers = fair, workers
	excess := len(m.held) - fair
	var ids []string
	for id, h := range m.held {
		if h.giveUp == "" {
			ids = append(ids, id)
		} else {
			excess--
		}
	}
	sort.Strings(ids)
	for i := 0; i < excess && i < len(ids); i++ {
		h := m.held[ids[len(ids)-1-i]]
		h.giveUp = "given up to balance shards across pods"
	}
}

func (m *Manager) removeHeartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = m.table.Delete(ctx, workerPrefix+m.worker)
}
