package decode

import (
	"encoding/json"
	"testing"

	"github.com/streambudget/streambudget/pkg/budget"
)

func benchDecode(b *testing.B, opts Options, data []byte, perRecord int) {
	d := New(opts)
	rec := &Record{Data: data, Arrival: arrival}
	var docs []Doc
	var out []byte
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		docs, _, err = d.Decode(rec, docs[:0])
		if err != nil || len(docs) != perRecord {
			b.Fatalf("got %d docs and %v, want %d docs", len(docs), err, perRecord)
		}
		for i := range docs {
			out = docs[i].AppendFields(out[:0])
		}
	}
	if perRecord > 1 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRecord), "ns/record")
	}
}

// BenchmarkDecodeJSON decodes and renders a 512-byte JSON log line.
func BenchmarkDecodeJSON(b *testing.B) {
	benchDecode(b, Options{Format: budget.DecodeJSON}, readFixture(b, "log512.json"), 1)
}

// BenchmarkDecodeAutoJSON is the same line in the default format.
func BenchmarkDecodeAutoJSON(b *testing.B) {
	benchDecode(b, Options{}, readFixture(b, "log512.json"), 1)
}

func BenchmarkDecodeText(b *testing.B) {
	line := []byte("2024-05-14 09:21:33.512 INFO  [http-exec-17] c.e.PaymentService - payment authorised for order " +
		"9f1c2e7a-4b1d-4c55-9a0e-7d2f3b8c1e44 amount=129.95 currency=EUR provider=adyen latency_ms=183 " +
		"trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 service=checkout env=prod " +
		"host=ip-10-12-34-56.eu-west-1.compute.internal method=POST path=/api/v1/payments status=200 " +
		"user_id=48213377 retry=false region=eu-west-1 az=eu-west-1a pod=checkout-7d9f8b6c5-x2x9k " +
		"\"quoted\" tab\there\n")
	benchDecode(b, Options{Format: budget.DecodeText}, line, 1)
}

// BenchmarkDecodeCloudWatchLogs decodes a gzip batch of 50 log events, two
// fifths plain text and three fifths JSON.
func BenchmarkDecodeCloudWatchLogs(b *testing.B) {
	benchDecode(b, Options{Format: budget.DecodeCloudWatchLogs}, gz(b, string(readFixture(b, "cloudwatch50.json"))), 50)
}

// BenchmarkNaiveJSON is the baseline the decoder is measured against:
// encoding/json into map[string]any and back.
func BenchmarkNaiveJSON(b *testing.B) {
	data := readFixture(b, "log512.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			b.Fatal(err)
		}
		delete(m, "@timestamp")
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}
