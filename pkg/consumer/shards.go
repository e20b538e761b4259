package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// shardInfo is what ListShards says of one shard.
type shardInfo struct {
	id      string
	parents []string // parent and adjacent parent (a merge has two)
	open    bool
}

// streamView is the consumer's picture of the stream: its shards, refreshed
// periodically, and its retention period.
type streamView struct {
	kc     *kinesis.Client
	stream string
	arn    string
	log    *slog.Logger

	mu        sync.RWMutex
	shards    []shardInfo
	byID      map[string]shardInfo
	retention time.Duration
	refreshed time.Time
}

func newStreamView(kc *kinesis.Client, stream, arn string, log *slog.Logger) *streamView {
	return &streamView{kc: kc, stream: stream, arn: arn, log: log, byID: map[string]shardInfo{}}
}

func (v *streamView) refresh(ctx context.Context) error {
	var (
		shards []shardInfo
		token  *string
	)
	for {
		in := &kinesis.ListShardsInput{}
		if token != nil {
			in.NextToken = token
		} else {
			in.StreamName, in.StreamARN = v.streamName(), v.streamARN()
		}
		out, err := v.kc.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("list shards of %s: %w", v.stream, err)
		}
		for _, s := range out.Shards {
			si := shardInfo{id: aws.ToString(s.ShardId)}
			for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
				if p != nil && *p != "" {
					si.parents = append(si.parents, *p)
				}
			}
			si.open = s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil
			shards = append(shards, si)
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	sum, err := v.kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: v.streamName(), StreamARN: v.streamARN()})
	if err != nil {
		return fmt.Errorf("describe stream %s: %w", v.stream, err)
	}
	byID := make(map[string]shardInfo, len(shards))
	for _, s := range shards {
		byID[s.id] = s
	}
	v.mu.Lock()
	before := v.openLocked()
	v.shards, v.byID, v.refreshed = shards, byID, time.Now()
	v.retention = time.Duration(aws.ToInt32(sum.StreamDescriptionSummary.RetentionPeriodHours)) * time.Hour
	after := v.openLocked()
	v.mu.Unlock()
	if before != after {
		v.log.Info("open shards changed", "stream", v.stream, "open", after, "before", before)
	}
	return nil
}

func (v *streamView) streamName() *string {
	if v.arn != "" {
		return nil
	}
	return aws.String(v.stream)
}

func (v *streamView) streamARN() *string {
	if v.arn == "" {
		return nil
	}
	return aws.String(v.arn)
}

func (v *streamView) openLocked() int {
	n := 0
	for _, s := range v.shards {
		if s.open {
			n++
		}
	}
	return n
}

// open is the number of open shards (at least 1 once known).
func (v *streamView) open() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.openLocked()
}

func (v *streamView) list() []shardInfo {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.shards
}

func (v *streamView) shard(id string) (shardInfo, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s, ok := v.byID[id]
	return s, ok
}

func (v *streamView) retentionPeriod() time.Duration {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.retention
}

// run refreshes the view every interval until ctx ends.
func (v *streamView) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := v.refresh(ctx); err != nil && ctx.Err() == nil {
				v.log.Warn("refresh stream view", "err", err)
			}
		}
	}
}
