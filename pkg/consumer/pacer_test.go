package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// fakeClock is a clock whose sleeps advance it.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return ctx.Err()
}

// TestPacerHoldsBudget feeds a shard an unlimited source: full batches of
// maxRecords, returned as fast as asked. Over every 30 s the shard delivers
// its budget, never more than one burst above it.
func TestPacerHoldsBudget(t *testing.T) {
	for _, tc := range []struct {
		maxRecords int
		poll       time.Duration
		batch      int
	}{
		{50, time.Second, 50},
		{2500, time.Second, 2500},
		{100, 200 * time.Millisecond, 100},
		{1000, time.Second, 137}, // batches smaller than maxRecords
	} {
		t.Run(fmt.Sprintf("%d per %s", tc.maxRecords, tc.poll), func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(0, 0)}
			rate := float64(tc.maxRecords) / tc.poll.Seconds()
			p := newPacer(rate, tc.maxRecords, 0, clk.now)
			p.sleep = clk.sleep
			start := clk.t
			delivered := 0
			var waited time.Duration
			for clk.t.Sub(start) < 120*time.Second {
				delivered += tc.batch
				w, err := p.wait(context.Background(), tc.batch, 0)
				if err != nil {
					t.Fatal(err)
				}
				waited += w
			}
			elapsed := clk.t.Sub(start).Seconds()
			got := float64(delivered) / elapsed
			// The bucket starts empty and every batch waits for its tokens
			// after it is read: at most one batch ahead of the rate.
			want := rate + float64(tc.batch)/elapsed
			if got > want || got < rate*0.99 {
				t.Errorf("delivered %.1f records/s, want %.1f (at most %.1f)", got, rate, want)
			}
			if waited <= 0 {
				t.Errorf("waited %v, want the limiter to hold the shard back", waited)
			}
		})
	}
}

func TestPacerBytes(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := newPacer(1e9, 10000, 1<<20, clk.now) // records unlimited, 1 MiB/s
	p.sleep = clk.sleep
	for i := 0; i < 100; i++ {
		if _, err := p.wait(context.Background(), 10, 512<<10); err != nil {
			t.Fatal(err)
		}
	}
	// 100 batches of 512 KiB at 1 MiB/s take 50 s from an empty bucket.
	if got := clk.t.Sub(time.Unix(0, 0)); got < 49*time.Second || got > 51*time.Second {
		t.Errorf("took %v for 50 MiB at 1 MiB/s, want about 50s", got)
	}
}

func TestPacerFollowsRateChange(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := newPacer(100, 100, 0, clk.now)
	p.sleep = clk.sleep
	p.setRate(50, 100, time.Second) // a reshard doubled the shards of a recordsPerSecond budget
	start := clk.t
	for i := 0; i < 100; i++ {
		if _, err := p.wait(context.Background(), 50, 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := clk.t.Sub(start); got < 98*time.Second {
		t.Errorf("5000 records at 50/s took %v, want about 99s", got)
	}
}

func TestPacerWaitEndsWithContext(t *testing.T) {
	p := newPacer(1, 1, 0, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.wait(ctx, 1, 0); err == nil {
		t.Fatal("got nil, want the context's error")
	}
}

// TestPacerStartsEmpty: a new lease (or a hand-over) reads one batch in its
// first poll interval, not two: the library reads the first batch before
// the processor is called, so a full bucket would let the second through
// at once too.
func TestPacerStartsEmpty(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := newPacer(500, 500, 0, clk.now) // maxRecords 500 per 1 s
	p.sleep = clk.sleep
	// The lease's first batch, read before any wait, then the wait.
	waited, err := p.wait(context.Background(), 500, 0)
	if err != nil {
		t.Fatal(err)
	}
	if waited < 990*time.Millisecond {
		t.Errorf("the first batch of a new lease waited %v, want about 1s (an empty bucket)", waited)
	}
}
