package essink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/olivere/elastic/v7"

	"github.com/streambudget/streambudget/pkg/decode"
)

// Item is one document to write.
type Item struct {
	Index string
	ID    string
	// Create writes with op_type create (data streams accept nothing
	// else); a 409 then means the document is there already.
	Create bool
	// Source is the JSON document, on one line.
	Source []byte
	// DeadLetter is the reason when the item is a dead letter (for the
	// metrics), else "".
	DeadLetter string
}

// Status is what became of an item.
type Status uint8

// Item statuses.
const (
	// Pending: no final answer yet (Index was stopped).
	Pending Status = iota
	// Indexed: Elasticsearch confirmed the write.
	Indexed
	// Existed: a create was answered 409, the document is there already
	// (written by an earlier attempt or an earlier reader).
	Existed
	// Rejected: Elasticsearch refused the document itself (a mapping
	// conflict, too large alone); Reason and Detail say why. It is for the
	// caller to dead-letter it.
	Rejected
)

func (s Status) String() string {
	switch s {
	case Indexed:
		return "indexed"
	case Existed:
		return "existed"
	case Rejected:
		return "rejected"
	}
	return "pending"
}

// Result is what became of one item.
type Result struct {
	Status Status
	// Reason is a short label (Elasticsearch's error type, or too_large),
	// Detail the human text, for Rejected.
	Reason, Detail string
}

// Final reports whether the item has its final answer (Index sends it no
// more).
func (r Result) Final() bool { return r.Status != Pending }

// Written reports whether the cluster holds the item: indexed now or
// before. A rejected item is final but not written: its dead letter is.
func (r Result) Written() bool { return r.Status == Indexed || r.Status == Existed }

// Reasons the sink is blocked: Elasticsearch refuses the writes for a cause
// that no retry of one document fixes. The sink keeps retrying, slowly, and
// dead-letters nothing.
const (
	BlockedUnauthorized       = "unauthorized"         // 401: credentials missing or wrong
	BlockedForbidden          = "forbidden"            // 403: the credentials lack a privilege
	BlockedIndexNotFound      = "index_not_found"      // 404: the target does not exist and may not be created
	BlockedDataStreamMismatch = "data_stream_mismatch" // an index op into a data stream, or the reverse
)

// BlockedReasons lists the reasons, for metrics.
var BlockedReasons = []string{BlockedUnauthorized, BlockedForbidden, BlockedIndexNotFound, BlockedDataStreamMismatch}

// Index writes items and fills results[i] as item i gets its final answer:
// Indexed, Existed or Rejected. It returns when every item has one, or when
// ctx ends (with ctx's error; the items without a final answer stay
// Pending). Results already final when called are left alone, so a caller
// can call again with the same slices.
//
// What passes is retried with backoff for as long as it takes: connection
// errors, timeouts, 429 and 5xx, of the request or of an item. What blocks
// the sink (401, 403, 404 and a data-stream mismatch) is retried too, more
// slowly, with streambudget_sink_blocked set: it is not the document's
// fault, and dead-lettering it would hide an outage as a flood of dead
// letters. A request too large for the cluster (413) is split in halves; a
// single document still too large is Rejected as too_large.
func (s *Sink) Index(ctx context.Context, items []Item, results []Result) error {
	if len(results) != len(items) {
		return fmt.Errorf("index %d items with %d result slots", len(items), len(results))
	}
	todo := make([]int, 0, len(items))
	for i := range items {
		if !results[i].Final() {
			todo = append(todo, i)
		}
	}
	attempt := 0
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		var next []int
		var pause pause
		for start := 0; start < len(todo); {
			end := s.chunkEnd(items, todo, start)
			chunk := todo[start:end]
			start = end
			p, err := s.send(ctx, items, chunk, results)
			if err != nil {
				return err
			}
			pause = max(pause, p)
			for _, i := range chunk {
				if !results[i].Final() {
					next = append(next, i)
				}
			}
		}
		todo = next
		if len(todo) == 0 {
			break
		}
		attempt++
		if err := sleep(ctx, s.wait(pause, attempt)); err != nil {
			return err
		}
	}
	s.setBlocked("")
	return nil
}

// pause is how long a failed attempt makes the sink wait before the next.
type pause int

const (
	pauseShort   pause = iota // nothing failed for long: go again soon
	pauseBackoff              // a fault that passes: exponential backoff
	pauseBlocked              // the sink is blocked: the slow retry
)

func (s *Sink) wait(p pause, attempt int) time.Duration {
	switch p {
	case pauseBlocked:
		return max(s.backoff(attempt), s.opts.BlockedRetry)
	case pauseBackoff:
		return s.backoff(attempt)
	}
	return s.opts.MinBackoff
}

// backoff is the wait before attempt n: olivere's exponential backoff from
// MinBackoff, held at MaxBackoff once it gets there.
func (s *Sink) backoff(n int) time.Duration {
	if d, ok := s.bo.Next(n); ok {
		return d
	}
	return s.opts.MaxBackoff
}

// chunkEnd splits todo into requests of at most MaxDocsPerRequest documents
// and MaxBytesPerRequest bytes (a larger document goes alone).
func (s *Sink) chunkEnd(items []Item, todo []int, start int) int {
	size := 0
	end := start
	for end < len(todo) && end-start < s.opts.MaxDocsPerRequest {
		n := len(items[todo[end]].Source) + 128
		if end > start && size+n > s.opts.MaxBytesPerRequest {
			break
		}
		size += n
		end++
	}
	return end
}

// send sends one bulk request and records every item's answer in results.
// The error is only ever ctx's; a failed request leaves its items Pending
// and says how long to pause.
func (s *Sink) send(ctx context.Context, items []Item, chunk []int, results []Result) (pause, error) {
	resp, err := s.bulk(ctx, items, chunk)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var ee *elastic.Error
		status := 0
		if errors.As(err, &ee) {
			status = ee.Status
		}
		switch {
		case status == http.StatusRequestEntityTooLarge || status == http.StatusBadRequest:
			// The request as a whole was refused: find the documents that
			// make it so, by halves.
			if len(chunk) == 1 {
				i := chunk[0]
				results[i] = Result{Status: Rejected, Reason: "too_large",
					Detail: truncate(fmt.Sprintf("a bulk request with this document alone (%d bytes) was refused: %v", len(items[i].Source), err), maxDetail)}
				if status == http.StatusBadRequest {
					results[i].Reason = "bad_request"
				}
				s.m.retries.WithLabelValues("request_split").Inc()
				return pauseShort, nil
			}
			s.m.retries.WithLabelValues("request_split").Inc()
			half := len(chunk) / 2
			a, err := s.send(ctx, items, chunk[:half], results)
			if err != nil {
				return 0, err
			}
			b, err := s.send(ctx, items, chunk[half:], results)
			return max(a, b), err
		case status == http.StatusUnauthorized:
			s.block(BlockedUnauthorized, err)
			return pauseBlocked, nil
		case status == http.StatusForbidden:
			s.block(BlockedForbidden, err)
			return pauseBlocked, nil
		case status == http.StatusTooManyRequests:
			s.m.retries.WithLabelValues("request_429").Inc()
			return pauseBackoff, nil
		}
		s.m.retries.WithLabelValues("request_error").Inc()
		s.log.Warn("bulk request failed; retrying", "docs", len(chunk), "err", err)
		return pauseBackoff, nil
	}
	p := pauseShort
	for k, m := range resp.Items {
		i := chunk[k]
		var it *elastic.BulkResponseItem
		for _, v := range m {
			it = v
		}
		r, why := classify(it, items[i].Create)
		switch {
		case r.Status == Indexed || r.Status == Existed:
			results[i] = r
			if r.Status == Existed {
				s.m.replayed.Inc()
			}
			if items[i].DeadLetter != "" {
				s.m.deadLettered.WithLabelValues(items[i].DeadLetter).Inc()
			} else {
				s.m.indexed.Inc()
			}
		case r.Status == Rejected:
			results[i] = r
		case why.blocked != "":
			s.block(why.blocked, fmt.Errorf("%s", why.detail))
			p = max(p, pauseBlocked)
		default:
			s.m.retries.WithLabelValues(why.retry).Inc()
			p = max(p, pauseBackoff)
		}
	}
	if p < pauseBlocked {
		s.setBlocked("")
	}
	return p, nil
}

// block marks the sink blocked for reason and logs it once per change.
func (s *Sink) block(reason string, err error) {
	s.m.retries.WithLabelValues("blocked").Inc()
	if s.setBlocked(reason) {
		s.log.Error("Elasticsearch refuses the writes; retrying slowly, nothing is dead-lettered", "reason", reason, "err", err)
	}
}

// bulk sends one request. A response whose items do not match the request
// one for one is an error.
func (s *Sink) bulk(ctx context.Context, items []Item, chunk []int) (*elastic.BulkResponse, error) {
	svc := s.client.Bulk()
	reqs := make([]rawRequest, len(chunk))
	for k, i := range chunk {
		reqs[k] = newRawRequest(&items[i])
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
	result := "ok"
	if err != nil {
		result = "error"
		err = fmt.Errorf("bulk index %d docs: %w", len(chunk), err)
	}
	s.m.duration.WithLabelValues(result).Observe(elapsed)
	s.m.requests.WithLabelValues(result).Inc()
	return resp, err
}

// verdict says why an item without a final result was not confirmed.
type verdict struct {
	retry   string // the retries_total reason
	blocked string // a Blocked* reason
	detail  string
}

// dataStreamOnlyCreate is Elasticsearch's answer to an index op into a data
// stream (7.9 and later, OpenSearch 1 and 2).
const dataStreamOnlyCreate = "only write ops with an op_type of create are allowed in data streams"

// classify says what one item's answer means.
func classify(it *elastic.BulkResponseItem, create bool) (Result, verdict) {
	if it == nil {
		return Result{}, verdict{retry: "item_5xx"}
	}
	var errType, errReason string
	if it.Error != nil {
		errType, errReason = it.Error.Type, it.Error.Reason
	}
	detail := func() string { return itemDetail(it) }
	switch st := it.Status; {
	case st >= 200 && st < 300:
		return Result{Status: Indexed}, verdict{}
	case st == http.StatusConflict && create:
		return Result{Status: Existed}, verdict{}
	case st == http.StatusTooManyRequests:
		return Result{}, verdict{retry: "item_429"}
	case st >= 500 || st == 0:
		return Result{}, verdict{retry: "item_5xx"}
	case st == http.StatusUnauthorized:
		return Result{}, verdict{blocked: BlockedUnauthorized, detail: detail()}
	case st == http.StatusForbidden && errType == "cluster_block_exception":
		// A write block (read-only index, disk watermark): lifted by the
		// cluster, not by this document.
		return Result{}, verdict{retry: "item_blocked_index"}
	case st == http.StatusForbidden:
		return Result{}, verdict{blocked: BlockedForbidden, detail: detail()}
	case st == http.StatusNotFound || errType == "index_not_found_exception":
		return Result{}, verdict{blocked: BlockedIndexNotFound, detail: detail()}
	case strings.Contains(errReason, dataStreamOnlyCreate):
		return Result{}, verdict{blocked: BlockedDataStreamMismatch, detail: detail()}
	case st == http.StatusRequestEntityTooLarge:
		return Result{Status: Rejected, Reason: "too_large", Detail: detail()}, verdict{}
	}
	reason := "rejected"
	if reasonRe.MatchString(errType) {
		reason = errType
	}
	return Result{Status: Rejected, Reason: reason, Detail: detail()}, verdict{}
}

var reasonRe = regexp.MustCompile(`^[a-z_]{1,64}$`)

// maxDetail bounds a rejection's detail.
const maxDetail = 2048

func itemDetail(it *elastic.BulkResponseItem) string {
	detail := fmt.Sprintf("Elasticsearch answered %d", it.Status)
	if e := it.Error; e != nil {
		detail = fmt.Sprintf("Elasticsearch answered %d %s: %s", it.Status, e.Type, e.Reason)
		if e.CausedBy != nil {
			if r, ok := e.CausedBy["reason"].(string); ok {
				detail += " (caused by: " + r + ")"
			}
		}
	}
	return truncate(detail, maxDetail)
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
