package decode

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
)

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func cwPayload(events ...string) string {
	return `{"messageType":"DATA_MESSAGE","owner":"123","logGroup":"/aws/lambda/f","logStream":"s",` +
		`"subscriptionFilters":["sf"],"logEvents":[` + strings.Join(events, ",") + `]}`
}

// bomb is gzip data that inflates to n zero bytes; 20 MiB compress to ~20 KB.
func bomb(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(zeros))
		if _, err := w.Write(zeros[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const cwMeta = `"cloudwatch":{"logGroup":"/aws/lambda/f","logStream":"s","owner":"123","id":"e1"}`

func TestDecodeCloudWatchLogs(t *testing.T) {
	cw := budget.DecodeCloudWatchLogs
	ev := func(msg string) string { return `{"id":"e1","timestamp":1715678493512,"message":` + msg + `}` }
	valid := gz(t, cwPayload(ev(`"hello"`)))
	cases := []struct {
		name    string
		format  string
		data    []byte
		want    []string
		skipped bool
		reason  string
	}{
		{name: "text event", format: cw, data: valid, want: []string{`{"message":"hello",` + cwMeta + `}`}},
		{name: "auto detects gzip", format: budget.DecodeAuto, data: valid, want: []string{`{"message":"hello",` + cwMeta + `}`}},
		{name: "JSON event", format: cw, data: gz(t, cwPayload(ev(`"{\"level\":\"warn\",\"n\":[1],\"team\":\"x\"}\n"`))),
			want: []string{`{"level":"warn","n":[1],` + cwMeta + `}`}},
		{name: "JSON event replaces its own cloudwatch", format: cw, data: gz(t, cwPayload(ev(`"{\"cloudwatch\":1,\"a\":2}"`))),
			want: []string{`{"cloudwatch":{"logGroup":"/aws/lambda/f","logStream":"s","owner":"123","id":"e1"},"a":2}`}},
		{name: "invalid JSON event is text", format: cw, data: gz(t, cwPayload(ev(`"{\"level\":"`))),
			want: []string{`{"message":"{\"level\":",` + cwMeta + `}`}},
		{name: "too deep JSON event is text", format: cw, data: gz(t, cwPayload(ev(`"{\"a\":`+strings.Repeat("[", 30)+strings.Repeat("]", 30)+`}"`))),
			want: []string{`{"message":"{\"a\":` + strings.Repeat("[", 30) + strings.Repeat("]", 30) + `}",` + cwMeta + `}`}},
		{name: "trailing newline trimmed", format: cw, data: gz(t, cwPayload(ev(`"START RequestId: 1\tVersion: 2\n"`))),
			want: []string{`{"message":"START RequestId: 1\tVersion: 2",` + cwMeta + `}`}},
		{name: "several events", format: cw,
			data: gz(t, cwPayload(`{"id":"a","timestamp":1,"message":"one"}`, `{"timestamp":2,"message":"two","extra":true}`)),
			want: []string{
				`{"message":"one","cloudwatch":{"logGroup":"/aws/lambda/f","logStream":"s","owner":"123","id":"a"}}`,
				`{"message":"two","cloudwatch":{"logGroup":"/aws/lambda/f","logStream":"s","owner":"123"}}`,
			}},
		{name: "no events: CloudWatch Logs sends none, so it is dead-lettered", format: cw, data: gz(t, cwPayload()), reason: ReasonBadCloudWatchLogs},
		{name: "control message", format: cw, skipped: true,
			data: gz(t, `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}`)},
		{name: "not gzip", format: cw, data: []byte(`{"messageType":"DATA_MESSAGE"}`), reason: ReasonBadGzip},
		{name: "truncated gzip", format: cw, data: valid[:len(valid)-10], reason: ReasonBadGzip},
		{name: "only the magic", format: cw, data: []byte{0x1f, 0x8b}, reason: ReasonBadGzip},
		{name: "corrupt checksum", format: cw, data: flipByte(valid, len(valid)-6), reason: ReasonBadGzip},
		{name: "not JSON", format: cw, data: gz(t, "hello"), reason: ReasonBadCloudWatchLogs},
		{name: "empty payload", format: cw, data: gz(t, ""), reason: ReasonBadCloudWatchLogs},
		{name: "invalid JSON", format: cw, data: gz(t, `{"messageType":"DATA_MESSAGE",`), reason: ReasonBadCloudWatchLogs},
		{name: "array", format: cw, data: gz(t, `[]`), reason: ReasonBadCloudWatchLogs},
		{name: "missing logEvents", format: cw, data: gz(t, `{"messageType":"DATA_MESSAGE","logGroup":"g"}`), reason: ReasonBadCloudWatchLogs},
		{name: "logEvents not an array", format: cw, data: gz(t, `{"messageType":"DATA_MESSAGE","logEvents":{}}`), reason: ReasonBadCloudWatchLogs},
		{name: "missing messageType", format: cw, data: gz(t, `{"logEvents":[]}`), reason: ReasonBadCloudWatchLogs},
		{name: "unknown messageType", format: cw, data: gz(t, `{"messageType":"OTHER","logEvents":[]}`), reason: ReasonBadCloudWatchLogs},
		{name: "messageType not a string", format: cw, data: gz(t, `{"messageType":1,"logEvents":[]}`), reason: ReasonBadCloudWatchLogs},
		{name: "logGroup not a string", format: cw, data: gz(t, `{"messageType":"DATA_MESSAGE","logGroup":[],"logEvents":[]}`), reason: ReasonBadCloudWatchLogs},
		{name: "event not an object", format: cw, data: gz(t, cwPayload(`"x"`)), reason: ReasonBadCloudWatchLogs},
		{name: "message not a string", format: cw, data: gz(t, cwPayload(`{"timestamp":1,"message":{"a":1}}`)), reason: ReasonBadCloudWatchLogs},
		{name: "missing timestamp", format: cw, data: gz(t, cwPayload(`{"message":"m"}`)), reason: ReasonBadCloudWatchLogs},
		{name: "timestamp a string", format: cw, data: gz(t, cwPayload(`{"timestamp":"1","message":"m"}`)), reason: ReasonBadCloudWatchLogs},
		{name: "id not a string", format: cw, data: gz(t, cwPayload(`{"id":1,"timestamp":1,"message":"m"}`)), reason: ReasonBadCloudWatchLogs},
		{name: "bad second event", format: cw, data: gz(t, cwPayload(ev(`"ok"`), `{"timestamp":1}`)), reason: ReasonBadCloudWatchLogs},
		{name: "invalid UTF-8", format: cw, data: gz(t, cwPayload(ev("\"\xff\""))), reason: ReasonInvalidUTF8},
		{name: "too deep envelope", format: cw, data: gz(t, `{"messageType":"DATA_MESSAGE","x":`+strings.Repeat("[", 10000)+`}`), reason: ReasonTooDeep},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, skipped, err := decodeRecord(t, Options{Format: tc.format}, tc.data)
			if got := reasonOf(err); got != tc.reason {
				t.Fatalf("failure reason: got %q (%v), want %q", got, err, tc.reason)
			}
			if skipped != tc.skipped {
				t.Errorf("skipped: got %v, want %v", skipped, tc.skipped)
			}
			var got []string
			for _, d := range docs {
				got = append(got, render(d))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("docs:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func flipByte(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0xff
	return c
}

func TestCloudWatchEventFields(t *testing.T) {
	data := gz(t, string(readFixture(t, "cloudwatch50.json")))
	docs, _, err := decodeRecord(t, Options{Format: budget.DecodeCloudWatchLogs}, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 50 {
		t.Fatalf("docs: got %d, want 50", len(docs))
	}
	for i, doc := range docs {
		if doc.Event != i {
			t.Errorf("doc %d: Event got %d, want %d", i, doc.Event, i)
		}
		want := time.UnixMilli(1715678493000 + int64(i)*17).UTC()
		if !doc.Timestamp.Equal(want) {
			t.Errorf("doc %d: Timestamp got %v, want %v", i, doc.Timestamp, want)
		}
		out := render(doc)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("doc %d: %v in %s", i, err, out)
		}
		if _, ok := m["cloudwatch"].(map[string]any)["id"]; !ok {
			t.Errorf("doc %d: no cloudwatch.id in %s", i, out)
		}
		_, isJSON := m["level"]
		if isJSON != (i%5 != 0 && i%5 != 4) {
			t.Errorf("doc %d: JSON message expanded got %v in %s", i, isJSON, out)
		}
	}
}

func TestGzipBomb(t *testing.T) {
	b := bomb(t, 20<<20)
	if len(b) > 40<<10 {
		t.Fatalf("bomb is %d bytes, want about 20 KB", len(b))
	}
	cases := []struct {
		name string
		max  int64
	}{
		{name: "default limit", max: 0},
		{name: "small limit", max: 256 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{Format: budget.DecodeCloudWatchLogs, MaxDecompressedBytes: tc.max})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := d.Decode(&Record{Data: b}, nil)
			runtime.ReadMemStats(&after)
			if got := reasonOf(err); got != ReasonDecompressedTooLarge {
				t.Fatalf("failure reason: got %q (%v), want %q", got, err, ReasonDecompressedTooLarge)
			}
			if got := int64(cap(d.inflated)); got > d.opts.MaxDecompressedBytes {
				t.Errorf("inflate buffer: got %d bytes, want at most %d", got, d.opts.MaxDecompressedBytes)
			}
			// The buffer doubles up to the limit, so all of it adds up to
			// under twice the limit, plus the gzip reader's own state.
			if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(2*d.opts.MaxDecompressedBytes+256<<10); got > limit {
				t.Errorf("allocated %d bytes, want at most %d", got, limit)
			}
		})
	}
}

func TestGzipAtTheLimit(t *testing.T) {
	payload := cwPayload(`{"id":"1","timestamp":1,"message":"x"}`)
	cases := []struct {
		name   string
		max    int64
		reason string
	}{
		{name: "exactly the limit", max: int64(len(payload))},
		{name: "one byte over", max: int64(len(payload) - 1), reason: ReasonDecompressedTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeRecord(t, Options{Format: budget.DecodeCloudWatchLogs, MaxDecompressedBytes: tc.max}, gz(t, payload))
			if got := reasonOf(err); got != tc.reason {
				t.Errorf("failure reason: got %q (%v), want %q", got, err, tc.reason)
			}
		})
	}
}
