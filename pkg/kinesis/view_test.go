package kinesis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// lister serves a fixed listing and a creation time that a test changes.
type lister struct {
	mu      sync.Mutex
	shards  []types.Shard
	created time.Time
	lists   int
}

func (l *lister) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	return &kinesis.ListShardsOutput{Shards: l.shards}, nil
}

func (l *lister) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		RetentionPeriodHours: aws.Int32(24), StreamCreationTimestamp: aws.Time(l.created)}}, nil
}

func shard(id string, open bool, parents ...string) types.Shard {
	s := types.Shard{ShardId: aws.String(id), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")}}
	if !open {
		s.SequenceNumberRange.EndingSequenceNumber = aws.String("9")
	}
	if len(parents) > 0 {
		s.ParentShardId = aws.String(parents[0])
	}
	if len(parents) > 1 {
		s.AdjacentParentShardId = aws.String(parents[1])
	}
	return s
}

// TestViewStreamRecreated: a stream deleted and created again under its
// name while it is read (found by review: its new shards reuse the old ids,
// and old checkpoints would apply to them) ends the view's Run with a
// RecreatedError.
func TestViewStreamRecreated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &lister{shards: []types.Shard{shard("s-0", true)}, created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		v := NewView(l, Stream{Name: "s"}, nil)
		if err := v.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- v.Run(context.Background(), 10*time.Second) }()
		time.Sleep(15 * time.Second)
		l.mu.Lock()
		l.created = l.created.Add(48 * time.Hour)
		l.mu.Unlock()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			var re *RecreatedError
			if !errors.As(err, &re) {
				t.Errorf("Run ended with %v, want a RecreatedError", err)
			}
		default:
			t.Error("Run goes on reading a stream created again")
		}
	})
}

// TestViewSawAndAgedOut: another listing that shows a shard the view does
// not know makes Run refresh within a second; a parent no longer listed
// whose child is listed is aged out, a shard the view does not list
// otherwise is not.
func TestViewSawAndAgedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &lister{shards: []types.Shard{shard("s-0", true)}}
		v := NewView(l, Stream{Name: "s"}, nil)
		if err := v.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = v.Run(ctx, time.Minute) }()
		// The parent split and aged out: only its children are listed.
		children := []types.Shard{shard("s-1", true, "s-0"), shard("s-2", true, "s-0")}
		l.mu.Lock()
		l.shards = children
		l.mu.Unlock()
		v.Saw(shardsOf(&kinesis.ListShardsOutput{Shards: children}))
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if v.Open() != 2 {
			t.Fatalf("1.5 s after another listing saw the split the view has %d open shards, want 2", v.Open())
		}
		if !v.AgedOut("s-0") {
			t.Error("the parent no longer listed is not aged out")
		}
		if v.AgedOut("s-9") || v.AgedOut("s-1") {
			t.Error("a shard that is no listed shard's parent, or is listed, counts as aged out")
		}
	})
}
