package consumer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// simStream is a model of one Kinesis stream: shards with hash-key ranges,
// records with ids, keys and per-key sequence numbers, resharding by split
// and merge, and the GetShardIterator/GetRecords semantics the KCL relies
// on. It serves the stream view (ListShards, DescribeStreamSummary) and the
// model of the library's polling loop (getRecords).
type simStream struct {
	mu     sync.Mutex
	shards []*simShard
	byID   map[string]*simShard
	seq    int64
	// records by id, for the checks
	recs []*simRecord
	// keySeq is the next per-key sequence number
	keySeq map[int]int
	// listFails makes ListShards fail while set (a throttled refresh).
	listFails bool
	// opened is the number of open shards from each reshard on, and
	// listDown the times the listing failed.
	opened   []openCount
	listDown [][2]time.Time
	// onPut is told of the records written.
	onPut func([]*simRecord)
}

type openCount struct {
	at   time.Time
	open int
}

// known is when every pod surely knows of a reshard made at t: each lists
// the shards once a refresh interval, so by t plus an interval, unless the
// listing failed during that interval; then an interval after it works
// again.
func (s *simStream) known(t time.Time) time.Time {
	T := t.Add(viewRefresh)
	for changed := true; changed; {
		changed = false
		for _, d := range s.listDown {
			if d[0].Before(T) && d[1].After(T.Add(-viewRefresh)) && d[1].Add(viewRefresh).After(T) {
				T, changed = d[1].Add(viewRefresh), true
			}
		}
	}
	return T
}

// maxOpen is the most shards open at once between from and to, as far as
// the pods can know: a count holds from its reshard (a pod may learn of it
// at once) until the pods surely know of the next.
func (s *simStream) maxOpen(from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := 0
	for i, o := range s.opened {
		if o.at.After(to) {
			continue
		}
		if i+1 < len(s.opened) && !s.known(s.opened[i+1].at).After(from) {
			continue // replaced before the window
		}
		best = max(best, o.open)
	}
	return max(best, 1)
}

// setListFails makes the listing fail, or work again.
func (s *simStream) setListFails(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case fail && !s.listFails:
		s.listDown = append(s.listDown, [2]time.Time{time.Now(), time.Now().Add(24 * time.Hour)})
	case !fail && s.listFails:
		s.listDown[len(s.listDown)-1][1] = time.Now()
	}
	s.listFails = fail
}

func (s *simStream) noteOpen() {
	s.opened = append(s.opened, openCount{time.Now(), len(s.open())})
}

const hashSpace = 1 << 16

type simShard struct {
	id      string
	parents []string
	lo, hi  int // hash-key range [lo, hi)
	recs    []*simRecord
	closed  bool
}

type simRecord struct {
	id      int
	key     int
	kseq    int
	shard   string
	seq     string
	sub     int // position in its KPL aggregate
	data    []byte
	arrival time.Time
	// what the record is for: "" a plain JSON line, "drop" dropped by a
	// rule, "poison" rejected by Elasticsearch, "bad" undecodable.
	kind string
}

func newSimStream(shards int) *simStream {
	s := &simStream{byID: map[string]*simShard{}, keySeq: map[int]int{}}
	for i := range shards {
		s.addShard(nil, i*hashSpace/shards, (i+1)*hashSpace/shards)
	}
	s.noteOpen()
	return s
}

func (s *simStream) addShard(parents []string, lo, hi int) *simShard {
	sh := &simShard{id: fmt.Sprintf("shardId-%012d", len(s.shards)), parents: parents, lo: lo, hi: hi}
	s.shards = append(s.shards, sh)
	s.byID[sh.id] = sh
	return sh
}

func (s *simStream) open() []*simShard {
	var out []*simShard
	for _, sh := range s.shards {
		if !sh.closed {
			out = append(out, sh)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lo < out[j].lo })
	return out
}

// put writes records for keys (hash keys), each n records of an aggregate
// when aggregate > 1, with kind chosen by pick.
func (s *simStream) put(keys []int, aggregate int, pick func() string) {
	s.mu.Lock()
	n0 := len(s.recs)
	defer func() {
		written := s.recs[n0:]
		s.mu.Unlock()
		if s.onPut != nil {
			s.onPut(written)
		}
	}()
	now := time.Now()
	for _, k := range keys {
		var sh *simShard
		for _, o := range s.open() {
			if k >= o.lo && k < o.hi {
				sh = o
			}
		}
		s.seq++
		seq := fmt.Sprintf("%020d", s.seq)
		for sub := range max(aggregate, 1) {
			kind := pick()
			id := len(s.recs)
			r := &simRecord{id: id, key: k, kseq: s.keySeq[k], shard: sh.id, seq: seq, sub: sub, arrival: now, kind: kind}
			s.keySeq[k]++
			switch kind {
			case "bad":
				r.data = []byte(fmt.Sprintf(`{"id":%d,"broken":`, id))
			case "drop":
				r.data = []byte(fmt.Sprintf(`{"id":%d,"key":%d,"kseq":%d,"level":"DEBUG","message":"noise"}`, id, k, r.kseq))
			case "poison":
				r.data = []byte(fmt.Sprintf(`{"id":%d,"key":%d,"kseq":%d,"poison":true,"message":"rejected"}`, id, k, r.kseq))
			default:
				r.data = []byte(fmt.Sprintf(`{"id":%d,"key":%d,"kseq":%d,"level":"INFO","message":"m %d"}`, id, k, r.kseq, id))
			}
			sh.recs = append(sh.recs, r)
			s.recs = append(s.recs, r)
		}
	}
}

// split closes an open shard and opens two children holding its halves.
func (s *simStream) split(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := s.open()
	if len(open) == 0 {
		return ""
	}
	p := open[i%len(open)]
	if p.hi-p.lo < 2 {
		return ""
	}
	p.closed = true
	mid := (p.lo + p.hi) / 2
	s.addShard([]string{p.id}, p.lo, mid)
	s.addShard([]string{p.id}, mid, p.hi)
	s.noteOpen()
	return "split " + p.id
}

// merge closes two adjacent open shards and opens their child.
func (s *simStream) merge(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := s.open()
	if len(open) < 2 {
		return ""
	}
	i %= len(open) - 1
	a, b := open[i], open[i+1]
	a.closed, b.closed = true, true
	s.addShard([]string{a.id, b.id}, a.lo, b.hi)
	s.noteOpen()
	return "merge " + a.id + " " + b.id
}

// ListShards serves the stream view.
func (s *simStream) ListShards(context.Context, *awskinesis.ListShardsInput, ...func(*awskinesis.Options)) (*awskinesis.ListShardsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listFails {
		return nil, errors.New("LimitExceededException: rate exceeded")
	}
	out := &awskinesis.ListShardsOutput{}
	for _, sh := range s.shards {
		ks := types.Shard{ShardId: aws.String(sh.id), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")}}
		if len(sh.parents) > 0 {
			ks.ParentShardId = aws.String(sh.parents[0])
		}
		if len(sh.parents) > 1 {
			ks.AdjacentParentShardId = aws.String(sh.parents[1])
		}
		if sh.closed {
			ks.SequenceNumberRange.EndingSequenceNumber = aws.String(fmt.Sprintf("%020d", s.seq))
		}
		out.Shards = append(out.Shards, ks)
	}
	return out, nil
}

// DescribeStreamSummary serves the stream view.
func (s *simStream) DescribeStreamSummary(context.Context, *awskinesis.DescribeStreamSummaryInput, ...func(*awskinesis.Options)) (*awskinesis.DescribeStreamSummaryOutput, error) {
	return &awskinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{RetentionPeriodHours: aws.Int32(24)}}, nil
}

// list is the library's ListShards: the shard ids and first parents.
func (s *simStream) list() ([]*simShard, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listFails {
		return nil, errors.New("LimitExceededException: rate exceeded")
	}
	return append([]*simShard(nil), s.shards...), nil
}

// iterator returns the position to start a shard at: after seq (after
// every record of its aggregate), at the first record that arrived at or
// after at, or at the oldest record.
func (s *simStream) iterator(shardID, afterSeq string, at *time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.byID[shardID]
	i := 0
	switch {
	case afterSeq != "":
		for i < len(sh.recs) && sh.recs[i].seq <= afterSeq {
			i++
		}
	case at != nil:
		for i < len(sh.recs) && sh.recs[i].arrival.Before(*at) {
			i++
		}
	}
	return fmt.Sprintf("%s/%d", shardID, i)
}

// latest is the position after the newest record: what arrives next.
func (s *simStream) latest(shardID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%s/%d", shardID, len(s.byID[shardID].recs))
}

// getRecords returns up to limit Kinesis records (an aggregate counts as
// one) from the iterator and the next iterator, "" at a closed shard's end.
func (s *simStream) getRecords(iter string, limit int) ([]types.Record, string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, pos, _ := strings.Cut(iter, "/")
	i, _ := strconv.Atoi(pos)
	sh := s.byID[id]
	var out []types.Record
	aggregates := 0
	for i < len(sh.recs) {
		r := sh.recs[i]
		if r.sub == 0 {
			if aggregates == limit {
				break
			}
			aggregates++
		}
		out = append(out, types.Record{Data: r.data, PartitionKey: aws.String(strconv.Itoa(r.key)), SequenceNumber: aws.String(r.seq),
			ApproximateArrivalTimestamp: aws.Time(r.arrival)})
		i++
	}
	behind := int64(0)
	if i < len(sh.recs) {
		behind = max(time.Since(sh.recs[i].arrival).Milliseconds(), 1)
	}
	if sh.closed && i == len(sh.recs) {
		return out, "", 0
	}
	return out, fmt.Sprintf("%s/%d", id, i), behind
}
