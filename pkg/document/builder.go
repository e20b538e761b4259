package document

import (
	"bytes"
	"errors"
	"time"
	"unsafe"

	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/kinesis"
)

// Record is one Kinesis record (after KPL de-aggregation) of a batch.
type Record struct {
	Data           []byte
	PartitionKey   string
	SequenceNumber string
	// SubSequence is the record's position in its KPL aggregate: records
	// that follow one another with the same sequence number are one
	// aggregate's sub-records.
	SubSequence int
	Arrival     time.Time
}

// Chunk is one bulk request's worth of a batch: at most MaxDocs items and
// about MaxBytes (a larger single document goes alone), and what became of
// the records that produced no item.
type Chunk struct {
	Items []essink.Item
	// Of[i] is the record (its index in the batch) item i belongs to, and
	// Event[i] its position among the record's documents.
	Of, Event []int
	// Dropped are documents a drop rule dropped, by record and rule.
	Dropped []Drop
	// Skipped are records that carry no log event by design (CloudWatch
	// Logs control messages).
	Skipped []int
	// Sealed are the records whose every item is in this chunk or an
	// earlier one: once those are confirmed, the record is done.
	Sealed []int
	// Bytes is the size of the items' sources.
	Bytes int

	arena []byte
	spans []span
}

// Drop is one document dropped by a named rule.
type Drop struct {
	Record int
	Rule   string
}

type span struct{ start, end int }

func (c *Chunk) reset() {
	c.Items, c.Of, c.Event = c.Items[:0], c.Of[:0], c.Event[:0]
	c.Dropped, c.Skipped, c.Sealed = c.Dropped[:0], c.Skipped[:0], c.Sealed[:0]
	c.Bytes, c.arena, c.spans = 0, c.arena[:0], c.spans[:0]
}

// add appends an item whose source was just appended to the arena from
// start on.
func (c *Chunk) add(it essink.Item, rec, event, start int) {
	c.Items = append(c.Items, it)
	c.Of = append(c.Of, rec)
	c.Event = append(c.Event, event)
	c.spans = append(c.spans, span{start, len(c.arena)})
	c.Bytes += len(c.arena) - start
}

// finish points the item sources into the arena, which has stopped growing.
func (c *Chunk) finish() {
	for i, sp := range c.spans {
		c.Items[i].Source = c.arena[sp.start:sp.end:sp.end]
	}
}

// At returns the coordinates of record i of the batch.
func (b *Builder) At(i int) Coordinates {
	r := &b.recs[i]
	return Coordinates{ShardID: b.shard, SequenceNumber: r.SequenceNumber, SubSequence: r.SubSequence, PartitionKey: r.PartitionKey, Arrival: r.Arrival}
}

// Builder turns one shard's batches into chunks. It is for one goroutine
// (one per shard) and reuses its buffers; Done lets go of those that grew
// large.
type Builder struct {
	s     *Schema
	shard string
	dec   *decode.Decoder

	recs   []Record
	readAt []byte
	next   int // next record to decode
	// chunkRecords caps the records one chunk starts (0: no cap).
	chunkRecords int
	// The record being emitted: its documents (pointing into the decoder
	// and the record), the next one to emit, and its coordinates.
	cur   int
	docs  []decode.Doc
	docAt int
	at    Coordinates
	pk    string // the partition key, pattern-redacted
}

// keepBytes is what a builder keeps of its buffers between batches.
const keepBytes = 1 << 20

// MaxShardBytes bounds what one shard's builder holds while it works,
// whatever its records inflate to: the record being decoded (its inflated
// payload, at most the decompression limit, 16 MiB by default, and its
// documents' fields), one chunk's encoded documents (MaxBytes, 5 MiB by
// default, plus the largest document), and the Go heap's slack for both.
// The GetRecords answer itself (up to 10 MB) comes on top; see
// docs/operations.md for a pod's sizing.
const MaxShardBytes = 64 << 20

// NewBuilder returns the builder of one shard.
func (s *Schema) NewBuilder(shardID string) *Builder {
	return &Builder{s: s, shard: shardID, dec: decode.New(s.opts.Decode), cur: -1}
}

// Start begins a batch read at readAt; each chunk starts at most
// chunkRecords records (0: no cap), so that a pacer can pay for each before
// it is sent. The records must stay untouched until the batch is done.
func (b *Builder) Start(recs []Record, readAt time.Time, chunkRecords int) {
	b.recs, b.next, b.cur, b.docs, b.docAt, b.chunkRecords = recs, 0, -1, b.docs[:0], 0, chunkRecords
	b.readAt = readAt.UTC().AppendFormat(b.readAt[:0], time.RFC3339Nano)
}

// Done ends the batch and lets go of buffers that grew past what a quiet
// shard needs, so that memory follows the current batch, not the largest
// one ever seen.
func (b *Builder) Done(c *Chunk) {
	b.recs, b.docs = nil, b.docs[:0]
	b.dec.Shrink(keepBytes)
	if cap(c.arena) > keepBytes+b.s.opts.MaxBytes {
		c.arena = nil
	}
	if cap(b.docs) > 4096 {
		b.docs = nil
	}
}

// Held is what the builder and its chunk hold in buffers now: the bytes
// MaxShardBytes bounds, less the Go heap's slack.
func (b *Builder) Held(c *Chunk) int {
	return cap(c.arena) + b.dec.Held() + cap(b.docs)*int(unsafe.Sizeof(decode.Doc{}))
}

// ChunkRecords changes the cap on the records a chunk starts, from the
// next chunk on (a pacer whose rate changed within a batch).
func (b *Builder) ChunkRecords(n int) { b.chunkRecords = n }

// Next fills c with the batch's next chunk and reports whether it holds
// anything; false means the batch is done.
func (b *Builder) Next(c *Chunk) bool {
	c.reset()
	first := b.next
	for {
		if b.cur >= 0 {
			if b.emitDocs(c) {
				break // the chunk is full
			}
			c.Sealed = append(c.Sealed, b.cur)
			b.cur = -1
		}
		if b.next >= len(b.recs) || len(c.Items) > 0 && b.full(c) || b.chunkRecords > 0 && b.next-first >= b.chunkRecords {
			break
		}
		b.load(c)
	}
	c.finish()
	return len(c.Items) > 0 || len(c.Sealed) > 0
}

// full reports whether c cannot take another item.
func (b *Builder) full(c *Chunk) bool {
	return len(c.Items) >= b.s.opts.MaxDocs || c.Bytes >= b.s.opts.MaxBytes
}

// load decodes the next record; its documents are emitted by emitDocs. A
// record that cannot be decoded becomes one dead-letter item at once.
func (b *Builder) load(c *Chunk) {
	i := b.next
	b.next++
	r := &b.recs[i]
	b.cur, b.docAt = i, 0
	b.at = Coordinates{ShardID: b.shard, SequenceNumber: r.SequenceNumber, SubSequence: r.SubSequence, PartitionKey: r.PartitionKey, Arrival: r.Arrival}
	b.pk = b.s.rules.RedactText(r.PartitionKey)
	if raw, ok := bytes.CutPrefix(r.Data, kinesis.BadKPLPrefix); ok {
		b.docs = b.docs[:0]
		b.deadLetterItem(c, i, "bad_kpl_aggregate", "KPL aggregate record that cannot be de-aggregated", raw)
		return
	}
	rec := decode.Record{Data: r.Data, PartitionKey: r.PartitionKey, SequenceNumber: r.SequenceNumber, SubSequence: r.SubSequence, Arrival: r.Arrival}
	docs, skipped, err := b.dec.Decode(&rec, b.docs[:0])
	switch {
	case err != nil:
		b.docs = b.docs[:0]
		reason, detail := "decode_error", err.Error()
		var f *decode.Failure
		if errors.As(err, &f) {
			reason, detail = f.Reason, f.Detail
		}
		b.deadLetterItem(c, i, reason, detail, r.Data)
	case skipped:
		b.docs = b.docs[:0]
		c.Skipped = append(c.Skipped, i)
	default:
		b.docs = docs
	}
}

// emitDocs moves the current record's documents into c until it is full;
// it reports true when c filled up before the record's last document.
func (b *Builder) emitDocs(c *Chunk) bool {
	for ; b.docAt < len(b.docs); b.docAt++ {
		if len(c.Items) > 0 && b.full(c) {
			return true
		}
		doc := &b.docs[b.docAt]
		if keep, rule := b.s.rules.Apply(doc); !keep {
			c.Dropped = append(c.Dropped, Drop{Record: b.cur, Rule: rule})
			continue
		}
		start := len(c.arena)
		c.arena = b.s.encode(c.arena, doc, &b.at, b.pk, b.readAt)
		c.add(essink.Item{
			Index:  b.s.index.Format(indexTime(doc.Timestamp, b.at.Arrival)),
			ID:     ID(b.s.opts.Stream, &b.at, doc.Event, kindDocument),
			Create: b.s.opts.DataStream,
		}, b.cur, doc.Event, start)
	}
	return false
}

// maxIndexSkew is how far a document's own time may be from its record's
// arrival in Kinesis and still pick its dated index.
const maxIndexSkew = 24 * time.Hour

// indexTime is the time a document's dated index is named for: its own
// time, unless that is more than maxIndexSkew from its record's arrival (a
// producer's clock gone wrong, old logs shipped late); then the arrival
// time, so that no document is sent to an index long since made read-only
// or deleted, where it would wait forever and hold its shard back.
func indexTime(ts, arrival time.Time) time.Time {
	if d := ts.Sub(arrival); d > maxIndexSkew || d < -maxIndexSkew {
		return arrival
	}
	return ts
}

// deadLetterItem adds the dead letter of record i, which cannot be decoded.
func (b *Builder) deadLetterItem(c *Chunk, i int, reason, detail string, raw []byte) {
	start := len(c.arena)
	var it essink.Item
	c.arena, it = b.s.appendDeadLetter(c.arena, deadLetter{at: &b.at, partitionKey: b.pk, readAt: b.readAt, reason: reason, detail: detail, raw: raw})
	c.add(it, i, 0, start)
}

// encode appends the document with the fields streambudget adds.
func (s *Schema) encode(b []byte, doc *decode.Doc, at *Coordinates, partitionKey string, readAt []byte) []byte {
	b = append(b, `{"@timestamp":"`...)
	b = doc.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","team":`...)
	b = decode.AppendString(b, s.opts.Team)
	b = append(b, `,"kinesis":`...)
	b = s.appendKinesis(b, at, partitionKey, readAt, doc.Event)
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
