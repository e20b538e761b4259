package lease

import (
	"context"
	"errors"
	"maps"
	"sort"
	"sync"
)

// MemTable is a lease table in memory, with the semantics of the DynamoDB
// one, for tests and simulations. Fail, when set, is asked before every
// call and its error returned (an unreachable table).
type MemTable struct {
	mu   sync.Mutex
	rows map[string]Row
	// Fail injects faults: a non-nil error fails the call.
	Fail func(op, key string) error
}

// NewMemTable returns an empty table.
func NewMemTable() *MemTable { return &MemTable{rows: map[string]Row{}} }

// ErrUnavailable is what a MemTable's Fail typically returns.
var ErrUnavailable = errors.New("lease table unavailable")

func (t *MemTable) fail(op, key string) error {
	if t.Fail != nil {
		return t.Fail(op, key)
	}
	return nil
}

func clone(r Row) Row {
	r.Numbers = maps.Clone(r.Numbers)
	return r
}

// Ensure implements Table.
func (t *MemTable) Ensure(context.Context) error { return t.fail("ensure", "") }

// Get implements Table.
func (t *MemTable) Get(_ context.Context, key string) (Row, bool, error) {
	if err := t.fail("get", key); err != nil {
		return Row{}, false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[key]
	return clone(r), ok, nil
}

// Scan implements Table.
func (t *MemTable) Scan(context.Context) ([]Row, error) {
	if err := t.fail("scan", ""); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Row, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, clone(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Take implements Table.
func (t *MemTable) Take(_ context.Context, key string, prev, next Lease, parent string) error {
	if err := t.fail("take", key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[key]
	switch {
	case prev.Owner == "" && ok && r.Owner != "":
		return ErrConflict
	case prev.Owner != "" && (!ok || r.Owner != prev.Owner || r.Timeout != prev.Timeout):
		return ErrConflict
	}
	r.Key, r.Owner, r.Timeout = key, next.Owner, next.Timeout
	if parent != "" {
		r.Parent = parent
	}
	t.rows[key] = r
	return nil
}

// SetCheckpoint implements Table.
func (t *MemTable) SetCheckpoint(_ context.Context, key, owner, checkpoint string) error {
	if err := t.fail("checkpoint", key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[key]
	if !ok || r.Owner != owner {
		return ErrConflict
	}
	r.Checkpoint = checkpoint
	t.rows[key] = r
	return nil
}

// Release implements Table.
func (t *MemTable) Release(_ context.Context, key, owner string) error {
	if err := t.fail("release", key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[key]
	if !ok || r.Owner != owner {
		return ErrConflict
	}
	r.Owner = ""
	t.rows[key] = r
	return nil
}

// Put implements Table.
func (t *MemTable) Put(_ context.Context, row Row) error {
	if err := t.fail("put", row.Key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows[row.Key] = clone(row)
	return nil
}

// PutIfAbsent implements Table.
func (t *MemTable) PutIfAbsent(_ context.Context, row Row) error {
	if err := t.fail("put", row.Key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.rows[row.Key]; ok {
		return ErrConflict
	}
	t.rows[row.Key] = clone(row)
	return nil
}

// Delete implements Table.
func (t *MemTable) Delete(_ context.Context, key string) error {
	if err := t.fail("delete", key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.rows, key)
	return nil
}
