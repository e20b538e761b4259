// Package ledger is the one authority over a shard's checkpoints (see
// Ledger): pkg/consumer enters every record the KCL library hands over and
// checkpoints only what the ledger allows.
package ledger

import (
	"fmt"
	"sync"
)

// Ledger is the one authority over a shard's checkpoints. Every record the
// library hands over is entered in order; each then ends done (every
// document of it indexed, there already, dead-lettered, or dropped by a
// named rule) or abandoned (its reader gave up on it: it is read again by
// the next owner), or stays pending while it is being worked on.
//
// The checkpoint it allows never passes the first record that is not done,
// and stops only at the end of a KPL aggregate (sub-records share their
// aggregate's sequence number, so a checkpoint in the middle would skip the
// rest). Once a record is abandoned nothing past it is ever allowed, and
// the shard is not Finished: SHARD_END is written only when every record
// handed over is done. Several batches may be in flight; they are entered
// in the order the library handed them over and checkpointed in that order.
type Ledger struct {
	mu sync.Mutex
	// recs[i] is the record at position base+i; recs holds the records
	// after the last checkpoint written.
	recs []entry
	base int64
	// next is the position of the next record to enter.
	next int64
	// abandoned counts the records abandoned.
	abandoned int64
	// allowed is the position of the last record the ledger has allowed a
	// checkpoint at and that was not yet written, -1 for none.
	allowed int64
}

type entry struct {
	seq string
	// last is true for the last record of an aggregate (or a record that
	// is no aggregate's sub-record): a checkpoint may stop there.
	last    bool
	pending int // items sent and not yet confirmed
	sealed  bool
	state   recordState
}

type recordState uint8

const (
	statePending recordState = iota
	stateDone
	stateAbandoned
)

// New returns an empty ledger.
func New() *Ledger { return &Ledger{allowed: -1} }

// Add enters a batch's records, by their sequence numbers in the order the
// library handed them over, and returns the position of the first.
// Consecutive equal sequence numbers are one aggregate's sub-records (an
// aggregate never spans two batches).
func (l *Ledger) Add(seqs []string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.next
	for i, seq := range seqs {
		last := i+1 == len(seqs) || seqs[i+1] != seq
		l.recs = append(l.recs, entry{seq: seq, last: last})
	}
	l.next += int64(len(seqs))
	return first
}

func (l *Ledger) at(pos int64) *entry {
	i := pos - l.base
	if i < 0 || i >= int64(len(l.recs)) {
		panic(fmt.Sprintf("ledger: position %d outside [%d, %d)", pos, l.base, l.base+int64(len(l.recs))))
	}
	return &l.recs[i]
}

// Expect notes that n more items of the record at pos were sent.
func (l *Ledger) Expect(pos int64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.at(pos)
	if e.state != statePending {
		panic(fmt.Sprintf("ledger: items expected for record %d, which is no longer pending", pos))
	}
	e.pending += n
}

// Confirm notes that one item of the record at pos has its final answer.
func (l *Ledger) Confirm(pos int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.at(pos)
	if e.state != statePending || e.pending <= 0 {
		panic(fmt.Sprintf("ledger: an item of record %d confirmed that was not expected", pos))
	}
	e.pending--
	if e.sealed && e.pending == 0 {
		e.state = stateDone
	}
}

// Seal notes that every item of the record at pos has been expected: it is
// done once they are confirmed (at once, if it had none: every document
// dropped, or none to begin with).
func (l *Ledger) Seal(pos int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.at(pos)
	if e.state != statePending {
		return
	}
	e.sealed = true
	if e.pending == 0 {
		e.state = stateDone
	}
}

// Settle ends the work on the n records from first: every one that is not
// done is abandoned. It returns how many were. A reader calls it when it
// returns a batch to the library, whatever happened, so that the ledger
// always knows what became of every record.
func (l *Ledger) Settle(first int64, n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	abandoned := 0
	for pos := max(first, l.base); pos < first+int64(n); pos++ {
		if e := l.at(pos); e.state == statePending {
			e.state = stateAbandoned
			abandoned++
		}
	}
	l.abandoned += int64(abandoned)
	return abandoned
}

// Allowed returns the sequence number to checkpoint at and its position:
// the last record of an aggregate such that it and every record before it
// are done, past the last checkpoint written. ok is false when there is
// nothing new to checkpoint.
func (l *Ledger) Allowed() (seq string, pos int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	best := int64(-1)
	for i := range l.recs {
		e := &l.recs[i]
		if e.state != stateDone {
			break
		}
		if e.last {
			best = l.base + int64(i)
		}
	}
	if best < 0 || best <= l.allowed {
		return "", 0, false
	}
	l.allowed = best
	return l.at(best).seq, best, true
}

// Checkpointed notes that the checkpoint at pos was written: the records up
// to it are forgotten.
func (l *Ledger) Checkpointed(pos int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pos < l.base {
		return
	}
	n := pos - l.base + 1
	if n > int64(len(l.recs)) {
		n = int64(len(l.recs))
	}
	l.recs = append(l.recs[:0], l.recs[n:]...)
	l.base += n
}

// Unwritten notes that the checkpoint at pos could not be written: it is
// allowed again.
func (l *Ledger) Unwritten(pos int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.allowed >= pos {
		l.allowed = pos - 1
	}
}

// Finished reports whether every record handed over is done and its
// checkpoint written: only then may SHARD_END be recorded.
func (l *Ledger) Finished() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.abandoned > 0 {
		return false
	}
	for i := range l.recs {
		if l.recs[i].state != stateDone {
			return false
		}
	}
	return len(l.recs) == 0
}
