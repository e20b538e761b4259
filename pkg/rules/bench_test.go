package rules

import (
	"testing"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
)

// benchLine is a realistic 512-byte log line that no rule drops.
const benchLine = `{"@timestamp":"2024-05-14T09:21:33.512Z","level":"INFO","logger":"com.example.PaymentService",` +
	`"thread":"http-exec-17","message":"payment authorised for order 9f1c2e7a-4b1d-4c55-9a0e-7d2f3b8c1e44 amount=129.95 ` +
	`currency=EUR provider=adyen latency_ms=183","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",` +
	`"service":"checkout","env":"prod","host":"ip-10-12-34-56.eu-west-1.compute.internal","http":{"method":"POST",` +
	`"path":"/api/v1/payments","status":200},"user_id":48213377,"password":"s3cr3t","retry":false}`

var (
	benchDrops = []budget.DropRule{
		{Name: "debug", Field: "level", In: []string{"DEBUG", "TRACE"}},
		{Name: "debug-text", Contains: "[DEBUG]"},
		{Name: "health", Regex: `^GET /health`},
	}
	benchRedacts = []budget.RedactRule{{Field: "password"}, {Pattern: budget.PatternEmail}}
)

// BenchmarkApply runs 3 drop rules (in, contains, regex) and 2 redactions
// (a field, the email pattern) on a 512-byte document that is kept.
func BenchmarkApply(b *testing.B) {
	s := compile(b, benchDrops, benchRedacts)
	doc := newDoc(b, benchLine)
	fields := append([]decode.Field(nil), doc.Fields...)
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	for b.Loop() {
		copy(doc.Fields, fields)
		if keep, _ := s.Apply(doc); !keep {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkApplyRedactEmail is BenchmarkApply on a line holding an email
// address, which costs a new value.
func BenchmarkApplyRedactEmail(b *testing.B) {
	s := compile(b, benchDrops, benchRedacts)
	doc := newDoc(b, `{"level":"INFO","message":"password reset mail sent to jane.doe@example.com for account 48213377","service":"auth"}`)
	fields := append([]decode.Field(nil), doc.Fields...)
	b.ReportAllocs()
	for b.Loop() {
		copy(doc.Fields, fields)
		s.Apply(doc)
	}
}

// BenchmarkApplyAllPatterns runs every built-in detector on the line.
func BenchmarkApplyAllPatterns(b *testing.B) {
	s := compile(b, nil, []budget.RedactRule{{Pattern: budget.PatternEmail}, {Pattern: budget.PatternCreditCard},
		{Pattern: budget.PatternAWSAccessKey}, {Pattern: budget.PatternBearerToken}})
	doc := newDoc(b, benchLine)
	fields := append([]decode.Field(nil), doc.Fields...)
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	for b.Loop() {
		copy(doc.Fields, fields)
		s.Apply(doc)
	}
}

// BenchmarkPipeline is decode + rules + rendering of the fields, the
// per-record work minus the sink's envelope.
func BenchmarkPipeline(b *testing.B) {
	s := compile(b, benchDrops, benchRedacts)
	d := decode.New(decode.Options{})
	rec := &decode.Record{Data: []byte(benchLine)}
	var docs []decode.Doc
	var out []byte
	b.SetBytes(int64(len(benchLine)))
	b.ReportAllocs()
	for b.Loop() {
		docs, _, _ = d.Decode(rec, docs[:0])
		for i := range docs {
			if keep, _ := s.Apply(&docs[i]); keep {
				out = docs[i].AppendFields(out[:0])
			}
		}
	}
}
