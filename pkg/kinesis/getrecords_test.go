package kinesis

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// cannedHTTP answers every request with one status and body, and then
// readErr (a connection reset, say) if set.
type cannedHTTP struct {
	status  int
	body    []byte
	readErr error
}

func (c cannedHTTP) Do(*http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.1")
	var body io.Reader = bytes.NewReader(c.body)
	if c.readErr != nil {
		body = io.MultiReader(body, iotest.ErrReader(c.readErr))
	}
	return &http.Response{StatusCode: c.status, Header: h, Body: io.NopCloser(body), ContentLength: -1}, nil
}

// getRecordsWith decodes one canned answer through a real client, with the
// SDK's deserializer or with FastGetRecords.
func getRecordsWith(t testing.TB, fast bool, status int, body []byte) (*kinesis.GetRecordsOutput, error) {
	t.Helper()
	return getRecordsFrom(t, fast, cannedHTTP{status: status, body: body})
}

func getRecordsFrom(t testing.TB, fast bool, answer cannedHTTP) (*kinesis.GetRecordsOutput, error) {
	t.Helper()
	opts := kinesis.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{},
		BaseEndpoint: aws.String("http://kinesis.test"), HTTPClient: answer,
		RetryMaxAttempts: 1}
	if fast {
		opts.APIOptions = append(opts.APIOptions, FastGetRecords)
	}
	return kinesis.New(opts).GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String("it")})
}

// sameGetRecords fails the test unless both decoders give the same output,
// or both fail.
func sameGetRecords(t testing.TB, status int, body []byte) {
	t.Helper()
	want, werr := getRecordsWith(t, false, status, body)
	got, gerr := getRecordsWith(t, true, status, body)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("body %.200q: SDK error %v, fast error %v", body, werr, gerr)
	}
	if werr != nil {
		return
	}
	if !reflect.DeepEqual(want.Records, got.Records) || !reflect.DeepEqual(want.ChildShards, got.ChildShards) ||
		!reflect.DeepEqual(want.NextShardIterator, got.NextShardIterator) || !reflect.DeepEqual(want.MillisBehindLatest, got.MillisBehindLatest) {
		t.Fatalf("body %.300q:\nSDK  %+v\nfast %+v", body, want, got)
	}
}

// randomGetRecords writes a GetRecords answer as Kinesis would.
func randomGetRecords(r *rand.Rand) []byte {
	var b strings.Builder
	b.WriteString(`{"Records":[`)
	for i := range r.IntN(50) {
		if i > 0 {
			b.WriteByte(',')
		}
		data := make([]byte, r.IntN(600))
		for j := range data {
			data[j] = byte(r.IntN(256))
		}
		at := time.UnixMilli(1700000000000 + r.Int64N(1e9))
		fmt.Fprintf(&b, `{"SequenceNumber":"4959%020d","ApproximateArrivalTimestamp":%.3f,"Data":"%s","PartitionKey":"key-%d"`,
			r.Int64N(1e18), float64(at.UnixMilli())/1e3, base64.StdEncoding.EncodeToString(data), r.IntN(100))
		if r.IntN(3) == 0 {
			b.WriteString(`,"EncryptionType":"KMS"`)
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(&b, `],"NextShardIterator":"AAAA%d","MillisBehindLatest":%d`, r.Int64(), r.Int64N(86400000))
	if r.IntN(4) == 0 {
		b.WriteString(`,"ChildShards":[{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000","shardId-000000000001"],` +
			`"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"}}]`)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// TestFastGetRecordsMatchesSDK decodes the same answers with the SDK's
// deserializer and with FastGetRecords: every field must agree, and errors
// must keep the SDK's types.
func TestFastGetRecordsMatchesSDK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		sameGetRecords(t, 200, randomGetRecords(r))
	}
	for _, body := range []string{
		``, `{}`, `{"Records":null}`, `{"Records":[]}`, `{"Records":[{}]}`,
		`{"Records":[{"Data":null,"ApproximateArrivalTimestamp":null,"SequenceNumber":null}],"NextShardIterator":null}`,
		`{"Records":[{"Data":""}]}`, `{"Records":[{"ApproximateArrivalTimestamp":1700000000.1234}]}`,
		`{"Records":[],"ChildShards":[{"ShardId":"s"}]}`, `{"Unknown":{"nested":[1,2]},"Records":[]}`,
		`{"Records":"not a list"}`, `{"Records":[{"Data":"!!"}]}`, `{"Records":[`,
		// duplicates: the last wins, even over a value of the wrong type
		`{"Records":5,"Records":[]}`, `{"Records":[],"Records":5}`, `{"Records":[{"Data":5,"Data":"eHg="}]}`,
		`{"ChildShards":[{"HashKeyRange":{"StartingHashKey":"1"},"HashKeyRange":{"EndingHashKey":"2"}}]}`,
		// escapes, non-ASCII and invalid UTF-8
		`{"Rec\u006frds":[{"PartitionKey":"caf\u00e9 \"q\" \/ \ud83d\ude00","SequenceNumber":"\u0031"}]}`,
		"{\"Records\":[{\"PartitionKey\":\"\xff\xfe caf\xc3\xa9\"}]}", `{"Records":[{"Data":"eH\u0068n"}]}`,
		`{"records":[{}]}`, `{"Records":[{"data":"eHg="}]}`,
		// nulls inside lists
		`{"Records":[null,{}],"ChildShards":[null,{"ParentShards":[null,"a"]}]}`,
		// numbers
		`{"MillisBehindLatest":1.0}`, `{"MillisBehindLatest":1e3}`, `{"MillisBehindLatest":-0}`, `{"MillisBehindLatest":01}`,
		`{"MillisBehindLatest":99999999999999999999}`, `{"Records":[{"ApproximateArrivalTimestamp":1e306}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":-1e306}]}`, `{"Records":[{"ApproximateArrivalTimestamp":9.3e15}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":1e400}]}`, `{"Records":[{"ApproximateArrivalTimestamp":"1"}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":1.}]}`, `{"Records":[{"ApproximateArrivalTimestamp":-}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":5e-324}]}`, `{"Records":[{"ApproximateArrivalTimestamp":1700000000.1237}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":-1.5007}]}`, "{\"Records\":[{\"PartitionKey\":\"\xc3\"}]}", `{"X":[1e5,-0.5E-3,true,false,null,{"a":{}}]}`,
		// the top level, and what follows it
		`null`, `[]`, `5`, `"s"`, `{} trailing`, `{}}`, ` {"Records":[]} `, `nul`, `{"a" 1}`, `{"a":1,}`, `{,}`,
		"{\"a\":\"\x01\"}", `{"a":"\x"}`, `{"a":"\u12"}`, strings.Repeat("[", 20000),
	} {
		sameGetRecords(t, 200, []byte(body))
	}
	// encoding/json's nesting limit, 10,000 levels, at every place a value
	// can be skipped or read with the wrong type.
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, n := range []int{9996, 9997, 9998, 9999, 10000} {
		for _, body := range []string{
			`{"X":` + deep(n) + `}`,
			`{"Records":[{"X":` + deep(n-2) + `}]}`,
			`{"NextShardIterator":` + deep(n) + `,"NextShardIterator":"a"}`,
			`{"Records":[{"Data":` + deep(n-2) + `,"Data":"eHg="}]}`,
			`{"ChildShards":[{"HashKeyRange":{"X":` + deep(n-3) + `}}]}`,
			`{"ChildShards":[{"ParentShards":[` + deep(n-3) + `]}]}`,
		} {
			sameGetRecords(t, 200, []byte(body))
		}
	}

	// A connection lost after the whole answer is no error (json.Decoder
	// stops at the end of the first value); lost inside it, it is.
	reset := errors.New("connection reset by peer")
	for _, tc := range []struct {
		body    string
		wantErr bool
	}{{`{"NextShardIterator":"a"}`, false}, {`{"NextShardIterator":"a"`, true}} {
		for _, fast := range []bool{false, true} {
			out, err := getRecordsFrom(t, fast, cannedHTTP{status: 200, body: []byte(tc.body), readErr: reset})
			if (err != nil) != tc.wantErr || (err == nil && aws.ToString(out.NextShardIterator) != "a") {
				t.Errorf("fast=%v, body %s then a reset: %v, %v; want an error: %v", fast, tc.body, out, err, tc.wantErr)
			}
		}
	}

	// Errors go through the SDK's deserializer.
	_, err := getRecordsWith(t, true, 400, []byte(`{"__type":"ProvisionedThroughputExceededException","message":"slow down"}`))
	var throttled *types.ProvisionedThroughputExceededException
	if !errors.As(err, &throttled) {
		t.Errorf("throttling answer: error %v (%T), want ProvisionedThroughputExceededException", err, err)
	}
	_, err = getRecordsWith(t, true, 400, []byte(`{"__type":"ExpiredIteratorException","message":"old"}`))
	var expired *types.ExpiredIteratorException
	if !errors.As(err, &expired) {
		t.Errorf("expired iterator answer: error %v (%T), want ExpiredIteratorException", err, err)
	}
}

// FuzzFastGetRecords: on any answer body, both decoders agree.
func FuzzFastGetRecords(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		f.Add(randomGetRecords(r))
	}
	f.Add([]byte(`{"Records":[{"Data":"","ApproximateArrivalTimestamp":1e300}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sameGetRecords(t, 200, body)
	})
}

func BenchmarkGetRecordsDecode(b *testing.B) {
	var body strings.Builder
	body.WriteString(`{"Records":[`)
	for i := range 2000 {
		if i > 0 {
			body.WriteByte(',')
		}
		line := fmt.Sprintf(`{"@timestamp":"2026-01-02T03:04:05Z","level":"INFO","service":"api","message":"handled request %d %s"}`, i, strings.Repeat("x", 400))
		fmt.Fprintf(&body, `{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898%d","ApproximateArrivalTimestamp":1700000000.%03d,"Data":"%s","PartitionKey":"%d"}`,
			i, i%1000, base64.StdEncoding.EncodeToString([]byte(line)), i%64)
	}
	body.WriteString(`],"NextShardIterator":"AAAAAAAAAAH","MillisBehindLatest":0}`)
	for _, fast := range []bool{false, true} {
		b.Run(map[bool]string{false: "sdk", true: "fast"}[fast], func(b *testing.B) {
			opts := kinesis.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{},
				BaseEndpoint: aws.String("http://kinesis.test"), HTTPClient: cannedHTTP{status: 200, body: []byte(body.String())}, RetryMaxAttempts: 1}
			if fast {
				opts.APIOptions = append(opts.APIOptions, FastGetRecords)
			}
			kc := kinesis.New(opts)
			b.SetBytes(int64(body.Len()))
			b.ReportAllocs()
			for b.Loop() {
				out, err := kc.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String("it")})
				if err != nil || len(out.Records) != 2000 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/record")
		})
	}
}
