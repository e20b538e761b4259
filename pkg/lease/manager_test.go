package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

const failover = 10 * time.Second

func manager(tab Table, worker string) *Manager {
	return New(Options{Table: tab, Worker: worker, Failover: failover})
}

// Every test runs in a synctest bubble: time is virtual, and the leases'
// timers fire as time passes.

func TestAcquireHeldElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := NewMemTable()
		ctx := context.Background()
		a, b := manager(tab, "a"), manager(tab, "b")
		if _, err := a.Acquire(ctx, "s1", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Acquire(ctx, "s1", ""); !errors.Is(err, ErrNotAcquired) {
			t.Fatalf("b took a live lease of a: %v", err)
		}
		time.Sleep(failover + time.Second) // a never renews
		if _, err := b.Acquire(ctx, "s1", ""); err != nil {
			t.Fatalf("b could not take an expired lease: %v", err)
		}
		if err := a.Checkpoint(ctx, "s1", "42"); !errors.Is(err, ErrLeaseEnded) {
			t.Fatalf("a checkpointed a shard b holds: %v", err)
		}
		if err := b.Checkpoint(ctx, "s1", "43"); err != nil {
			t.Fatal(err)
		}
		row, _, _ := tab.Get(ctx, "s1")
		if row.Checkpoint != "43" || row.Owner != "b" {
			t.Errorf("row %+v, want b's checkpoint 43", row)
		}
	})
}

// TestFencing: a lease that cannot be renewed (the table is down) has its
// shard's context ended a margin before its deadline, before any other pod
// could take it; a checkpoint after that is refused locally.
func TestFencing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := NewMemTable()
		m := New(Options{Table: tab, Worker: "a", Failover: failover})
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- m.Run(ctx, func() int { return 1 }) }()
		start := time.Now()
		if _, err := m.Acquire(context.Background(), "s1", ""); err != nil {
			t.Fatal(err)
		}
		work := m.Context("s1")
		tab.Fail = func(string, string) error { return ErrUnavailable }
		if err := m.Renew(context.Background(), "s1"); err == nil {
			t.Fatal("renewed with the table down")
		}
		<-work.Done()
		if took := time.Since(start); took >= failover {
			t.Errorf("work ended %v after the last renewal, want before the %v failover", took, failover)
		}
		if err := m.Checkpoint(context.Background(), "s1", "1"); !errors.Is(err, ErrLeaseEnded) {
			t.Errorf("checkpoint after the lease ended: %v", err)
		}
		stop()
		<-done
	})
}

// TestFenceWithoutRenewals: a pod whose renewals stop (a stuck library
// goroutine) still ends the shard's work before the deadline.
func TestFenceWithoutRenewals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(Options{Table: NewMemTable(), Worker: "a", Failover: failover})
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- m.Run(ctx, func() int { return 1 }) }()
		start := time.Now()
		if _, err := m.Acquire(context.Background(), "s1", ""); err != nil {
			t.Fatal(err)
		}
		<-m.Context("s1").Done()
		if took := time.Since(start); took > failover-m.margin+time.Second || took < failover-m.margin-time.Second {
			t.Errorf("fenced after %v, want about %v", took, failover-m.margin)
		}
		stop()
		<-done
	})
}

// TestBalance: a pod that holds every shard gives up its excess once a
// second pod heartbeats, by refusing its own renewals; the new pod takes
// at most its fair share.
func TestBalance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := NewMemTable()
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		need := func() int { return 4 }
		a := New(Options{Table: tab, Worker: "a", Failover: failover})
		go a.Run(ctx, need)
		synctest.Wait()
		for i := range 4 {
			if _, err := a.Acquire(ctx, fmt.Sprint("s", i), ""); err != nil {
				t.Fatal(err)
			}
		}
		b := New(Options{Table: tab, Worker: "b", Failover: failover})
		go b.Run(ctx, need)
		time.Sleep(failover / 2) // a few heartbeats
		given := 0
		for i := range 4 {
			if err := a.Renew(ctx, fmt.Sprint("s", i)); err != nil {
				given++
			}
		}
		if given != 2 || a.Held() != 2 {
			t.Fatalf("a gave up %d and holds %d, want 2 and 2", given, a.Held())
		}
		for i := range 4 {
			id := fmt.Sprint("s", i)
			if a.Holds(id) {
				continue
			}
			_ = a.Release(ctx, id)
			if _, err := b.Acquire(ctx, id, ""); err != nil {
				t.Fatalf("b could not take released %s: %v", id, err)
			}
		}
		if _, err := b.Acquire(ctx, "s9", ""); !errors.Is(err, ErrNotAcquired) {
			t.Errorf("b took a third lease beyond its fair share: %v", err)
		}
		stop()
		synctest.Wait()
	})
}

func TestGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(Options{Table: NewMemTable(), Worker: "a", Failover: failover})
		ctx := context.Background()
		if _, err := m.Acquire(ctx, "s1", ""); err != nil {
			t.Fatal(err)
		}
		m.GiveUp("s1", "records abandoned")
		if !m.GivingUp("s1") {
			t.Error("not giving up")
		}
		if err := m.Renew(ctx, "s1"); err == nil {
			t.Fatal("renewed a lease being given up")
		}
		if m.Context("s1").Err() == nil {
			t.Error("the shard's work goes on after the lease was given up")
		}
		// Released, the shard may be taken again at once, here or elsewhere.
		if err := m.Release(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Acquire(ctx, "s1", ""); err != nil {
			t.Errorf("could not take the released shard again: %v", err)
		}
	})
}

func TestFirstStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tab := NewMemTable()
		ctx := context.Background()
		created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		first, err := New(Options{Table: tab, Worker: "a", Failover: failover}).FirstStart(ctx, created)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		again, err := New(Options{Table: tab, Worker: "b", Failover: failover}).FirstStart(ctx, created)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Equal(first) {
			t.Errorf("a later pod sees the first start at %v, want %v", again, first)
		}
		// The stream deleted and created again under its name (found by
		// review: the old rows' SHARD_END skipped the new shards of the
		// same ids, silently): refused, with what to do.
		_, err = New(Options{Table: tab, Worker: "c", Failover: failover}).FirstStart(ctx, created.Add(48*time.Hour))
		var recreated *StreamRecreatedError
		if !errors.As(err, &recreated) || !strings.Contains(err.Error(), "Delete the lease table") {
			t.Errorf("a recreated stream: got %v, want a StreamRecreatedError", err)
		}
		// A table from before the creation time was recorded learns it...
		old := NewMemTable()
		if err := old.Put(ctx, Row{Key: firstStartKey, Timeout: stamp(time.Now())}); err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Hour).Truncate(time.Second)
		if _, err := New(Options{Table: old, Worker: "a", Failover: failover}).FirstStart(ctx, before); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{Table: old, Worker: "a", Failover: failover}).FirstStart(ctx, before.Add(time.Minute)); !errors.As(err, &recreated) {
			t.Errorf("after recording the creation time: got %v, want a StreamRecreatedError", err)
		}
		// ...unless it was first used before the stream existed (found by
		// the second review: a table of a release before creation times
		// were recorded, its stream since created again).
		older := NewMemTable()
		if err := older.Put(ctx, Row{Key: firstStartKey, Timeout: stamp(time.Now())}); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{Table: older, Worker: "a", Failover: failover}).FirstStart(ctx, time.Now().Add(30*24*time.Hour)); !errors.As(err, &recreated) || !recreated.FirstStart {
			t.Errorf("a table first used a month before its stream was created: got %v, want a StreamRecreatedError", err)
		}
	})
}
