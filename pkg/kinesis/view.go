package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
)

// Lister is what the stream view needs of a Kinesis client; *kinesis.Client
// is one.
type Lister interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// Shard is what ListShards says of one shard.
type Shard struct {
	ID string
	// Parents are the parent and, for a merge, the adjacent parent.
	Parents []string
	// Open is false once the shard is closed by a reshard: it has an ending
	// sequence number and its children hold what comes after.
	Open bool
}

// Stream names a stream by name or by ARN (the ARN wins when both are set).
type Stream struct {
	Name, ARN string
}

// NameInput and ARNInput are the stream's fields for a request: one of the
// two is set, as the Kinesis API wants.
func (s Stream) NameInput() *string {
	if s.ARN != "" {
		return nil
	}
	return aws.String(s.Name)
}

// ARNInput is the ARN for a request, or nil when the stream is named.
func (s Stream) ARNInput() *string {
	if s.ARN == "" {
		return nil
	}
	return aws.String(s.ARN)
}

// View is a consumer's picture of its stream: every shard listed (open and
// closed, with their parents) and the retention period, refreshed by
// Refresh. It is safe for concurrent use.
type View struct {
	client Lister
	stream Stream
	log    *slog.Logger

	mu        sync.RWMutex
	shards    []Shard
	byID      map[string]Shard
	retention time.Duration
	created   time.Time
	known     bool
	// stale is poked when another listing (the KCL library's) saw shards
	// this view does not show as they are: Run refreshes at once.
	stale chan struct{}
}

// NewView returns an empty view; Refresh fills it.
func NewView(client Lister, stream Stream, log *slog.Logger) *View {
	return &View{client: client, stream: stream, log: log, byID: map[string]Shard{}, stale: make(chan struct{}, 1)}
}

// Refresh lists the stream's shards and reads its retention period.
func (v *View) Refresh(ctx context.Context) error {
	var (
		shards []Shard
		token  *string
	)
	for {
		in := &kinesis.ListShardsInput{}
		if token != nil {
			in.NextToken = token
		} else {
			in.StreamName, in.StreamARN = v.stream.NameInput(), v.stream.ARNInput()
		}
		out, err := v.client.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("list shards of %s: %w", v.stream.Name, err)
		}
		shards = append(shards, shardsOf(out)...)
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	sum, err := v.client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: v.stream.NameInput(), StreamARN: v.stream.ARNInput()})
	if err != nil {
		return fmt.Errorf("describe stream %s: %w", v.stream.Name, err)
	}
	byID := make(map[string]Shard, len(shards))
	for _, s := range shards {
		byID[s.ID] = s
	}
	v.mu.Lock()
	before, was := v.openLocked(), v.known
	v.shards, v.byID, v.known = shards, byID, true
	if d := sum.StreamDescriptionSummary; d != nil {
		created := aws.ToTime(d.StreamCreationTimestamp)
		if !v.created.IsZero() && !created.IsZero() && !created.Equal(v.created) {
			v.mu.Unlock()
			return &RecreatedError{Stream: v.stream.Name, Was: v.created, Now: created}
		}
		v.retention = time.Duration(aws.ToInt32(d.RetentionPeriodHours)) * time.Hour
		v.created = created
	}
	after := v.openLocked()
	v.mu.Unlock()
	if was && before != after && v.log != nil {
		v.log.Info("open shards changed", "stream", v.stream.Name, "open", after, "before", before)
	}
	return nil
}

func shardsOf(out *kinesis.ListShardsOutput) []Shard {
	shards := make([]Shard, 0, len(out.Shards))
	for _, s := range out.Shards {
		sh := Shard{ID: aws.ToString(s.ShardId)}
		for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p != nil && *p != "" {
				sh.Parents = append(sh.Parents, *p)
			}
		}
		sh.Open = s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil
		shards = append(shards, sh)
	}
	return shards
}

func (v *View) openLocked() int {
	n := 0
	for _, s := range v.shards {
		if s.Open {
			n++
		}
	}
	return n
}

// Known reports whether the view has been filled at least once.
func (v *View) Known() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.known
}

// Open is the number of open shards.
func (v *View) Open() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.openLocked()
}

// Shards returns every shard listed, open and closed.
func (v *View) Shards() []Shard {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.shards
}

// Shard returns the shard with the given id, if listed.
func (v *View) Shard(id string) (Shard, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s, ok := v.byID[id]
	return s, ok
}

// Retention is the stream's retention period.
func (v *View) Retention() time.Duration {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.retention
}

// Created is when the stream was created (zero when Kinesis did not say):
// a stream deleted and created again under its name has new shards with
// the old shards' ids.
func (v *View) Created() time.Time {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.created
}

// Stream is the stream the view describes.
func (v *View) Stream() Stream { return v.stream }

// RecreatedError is a stream deleted and created again under its name
// while it was being read: its shards are new, with the old ones' ids.
type RecreatedError struct {
	Stream   string
	Was, Now time.Time
}

func (e *RecreatedError) Error() string {
	return fmt.Sprintf("stream %s was deleted and created again (created at %s, now at %s): its new shards reuse the old shard ids; stopping, so that no old checkpoint is applied to them",
		e.Stream, e.Was.UTC().Format(time.RFC3339), e.Now.UTC().Format(time.RFC3339))
}

// Run refreshes the view every interval, and at once (at most once a
// second) when another listing saw a change, until ctx ends. A failed
// refresh keeps the last view and is logged; a stream created again
// (RecreatedError) ends Run with that error.
func (v *View) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-v.stale:
			if wait := time.Until(last.Add(time.Second)); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		err := v.Refresh(ctx)
		var recreated *RecreatedError
		switch {
		case errors.As(err, &recreated):
			return err
		case err != nil && ctx.Err() == nil && v.log != nil:
			v.log.Warn("refresh stream view", "err", err)
		}
	}
}

// Saw compares shards another listing returned with the view: a shard the
// view does not list, or lists open when it is closed, makes Run refresh
// at once. A reshard's budget then applies within about a second, not at
// the next periodic refresh.
func (v *View) Saw(shards []Shard) {
	v.mu.RLock()
	stale := false
	for _, s := range shards {
		if known, ok := v.byID[s.ID]; !ok || known.Open != s.Open {
			stale = true
			break
		}
	}
	v.mu.RUnlock()
	if stale {
		select {
		case v.stale <- struct{}{}:
		default:
		}
	}
}

// WatchListShards is a Kinesis client API option that shows the view every
// page of shards the client lists (the KCL library lists every shard sync).
func WatchListShards(v *View) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if stack.ID() != "ListShards" {
			return nil
		}
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("streambudgetWatchListShards",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				if res, ok := out.Result.(*kinesis.ListShardsOutput); ok && err == nil {
					v.Saw(shardsOf(res))
				}
				return out, md, err
			}), middleware.After)
	}
}

// AgedOut reports whether the shard is a parent no longer listed (its
// records past the stream's retention): a listed shard names it as a
// parent, and nothing more can be read from it.
func (v *View) AgedOut(shardID string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if _, listed := v.byID[shardID]; listed || !v.known {
		return false
	}
	for _, s := range v.shards {
		for _, p := range s.Parents {
			if p == shardID {
				return true
			}
		}
	}
	return false
}

// OpenNow is the number of open shards, counting as closed those known to
// be finished (read to their end, so closed by a reshard the last listing
// did not see yet).
func (v *View) OpenNow(finished func(shardID string) bool) int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := 0
	for _, s := range v.shards {
		if s.Open && !finished(s.ID) {
			n++
		}
	}
	return n
}

// Reading counts the shards that are being read or may be now: listed, not
// finished, and with every parent finished or no longer listed (aged out of
// the stream). A child whose parents are still being read is not counted:
// its lease is not taken until they are done. finished tells whether a
// shard was read to its end (its checkpoint is SHARD_END).
func (v *View) Reading(finished func(shardID string) bool) int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := 0
	for _, s := range v.shards {
		if !finished(s.ID) && v.parentsDoneLocked(s, finished) {
			n++
		}
	}
	return n
}

// ParentsDone reports whether every parent of the shard is finished or no
// longer listed; false for a shard the view does not know.
func (v *View) ParentsDone(shardID string, finished func(shardID string) bool) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s, ok := v.byID[shardID]
	return ok && v.parentsDoneLocked(s, finished)
}

func (v *View) parentsDoneLocked(s Shard, finished func(string) bool) bool {
	for _, p := range s.Parents {
		if _, listed := v.byID[p]; listed && !finished(p) {
			return false
		}
	}
	return true
}
