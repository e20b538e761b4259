package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
)

// TestLeaseMoveStaysWithinAllowance (found by review): team a alone in its cluster (nobody
// borrows, so its allowance is exactly its guarantee, 400 records/s), two
// pods, two shards. Pod a-0 holds both shards (a-1 just started, or just
// restarted), so a-0's pod share is the whole 400. The lease manager then
// balances: a-0 gives one shard up and a-1 takes it. From that moment a-0's
// remaining shard reads podShare/owned = 400/1, while a-1, with no share
// computed yet for a shard, reads it at the plain per-shard rate (200): the
// team read 600 records/s, 1.5x its budget, until the next rounds, when
// the shard rate was the pod's share over the shards it held; it is now
// the team's allowance over its shards, whoever holds them.
func TestLeaseMoveStaysWithinAllowance(t *testing.T) {
	var overs []string
	defer func() {
		if len(overs) > 0 {
			t.Errorf("after one lease move the team (allowance = guarantee = 400 records/s, nobody borrowing) read above it:\n%s", strings.Join(overs, "\n"))
		}
	}()
	for off := time.Duration(0); off < 2*time.Second; off += 250 * time.Millisecond {
		synctest.Test(t, func(t *testing.T) {
			table := NewMemTable()
			cl := budget.Cluster{Name: "c", Capacity: 100000, Borrow: false}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			type podT struct {
				c      *Coordinator
				shards atomic.Int64
			}
			var pods []*podT
			add := func(name string, shards int) *podT {
				p := &podT{}
				p.shards.Store(int64(shards))
				p.c = NewCoordinator(CoordinatorOptions{
					Cluster: cl, Team: "a", Pod: name, Table: table,
					Guarantee: func() float64 { return 400 },
					Demand:    func() (float64, float64) { return 5000, 0 },
					Owned:     func() int { return int(p.shards.Load()) },
					Waited:    func() time.Duration { return 0 },
					Reading:   func() int { return 2 },
					Teammates: func() []Teammate {
						var out []Teammate
						for _, q := range pods {
							out = append(out, Teammate{Pod: q.c.opts.Pod, Shards: int(q.shards.Load())})
						}
						return out
					},
					Failover: 10 * time.Second,
				}, "s")
				pods = append(pods, p)
				return p
			}
			read := func(p *podT) float64 { // what the consumer's shardRate gives, times the shards
				n := float64(p.shards.Load())
				if r, ok := p.c.ShardRate(2); ok {
					return r * n
				}
				return 400 * n / 2
			}
			a0 := add("a-0", 2)
			a1 := add("a-1", 0)
			for _, p := range pods {
				go p.c.Run(ctx)
			}
			time.Sleep(20*time.Second + off)
			if got := read(a0) + read(a1); got > 400*1.0001 {
				t.Fatalf("before the move the team reads %.0f", got)
			}
			// Balance: one shard moves from a-0 to a-1 (as fast as the lease
			// manager can: give up, refusal, release, next shard sync).
			a0.shards.Store(1)
			time.Sleep(700 * time.Millisecond)
			a1.shards.Store(1)
			worst, secs := 0.0, 0.0
			for range 100 {
				got := read(a0) + read(a1)
				worst = max(worst, got)
				if got > 400*1.0001 {
					secs += 0.1
				}
				time.Sleep(100 * time.Millisecond)
			}
			if worst > 400*1.0001 {
				overs = append(overs, fmt.Sprintf("move at +%v: up to %.0f records/s for %.1f s", off, worst, secs))
			}
			stop()
			synctest.Wait()
		})
	}
}

// TestSplitBetweenRoundsStaysWithinAllowance (found by the second review):
// a reshard that adds a shard to read between two rounds (a split whose
// parent finished: 1 shard out, 2 in) must not read every shard at the last
// round's rate, allowance / the old count, until the next round.
func TestSplitBetweenRoundsStaysWithinAllowance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		table := NewMemTable()
		cl := budget.Cluster{Name: "c", Capacity: 100000, Borrow: false}
		var reading atomic.Int64
		reading.Store(2)
		c := NewCoordinator(CoordinatorOptions{
			Cluster: cl, Team: "a", Pod: "a-0", Table: table,
			Guarantee: func() float64 { return 400 },
			Demand:    func() (float64, float64) { return 5000, 0 },
			Owned:     func() int { return int(reading.Load()) },
			Waited:    func() time.Duration { return 0 },
			Reading:   func() int { return int(reading.Load()) },
			Teammates: func() []Teammate { return []Teammate{{Pod: "a-0", Shards: int(reading.Load())}} },
			Failover:  10 * time.Second,
		}, "s")
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go c.Run(ctx)
		time.Sleep(10*time.Second + 500*time.Millisecond)
		r, ok := c.ShardRate(2)
		if !ok {
			t.Fatal("not coordinated")
		}
		t.Logf("before: %.0f/shard x 2 = %.0f", r, 2*r)
		reading.Store(3) // the parent finished; its two children start
		worst, over := 0.0, 0.0
		for range 20 {
			n := reading.Load()
			r, _ := c.ShardRate(int(n))
			worst = max(worst, r*float64(n))
			if r*float64(n) > 400*1.0001 {
				over += 0.1
			}
			time.Sleep(100 * time.Millisecond)
		}
		if worst > 400*1.0001 {
			t.Errorf("after the split the team read up to %.0f records/s for %.1f s, allowance 400", worst, over)
		}
		stop()
		synctest.Wait()
	})
}
