package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
)

// failing is a table as one pod reaches it: unreachable while down is set.
type failing struct {
	Table
	down *atomic.Bool
}

func (f failing) Publish(ctx context.Context, p Peer) error {
	if f.down.Load() {
		return errDown
	}
	return f.Table.Publish(ctx, p)
}

func (f failing) Read(ctx context.Context) ([]Peer, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Table.Read(ctx)
}

type downErr struct{}

func (downErr) Error() string { return "cluster table unreachable" }

var errDown = downErr{}

// pod is one coordinated pod of the test: its shards, and what it reads.
type pod struct {
	c      *Coordinator
	shards int
	down   atomic.Bool
	team   string
}

// read is what the pod reads now, in records/s: its coordinated rate, or
// the plain budget (the guarantee over the shards being read) when the
// coordinator says so.
func (p *pod) read(guarantee float64, reading int) float64 {
	if r, ok := p.c.ShardRate(reading); ok {
		return r * float64(p.shards)
	}
	return guarantee * float64(p.shards) / float64(reading)
}

// TestUncoordinatedTeammate: team a (guarantee 400, 2 shards on 2 pods)
// borrows from a quiet team b (guarantee 600). One of a's pods cannot reach
// the cluster table and falls back to its plain budget; before, a's other
// pod then took the whole team allowance for itself (allowance 5,000 ->
// team read 5,500). Now its teammates hold back what it reads at its plain
// budget, and the team's pods together never read above the team's
// allowance, nor the cluster above its capacity.
func TestUncoordinatedTeammate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		table := NewMemTable()
		cl := budget.Cluster{Name: "c", Capacity: 1000, Borrow: true}
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		var pods []*pod
		add := func(team, name string, guarantee, demand float64, shards int) *pod {
			p := &pod{shards: shards, team: team}
			teammates := func() []Teammate {
				var out []Teammate
				for _, q := range pods {
					if q.team == team {
						out = append(out, Teammate{Pod: q.c.opts.Pod, Shards: q.shards})
					}
				}
				return out
			}
			p.c = NewCoordinator(CoordinatorOptions{
				Cluster: cl, Team: team, Pod: name, Table: failing{table, &p.down},
				Guarantee: func() float64 { return guarantee },
				Demand:    func() (float64, float64) { return demand, 0 },
				Owned:     func() int { return p.shards },
				Waited:    func() time.Duration { return 0 },
				Reading:   func() int { return 2 },
				Teammates: teammates,
				Failover:  10 * time.Second,
			}, "s")
			pods = append(pods, p)
			return p
		}
		a0 := add("a", "a-0", 400, 5000, 1)
		a1 := add("a", "a-1", 400, 5000, 1)
		b0 := add("b", "b-0", 600, 10, 2)
		for _, p := range pods {
			go p.c.Run(ctx)
		}
		time.Sleep(20 * time.Second)
		if got := a0.c.Allocation().Allowance; got <= 400 {
			t.Fatalf("team a's allowance %v while b is quiet, want it to borrow above 400", got)
		}
		a1.down.Store(true) // a-1 can no longer publish nor read
		for range 40 {
			time.Sleep(time.Second)
			allowance := max(a0.c.Allocation().Allowance, 400)
			team := a0.read(400, 2) + a1.read(400, 2)
			if team > allowance*1.0001 {
				t.Fatalf("team a reads %.0f records/s with one pod uncoordinated, above its allowance of %.0f", team, allowance)
			}
			if total := team + b0.read(600, 2); total > float64(cl.Capacity)*1.0001 {
				t.Fatalf("the cluster reads %.0f records/s, above its capacity of %d (a %.0f, b %.0f)", total, cl.Capacity, team, b0.read(600, 2))
			}
		}
		if r, ok := a1.c.ShardRate(2); ok || r != 0 {
			t.Errorf("the uncoordinated pod still applies a coordinated rate %v", r)
		}
		a1.down.Store(false)
		time.Sleep(20 * time.Second)
		if got := a0.read(400, 2) + a1.read(400, 2); got <= 400 {
			t.Errorf("team a reads %.0f once both pods coordinate again, want it to borrow again", got)
		}
		stop()
		synctest.Wait()
	})
}
