package consumer

import (
	"context"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// pacer holds one shard to its budget. It guards against a library
// behaviour: the KCL polls again at once whenever a call returned records
// (up to five calls a second), so the GetRecords limit alone is not a rate.
// After a batch of n records the processor waits for n tokens of a limiter
// of the shard's rate (burst: one poll interval's worth) before handing
// control back, and likewise for bytes when the budget caps them.
//
// A new pacer starts with an empty bucket: the lease's first batch is read
// before any wait (the library reads before it calls the processor), so a
// full bucket would let a new lease, or each hand-over, read two batches in
// its first interval.
type pacer struct {
	records *rate.Limiter
	bytes   *rate.Limiter // nil without a byte cap
	// now and sleep are the clock; tests inject a fake one.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newPacer(recordsPerSecond float64, burst int, bytesPerSecond int64, now func() time.Time) *pacer {
	t := now()
	burst = max(burst, 1)
	p := &pacer{records: rate.NewLimiter(rate.Limit(recordsPerSecond), burst), now: now, sleep: sleepCtx}
	p.records.AllowN(t, burst) // start empty
	if bytesPerSecond > 0 {
		p.bytes = rate.NewLimiter(rate.Limit(bytesPerSecond), int(bytesPerSecond))
		p.bytes.AllowN(t, int(bytesPerSecond))
	}
	return p
}

// setRate follows a budget change (recordsPerSecond after a reshard, an
// allowance of a work-conserving budget). The burst never exceeds one poll
// interval's worth at the rate, so a shard held below its plain budget
// cannot catch up in a burst.
func (p *pacer) setRate(recordsPerSecond float64, burst int, poll time.Duration) {
	burst = max(min(burst, int(math.Ceil(recordsPerSecond*poll.Seconds()))), 1)
	t := p.now()
	if p.records.Limit() != rate.Limit(recordsPerSecond) {
		p.records.SetLimitAt(t, rate.Limit(recordsPerSecond))
	}
	if p.records.Burst() != burst {
		p.records.SetBurstAt(t, max(burst, 1))
	}
}

// burst is the most records one wait covers: one poll interval's worth.
func (p *pacer) burst() int { return p.records.Burst() }

// wait blocks until n records and size bytes fit the budget, and returns how
// long it waited. It returns early with ctx's error.
func (p *pacer) wait(ctx context.Context, n, size int) (time.Duration, error) {
	var waited time.Duration
	for _, l := range []struct {
		lim *rate.Limiter
		n   int
	}{{p.records, n}, {p.bytes, size}} {
		if l.lim == nil {
			continue
		}
		for rest := l.n; rest > 0; {
			take := min(rest, l.lim.Burst())
			rest -= take
			d, err := p.reserve(ctx, l.lim, take)
			waited += d
			if err != nil {
				return waited, err
			}
		}
	}
	return waited, nil
}

// reserve takes k tokens now and sleeps until they are due, so that the
// wait is measured on the pacer's clock and a cancelled wait gives the
// tokens back.
func (p *pacer) reserve(ctx context.Context, lim *rate.Limiter, k int) (time.Duration, error) {
	now := p.now()
	r := lim.ReserveN(now, k)
	if !r.OK() {
		return 0, nil // larger than the burst: cannot happen, wait chunks by burst
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return 0, nil
	}
	if err := p.sleep(ctx, d); err != nil {
		r.CancelAt(p.now())
		return 0, err
	}
	return d, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
