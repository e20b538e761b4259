package cluster

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const staleAfter = 6 * time.Second

// row is a pod's row published age ago.
func row(team, pod string, guarantee, demand float64, borrow bool, shards int, age time.Duration) Peer {
	return Peer{Team: team, Pod: pod, Guarantee: guarantee, Demand: demand, Borrow: borrow, Shards: shards, At: now.Add(-age)}
}

// near reports whether got is want up to floating-point rounding.
func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// check compares a's allowances with want (teams with a live row) and
// reserved (teams without).
func check(t *testing.T, a Allocation, want, reserved map[string]float64) {
	t.Helper()
	if len(a.Teams) != len(want) {
		t.Errorf("teams = %v, want allowances %v", a.Teams, want)
	}
	var used float64
	for name, w := range want {
		got, ok := a.Teams[name]
		if !ok {
			t.Errorf("team %s missing, want allowance %v", name, w)
			continue
		}
		used += got.Allowance
		if !near(got.Allowance, w) {
			t.Errorf("%s allowance = %v, want %v", name, got.Allowance, w)
		}
		if b := max(0, got.Allowance-got.Guarantee); !near(got.Borrowed, b) {
			t.Errorf("%s borrowed = %v, want %v", name, got.Borrowed, b)
		}
	}
	if !near(a.Used, used) {
		t.Errorf("used = %v, want %v", a.Used, used)
	}
	if len(a.Reserved) != len(reserved) {
		t.Errorf("reserved = %v, want %v", a.Reserved, reserved)
	}
	for name, w := range reserved {
		if got, ok := a.Reserved[name]; !ok || got != w {
			t.Errorf("%s reserved = %v (present %t), want %v", name, got, ok, w)
		}
	}
}

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		capacity  float64
		peers     []Peer
		want      map[string]float64 // allowance per live team
		reserved  map[string]float64
		wantStale bool
	}{
		{
			name:     "one spiking team borrows most of what the quiet teams leave unused",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 1e5, true, 2, time.Second),
				row("b", "b-0", 3000, 500, true, 2, time.Second),
				row("c", "c-0", 1000, 0, false, 1, time.Second),
			},
			// b reserves max(500 x 1.25, 3000 x 0.25) = 750, c 1000 x 0.25
			// = 250: a borrows the 4000 nobody is guaranteed and 3000 of
			// the 3500 the quiet teams leave unused.
			want: map[string]float64{"a": 9000, "b": 750, "c": 250},
		},
		{
			name:     "a quiet team keeps its demand plus headroom",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 1e5, true, 2, time.Second),
				row("b", "b-0", 3000, 2000, true, 2, time.Second),
				row("c", "c-0", 1000, 900, false, 1, time.Second),
			},
			// b reserves 2000 x 1.25, c min(1000, 900 x 1.25).
			want: map[string]float64{"a": 6500, "b": 2500, "c": 1000},
		},
		{
			name:     "a spike smaller than the spare is met in full",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 4500, true, 2, time.Second),
				row("b", "b-0", 3000, 500, true, 2, time.Second),
				row("c", "c-0", 1000, 0, false, 1, time.Second),
			},
			want: map[string]float64{"a": 4500, "b": 750, "c": 250},
		},
		{
			name:     "a spike needing only lent guarantees",
			capacity: 6000,
			peers: []Peer{
				row("a", "a-0", 2000, 5000, true, 2, time.Second),
				row("b", "b-0", 3000, 0, true, 2, time.Second),
				row("c", "c-0", 1000, 1000, false, 1, time.Second),
			},
			// nobody is guaranteed anything more; b lends 2250.
			want: map[string]float64{"a": 4250, "b": 750, "c": 1000},
		},
		{
			name:     "all spiking share the spare weighted by guarantee",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 1e5, true, 2, time.Second),
				row("b", "b-0", 3000, 1e5, true, 2, time.Second),
				row("c", "c-0", 1000, 1e5, true, 1, time.Second),
			},
			// each its guarantee plus its weighted share of the 4000 nobody
			// is guaranteed.
			want: map[string]float64{"a": 2000 + 4000*2.0/6, "b": 3000 + 4000*3.0/6, "c": 1000 + 4000*1.0/6},
		},
		{
			name:     "a borrower needing less than its weighted share leaves the rest to the others",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 2500, true, 2, time.Second),
				row("b", "b-0", 3000, 1e5, true, 2, time.Second),
				row("c", "c-0", 1000, 1e5, true, 1, time.Second),
			},
			// a takes its 500; 3500 left, split 3:1.
			want: map[string]float64{"a": 2500, "b": 3000 + 3500*3.0/4, "c": 1000 + 3500*1.0/4},
		},
		{
			name:     "all spiking with no spare get exactly their guarantees",
			capacity: 6000,
			peers: []Peer{
				row("a", "a-0", 2000, 1e5, true, 2, time.Second),
				row("b", "b-0", 3000, 1e5, true, 2, time.Second),
				row("c", "c-0", 1000, 1e5, true, 1, time.Second),
			},
			want: map[string]float64{"a": 2000, "b": 3000, "c": 1000},
		},
		{
			name:     "a team not opted in never exceeds its guarantee",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, false, 2, time.Second),
				row("b", "b-0", 2000, 9000, true, 2, time.Second),
			},
			want: map[string]float64{"a": 2000, "b": 8000},
		},
		{
			name:     "a team not opted in lends but never borrows",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, false, 2, time.Second),
				row("b", "b-0", 2000, 1e5, true, 2, time.Second),
				row("c", "c-0", 4000, 0, false, 2, time.Second),
			},
			want: map[string]float64{"a": 2000, "b": 7000, "c": 1000},
		},
		{
			name:     "a lone team not opted in leaves the spare unused",
			capacity: 10000,
			peers:    []Peer{row("a", "a-0", 2000, 9000, false, 2, time.Second)},
			want:     map[string]float64{"a": 2000},
		},
		{
			name:     "stale peers: demand ignored, guarantee reserved",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 1e5, true, 2, time.Second),
				row("b", "b-0", 3000, 1e5, true, 2, time.Minute),
				row("b", "b-1", 3000, 1e5, true, 2, 7*time.Second),
			},
			want:     map[string]float64{"a": 7000},
			reserved: map[string]float64{"b": 3000},
		},
		{
			name:     "stale peers of a quiet team: its whole guarantee reserved, not lent",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 1e5, true, 2, time.Second),
				row("b", "b-0", 3000, 0, true, 2, time.Minute),
				row("c", "c-0", 1000, 0, false, 1, time.Second),
			},
			want:     map[string]float64{"a": 6750, "c": 250},
			reserved: map[string]float64{"b": 3000},
		},
		{
			name:     "a stale pod of a live team: its demand and shards do not count",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 3000, true, 2, time.Second),
				row("a", "a-1", 2000, 1e5, true, 2, time.Minute),
				row("b", "b-0", 3000, 0, true, 2, time.Second),
			},
			want: map[string]float64{"a": 3000, "b": 750},
		},
		{
			name:     "a row dated beyond StaleAfter in the future is stale",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 3000, true, 2, time.Second),
				row("a", "a-1", 2000, 1e5, true, 2, -time.Minute),
			},
			want: map[string]float64{"a": 3000},
		},
		{
			name:     "the freshest live row's guarantee and borrow flag win",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, true, 2, 3*time.Second),
				row("a", "a-1", 4000, 9000, false, 2, time.Second),
				row("a", "a-2", 9999, 9000, true, 2, time.Minute), // stale: ignored
			},
			want: map[string]float64{"a": 4000},
		},
		{
			name:     "only a pod's freshest row counts",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, true, 2, 3*time.Second),
				row("a", "a-0", 2000, 2500, true, 2, time.Second),
			},
			want: map[string]float64{"a": 2500},
		},
		{
			name:     "guarantees above capacity are scaled down, nobody borrows",
			capacity: 3000,
			peers: []Peer{
				row("a", "a-0", 2000, 1e5, true, 2, time.Second),
				row("b", "b-0", 2000, 0, true, 2, time.Second),
				row("c", "c-0", 2000, 1e5, false, 2, time.Minute), // stale, still counted in the sum
			},
			want:     map[string]float64{"a": 1000, "b": 1000},
			reserved: map[string]float64{"c": 2000},
		},
		{
			name:     "with nobody borrowing, quiet teams keep their guarantees",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 0, true, 2, time.Second),
				row("b", "b-0", 3000, 0, false, 2, time.Second),
			},
			want: map[string]float64{"a": 2000, "b": 3000},
		},
		{
			name:     "with a borrower satisfied by no spare, quiet teams keep their guarantees",
			capacity: 5000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, true, 2, time.Second),
				row("b", "b-0", 3000, 3000, true, 2, time.Second),
			},
			want: map[string]float64{"a": 2000, "b": 3000},
		},
		{
			name:     "a zero guarantee borrows nothing",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 0, 5000, true, 2, time.Second),
				row("b", "b-0", 3000, 5000, true, 2, time.Second),
			},
			want: map[string]float64{"a": 0, "b": 5000},
		},
		{
			name:     "no live row at all is a stale view",
			capacity: 10000,
			peers:    []Peer{row("a", "a-0", 2000, 9000, true, 2, time.Minute)},
			want:     map[string]float64{},
			reserved: map[string]float64{"a": 2000}, wantStale: true,
		},
		{
			name:     "no rows at all is a stale view",
			capacity: 10000,
			want:     map[string]float64{}, wantStale: true,
		},
		{
			name:     "an unreadable row makes the view stale: plain guarantees",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, true, 2, time.Second),
				row("b", "b-0", 3000, math.NaN(), true, 2, time.Second),
			},
			want: map[string]float64{"a": 2000}, wantStale: true,
		},
		{
			name:     "negative shards are unreadable",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, true, 2, time.Second),
				row("a", "a-1", 2000, 9000, true, -1, time.Second),
			},
			want: map[string]float64{"a": 2000}, wantStale: true,
		},
		{
			name:     "a row without a team is unreadable",
			capacity: 10000,
			peers: []Peer{
				row("a", "a-0", 2000, 9000, true, 2, time.Second),
				row("", "x-0", 2000, 9000, true, 2, time.Second),
			},
			want: map[string]float64{"a": 2000}, wantStale: true,
		},
		{
			name:     "a zero capacity is an unusable config",
			capacity: 0,
			peers:    []Peer{row("a", "a-0", 2000, 9000, true, 2, time.Second)},
			want:     map[string]float64{"a": 2000}, wantStale: true,
		},
		{
			name:     "an infinite capacity is an unusable config",
			capacity: math.Inf(1),
			peers:    []Peer{row("a", "a-0", 2000, 9000, true, 2, time.Second)},
			want:     map[string]float64{"a": 2000}, wantStale: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Allocate(Config{Capacity: tc.capacity, StaleAfter: staleAfter}, tc.peers, now)
			if a.Stale != tc.wantStale {
				t.Errorf("stale = %t, want %t", a.Stale, tc.wantStale)
			}
			check(t, a, tc.want, tc.reserved)
		})
	}
}

func TestAllocateZeroStaleAfterIsStale(t *testing.T) {
	a := Allocate(Config{Capacity: 10000}, []Peer{row("a", "a-0", 2000, 9000, true, 2, 0)}, now)
	if !a.Stale {
		t.Errorf("stale = %t, want true", a.Stale)
	}
}

// TestRounds models consecutive publish intervals: each round recomputes
// from the current rows, so capacity moves back to its owner at once.
func TestRounds(t *testing.T) {
	cfg := Config{Capacity: 10000, StaleAfter: staleAfter}
	type round struct {
		peers []Peer
		want  map[string]float64
	}
	for _, tc := range []struct {
		name   string
		rounds []round
	}{
		{
			name: "a quiet team's demand rises: it takes back its guarantee, then borrows, the borrower falls",
			rounds: []round{
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1e5, true, 2, time.Second),
						row("b", "b-0", 3000, 500, true, 2, time.Second),
						row("c", "c-0", 1000, 0, false, 1, time.Second),
					},
					want: map[string]float64{"a": 9000, "b": 750, "c": 250},
				},
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1e5, true, 2, time.Second),
						row("b", "b-0", 3000, 2000, true, 2, time.Second),
						row("c", "c-0", 1000, 0, false, 1, time.Second),
					},
					// b: 2000 x 1.25; a gives back 1750.
					want: map[string]float64{"a": 7250, "b": 2500, "c": 250},
				},
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1e5, true, 2, time.Second),
						row("b", "b-0", 3000, 8000, true, 2, time.Second),
						row("c", "c-0", 1000, 0, false, 1, time.Second),
					},
					// spare 10000 - 2000 - 3000 - 250 = 4750 split 2:3.
					want: map[string]float64{"a": 3900, "b": 5850, "c": 250},
				},
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1000, true, 2, time.Second),
						row("b", "b-0", 3000, 8000, true, 2, time.Second),
						row("c", "c-0", 1000, 0, false, 1, time.Second),
					},
					// a now lends: it keeps 1000 x 1.25; b is met in full.
					want: map[string]float64{"a": 1250, "b": 8000, "c": 250},
				},
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1000, true, 2, time.Second),
						row("b", "b-0", 3000, 2000, true, 2, time.Second),
						row("c", "c-0", 1000, 0, false, 1, time.Second),
					},
					// nobody borrows: plain guarantees.
					want: map[string]float64{"a": 2000, "b": 3000, "c": 1000},
				},
			},
		},
		{
			name: "a quiet team's demand returns to its guarantee: it has it, and keeps it",
			rounds: []round{
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1e5, true, 2, time.Second),
						row("b", "b-0", 3000, 0, false, 2, time.Second),
					},
					want: map[string]float64{"a": 9250, "b": 750},
				},
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1e5, true, 2, time.Second),
						row("b", "b-0", 3000, 3000, false, 2, time.Second),
					},
					want: map[string]float64{"a": 7000, "b": 3000},
				},
			},
		},
		{
			name: "a team back from an outage finds its guarantee unlent",
			rounds: []round{
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1e5, true, 2, time.Second),
						row("b", "b-0", 3000, 1e5, false, 2, time.Minute),
					},
					want: map[string]float64{"a": 7000},
				},
				{
					peers: []Peer{
						row("a", "a-0", 2000, 1e5, true, 2, time.Second),
						row("b", "b-0", 3000, 1e5, false, 2, time.Second),
					},
					want: map[string]float64{"a": 7000, "b": 3000},
				},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, r := range tc.rounds {
				t.Run(fmt.Sprintf("round %d", i+1), func(t *testing.T) {
					a := Allocate(cfg, r.peers, now)
					for name, want := range r.want {
						if got := a.Teams[name].Allowance; !near(got, want) {
							t.Errorf("%s allowance = %v, want %v", name, got, want)
						}
					}
					if a.Used > cfg.Capacity {
						t.Errorf("used = %v, want at most %v", a.Used, cfg.Capacity)
					}
				})
			}
		})
	}
}

func shardShare(a Allocation, team, pod string, peers []Peer, now time.Time, held float64, reading int) float64 {
	r, _ := ShardShare(a, team, pod, peers, now, held, reading)
	return r
}

func TestShardShare(t *testing.T) {
	peers := []Peer{
		row("a", "a-0", 2000, 9000, true, 1, time.Second),
		row("a", "a-1", 2000, 9000, true, 2, time.Second),
		row("a", "a-2", 2000, 9000, true, 3, 2*time.Second),
		row("a", "a-3", 2000, 9000, true, 0, time.Second),  // owns nothing yet
		row("a", "a-4", 2000, 9000, true, 4, time.Minute),  // stale: its shards are not counted
		row("b", "a-0", 3000, 0, false, 10, time.Second),   // same pod id, other team
		row("c", "c-0", 1000, 0, false, 2, 30*time.Second), // team not live
	}
	a := Allocate(Config{Capacity: 10000, StaleAfter: staleAfter}, peers, now)
	// b lends all but 750 of its guarantee; c's 1000 stays reserved.
	if got, want := a.Teams["a"].Allowance, 8250.0; !near(got, want) {
		t.Fatalf("a allowance = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		team, pod string
		reading   int
		want      float64
	}{
		{"a", "a-0", 6, 8250.0 / 6},
		{"a", "a-1", 6, 8250.0 / 6},
		{"a", "a-3", 6, 8250.0 / 6}, // a shard it takes reads at the same rate
		{"a", "a-1", 8, 8250.0 / 8}, // reading more than the rows say: a shard moving
		{"a", "a-1", 2, 8250.0 / 6}, // reading fewer: the rows count
		{"a", "a-4", 6, 0},
		{"a", "missing", 6, 0},
		{"b", "a-0", 10, 75},
		{"c", "c-0", 2, 0},
		{"unknown", "x", 1, 0},
	} {
		t.Run(fmt.Sprintf("%s/%s/reading %d", tc.team, tc.pod, tc.reading), func(t *testing.T) {
			if got := shardShare(a, tc.team, tc.pod, peers, now, 0, tc.reading); !near(got, tc.want) {
				t.Errorf("share = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("a stale view splits the plain guarantee", func(t *testing.T) {
		bad := append([]Peer{{Team: "d", Pod: "d-0", Guarantee: math.Inf(1), At: now}}, peers...)
		a := Allocate(Config{Capacity: 10000, StaleAfter: staleAfter}, bad, now)
		if got, want := shardShare(a, "a", "a-1", bad, now, 0, 6), 2000.0/6; !near(got, want) {
			t.Errorf("share = %v, want %v", got, want)
		}
	})
	t.Run("held back for uncoordinated teammates", func(t *testing.T) {
		if got, want := shardShare(a, "a", "a-1", peers, now, 250, 6), 8000.0/6; !near(got, want) {
			t.Errorf("share = %v, want %v", got, want)
		}
	})
}

func TestFor(t *testing.T) {
	cfg := Config{Capacity: 10000, StaleAfter: staleAfter}
	peers := []Peer{
		row("a", "a-0", 2000, 9000, true, 2, time.Second),
		row("b", "b-0", 3000, 0, true, 2, time.Minute),
	}
	a := Allocate(cfg, peers, now)
	for _, tc := range []struct {
		name      string
		a         Allocation
		team      string
		guarantee float64
		want      TeamAllocation
	}{
		{"a live team in a trusted view gets its allocation", a, "a", 2000, a.Teams["a"]},
		{"a team without a live row falls back", a, "b", 3000, Fallback(3000)},
		{"a team never seen falls back", a, "x", 500, Fallback(500)},
		{"a stale view falls back", Allocation{Stale: true, Teams: a.Teams}, "a", 2000, Fallback(2000)},
		{"the zero allocation (table unreadable) falls back", Allocation{}, "a", 2000, Fallback(2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.For(tc.team, tc.guarantee); got != tc.want {
				t.Errorf("For = %+v, want %+v", got, tc.want)
			}
		})
	}
	if got, want := Fallback(1500), (TeamAllocation{Guarantee: 1500, Allowance: 1500}); got != want {
		t.Errorf("Fallback = %+v, want %+v", got, want)
	}
}

// randomPeers is a random but readable table: up to 12 teams, each with up
// to 4 pods (some stale, some with two rows), around the capacity.
func randomPeers(r *rand.Rand, capacity float64) []Peer {
	var peers []Peer
	teams := 1 + r.IntN(12)
	for i := range teams {
		name := fmt.Sprintf("t%d", i)
		// Guarantees add up to about the capacity, sometimes over it.
		g := math.Round(r.Float64() * 2 * capacity / float64(teams))
		if r.IntN(10) == 0 {
			g = 0
		}
		borrow := r.IntN(3) > 0
		for p := range 1 + r.IntN(4) {
			demand := 0.0
			switch r.IntN(3) {
			case 1:
				demand = r.Float64() * g
			case 2:
				demand = g + r.Float64()*capacity
			}
			age := time.Duration(r.IntN(int(2*staleAfter))) - staleAfter/2
			peers = append(peers, Peer{
				Team: name, Pod: fmt.Sprintf("%s-%d", name, p), Guarantee: g, Demand: demand,
				Borrow: borrow, Shards: r.IntN(5), At: now.Add(-age),
			})
			if r.IntN(5) == 0 { // an older row of the same pod
				old := peers[len(peers)-1]
				old.At = old.At.Add(-time.Second)
				old.Demand = r.Float64() * capacity
				peers = append(peers, old)
			}
		}
	}
	return peers
}

func TestAllocateProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 10000 {
		capacity := 1 + math.Round(r.Float64()*100000)
		cfg := Config{Capacity: capacity, StaleAfter: staleAfter}
		peers := randomPeers(r, capacity)
		a := Allocate(cfg, peers, now)
		if a.Stale {
			anyLive := false
			for _, p := range peers {
				anyLive = anyLive || live(p, now, staleAfter)
			}
			if anyLive {
				t.Fatalf("case %d: stale = true, want false with live rows: %+v", i, peers)
			}
			continue
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d (capacity %v, peers %+v): %s", i, capacity, peers, fmt.Sprintf(format, args...))
		}
		eps := 1e-9 * capacity
		var sumG, reserved float64
		for _, g := range a.Reserved {
			sumG += g
			reserved += g
		}
		for _, ta := range a.Teams {
			sumG += ta.Guarantee
		}
		if a.Used > capacity+eps {
			fail("used = %v, want at most %v", a.Used, capacity)
		}
		if sumG <= capacity && a.Used+reserved > capacity+eps {
			fail("used + reserved = %v, want at most %v", a.Used+reserved, capacity)
		}
		lending := false
		for _, ta := range a.Teams {
			lending = lending || ta.Borrowed > 0
		}
		level := -1.0 // the water level of the unsatisfied borrowers
		for name, ta := range a.Teams {
			if sumG > capacity {
				if want := ta.Guarantee * capacity / sumG; !near(ta.Allowance, want) || ta.Borrowed != 0 {
					fail("%s allowance, borrowed = %v, %v, want %v, 0 (scaled)", name, ta.Allowance, ta.Borrowed, want)
				}
				continue
			}
			if !lending && ta.Allowance != ta.Guarantee {
				fail("%s allowance = %v with nobody borrowing, want its guarantee %v", name, ta.Allowance, ta.Guarantee)
			}
			if borrows(peers, name) && ta.Guarantee > 0 && ta.Demand > ta.Guarantee {
				if ta.Allowance < ta.Guarantee {
					fail("%s allowance = %v as a borrower, want at least its guarantee %v", name, ta.Allowance, ta.Guarantee)
				}
			} else {
				keep := min(ta.Guarantee, max(ta.Demand*Headroom, ta.Guarantee*MinShare))
				if ta.Allowance < keep-eps || ta.Allowance > ta.Guarantee {
					fail("%s allowance = %v, want between its reserve %v and its guarantee %v", name, ta.Allowance, keep, ta.Guarantee)
				}
			}
			if ta.Allowance > max(ta.Guarantee, ta.Demand)+eps {
				fail("%s allowance = %v, want at most max(guarantee %v, demand %v)", name, ta.Allowance, ta.Guarantee, ta.Demand)
			}
			if ta.Borrowed != max(0, ta.Allowance-ta.Guarantee) {
				fail("%s borrowed = %v, want %v", name, ta.Borrowed, ta.Allowance-ta.Guarantee)
			}
			if ta.Borrowed > 0 && !borrows(peers, name) {
				fail("%s borrowed = %v without opting in, want 0", name, ta.Borrowed)
			}
			if ta.Guarantee > 0 && ta.Demand > ta.Allowance+eps && borrows(peers, name) {
				l := ta.Borrowed / ta.Guarantee
				if level >= 0 && !near(l, level) {
					fail("%s borrowed %v of its guarantee, others %v, want the same level", name, l, level)
				}
				level = l
			}
		}
		// Work conservation: an unsatisfied borrower means no spare is left.
		if level >= 0 && sumG <= capacity && !near(a.Used+reserved, capacity) {
			fail("used + reserved = %v with a borrower unsatisfied, want %v", a.Used+reserved, capacity)
		}
		// The shards of each team's live pods, at ShardShare each, add
		// up to the team's allowance.
		for name, ta := range a.Teams {
			pods, _ := latest(peers, name)
			var sum float64
			shards := 0
			for _, p := range pods {
				if live(p, now, staleAfter) {
					shards += p.Shards
					sum += float64(p.Shards) * shardShare(a, name, p.Pod, peers, now, 0, 1)
				}
			}
			if shards > 0 && !near(sum, ta.Allowance) {
				fail("%s shares sum to %v, want %v", name, sum, ta.Allowance)
			}
		}
		// A quiet team whose demand rises to its guarantee has all of it
		// back in the next round, and the borrowers make room.
		for name, ta := range a.Teams {
			if sumG > capacity || ta.Allowance >= ta.Guarantee {
				continue
			}
			next := append([]Peer(nil), peers...)
			for i := range next {
				if next[i].Team == name {
					next[i].Demand = ta.Guarantee
				}
			}
			b := Allocate(cfg, next, now)
			var reserved float64
			for _, g := range b.Reserved {
				reserved += g
			}
			if got := b.Teams[name].Allowance; got != ta.Guarantee {
				fail("%s allowance = %v the round after its demand rose to its guarantee, want %v", name, got, ta.Guarantee)
			}
			if b.Used+reserved > capacity+eps {
				fail("%s ramping: used + reserved = %v, want at most %v", name, b.Used+reserved, capacity)
			}
			break
		}
		// The rows' order does not matter: every pod computes the same.
		shuffled := append([]Peer(nil), peers...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b := Allocate(cfg, shuffled, now)
		if b.Used != a.Used || len(b.Teams) != len(a.Teams) {
			fail("shuffled used = %v, want %v", b.Used, a.Used)
		}
		for name, ta := range a.Teams {
			if b.Teams[name] != ta {
				fail("shuffled %s = %+v, want %+v", name, b.Teams[name], ta)
			}
		}
	}
}

// borrows reports whether team's freshest live row opts in.
func borrows(peers []Peer, team string) bool {
	var fresh Peer
	found := false
	for _, p := range peers {
		if p.Team == team && live(p, now, staleAfter) && (!found || newer(p, fresh)) {
			fresh, found = p, true
		}
	}
	return found && fresh.Borrow
}

func BenchmarkAllocate(b *testing.B) {
	var peers []Peer
	for i := range 50 {
		team := fmt.Sprintf("team-%02d", i)
		for p := range 4 {
			peers = append(peers, Peer{
				Team: team, Pod: fmt.Sprintf("%s-%d", team, p), Guarantee: 1000,
				Demand: float64(500 + 100*i), Borrow: i%3 != 0, Shards: 2, At: now,
			})
		}
	}
	cfg := Config{Capacity: 80000, StaleAfter: staleAfter}
	for b.Loop() {
		Allocate(cfg, peers, now)
	}
}
