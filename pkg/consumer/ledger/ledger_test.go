package ledger

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestLedgerCheckpoints(t *testing.T) {
	// Records 1 and 2 are sub-records of one KPL aggregate (same sequence);
	// record 2 has no item (every document dropped).
	seqs := []string{"1", "2", "2", "3", "4"}
	items := []int{1, 2, 0, 1, 1}
	for _, tc := range []struct {
		name    string
		confirm []int // records whose items are all confirmed
		want    string
	}{
		{"nothing confirmed", nil, ""},
		{"first record only", []int{0}, "1"},
		{"aggregate half done stays before it", []int{0, 3, 4}, "1"},
		{"aggregate done through its dropped sub-record", []int{0, 1, 2, 4}, "2"},
		{"a gap stops the prefix", []int{1, 2, 3, 4}, ""},
		{"everything", []int{0, 1, 2, 3, 4}, "4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New()
			first := l.Add(seqs)
			for i, n := range items {
				l.Expect(first+int64(i), n)
				if i != 2 { // the dropped sub-record is sealed with the others
					l.Seal(first + int64(i))
				}
			}
			l.Seal(first + 2)
			for _, r := range tc.confirm {
				for range items[r] {
					l.Confirm(first + int64(r))
				}
			}
			seq, _, ok := l.Allowed()
			if !ok {
				seq = ""
			}
			if seq != tc.want {
				t.Errorf("allowed %q, want %q", seq, tc.want)
			}
		})
	}
}

// TestLedgerAbandonBlocksForever: once a record is abandoned, no checkpoint
// passes it, even when later batches are done, and the shard never counts
// as finished (no SHARD_END).
func TestLedgerAbandonBlocksForever(t *testing.T) {
	l := New()
	a := l.Add([]string{"1", "2"})
	l.Seal(a)
	if got := l.Settle(a, 2); got != 1 {
		t.Fatalf("settle abandoned %d, want 1 (record 2 was never sealed)", got)
	}
	b := l.Add([]string{"3"})
	l.Seal(b)
	if seq, pos, ok := l.Allowed(); !ok || seq != "1" {
		t.Fatalf("allowed %q %v, want 1", seq, ok)
	} else {
		l.Checkpointed(pos)
	}
	if seq, _, ok := l.Allowed(); ok {
		t.Errorf("allowed %q past an abandoned record", seq)
	}
	if l.Finished() {
		t.Error("finished with an abandoned record")
	}
}

func TestLedgerFinished(t *testing.T) {
	l := New()
	if !l.Finished() {
		t.Error("an empty shard is not finished")
	}
	p := l.Add([]string{"1"})
	l.Expect(p, 1)
	l.Seal(p)
	if l.Finished() {
		t.Error("finished with a pending item")
	}
	l.Confirm(p)
	if l.Finished() {
		t.Error("finished before the checkpoint was written")
	}
	_, pos, _ := l.Allowed()
	l.Unwritten(pos)
	if _, pos2, ok := l.Allowed(); !ok || pos2 != pos {
		t.Fatal("a checkpoint that was not written is not allowed again")
	}
	l.Checkpointed(pos)
	if !l.Finished() {
		t.Error("not finished once everything is done and checkpointed")
	}
}

// FuzzLedger drives a ledger with random batches, aggregates, items,
// confirmations in any order, drops, abandons and checkpoint failures, and
// checks against a plain model after every step: no checkpoint passes the
// first record that is not done or ends inside an aggregate, the
// checkpoints only move forward, and Finished holds exactly when every
// record is done and checkpointed.
func FuzzLedger(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42, 1234} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		l := New()
		type rec struct {
			seq       string
			last      bool
			items     int // to expect
			confirmed int
			sealed    bool
			abandoned bool
		}
		var recs []rec
		checkpoint := int64(-1)
		nextSeq := 0
		type batch struct {
			first int64
			n     int
		}
		var open []batch
		for step := 0; step < 200; step++ {
			switch op := rnd.IntN(10); {
			case op < 3 || len(open) == 0: // a new batch, with aggregates
				var seqs []string
				for n := 1 + rnd.IntN(6); n > 0; n-- {
					subs := 1
					if rnd.IntN(4) == 0 {
						subs = 1 + rnd.IntN(3)
					}
					for range subs {
						seqs = append(seqs, fmt.Sprint(nextSeq))
					}
					nextSeq++
				}
				first := l.Add(seqs)
				for i, s := range seqs {
					recs = append(recs, rec{seq: s, last: i+1 == len(seqs) || seqs[i+1] != s, items: rnd.IntN(3)})
				}
				open = append(open, batch{first, len(seqs)})
			case op < 7: // expect, seal or confirm something of an open batch
				b := open[rnd.IntN(len(open))]
				pos := b.first + int64(rnd.IntN(b.n))
				r := &recs[pos]
				switch {
				case r.abandoned:
				case !r.sealed:
					l.Expect(pos, r.items)
					l.Seal(pos)
					r.sealed = true
				case r.confirmed < r.items:
					l.Confirm(pos)
					r.confirmed++
				}
			case op < 8: // the batch is over: settle it
				i := rnd.IntN(len(open))
				b := open[i]
				open = append(open[:i], open[i+1:]...)
				l.Settle(b.first, b.n)
				for pos := b.first; pos < b.first+int64(b.n); pos++ {
					if r := &recs[pos]; !r.sealed || r.confirmed < r.items {
						r.abandoned = true
					}
				}
			default: // write a checkpoint, sometimes failing
				seq, pos, ok := l.Allowed()
				if !ok {
					break
				}
				if pos <= checkpoint {
					t.Fatalf("step %d: checkpoint at %d after %d: went back", step, pos, checkpoint)
				}
				for p := int64(0); p <= pos; p++ {
					r := recs[p]
					if r.abandoned || !r.sealed || r.confirmed < r.items {
						t.Fatalf("step %d: checkpoint %q (position %d) passes record %d, not done", step, seq, pos, p)
					}
				}
				if !recs[pos].last || recs[pos].seq != seq {
					t.Fatalf("step %d: checkpoint %q (position %d) inside an aggregate", step, seq, pos)
				}
				if rnd.IntN(4) == 0 {
					l.Unwritten(pos)
				} else {
					l.Checkpointed(pos)
					checkpoint = pos
				}
			}
			done := true
			for p, r := range recs {
				if r.abandoned || !r.sealed || r.confirmed < r.items || int64(p) > checkpoint {
					done = false
				}
			}
			if got := l.Finished(); got != done {
				t.Fatalf("step %d: finished = %v, want %v", step, got, done)
			}
		}
	})
}
