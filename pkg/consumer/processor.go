package consumer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/rules"
)

// indexer is what the consumer needs of a sink: write items and say which
// were confirmed. *essink.Sink is one.
type indexer interface {
	Index(ctx context.Context, items []essink.Item, done []bool) error
	DeadLetter(at *essink.Coordinates, id, reason, detail string, raw []byte, originalIndex string) essink.Item
}

// pipeline is what every shard of a consumer shares: it turns a batch of
// Kinesis records into bulk items.
type pipeline struct {
	team, stream string
	index        *budget.IndexPattern
	rules        *rules.Set
	decodeOpts   decode.Options
	dataStream   bool
}

var gzipMagic = []byte{0x1f, 0x8b}

// deadLetter is a record that cannot be indexed, waiting for its item.
type deadLetter struct {
	item   int
	reason string
	detail string
	raw    []byte
}

type span struct{ start, end int }

// batch is one GetRecords call's worth of work, with reused buffers.
type batch struct {
	dec    *decode.Decoder
	docs   []decode.Doc
	items  []essink.Item
	coords []essink.Coordinates
	// recordEnd[i] is one past the last item of record i.
	recordEnd []int
	done      []bool
	arena     []byte
	spans     []span
	readAt    []byte
	dropped   map[string]int
	skipped   int
	bytes     int
}

func (b *batch) reset(n int, now time.Time) {
	b.readAt = now.UTC().AppendFormat(b.readAt[:0], time.RFC3339Nano)
	b.docs = b.docs[:0]
	b.items = b.items[:0]
	b.recordEnd = b.recordEnd[:0]
	b.arena = b.arena[:0]
	if cap(b.coords) < n {
		b.coords = make([]essink.Coordinates, n)
	}
	b.coords = b.coords[:n]
	clear(b.dropped)
	b.skipped, b.bytes = 0, 0
}

// build decodes, filters, redacts and encodes records into b.items.
// Item sources point into b.arena, which is only appended to while building.
func (p *pipeline) build(b *batch, shardID string, records []types.Record, sink indexer) {
	b.reset(len(records), time.Now())
	sub := 0
	// spans[i] locates item i's source in the arena; dead letters have none.
	spans := b.spans[:0]
	var pendingDL []deadLetter
	// deadLetterSlot keeps an item's place for a record's dead letter,
	// built once the arena stops growing.
	deadLetterSlot := func(reason, detail string, raw []byte) {
		pendingDL = append(pendingDL, deadLetter{len(b.items), reason, detail, raw})
		b.items = append(b.items, essink.Item{})
		spans = append(spans, span{-1, -1})
	}
	for i := range records {
		r := &records[i]
		seq := aws.ToString(r.SequenceNumber)
		if i > 0 && seq == aws.ToString(records[i-1].SequenceNumber) {
			sub++ // KPL sub-records share their aggregate's sequence number
		} else {
			sub = 0
		}
		at := &b.coords[i]
		*at = essink.Coordinates{ShardID: shardID, SequenceNumber: seq, SubSequence: sub, PartitionKey: aws.ToString(r.PartitionKey), Arrival: aws.ToTime(r.ApproximateArrivalTimestamp)}
		b.bytes += len(r.Data)
		data := r.Data
		if raw, ok := bytes.CutPrefix(data, kplBadPrefix); ok {
			deadLetterSlot("bad_kpl_aggregate", "KPL aggregate record that cannot be de-aggregated", raw)
			b.recordEnd = append(b.recordEnd, len(b.items))
			continue
		}
		rec := decode.Record{Data: data, PartitionKey: at.PartitionKey, SequenceNumber: seq, SubSequence: sub, Arrival: at.Arrival}
		docs, skipped, err := b.dec.Decode(&rec, b.docs[:0])
		switch {
		case err != nil:
			if f, ok := errors.AsType[*decode.Failure](err); ok {
				deadLetterSlot(f.Reason, f.Detail, data)
			} else {
				deadLetterSlot("decode_error", err.Error(), data)
			}
		case skipped:
			b.skipped++
		default:
			for d := range docs {
				doc := &docs[d]
				if keep, rule := p.rules.Apply(doc); !keep {
					b.dropped[rule]++
					continue
				}
				start := len(b.arena)
				b.arena = p.encode(b.arena, doc, at, b.readAt)
				spans = append(spans, span{start, len(b.arena)})
				b.items = append(b.items, essink.Item{
					Index:  p.index.Format(doc.Timestamp),
					ID:     docID(p.stream, shardID, seq, sub, doc.Event),
					Create: p.dataStream,
					At:     at,
				})
			}
			b.docs = docs[:0]
		}
		b.recordEnd = append(b.recordEnd, len(b.items))
	}
	// The arena has stopped growing: point the sources into it.
	for i, sp := range spans {
		if sp.start >= 0 {
			b.items[i].Source = b.arena[sp.start:sp.end]
		}
	}
	b.spans = spans
	for _, dl := range pendingDL {
		at := &b.coords[recordOf(b.recordEnd, dl.item)]
		raw := dl.raw
		if !bytes.HasPrefix(raw, gzipMagic) {
			// Redaction applies to dead letters too, readable or not (the
			// patterns are ASCII); only compressed payloads are opaque.
			raw = []byte(p.rules.RedactText(string(raw)))
		}
		b.items[dl.item] = sink.DeadLetter(at, docID(p.stream, shardID, at.SequenceNumber, at.SubSequence, 0), dl.reason, dl.detail, raw, "")
	}
	if cap(b.done) < len(b.items) {
		b.done = make([]bool, len(b.items))
	}
	b.done = b.done[:len(b.items)]
	clear(b.done)
}

// recordOf maps an item position back to its record.
func recordOf(recordEnd []int, item int) int {
	for i, end := range recordEnd {
		if item < end {
			return i
		}
	}
	return len(recordEnd) - 1
}

// encode appends the document with the fields streambudget adds.
func (p *pipeline) encode(b []byte, doc *decode.Doc, at *essink.Coordinates, readAt []byte) []byte {
	b = append(b, `{"@timestamp":"`...)
	b = doc.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","team":`...)
	b = decode.AppendString(b, p.team)
	b = essink.AppendKinesis(b, `,"kinesis":`, p.stream, at)
	// Extend the kinesis object: when the batch was read, and the event's
	// position inside a multi-event record.
	b = b[:len(b)-1]
	b = append(b, `,"read_at":"`...)
	b = append(b, readAt...)
	b = append(b, '"')
	if doc.Event > 0 {
		b = append(b, `,"event":`...)
		b = strconv.AppendInt(b, int64(doc.Event), 10)
	}
	b = append(b, '}')
	n := len(b)
	b = append(b, ',')
	b = doc.AppendFields(b)
	if len(b) == n+1 {
		b = b[:n] // no fields of its own
	}
	// Raw values keep the record's own whitespace; a line break there would
	// split the bulk request's line. Outside strings (inside them JSON has
	// no raw line breaks) it is just a space.
	if fields := b[n:]; bytes.IndexByte(fields, '\n') >= 0 || bytes.IndexByte(fields, '\r') >= 0 {
		for i, c := range fields {
			if c == '\n' || c == '\r' {
				fields[i] = ' '
			}
		}
	}
	return append(b, '}')
}

// docID is derived from the record's place in the stream, so a replay after
// a crash overwrites the document instead of adding a second copy.
func docID(stream, shardID, seq string, sub, event int) string {
	var buf [160]byte // stream (<=128) is the longest part; seq numbers are 56 digits
	b := append(buf[:0], stream...)
	b = append(b, 0)
	b = append(b, shardID...)
	b = append(b, 0)
	b = append(b, seq...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(sub), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(event), 10)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// confirmedPrefix returns the index of the last record that may be
// checkpointed: every item of it and of every record before it is confirmed,
// and it is the last sub-record of its aggregate (checkpointing mid-aggregate
// would skip the rest, which share its sequence number). -1 when none.
func confirmedPrefix(records []types.Record, recordEnd []int, done []bool) int {
	last := -1
	item := 0
	for i := range records {
		for ; item < recordEnd[i]; item++ {
			if !done[item] {
				return last
			}
		}
		if i+1 < len(records) && aws.ToString(records[i+1].SequenceNumber) == aws.ToString(records[i].SequenceNumber) {
			continue
		}
		last = i
	}
	return last
}

// processor is the library's record processor for one shard lease.
type processor struct {
	c       *Consumer
	shardID string
	log     *slog.Logger
	pacer   *pacer
	batch   batch
	state   *shardState

	// work ends when the lease ends or the consumer's hard stop comes;
	// waits end sooner, at the soft stop.
	work, waits       context.Context
	stopWork, stopWts func() bool
	cancel            []context.CancelFunc
	parentsDone       bool
	once              sync.Once
}

// Initialize is called once the library holds the shard's lease.
func (p *processor) Initialize(in *kcl.InitializationInput) {
	p.shardID = in.ShardId
	p.log = p.c.log.With("shard", p.shardID)
	leaseCtx := p.c.leases.shardContext(p.shardID)
	work, cancelWork := context.WithCancel(leaseCtx)
	p.stopWork = context.AfterFunc(p.c.hardStop, cancelWork)
	waits, cancelWaits := context.WithCancel(work)
	p.stopWts = context.AfterFunc(p.c.softStop, cancelWaits)
	p.work, p.waits = work, waits
	p.cancel = []context.CancelFunc{cancelWork, cancelWaits}
	open := p.c.view.open()
	p.pacer = newPacer(p.c.budget.ShardRate(open), p.c.budget.MaxRecordsFor(open), p.c.budget.MaxBytesPerSecond, time.Now)
	p.batch.dec = decode.New(p.c.pipe.decodeOpts)
	p.batch.dropped = map[string]int{}
	p.state = p.c.shards.add(p.shardID, p.c.budget.ShardRate(open))
	p.log.Info("shard lease taken", "checkpoint", aws.ToString(in.ExtendedSequenceNumber.SequenceNumber))
}

// ProcessRecords indexes one batch, checkpoints what Elasticsearch confirmed
// and then waits for the shard's budget before handing back to the library.
func (p *processor) ProcessRecords(in *kcl.ProcessRecordsInput) {
	// The library calls GetRecords as soon as this returns, whatever the
	// batch held: take that call's slot, which the tip probes share, so the
	// two together stay within the five calls a second Kinesis serves a
	// shard. A stopping processor does not wait.
	defer func() { _ = p.state.callSlot(p.waits) }()
	if p.waits.Err() != nil || p.c.leases.shedding(p.shardID) {
		return // stopping: the records stay unconfirmed and are read again
	}
	p.state.observe(in.Records, in.MillisBehindLatest)
	if len(in.Records) == 0 {
		return
	}
	if !p.parentsDone {
		if err := p.waitForParents(); err != nil {
			return
		}
	}
	b := &p.batch
	p.c.pipe.build(b, p.shardID, in.Records, p.c.sink)
	p.c.m.recordsRead.WithLabelValues(p.shardID).Add(float64(len(in.Records)))
	p.c.m.bytesRead.WithLabelValues(p.shardID).Add(float64(b.bytes))
	for rule, n := range b.dropped {
		p.c.m.dropped.WithLabelValues(rule).Add(float64(n))
	}
	if b.skipped > 0 {
		p.c.m.skipped.Add(float64(b.skipped))
	}
	err := p.c.sink.Index(p.work, b.items, b.done)
	last := len(in.Records) - 1
	if err != nil {
		last = confirmedPrefix(in.Records, b.recordEnd, b.done)
	}
	if last >= 0 {
		p.checkpoint(in.Checkpointer, in.Records[last].SequenceNumber)
	}
	if err != nil {
		p.log.Info("batch abandoned; unconfirmed records will be read again", "records", len(in.Records), "checkpointed", last+1, "err", err)
		return
	}
	open := p.c.view.open()
	rate := p.c.shardRate(open)
	p.pacer.setRate(rate, p.c.budget.MaxRecordsFor(open), p.c.budget.PollInterval)
	p.state.setBudget(rate)
	waited, _ := p.pacer.wait(p.waits, len(in.Records), b.bytes)
	if waited > 0 {
		p.c.m.budgetWait.WithLabelValues(p.shardID).Add(waited.Seconds())
	}
	p.state.count(len(in.Records), b.bytes, waited)
}

// waitForParents guards against the library starting a child shard before
// its parents are read to their end: it does so when a parent has no
// checkpoint row yet (a worker started on an already resharded stream), and
// it never waits for the adjacent parent of a merge. Per-key order needs
// both parents done first.
func (p *processor) waitForParents() error {
	info, ok := p.c.view.shard(p.shardID)
	if !ok {
		if err := p.c.view.refresh(p.waits); err != nil {
			return err
		}
		info, _ = p.c.view.shard(p.shardID)
	}
	logged := false
	for _, parent := range info.parents {
		for {
			if _, listed := p.c.view.shard(parent); !listed {
				break // aged out of the stream: nothing left to read
			}
			done, err := p.c.leases.parentFinished(p.waits, parent)
			if err == nil && done {
				break
			}
			if !logged {
				p.log.Info("waiting for parent shard to be read to its end", "parent", parent)
				logged = true
			}
			if err := sleepCtx(p.waits, time.Second); err != nil {
				return err
			}
		}
	}
	p.parentsDone = true
	return nil
}

func (p *processor) checkpoint(cp kcl.IRecordProcessorCheckpointer, seq *string) {
	if err := cp.Checkpoint(seq); err != nil {
		if errors.Is(err, errLeaseEnded) {
			p.log.Info("checkpoint skipped: the lease has ended")
			return
		}
		p.log.Warn("checkpoint failed; the next one covers it", "err", err)
		return
	}
	p.state.checkpointed(time.Now())
}

// Shutdown is called when the lease ends: the shard is finished
// (TERMINATE: record SHARD_END so its children start) or the worker stops.
func (p *processor) Shutdown(in *kcl.ShutdownInput) {
	if in.ShutdownReason == kcl.TERMINATE {
		for attempt := 1; ; attempt++ {
			err := in.Checkpointer.Checkpoint(nil)
			if err == nil {
				p.log.Info("shard read to its end; children may start")
				break
			}
			if errors.Is(err, errLeaseEnded) || p.work.Err() != nil {
				p.log.Warn("shard end not recorded; the next owner reads the last batch again", "err", err)
				break
			}
			p.log.Warn("record shard end", "attempt", attempt, "err", err)
			if sleepCtx(p.work, min(time.Duration(attempt)*time.Second, 10*time.Second)) != nil {
				break
			}
		}
	}
	p.close()
}

// close releases what the processor holds; the library may drop a
// processor without Shutdown (lost lease), so the consumer also calls it on
// release.
func (p *processor) close() {
	p.once.Do(func() {
		if p.stopWork != nil {
			p.stopWork()
			p.stopWts()
			for _, c := range p.cancel {
				c()
			}
		}
		if p.shardID != "" && p.c.shards.remove(p.shardID, p.state) {
			p.c.m.deleteShard(p.shardID)
		}
	})
}
