package document

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/essink"
)

// What a dead letter's raw bytes are.
type rawKind int

const (
	// rawRecord: the record's own bytes, redacted where that is certain.
	rawRecord rawKind = iota
	// rawDocument: a document this package encoded, redacted already.
	rawDocument
	// rawWithheld: only the size and hash are kept.
	rawWithheld
)

// deadLetter describes one dead letter.
type deadLetter struct {
	at           *Coordinates
	partitionKey string // pattern-redacted
	readAt       []byte
	reason       string
	detail       string
	raw          []byte
	kind         rawKind
	withheld     string // why, for rawWithheld
	intended     string // the index the document was meant for
	event        int
}

// appendDeadLetter appends the dead letter and returns its item (its Source
// still to be pointed into b by the caller).
//
// The record's bytes are kept only where no secret can hide in them: a
// document this package encoded is redacted already, and a team without
// redaction rules has nothing to hide. Else the bytes are redacted with the
// built-in patterns when that is certain to find every match: valid UTF-8
// text with no backslash (JSON escapes can spell any character) and no field
// rule (field rules need the decoded document). Otherwise only the size, a
// SHA-256 and the coordinates are kept, and the dead letter says why.
func (s *Schema) appendDeadLetter(b []byte, d deadLetter) ([]byte, essink.Item) {
	keep, withheld := d.raw, d.withheld
	switch {
	case d.kind == rawWithheld:
	case d.kind == rawDocument || !s.redacts:
	case s.rules.HasFieldRules():
		withheld = "the team's field redaction rules need a decoded document"
	case !utf8.Valid(d.raw):
		withheld = "the bytes are not text"
	case bytes.IndexByte(d.raw, '\\') >= 0:
		withheld = "JSON escapes in the bytes can hide what the patterns look for"
	default:
		keep = []byte(s.rules.RedactText(string(d.raw)))
	}
	b = append(b, `{"@timestamp":"`...)
	b = d.at.Arrival.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","team":`...)
	b = decode.AppendString(b, s.opts.Team)
	b = append(b, `,"deadletter":{"reason":`...)
	b = decode.AppendString(b, d.reason)
	b = append(b, `,"detail":`...)
	detail := d.detail
	if withheld != "" {
		detail += "; raw bytes withheld: " + withheld
	}
	b = decode.AppendString(b, detail)
	if d.intended != "" {
		b = append(b, `,"index":`...)
		b = decode.AppendString(b, d.intended)
	}
	b = append(b, `,"raw_bytes":`...)
	b = strconv.AppendInt(b, int64(len(d.raw)), 10)
	sum := sha256.Sum256(d.raw)
	b = append(b, `,"raw_sha256":"`...)
	b = hex.AppendEncode(b, sum[:])
	b = append(b, '"')
	switch {
	case withheld != "":
		b = append(b, `,"raw_encoding":"withheld","withheld":`...)
		b = decode.AppendString(b, withheld)
	case utf8.Valid(keep):
		b = append(b, `,"raw_encoding":"utf-8","raw":`...)
		b = decode.AppendString(b, string(keep))
	default:
		b = append(b, `,"raw_encoding":"base64","raw":"`...)
		b = base64.StdEncoding.AppendEncode(b, keep)
		b = append(b, '"')
	}
	b = append(b, `},"kinesis":`...)
	b = s.appendKinesis(b, d.at, d.partitionKey, d.readAt, d.event)
	b = append(b, '}')
	return b, essink.Item{
		Index:      s.dlIndex.Format(d.at.Arrival),
		ID:         ID(s.opts.Stream, d.at, d.event, kindDeadLetter),
		Create:     s.opts.DeadLetterDataStream,
		DeadLetter: d.reason,
	}
}

// Rejected is the dead letter of a document Elasticsearch rejected for a
// reason of its own (a mapping conflict, say): the document as it was sent
// (redacted already), the reason and Elasticsearch's detail. at and event
// locate the document's record and its position in it; withheld, when not
// empty, keeps only the document's size and hash (a dead letter too large
// for the cluster itself, say) and says why.
func (s *Schema) Rejected(it essink.Item, at *Coordinates, event int, readAt time.Time, reason, detail, withheld string) essink.Item {
	kind := rawDocument
	if withheld != "" {
		kind = rawWithheld
	}
	b, dl := s.appendDeadLetter(make([]byte, 0, len(it.Source)+512), deadLetter{
		at: at, partitionKey: s.rules.RedactText(at.PartitionKey), readAt: readAt.UTC().AppendFormat(nil, time.RFC3339Nano),
		reason: reason, detail: s.rules.RedactText(detail), raw: it.Source, kind: kind, withheld: withheld,
		intended: it.Index, event: event,
	})
	dl.Source = b
	return dl
}
