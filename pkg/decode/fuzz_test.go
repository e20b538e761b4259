package decode

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/streambudget/streambudget/pkg/budget"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/.

// fuzzOptions keeps fuzzing fast: small limits, same code paths.
func fuzzOptions(format string) Options {
	return Options{Format: format, MaxRecordBytes: 16 << 10, MaxDecompressedBytes: 64 << 10}
}

// checkDocs is the property every format shares: no panic (implicit), and
// when there is no failure every document renders as valid JSON and UTF-8.
func checkDocs(t *testing.T, docs []Doc, err error) {
	t.Helper()
	if err != nil {
		if _, ok := err.(*Failure); !ok {
			t.Fatalf("error %v is not a *Failure", err)
		}
		if len(docs) != 0 {
			t.Fatalf("failure with %d docs", len(docs))
		}
		return
	}
	for i, d := range docs {
		out := []byte(render(d))
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("doc %d renders invalid JSON or UTF-8: %q", i, out)
		}
		if d.Timestamp.Location().String() != "UTC" {
			t.Fatalf("doc %d timestamp %v is not UTC", i, d.Timestamp)
		}
		for _, f := range d.Fields {
			switch f.Key {
			case "@timestamp", "team", "kinesis":
				t.Fatalf("doc %d holds reserved key %q", i, f.Key)
			}
		}
	}
}

func fuzzFormat(f *testing.F, format string) {
	d := New(fuzzOptions(format))
	var docs []Doc
	f.Fuzz(func(t *testing.T, data []byte) {
		var err error
		docs, _, err = d.Decode(&Record{Data: data, Arrival: arrival}, docs[:0])
		checkDocs(t, docs, err)
	})
}

func FuzzDecodeJSON(f *testing.F) { fuzzFormat(f, budget.DecodeJSON) }
func FuzzDecodeText(f *testing.F) { fuzzFormat(f, budget.DecodeText) }
func FuzzDecodeAuto(f *testing.F) { fuzzFormat(f, budget.DecodeAuto) }

var gzipWriters = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, gzip.NoCompression); return w }}

// FuzzDecodeCloudWatchLogs fuzzes the payload inside the gzip (compress true)
// as well as the gzip stream itself (compress false). The payload is stored
// without compression: that is cheap, and keeps the compressor's branches
// (which depend on the data) out of the coverage the fuzzer chases.
func FuzzDecodeCloudWatchLogs(f *testing.F) {
	d := New(fuzzOptions(budget.DecodeCloudWatchLogs))
	var docs []Doc
	f.Fuzz(func(t *testing.T, data []byte, compress bool) {
		if compress {
			var b bytes.Buffer
			w := gzipWriters.Get().(*gzip.Writer)
			w.Reset(&b)
			w.Write(data)
			w.Close()
			gzipWriters.Put(w)
			data = b.Bytes()
		}
		var err error
		docs, _, err = d.Decode(&Record{Data: data, Arrival: arrival}, docs[:0])
		checkDocs(t, docs, err)
	})
}
