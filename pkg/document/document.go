// Package document is the one home of what streambudget writes: it turns a
// shard's Kinesis records into bulk items (decode -> drop and redact rules
// -> encode), derives every document's _id from its place in the stream,
// and builds the dead letters of records that cannot be indexed. Nothing
// else decides what a document looks like.
//
// A document is the record's own fields plus:
//
//	@timestamp   the event's time (see decode.Doc.Timestamp), UTC
//	team         the team
//	kinesis      stream, shard_id, sequence_number, sub_sequence,
//	             partition_key (pattern-redacted), arrival, read_at, event
//
// A dead letter is {"@timestamp", "team", "deadletter": {reason, detail,
// index, raw_encoding, raw, raw_bytes, raw_sha256}, "kinesis": {...}}, its
// @timestamp and index date taken from the record's arrival and its _id
// from the record's coordinates, so that a replay on another day writes the
// same dead letter again, not a second one.
package document

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/rules"
)

// Options say what a team's documents look like and where they go.
type Options struct {
	Team, Stream string
	// Index is the target: a data stream name, or a dated index pattern.
	Index string
	// DataStream says Index names a data stream: documents are written
	// with op_type create.
	DataStream bool
	// DeadLetterIndex is the dead-letter target, and DeadLetterDataStream
	// whether it is a data stream.
	DeadLetterIndex      string
	DeadLetterDataStream bool
	Drop                 []budget.DropRule
	Redact               []budget.RedactRule
	Decode               decode.Options
	// MaxDocs and MaxBytes bound one chunk of items (one bulk request);
	// defaults 1,000 documents and 5 MiB.
	MaxDocs, MaxBytes int
}

// Chunk defaults.
const (
	DefaultMaxDocs  = 1000
	DefaultMaxBytes = 5 << 20
)

// Schema is a team's compiled document settings, shared read-only by every
// shard's Builder.
type Schema struct {
	opts    Options
	index   *budget.IndexPattern
	dlIndex *budget.IndexPattern
	rules   *rules.Set
	// redacts is whether the team has any redaction rule: dead letters of
	// records that cannot be redacted with certainty then keep no raw bytes.
	redacts bool
}

// New compiles a team's document settings.
func New(opts Options) (*Schema, error) {
	if opts.MaxDocs <= 0 {
		opts.MaxDocs = DefaultMaxDocs
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	idx, err := budget.ParseIndexPattern(opts.Index)
	if err != nil {
		return nil, fmt.Errorf("index %q: %w", opts.Index, err)
	}
	dl, err := budget.ParseIndexPattern(opts.DeadLetterIndex)
	if err != nil {
		return nil, fmt.Errorf("dead-letter index %q: %w", opts.DeadLetterIndex, err)
	}
	rs, err := rules.Compile(opts.Drop, opts.Redact)
	if err != nil {
		return nil, fmt.Errorf("compile rules: %w", err)
	}
	return &Schema{opts: opts, index: idx, dlIndex: dl, rules: rs, redacts: len(opts.Redact) > 0}, nil
}

// Rules are the team's compiled drop and redaction rules.
func (s *Schema) Rules() *rules.Set { return s.rules }

// Coordinates say where in Kinesis a record came from.
type Coordinates struct {
	ShardID        string
	SequenceNumber string
	// SubSequence is the position of a KPL sub-record in its aggregate.
	SubSequence  int
	PartitionKey string
	Arrival      time.Time
}

// ID is a document's _id: derived from its place in the stream, so that a
// replay after a crash overwrites (or, with create, is refused as already
// there) instead of adding a second copy. event is the document's position
// in its record (CloudWatch Logs events); kind tells documents from dead
// letters.
func ID(stream string, at *Coordinates, event int, kind byte) string {
	var buf [192]byte // stream (<=128) is the longest part; sequence numbers are 56 digits
	b := append(buf[:0], stream...)
	b = append(b, 0)
	b = append(b, at.ShardID...)
	b = append(b, 0)
	b = append(b, at.SequenceNumber...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(at.SubSequence), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(event), 10)
	if kind != 0 {
		b = append(b, 0, kind)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// Kinds of ID.
const (
	kindDocument   = 0
	kindDeadLetter = 'd'
)

// appendKinesis appends the kinesis object: where the record came from and
// when it was read; the partition key with the built-in patterns redacted.
func (s *Schema) appendKinesis(b []byte, at *Coordinates, partitionKey string, readAt []byte, event int) []byte {
	b = append(b, `{"stream":`...)
	b = decode.AppendString(b, s.opts.Stream)
	b = append(b, `,"shard_id":`...)
	b = decode.AppendString(b, at.ShardID)
	b = append(b, `,"sequence_number":`...)
	b = decode.AppendString(b, at.SequenceNumber)
	b = append(b, `,"sub_sequence":`...)
	b = strconv.AppendInt(b, int64(at.SubSequence), 10)
	b = append(b, `,"partition_key":`...)
	b = decode.AppendString(b, partitionKey)
	b = append(b, `,"arrival":"`...)
	b = at.Arrival.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(readAt) > 0 {
		b = append(b, `,"read_at":"`...)
		b = append(b, readAt...)
		b = append(b, '"')
	}
	if event > 0 {
		b = append(b, `,"event":`...)
		b = strconv.AppendInt(b, int64(event), 10)
	}
	return append(b, '}')
}
