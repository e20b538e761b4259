// Package cluster shares one Elasticsearch cluster's capacity between the
// teams that name it: work-conserving budgets. Every pod of every team
// publishes a row (a Peer) every few seconds; every pod reads all rows and
// calls Allocate, then ShardShare for its shards' part. Everything here is a pure
// function of the rows, the Config and the time, and the result does not
// depend on the order of the rows, so every pod that reads the same rows
// computes bit-for-bit the same allocation.
//
// The rules, safety first:
//
//   - Rows. Of several rows of one pod (team and pod id) only the freshest
//     counts. A row is live when its publish time is within StaleAfter of
//     now (either way: a row dated more than StaleAfter in the future comes
//     from a broken clock and counts as stale); otherwise it is stale.
//   - A team's figures. Its guarantee and borrow flag come from its freshest
//     live row (during a budget rollout the newest budget wins); its demand
//     is the largest demand over its live pods' rows (each pod reports the
//     team-level demand it computed); its shards are the sum over its live
//     pods. Stale rows are ignored for all of these.
//   - A team with no live row is not running: it gets no allowance and does
//     not appear in Allocation.Teams. Its whole guarantee, taken from its
//     freshest row, stale or not, is reserved for it and never lent out
//     (Allocation.Reserved): its pods may be reading at their guarantee right
//     now, and a team whose pods were briefly unreachable finds its
//     guarantee waiting when it comes back.
//   - Reserve. Every live team keeps
//     min(guarantee, max(demand x Headroom, guarantee x MinShare)) of its
//     guarantee: all of it when its demand is at or above its guarantee,
//     else its demand plus a quarter to grow into before the next round,
//     and never less than a quarter of its guarantee. The rest of its
//     guarantee is unused and can be lent.
//   - Spare. Capacity minus the reserves of all known teams: the capacity
//     nobody is guaranteed plus the unused guarantees of quiet teams.
//   - Borrowing. The live teams that opted in (Borrow), have a guarantee
//     above zero and a demand above their guarantee (their reserve is their
//     whole guarantee) share the spare max-min fairly, weighted by guarantee
//     (water-filling): borrower i gets its guarantee plus
//     min(demand_i - guarantee_i, guarantee_i x level), the level rising
//     until the spare is used or every borrower is satisfied.
//   - Lending. While some borrower gets more than its guarantee, every other
//     live team (not opted in, or demand at or below its guarantee) gets its
//     reserve, so a quiet team's allowance can sit below its guarantee, by
//     at most (1 - MinShare) x guarantee, for as long as it stays quiet. That
//     is safe for it: its allowance is at least Headroom x its current
//     demand (or MinShare x its guarantee, when more), so its demand can grow
//     by a quarter without waiting for anyone, and any larger rise returns
//     min(guarantee, new demand x Headroom) in the next round that reads the
//     new demand. A team not opted in never gets more than its guarantee.
//     When no borrower gets more than its guarantee, nothing is lent and
//     every live team gets exactly its guarantee.
//   - Over-committed guarantees. If the guarantees of all known teams add up
//     to more than the capacity (a misconfiguration lint rejects), every
//     live team gets guarantee x capacity / sum of guarantees and nobody
//     borrows: each team loses the same share, and the cluster is never
//     asked for more than its capacity.
//   - Invariants. The allowances sum to at most the capacity (Used, up to
//     floating-point rounding), together with the reserved guarantees of
//     teams not running. When the guarantees fit, a borrower's allowance is
//     between its guarantee and its demand, every other team's is between
//     its reserve and its guarantee, and when nobody borrows every allowance
//     is exactly its guarantee.
//   - Giving back. Each pod recomputes every publish interval from the
//     current rows, so a quiet team whose demand rises has its guarantee
//     back (and the borrowers have given it back) within two intervals: one
//     for its pods to publish the new demand, one for every pod to recompute
//     with it.
//   - Views that differ. The sum above holds for one view of the rows. Pods
//     read the table at different moments, so for up to one interval the
//     pods of a quiet team can apply its raised allowance while a borrower's
//     pods still apply the allowance computed before the rise. The cluster
//     can then be asked for more than its capacity, but only when the quiet
//     team's demand jumps past its Headroom in one interval, and by at most
//     min(guarantee, new demand) - its previous allowance. For the same
//     reason a pod that cannot read the rows while its own last row is still
//     live to the others (they may be lending part of its guarantee) should
//     keep min(guarantee, its last allowance) until that row is StaleAfter
//     old, and only then take Fallback(guarantee). Neither the capacity
//     nobody is guaranteed nor the guarantee of a team whose demand is at or
//     above it is exposed to this lag: they are never lent.
//   - Untrusted view. Allocation.Stale is set when the view cannot be
//     trusted: the Config is unusable (Capacity not a positive finite
//     number, StaleAfter not positive), any row is unreadable (no team or
//     pod, a guarantee or demand that is negative, NaN or infinite, negative
//     shards), or no row is live at all. Then nobody borrows: every live
//     team's allowance is its plain guarantee. A team with no live row of
//     its own cannot trust the figures either. Allocation.For applies both
//     rules for the asking team, and a caller that cannot read the rows at
//     all uses Fallback(its guarantee) without calling Allocate.
//   - Pods that cannot coordinate. A pod that cannot publish reads at its
//     plain budget (Fallback), whatever its team's allowance. Its team's
//     other pods see it alive in the team's lease table but without a live
//     row here, and say so in their rows (Uncoordinated, its shards): while
//     any live row of a team says so, the team lends nothing (its reserve is
//     its whole guarantee), and the held part, what those pods read at the
//     plain budget, comes off the allowance before the rest is shared.
//   - A shard's part. ShardShare is (the team allowance - the held part) /
//     the team's shards: those its live pods published, or those it reads
//     now if more; a pod whose own row is not live gets 0. The parts of the
//     shards of a team's live pods and the held part add up to no more than
//     the team allowance, so the team's pods together never read above it,
//     also while a shard moves between two pods.
package cluster

import (
	"cmp"
	"math"
	"slices"
	"time"
)

const (
	// Headroom is how far above its demand a quiet team's allowance stays
	// while the rest of its guarantee is lent: room to grow before the next
	// round.
	Headroom = 1.25
	// MinShare is the part of its guarantee a quiet team always keeps: an
	// idle team can start at once at a quarter of its guarantee, and has all
	// of it one round after its demand shows.
	MinShare = 0.25
)

// Peer is one pod's published row.
type Peer struct {
	Team      string
	Pod       string
	Guarantee float64 // the team's guaranteed budget, records/s
	Demand    float64 // records/s the team would read if it could (tip rate + backlog/horizon); may be below the guarantee
	Borrow    bool    // the team opted in to borrowing
	Shards    int     // shards this pod owns
	Allowance float64 // the team allowance this pod currently applies (informational)
	// Uncoordinated is the shards of the pod's teammates that it sees
	// alive (the team's lease table) without a live row here: they read at
	// their plain budget.
	Uncoordinated int
	At            time.Time // when it was published
}

// Config is the cluster's side of the computation.
type Config struct {
	Capacity   float64       // the cluster's capacity, records/s
	StaleAfter time.Duration // a row older than this is stale (e.g. 3 publish intervals)
	// LendShare is the part of the spare that may be lent, in (0, 1]; zero
	// means all of it. Pacing admits a batch before it waits for its tokens
	// and pods apply new allowances at different moments, so a margin keeps
	// short windows within the capacity while borrowing.
	LendShare float64
}

// Allocation is the result for every team seen.
type Allocation struct {
	// Teams holds every team with at least one live row.
	Teams map[string]TeamAllocation
	// Reserved holds every team with rows but none live: the guarantee
	// still held for it (not lent out).
	Reserved map[string]float64
	// Used is the sum of the allowances in Teams, never above Capacity
	// (when the view is trusted).
	Used float64
	// Stale is true when the view cannot be trusted: everyone falls back
	// to guarantees (see Allocation.For).
	Stale bool

	staleAfter time.Duration // for ShardShare
}

// TeamAllocation is one team's part of the cluster.
type TeamAllocation struct {
	Guarantee float64
	Demand    float64
	// Allowance is what the team's pods may read together: the guarantee
	// plus what the team borrowed. While others borrow, a quiet team's
	// allowance is its reserve, min(guarantee, max(demand x Headroom,
	// guarantee x MinShare)), below its guarantee by the part lent out. If
	// the guarantees alone exceed the capacity, every allowance is the
	// guarantee scaled down by capacity / sum of guarantees.
	Allowance float64
	// Borrowed is Allowance - Guarantee when positive, else 0.
	Borrowed float64
}

// Fallback is the allocation of a team whose pods cannot trust the rows (or
// cannot read them at all): its plain guarantee, nothing borrowed. A pod that
// loses the rows while its own last row is still live to the others should
// keep min(guarantee, its last allowance) until that row is StaleAfter old
// (see "Views that differ" in the package documentation).
func Fallback(guarantee float64) TeamAllocation {
	return TeamAllocation{Guarantee: guarantee, Allowance: guarantee}
}

// For is the allocation the pods of team apply: the computed one when the
// view is trusted and team has a live row, otherwise Fallback(guarantee),
// guarantee being the team's own budget.
func (a Allocation) For(team string, guarantee float64) TeamAllocation {
	if a.Stale {
		return Fallback(guarantee)
	}
	t, ok := a.Teams[team]
	if !ok {
		return Fallback(guarantee)
	}
	return t
}

// team is what the rows say about one team.
type team struct {
	name   string
	fresh  Peer // the freshest live row, or the freshest row when none is live
	live   bool
	demand float64
	// uncoordinated: some live row says a teammate reads without
	// coordinating.
	uncoordinated bool
}

// reserveOf is the part of a live team's guarantee that is never lent: all
// of it while some of its pods cannot coordinate.
func (t *team) reserveOf() float64 {
	if t.uncoordinated {
		return t.fresh.Guarantee
	}
	return reserve(t.fresh.Guarantee, t.demand)
}

// reserve is the part of a live team's guarantee that is never lent:
// min(guarantee, max(demand x Headroom, guarantee x MinShare)).
func reserve(guarantee, demand float64) float64 {
	return min(guarantee, max(demand*Headroom, guarantee*MinShare))
}

// Allocate computes every team's allowance at time now from the peers' rows.
func Allocate(cfg Config, peers []Peer, now time.Time) Allocation {
	a := Allocation{
		Teams:      map[string]TeamAllocation{},
		Reserved:   map[string]float64{},
		staleAfter: cfg.StaleAfter,
	}
	pods, bad := latest(peers, "")
	a.Stale = bad || !(cfg.Capacity > 0) || math.IsInf(cfg.Capacity, 1) || cfg.StaleAfter <= 0

	byName := map[string]*team{}
	for _, p := range pods {
		t := byName[p.Team]
		if t == nil {
			t = &team{name: p.Team, fresh: p, live: live(p, now, cfg.StaleAfter)}
			if t.live {
				t.demand = p.Demand
				t.uncoordinated = p.Uncoordinated > 0
			}
			byName[p.Team] = t
			continue
		}
		if !live(p, now, cfg.StaleAfter) {
			if !t.live && newer(p, t.fresh) {
				t.fresh = p
			}
			continue
		}
		if !t.live || newer(p, t.fresh) {
			t.fresh = p
		}
		if !t.live || p.Demand > t.demand {
			t.demand = p.Demand
		}
		if !t.live {
			t.uncoordinated = false
		}
		t.uncoordinated = t.uncoordinated || p.Uncoordinated > 0
		t.live = true
	}
	teams := make([]*team, 0, len(byName))
	for _, t := range byName {
		teams = append(teams, t)
	}
	slices.SortFunc(teams, func(x, y *team) int { return cmp.Compare(x.name, y.name) })

	var sumG, sumR float64 // guarantees and reserves of all known teams
	anyLive := false
	for _, t := range teams {
		g := t.fresh.Guarantee
		sumG += g
		if t.live {
			anyLive = true
			sumR += t.reserveOf()
		} else {
			a.Reserved[t.name] = g
			sumR += g
		}
	}
	if !anyLive {
		a.Stale = true
	}

	var extra map[string]float64
	scaled := !a.Stale && sumG > cfg.Capacity
	if !a.Stale && !scaled {
		spare := cfg.Capacity - sumR
		if cfg.LendShare > 0 && cfg.LendShare < 1 {
			spare *= cfg.LendShare
		}
		extra = waterFill(teams, spare)
	}
	// Quiet teams lend their unused guarantee only while someone borrows.
	lending := false
	for _, t := range teams {
		if g := t.fresh.Guarantee; g+extra[t.name] > g {
			lending = true
		}
	}
	for _, t := range teams {
		if !t.live {
			continue
		}
		g := t.fresh.Guarantee
		ta := TeamAllocation{Guarantee: g, Demand: t.demand, Allowance: g}
		switch e := extra[t.name]; {
		case scaled:
			ta.Allowance = g * (cfg.Capacity / sumG)
		case e > 0:
			ta.Allowance = g + e
			ta.Borrowed = max(0, ta.Allowance-g)
		case lending:
			ta.Allowance = t.reserveOf()
		}
		a.Teams[t.name] = ta
		a.Used += ta.Allowance
	}
	return a
}

// waterFill shares spare between the live borrowers of teams (sorted by
// name), weighted by guarantee, and returns each borrower's extra. A
// borrower's reserve is its whole guarantee, so the extra comes on top.
func waterFill(teams []*team, spare float64) map[string]float64 {
	type borrower struct {
		name    string
		g, need float64
	}
	var bs []borrower
	for _, t := range teams {
		g := t.fresh.Guarantee
		if t.live && t.fresh.Borrow && g > 0 && t.demand > g {
			bs = append(bs, borrower{t.name, g, t.demand - g})
		}
	}
	extra := make(map[string]float64, len(bs))
	if len(bs) == 0 || spare <= 0 {
		return extra
	}
	// The least hungry (need per unit of weight) are satisfied first.
	slices.SortFunc(bs, func(x, y borrower) int {
		if c := cmp.Compare(x.need/x.g, y.need/y.g); c != 0 {
			return c
		}
		return cmp.Compare(x.name, y.name)
	})
	// weight[i] is the guarantee of borrowers i and after.
	weight := make([]float64, len(bs)+1)
	for i := len(bs) - 1; i >= 0; i-- {
		weight[i] = weight[i+1] + bs[i].g
	}
	for i, b := range bs {
		level := max(0, spare/weight[i])
		if b.need <= b.g*level {
			extra[b.name] = b.need
			spare -= b.need
			continue
		}
		for _, r := range bs[i:] {
			extra[r.name] = r.g * level
		}
		break
	}
	return extra
}

// ShardShare is the rate each shard of a team's coordinated pods may read:
// (allowance - held) / the team's shards, held being what the team's pods
// that cannot coordinate read at their plain budget. The shards are counted
// as the larger of those the team's live rows published and reading (the
// team's shards being read now): a shard that moved between two pods since
// their last rows is then counted on one side at least, never on neither,
// and the team's pods together never read above its allowance. A pod whose
// own row is not live, or whose team is not in a, gets 0: it must use its
// fallback.
// It also returns the shards it divided by, so that a shard count that
// grows before the next round (a split's parent finishing) can divide the
// same part further.
func ShardShare(a Allocation, team, pod string, peers []Peer, now time.Time, held float64, reading int) (float64, int) {
	t, ok := a.Teams[team]
	if !ok {
		return 0, 0
	}
	pods, _ := latest(peers, team)
	own, ok := pods[podKey{team, pod}]
	if !ok || !live(own, now, a.staleAfter) {
		return 0, 0
	}
	total := 0
	for _, p := range pods {
		if live(p, now, a.staleAfter) {
			total += p.Shards
		}
	}
	shards := max(total, reading, 1)
	return max(t.Allowance-held, 0) / float64(shards), shards
}

type podKey struct{ team, pod string }

// latest keeps the freshest readable row of each pod (of only team when it
// is not empty) and reports whether any row was unreadable.
func latest(peers []Peer, team string) (map[podKey]Peer, bool) {
	out := make(map[podKey]Peer, len(peers))
	bad := false
	for _, p := range peers {
		if team != "" && p.Team != team {
			continue
		}
		if !readable(p) {
			bad = true
			continue
		}
		k := podKey{p.Team, p.Pod}
		if q, ok := out[k]; !ok || newer(p, q) {
			out[k] = p
		}
	}
	return out, bad
}

func readable(p Peer) bool {
	return p.Team != "" && p.Pod != "" && p.Shards >= 0 && rate(p.Guarantee) && rate(p.Demand)
}

// rate reports whether v is a usable records/s figure.
func rate(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }

// live reports whether p was published within staleAfter of now.
func live(p Peer, now time.Time, staleAfter time.Duration) bool {
	age := now.Sub(p.At)
	return age <= staleAfter && age >= -staleAfter
}

// newer orders rows: the later publish time wins; ties go to the row that
// reserves more, borrows less, asks more and counts more shards, then to the
// smaller pod id, so the choice never depends on the rows' order.
func newer(p, q Peer) bool {
	switch {
	case !p.At.Equal(q.At):
		return p.At.After(q.At)
	case p.Guarantee != q.Guarantee:
		return p.Guarantee > q.Guarantee
	case p.Borrow != q.Borrow:
		return !p.Borrow
	case p.Demand != q.Demand:
		return p.Demand > q.Demand
	case p.Shards != q.Shards:
		return p.Shards > q.Shards
	}
	return p.Pod < q.Pod
}
