package essink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/olivere/elastic/v7"

	"github.com/streambudget/streambudget/pkg/decode"
)

// Coordinates say where in Kinesis a document came from. Dead letters carry
// them so an operator can find the record.
type Coordinates struct {
	ShardID        string
	SequenceNumber string
	SubSequence    int
	PartitionKey   string
	Arrival        time.Time
}

// Item is one document to write.
type Item struct {
	Index string
	ID    string
	// Create uses op_type create (for data streams); a 409 then means the
	// document is there already, from an earlier attempt.
	Create bool
	// Source is the JSON document.
	Source []byte
	// At locates the record, for dead letters.
	At *Coordinates
	// Reason is set on dead-letter items: why the record is not indexed.
	Reason string
}

// DeadLetter builds the dead-letter item for a record that cannot be
// indexed: the raw bytes (base64 when they are not UTF-8), the reason, a
// human detail and the Kinesis coordinates. raw must already be redacted.
func (s *Sink) DeadLetter(at *Coordinates, id, reason, detail string, raw []byte, originalIndex string) Item {
	now := s.now().UTC()
	b := make([]byte, 0, len(raw)+512)
	b = append(b, `{"@timestamp":`...)
	b = decode.AppendString(b, now.Format(time.RFC3339Nano))
	b = append(b, `,"team":`...)
	b = decode.AppendString(b, s.opts.Team)
	b = append(b, `,"deadletter":{"reason":`...)
	b = decode.AppendString(b, reason)
	b = append(b, `,"detail":`...)
	b = decode.AppendString(b, detail)
	if originalIndex != "" {
		b = append(b, `,"index":`...)
		b = decode.AppendString(b, originalIndex)
	}
	if utf8.Valid(raw) {
		b = append(b, `,"raw_encoding":"utf-8","raw":`...)
		b = decode.AppendString(b, string(raw))
	} else {
		b = append(b, `,"raw_encoding":"base64","raw":"`...)
		b = base64.StdEncoding.AppendEncode(b, raw)
		b = append(b, '"')
	}
	b = append(b, '}')
	b = AppendKinesis(b, `,"kinesis":`, s.opts.Stream, at)
	b = append(b, '}')
	return Item{Index: s.dlIndex.Format(now), ID: id, Source: b, At: at, Reason: reason}
}

// AppendKinesis appends prefix and the kinesis object describing at.
func AppendKinesis(b []byte, prefix, stream string, at *Coordinates) []byte {
	b = append(b, prefix...)
	b = append(b, `{"stream":`...)
	b = decode.AppendString(b, stream)
	if at != nil {
		b = append(b, `,"shard_id":`...)
		b = decode.AppendString(b, at.ShardID)
		b = append(b, `,"sequence_number":`...)
		b = decode.AppendString(b, at.SequenceNumber)
		b = append(b, `,"sub_sequence":`...)
		b = strconv.AppendInt(b, int64(at.SubSequence), 10)
		b = append(b, `,"partition_key":`...)
		b = decode.AppendString(b, at.PartitionKey)
		b = append(b, `,"arrival":"`...)
		b = at.Arrival.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}

// outcome of one item in one attempt.
type outcome int

const (
	pending outcome = iota
	confirmed
	retry
	rejected
)

// Index writes items and returns once every one is confirmed: indexed,
// already present (409 on create), or replaced by a confirmed dead letter.
// confirmed[i] is set as item i is confirmed, so a caller that is stopped
// midway (ctx done: shutdown, lost lease) knows what is safe to checkpoint.
// The error is only ever ctx's.
func (s *Sink) Index(ctx context.Context, items []Item, done []bool) error {
	if len(done) != len(items) {
		return fmt.Errorf("index %d items with %d confirmation slots", len(items), len(done))
	}
	// todo holds the positions still to write; a rejected item's position is
	// kept and its slot is given its dead letter.
	work := make([]Item, len(items))
	copy(work, items)
	todo := make([]int, 0, len(items))
	for i := range items {
		if !done[i] {
			todo = append(todo, i)
		}
	}
	attempt := 0
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		var next []int
		// wait is set by anything that failed in a way worth a pause; fresh
		// dead letters alone go out at once.
		wait := false
		for start := 0; start < len(todo); {
			end := s.chunkEnd(work, todo, start)
			chunk := todo[start:end]
			start = end
			outs, err := s.bulk(ctx, work, chunk)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				wait = true
				s.m.retries.WithLabelValues("request_error").Inc()
				s.log.Warn("bulk request failed; retrying", "docs", len(chunk), "attempt", attempt+1, "err", err)
				next = append(next, chunk...)
				continue
			}
			for k, pos := range chunk {
				switch outs[k].kind {
				case confirmed:
					done[pos] = true
					if work[pos].Reason != "" {
						s.m.deadLettered.WithLabelValues(work[pos].Reason).Inc()
					} else {
						s.m.indexed.Inc()
					}
				case retry:
					wait = true
					s.m.retries.WithLabelValues(outs[k].reason).Inc()
					next = append(next, pos)
				case rejected:
					if work[pos].Reason != "" {
						// A dead letter itself was refused; it is never dropped.
						wait = true
						s.m.retries.WithLabelValues("dead_letter_rejected").Inc()
						s.log.Error("dead-letter document rejected; retrying", "index", work[pos].Index, "err", outs[k].detail)
						next = append(next, pos)
						continue
					}
					work[pos] = s.DeadLetter(work[pos].At, work[pos].ID, outs[k].reason, outs[k].detail, work[pos].Source, work[pos].Index)
					next = append(next, pos)
				}
			}
		}
		todo = next
		if len(todo) == 0 {
			break
		}
		if wait {
			attempt++
			if err := sleep(ctx, s.backoff(attempt)); err != nil {
				return err
			}
		} else {
			attempt = 0
		}
	}
	return nil
}

// chunkEnd splits todo into requests of at most MaxDocsPerRequest documents
// and MaxBytesPerRequest bytes (a larger document goes alone).
func (s *Sink) chunkEnd(work []Item, todo []int, start int) int {
	size := 0
	end := start
	for end < len(todo) && end-start < s.opts.MaxDocsPerRequest {
		n := len(work[todo[end]].Source) + 128
		if end > start && size+n > s.opts.MaxBytesPerRequest {
			break
		}
		size += n
		end++
	}
	return end
}

type itemOutcome struct {
	kind   outcome
	reason string
	detail string
}

var reasonRe = regexp.MustCompile(`^[a-z_]{1,64}$`)

// bulk sends one request and classifies every item of the response.
func (s *Sink) bulk(ctx context.Context, work []Item, chunk []int) ([]itemOutcome, error) {
	svc := s.client.Bulk()
	reqs := make([]rawRequest, len(chunk))
	for k, pos := range chunk {
		reqs[k] = newRawRequest(&work[pos])
		svc.Add(&reqs[k])
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	start := time.Now()
	resp, err := svc.Do(rctx)
	elapsed := time.Since(start).Seconds()
	if err == nil && (resp == nil || len(resp.Items) != len(chunk)) {
		got := 0
		if resp != nil {
			got = len(resp.Items)
		}
		err = fmt.Errorf("bulk response has %d items for %d documents", got, len(chunk))
	}
	if err != nil {
		s.m.duration.WithLabelValues("error").Observe(elapsed)
		s.m.requests.WithLabelValues("error").Inc()
		var ee *elastic.Error
		if errors.As(err, &ee) && ee.Status == http.StatusRequestEntityTooLarge && len(chunk) > 1 {
			// Too large as a whole: send the halves; they are retried at once.
			half := len(chunk) / 2
			a, errA := s.bulk(ctx, work, chunk[:half])
			if errA != nil {
				return nil, errA
			}
			b, errB := s.bulk(ctx, work, chunk[half:])
			if errB != nil {
				return nil, errB
			}
			return append(a, b...), nil
		}
		return nil, fmt.Errorf("bulk index %d docs: %w", len(chunk), err)
	}
	s.m.duration.WithLabelValues("ok").Observe(elapsed)
	s.m.requests.WithLabelValues("ok").Inc()
	outs := make([]itemOutcome, len(chunk))
	for k, m := range resp.Items {
		var it *elastic.BulkResponseItem
		for _, v := range m {
			it = v
		}
		outs[k] = classify(it, work[chunk[k]].Create)
	}
	return outs, nil
}

func classify(it *elastic.BulkResponseItem, create bool) itemOutcome {
	if it == nil {
		return itemOutcome{kind: retry, reason: "item_5xx"}
	}
	switch st := it.Status; {
	case st >= 200 && st < 300:
		return itemOutcome{kind: confirmed}
	case st == http.StatusConflict && create:
		return itemOutcome{kind: confirmed} // written by an earlier attempt
	case st == http.StatusTooManyRequests:
		return itemOutcome{kind: retry, reason: "item_429"}
	case st >= 500 || st == 0:
		return itemOutcome{kind: retry, reason: "item_5xx"}
	}
	reason, detail := "rejected", fmt.Sprintf("Elasticsearch answered %d", it.Status)
	if e := it.Error; e != nil {
		if reasonRe.MatchString(e.Type) {
			reason = e.Type
		}
		detail = fmt.Sprintf("Elasticsearch answered %d %s: %s", it.Status, e.Type, e.Reason)
		if e.CausedBy != nil {
			if r, ok := e.CausedBy["reason"].(string); ok {
				detail += " (caused by: " + r + ")"
			}
		}
	}
	return itemOutcome{kind: rejected, reason: reason, detail: truncate(detail, 2048)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// rawRequest is a bulk item whose lines are encoded already. Source hands
// olivere the lines without re-encoding the document.
type rawRequest struct {
	lines [2]string
}

func newRawRequest(it *Item) rawRequest {
	action := make([]byte, 0, 64+len(it.Index)+len(it.ID))
	if it.Create {
		action = append(action, `{"create":{"_index":`...)
	} else {
		action = append(action, `{"index":{"_index":`...)
	}
	action = decode.AppendString(action, it.Index)
	if it.ID != "" {
		action = append(action, `,"_id":`...)
		action = decode.AppendString(action, it.ID)
	}
	action = append(action, "}}"...)
	return rawRequest{lines: [2]string{string(action), string(it.Source)}}
}

func (r *rawRequest) Source() ([]string, error) { return r.lines[:], nil }
func (r *rawRequest) String() string            { return r.lines[0] }
