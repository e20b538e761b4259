// Package decode turns Kinesis records into documents to index: JSON lines,
// plain text and CloudWatch Logs subscription payloads (gzip).
//
// It is the per-record hot path, so it scans raw JSON bytes itself instead of
// building maps: a document's fields keep their values as the raw JSON bytes
// of the record, and a Decoder reuses its buffers from one record to the
// next.
package decode

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/streambudget/streambudget/pkg/budget"
)

// Record is one Kinesis record (after KPL de-aggregation).
type Record struct {
	Data           []byte
	PartitionKey   string
	SequenceNumber string
	SubSequence    int       // position of a KPL sub-record inside its aggregate; 0 otherwise
	Arrival        time.Time // ApproximateArrivalTimestamp
}

// Field is one top-level field of a document: Key is the unescaped key, Value
// the raw JSON value bytes (valid JSON).
type Field struct {
	Key   string
	Value []byte
}

// Doc is one document to index.
type Doc struct {
	// Fields are the top-level fields in input order with unique keys (a
	// duplicate key keeps its first position and its last value). The
	// reserved keys "@timestamp", "team" and "kinesis" are never in Fields:
	// the sink adds them. A record's own "@timestamp" becomes Timestamp, or
	// the field "@timestamp_raw" when it cannot be parsed.
	Fields []Field
	// Timestamp comes from the event's "@timestamp", "timestamp" or "time"
	// field (the first present, RFC 3339 or epoch seconds or milliseconds as
	// a number), from the log event's timestamp for CloudWatch Logs, else the
	// record's Arrival. Always UTC.
	Timestamp time.Time
	// Event is the index of this document in its record (the CloudWatch
	// logEvents position); 0 for single-document records.
	Event int
	// IsText is true when the document is {"message": <text>}: a record (or a
	// CloudWatch Logs message) that is not a JSON object, whatever it looks
	// like. Field redaction rules cannot see into it as fields.
	IsText bool
}

// Failure is why a record cannot be indexed. Reason is a short, bounded
// metric label; Detail is human text and never holds payload bytes.
type Failure struct {
	Reason string
	Detail string
}

func (f *Failure) Error() string { return "decode record: " + f.Reason + ": " + f.Detail }

// Failure reasons.
const (
	ReasonEmpty                = "empty_record"
	ReasonTooLarge             = "too_large"              // raw record over Options.MaxRecordBytes
	ReasonInvalidJSON          = "invalid_json"           // only with format json
	ReasonTooDeep              = "too_deep"               // nesting deeper than Options.MaxDepth
	ReasonInvalidUTF8          = "invalid_utf8"           // in text, or inside a JSON string
	ReasonBadGzip              = "bad_gzip"               // truncated or corrupt gzip
	ReasonDecompressedTooLarge = "decompressed_too_large" // inflates past Options.MaxDecompressedBytes
	ReasonBadCloudWatchLogs    = "bad_cloudwatch_logs"    // gzip fine but not a CloudWatch Logs payload of the expected shape
)

// Option defaults.
const (
	DefaultMaxRecordBytes       = 1<<20 + 1<<10
	DefaultMaxDecompressedBytes = budget.DefaultMaxDecompressedBytes
	DefaultMaxDepth             = 20 // Elasticsearch's index.mapping.depth.limit
)

// Options configure a Decoder. Zero values take the defaults.
type Options struct {
	// Format is one of budget.DecodeAuto (also the default and what an
	// unknown value means), DecodeJSON, DecodeText, DecodeCloudWatchLogs.
	Format               string
	MaxRecordBytes       int   // default DefaultMaxRecordBytes
	MaxDecompressedBytes int64 // default DefaultMaxDecompressedBytes
	MaxDepth             int   // default DefaultMaxDepth; counts objects and arrays
}

// Decoder decodes records of one format. It is for one goroutine at a time
// (one Decoder per shard) and reuses its buffers between calls.
type Decoder struct {
	opts Options

	fields []Field // arena for the Fields of this record's Docs
	buf    []byte  // arena for bytes the Docs point to (escaped text, unescaped messages)
	kbuf   []byte  // scratch: unescaped keys, timestamps
	stack  []byte  // scratch: the scanner's container stack

	keys  [keyCacheSize]string // interned keys, direct-mapped: records repeat the same few
	index map[string]int       // key -> position, for documents with many fields

	gz       *gzip.Reader
	gzSrc    bytes.Reader
	inflated []byte
}

const (
	keyCacheBits = 9
	keyCacheSize = 1 << keyCacheBits
	maxInternLen = 64 // longer keys are not interned
	linearFields = 16 // beyond this many fields, duplicates are found with a map
)

// New returns a Decoder for opts.
func New(opts Options) *Decoder {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if opts.MaxDecompressedBytes <= 0 {
		opts.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	switch opts.Format {
	case budget.DecodeJSON, budget.DecodeText, budget.DecodeCloudWatchLogs:
	default:
		opts.Format = budget.DecodeAuto
	}
	return &Decoder{opts: opts}
}

// Shrink lets go of buffers that grew past maxBytes (a large record or a
// gzip payload that inflated), so that a decoder kept between batches does
// not hold the peak of the last one. The next Decode allocates again as
// needed.
func (d *Decoder) Shrink(maxBytes int) {
	if cap(d.inflated) > maxBytes {
		d.inflated = nil
	}
	if cap(d.buf) > maxBytes {
		d.buf = nil
	}
	if cap(d.fields)*int(unsafe.Sizeof(Field{})) > maxBytes {
		d.fields = nil
	}
	if cap(d.kbuf) > maxBytes {
		d.kbuf = nil
	}
}

// Held is the bytes the decoder's buffers hold.
func (d *Decoder) Held() int {
	return cap(d.inflated) + cap(d.buf) + cap(d.kbuf) + cap(d.fields)*int(unsafe.Sizeof(Field{}))
}

// Decode appends the record's documents to dst and returns it.
//
// skipped is true for records that carry no log event by design (a
// CloudWatch Logs CONTROL_MESSAGE); they produce no docs. A record that
// cannot be decoded returns a *Failure and dst unchanged.
//
// The returned Docs point into rec.Data and into memory owned by the
// Decoder, which the next call to Decode reuses: encode them (or copy what
// you keep) before decoding the next record, and do not modify rec.Data
// meanwhile.
func (d *Decoder) Decode(rec *Record, dst []Doc) (docs []Doc, skipped bool, err error) {
	data := rec.Data
	if len(data) == 0 {
		return dst, false, &Failure{Reason: ReasonEmpty, Detail: "record has no data"}
	}
	if len(data) > d.opts.MaxRecordBytes {
		return dst, false, &Failure{Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("record is %d bytes, more than the limit of %d", len(data), d.opts.MaxRecordBytes)}
	}
	d.fields = d.fields[:0]
	d.buf = d.buf[:0]

	switch d.opts.Format {
	case budget.DecodeJSON:
		return d.decodeJSON(rec, dst)
	case budget.DecodeText:
		return d.decodeText(rec, dst)
	case budget.DecodeCloudWatchLogs:
		return d.decodeCloudWatch(rec, dst)
	}
	if isGzip(data) {
		return d.decodeCloudWatch(rec, dst)
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	if i := skipSpace(data, 0); i < len(data) && data[i] == '{' {
		if doc, code, _ := d.object(data, rec.Arrival); code == scanOK {
			return append(dst, doc), false, nil
		}
		d.fields = d.fields[:0]
	}
	return d.decodeText(rec, dst)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

func (d *Decoder) decodeJSON(rec *Record, dst []Doc) ([]Doc, bool, error) {
	data := bytes.TrimPrefix(rec.Data, utf8BOM)
	i := skipSpace(data, 0)
	if i < len(data) && data[i] == '{' {
		doc, code, off := d.object(data, rec.Arrival)
		if code != scanOK {
			return dst, false, scanFailure(code, off, d.opts.MaxDepth, ReasonInvalidJSON)
		}
		return append(dst, doc), false, nil
	}
	end, code := skipValue(data, i, 0, d.opts.MaxDepth, &d.stack)
	if code == scanOK && skipSpace(data, end) != len(data) {
		code = scanSyntax
		end = skipSpace(data, end)
	}
	if code != scanOK {
		return dst, false, scanFailure(code, end, d.opts.MaxDepth, ReasonInvalidJSON)
	}
	return append(dst, d.messageDoc(trimNewline(data), rec.Arrival)), false, nil
}

func (d *Decoder) decodeText(rec *Record, dst []Doc) ([]Doc, bool, error) {
	if !utf8.Valid(rec.Data) {
		return dst, false, &Failure{Reason: ReasonInvalidUTF8, Detail: "text is not valid UTF-8"}
	}
	return append(dst, d.messageDoc(trimNewline(rec.Data), rec.Arrival)), false, nil
}

// messageDoc is the document {"message": text}.
func (d *Decoder) messageDoc(text []byte, arrival time.Time) Doc {
	start := len(d.buf)
	d.buf = appendString(d.buf, text)
	return d.messageDocRaw(d.buf[start:len(d.buf):len(d.buf)], arrival)
}

// messageDocRaw is the document {"message": raw}, raw a JSON string literal.
func (d *Decoder) messageDocRaw(raw []byte, ts time.Time) Doc {
	start := len(d.fields)
	d.fields = append(d.fields, Field{Key: "message", Value: raw})
	return Doc{Fields: d.fields[start:len(d.fields):len(d.fields)], Timestamp: ts.UTC(), IsText: true}
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// scanFailure describes a scanner error; syntax is the reason for a syntax
// error (invalid_json, or bad_cloudwatch_logs for the envelope).
func scanFailure(code, off, maxDepth int, syntax string) *Failure {
	switch code {
	case scanUTF8:
		return &Failure{Reason: ReasonInvalidUTF8, Detail: fmt.Sprintf("string with invalid UTF-8 at byte %d", off)}
	case scanDepth:
		return &Failure{Reason: ReasonTooDeep, Detail: fmt.Sprintf("nesting deeper than %d at byte %d", maxDepth, off)}
	}
	return &Failure{Reason: syntax, Detail: fmt.Sprintf("invalid JSON at byte %d", off)}
}

// docState tracks the reserved and timestamp fields while a document's
// members are collected.
type docState struct {
	start   int    // first field of the document in d.fields
	seen    uint64 // one bit per key hash: a clear bit means the key is new
	atTS    []byte // value of "@timestamp", nil if absent
	tsIdx   int    // position of "timestamp" in the document, -1 if absent
	timeIdx int    // position of "time", -1 if absent
}

// object validates b as one JSON object (space around allowed, nothing
// else) and returns its document. On failure d.fields may hold garbage
// past its previous length; the caller truncates it.
func (d *Decoder) object(b []byte, arrival time.Time) (Doc, int, int) {
	st := d.newDoc()
	if code, off := d.members(b, &st); code != scanOK {
		return Doc{}, code, off
	}
	return d.finish(&st, arrival), scanOK, len(b)
}

func (d *Decoder) newDoc() docState {
	return docState{start: len(d.fields), tsIdx: -1, timeIdx: -1}
}

// members validates b as one JSON object and collects its members.
func (d *Decoder) members(b []byte, st *docState) (code, off int) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return scanSyntax, i
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			next, key, escaped, code := scanKey(b, i)
			if code != scanOK {
				return code, next
			}
			start := skipSpace(b, next)
			end, code := skipValue(b, start, 1, d.opts.MaxDepth, &d.stack)
			if code != scanOK {
				return code, end
			}
			k, h := d.key(key, escaped)
			d.member(st, k, h, b[start:end:end])
			i = skipSpace(b, end)
			if i >= len(b) {
				return scanSyntax, i
			}
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if b[i] != '}' {
				return scanSyntax, i
			}
			i++
			break
		}
	}
	if i = skipSpace(b, i); i != len(b) {
		return scanSyntax, i
	}
	return scanOK, i
}

// member adds one top-level member, setting the reserved keys aside.
func (d *Decoder) member(st *docState, key string, h uint32, value []byte) {
	switch key {
	case "@timestamp":
		st.atTS = value
		return
	case "team", "kinesis":
		return
	}
	i := d.add(st, key, h, value)
	switch key {
	case "timestamp":
		st.tsIdx = i
	case "time":
		st.timeIdx = i
	}
}

// set sets key to value in the document being built.
func (d *Decoder) set(st *docState, key string, value []byte) {
	d.add(st, key, keyHash(key), value)
}

// add sets key (whose keyHash is h) to value in the document being built
// and returns the field's position in the document.
func (d *Decoder) add(st *docState, key string, h uint32, value []byte) int {
	fs := d.fields[st.start:]
	n := len(fs)
	bit := uint64(1) << (h & 63)
	if n < linearFields {
		if st.seen&bit != 0 {
			for i := range fs {
				if fs[i].Key == key {
					fs[i].Value = value
					return i
				}
			}
		}
		st.seen |= bit
		d.fields = append(d.fields, Field{Key: key, Value: value})
		if n+1 == linearFields {
			if d.index == nil || len(d.index) > 4096 {
				d.index = make(map[string]int, 2*linearFields)
			} else {
				clear(d.index)
			}
			for i, f := range d.fields[st.start:] {
				d.index[f.Key] = i
			}
		}
		return n
	}
	if i, ok := d.index[key]; ok {
		fs[i].Value = value
		return i
	}
	d.index[key] = n
	d.fields = append(d.fields, Field{Key: key, Value: value})
	return n
}

// finish settles the timestamp and returns the document.
func (d *Decoder) finish(st *docState, arrival time.Time) Doc {
	var ts time.Time
	ok := false
	switch {
	case st.atTS != nil:
		if ts, ok = parseTimestamp(st.atTS, &d.kbuf); !ok {
			d.set(st, "@timestamp_raw", st.atTS)
		}
	case st.tsIdx >= 0:
		ts, ok = parseTimestamp(d.fields[st.start+st.tsIdx].Value, &d.kbuf)
	case st.timeIdx >= 0:
		ts, ok = parseTimestamp(d.fields[st.start+st.timeIdx].Value, &d.kbuf)
	}
	if !ok {
		ts = arrival.UTC()
	}
	end := len(d.fields)
	return Doc{Fields: d.fields[st.start:end:end], Timestamp: ts}
}

// key returns the unescaped key as a string and its keyHash. Keys are
// interned in a small direct-mapped cache, so the keys records repeat cost no
// allocation.
func (d *Decoder) key(raw []byte, escaped bool) (string, uint32) {
	if escaped {
		d.kbuf = appendUnescaped(d.kbuf[:0], raw)
		raw = d.kbuf
	}
	h := keyHash(raw)
	if len(raw) > maxInternLen {
		return string(raw), h
	}
	// Two-way: a key lives in slot i or its neighbour i^1.
	i := h >> (32 - keyCacheBits)
	if s := d.keys[i]; s == string(raw) {
		return s, h
	}
	if s := d.keys[i^1]; s == string(raw) {
		return s, h
	}
	s := string(raw)
	if d.keys[i] != "" {
		d.keys[i^1] = d.keys[i]
	}
	d.keys[i] = s
	return s, h
}

// keyHash is a cheap hash of a key: its length and a few of its bytes.
func keyHash[T string | []byte](k T) uint32 {
	n := len(k)
	h := uint32(n) * 0x9E3779B1
	if n > 0 {
		h ^= uint32(k[0]) | uint32(k[n-1])<<8 | uint32(k[n/2])<<16 | uint32(k[(n-1)/3])<<24
	}
	h ^= h >> 15
	h *= 0x85EBCA6B
	h ^= h >> 13
	return h
}
