package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
)

// BenchmarkBudgetAccuracy runs the real pacer on a virtual clock against an
// unlimited source: every GetRecords call returns a full batch of
// maxRecords at once. All shards of a team run in one loop on a shared
// clock (the shard whose next call is due first goes next), for 5 minutes
// of virtual time. Records are counted in 30 s windows by the time their
// call returned; the first window (which holds the free first burst) is
// left out. It reports the largest and smallest window's observed/budget,
// where budget is the team's recordsPerSecond. An op is one simulation.
//
// Shards start one after another, spread over one call interval, as leases
// are taken one at a time and each processor polls on its own clock. The
// aligned-* metrics are the worst case where every shard's calls land on
// the same instants: a window then holds a whole batch more or less of
// every shard at once.
func BenchmarkBudgetAccuracy(b *testing.B) {
	for _, shards := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			for _, perSecond := range []int{100, 333, 1000, 5000, 20000} {
				bud := budget.Budget{RecordsPerSecond: perSecond, PollInterval: time.Second}
				if perSecond/shards > budget.MaxRecordsPerCall {
					// Over 10,000 records per call: a budget file must
					// poll more often (lint says so), and so does this.
					bud.PollInterval = 500 * time.Millisecond
				}
				b.Run(fmt.Sprintf("budget=%d", perSecond), func(b *testing.B) {
					var acc, aligned accuracy
					for b.Loop() {
						acc = simulateBudget(bud, shards, 5*time.Minute, 30*time.Second, true)
					}
					aligned = simulateBudget(bud, shards, 5*time.Minute, 30*time.Second, false)
					b.ReportMetric(acc.max, "max-ratio")
					b.ReportMetric(acc.min, "min-ratio")
					b.ReportMetric(aligned.max, "aligned-max-ratio")
					b.ReportMetric(aligned.min, "aligned-min-ratio")
					// What the rounding of recordsPerSecond into a whole
					// maxRecords per shard leaves of the budget.
					b.ReportMetric(bud.TeamRate(shards)/float64(perSecond), "configured-ratio")
				})
			}
		})
	}
}

type accuracy struct{ min, max float64 }

// simulateBudget runs shards pacers for d of virtual time and returns the
// extremes of delivered/budget over the windows after the first. With
// stagger, shard i makes its first call i/shards of a call interval after
// the first shard.
func simulateBudget(bud budget.Budget, shards int, d, window time.Duration, stagger bool) accuracy {
	clk := &fakeClock{t: time.Unix(1700000000, 0)}
	start := clk.t
	type shard struct {
		p    *pacer
		next time.Time // when its next GetRecords call returns
	}
	n := bud.MaxRecordsFor(shards)
	interval := time.Duration(float64(n) / bud.ShardRate(shards) * float64(time.Second))
	ss := make([]shard, shards)
	for i := range ss {
		// A pacer starts empty when its lease is taken, which is when
		// the shard's first call is made.
		ss[i].next = start
		if stagger {
			ss[i].next = start.Add(interval * time.Duration(i) / time.Duration(shards))
		}
		clk.t = ss[i].next
		ss[i].p = newPacer(bud.ShardRate(shards), n, bud.MaxBytesPerSecond, clk.now)
		ss[i].p.sleep = clk.sleep
	}
	clk.t = start
	counts := make([]int, int(d/window))
	ctx := context.Background()
	for {
		s := &ss[0]
		for i := range ss {
			if ss[i].next.Before(s.next) {
				s = &ss[i]
			}
		}
		w := int(s.next.Sub(start) / window)
		if w >= len(counts) {
			break
		}
		clk.t = s.next
		counts[w] += n // the call returned a full batch
		s.p.setRate(bud.ShardRate(shards), n, bud.PollInterval)
		if _, err := s.p.wait(ctx, n, 0); err != nil {
			panic(err)
		}
		s.next = clk.t
	}
	acc := accuracy{min: 1e9}
	want := float64(bud.RecordsPerSecond) * window.Seconds()
	for _, c := range counts[1:] {
		r := float64(c) / want
		acc.min, acc.max = min(acc.min, r), max(acc.max, r)
	}
	return acc
}
