package consumer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kplrec "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"github.com/golang/protobuf/proto" //nolint:staticcheck

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/loadgen"
	"github.com/streambudget/streambudget/pkg/rules"
)

// fakeClock is a clock whose sleeps advance it.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	return ctx.Err()
}

// TestPacerHoldsBudget feeds a shard an unlimited source: full batches of
// maxRecords, returned as fast as asked. Over every 30 s the shard delivers
// its budget, never more than one burst above it.
func TestPacerHoldsBudget(t *testing.T) {
	for _, tc := range []struct {
		maxRecords int
		poll       time.Duration
		batch      int
	}{
		{50, time.Second, 50},
		{2500, time.Second, 2500},
		{100, 200 * time.Millisecond, 100},
		{1000, time.Second, 137}, // batches smaller than maxRecords
	} {
		t.Run(fmt.Sprintf("%d per %s", tc.maxRecords, tc.poll), func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(0, 0)}
			rate := float64(tc.maxRecords) / tc.poll.Seconds()
			p := newPacer(rate, tc.maxRecords, 0, clk.now)
			p.sleep = clk.sleep
			start := clk.t
			delivered := 0
			var waited time.Duration
			for clk.t.Sub(start) < 120*time.Second {
				delivered += tc.batch
				w, err := p.wait(context.Background(), tc.batch, 0)
				if err != nil {
					t.Fatal(err)
				}
				waited += w
			}
			elapsed := clk.t.Sub(start).Seconds()
			got := float64(delivered) / elapsed
			// The first burst is free; after it the limiter is exact.
			want := rate + float64(tc.maxRecords+tc.batch)/elapsed
			if got > want || got < rate*0.99 {
				t.Errorf("delivered %.1f records/s, want %.1f (at most %.1f)", got, rate, want)
			}
			if waited <= 0 {
				t.Errorf("waited %v, want the limiter to hold the shard back", waited)
			}
		})
	}
}

func TestPacerBytes(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := newPacer(1e9, 10000, 1<<20, clk.now) // records unlimited, 1 MiB/s
	p.sleep = clk.sleep
	for i := 0; i < 100; i++ {
		if _, err := p.wait(context.Background(), 10, 512<<10); err != nil {
			t.Fatal(err)
		}
	}
	// 100 batches of 512 KiB at 1 MiB/s (1 MiB burst) take 49 s.
	if got := clk.t.Sub(time.Unix(0, 0)); got < 48*time.Second || got > 50*time.Second {
		t.Errorf("took %v for 50 MiB at 1 MiB/s, want about 49s", got)
	}
}

func TestPacerFollowsRateChange(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := newPacer(100, 100, 0, clk.now)
	p.sleep = clk.sleep
	p.setRate(50, 100, time.Second) // a reshard doubled the shards of a recordsPerSecond budget
	start := clk.t
	for i := 0; i < 100; i++ {
		if _, err := p.wait(context.Background(), 50, 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := clk.t.Sub(start); got < 98*time.Second {
		t.Errorf("5000 records at 50/s took %v, want about 99s", got)
	}
}

func TestPacerWaitEndsWithContext(t *testing.T) {
	p := newPacer(1, 1, 0, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.wait(ctx, 1, 0); err != nil {
		t.Fatalf("first token is free, got %v", err)
	}
	if _, err := p.wait(ctx, 1, 0); err == nil {
		t.Fatal("got nil, want the context's error")
	}
}

func rec(seq string, data string) types.Record {
	return types.Record{SequenceNumber: aws.String(seq), Data: []byte(data), PartitionKey: aws.String("k"), ApproximateArrivalTimestamp: aws.Time(time.Unix(100, 0))}
}

// TestConfirmedPrefix: what may be checkpointed after a partial failure.
func TestConfirmedPrefix(t *testing.T) {
	// Records 1 and 2 are sub-records of one KPL aggregate (same sequence).
	records := []types.Record{rec("1", ""), rec("2", ""), rec("2", ""), rec("3", ""), rec("4", "")}
	// items per record: 1, 2, 0 (dropped), 1, 1
	recordEnd := []int{1, 3, 3, 4, 5}
	for _, tc := range []struct {
		name string
		done []bool
		want int
	}{
		{"nothing confirmed", []bool{false, false, false, false, false}, -1},
		{"first record only", []bool{true, false, false, false, false}, 0},
		{"aggregate half done stays at its start", []bool{true, true, false, true, true}, 0},
		{"aggregate done through its dropped sub-record", []bool{true, true, true, false, true}, 2},
		{"a gap stops the prefix", []bool{true, true, true, false, true}, 2},
		{"everything", []bool{true, true, true, true, true}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := confirmedPrefix(records, recordEnd, tc.done); got != tc.want {
				t.Errorf("confirmedPrefix = %d, want %d", got, tc.want)
			}
		})
	}
}

func newPipeline(t *testing.T, f *budget.File) (*pipeline, *essink.Sink) {
	t.Helper()
	idx, err := budget.ParseIndexPattern(f.Elasticsearch.Index)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Compile(f.Drop, f.Redact)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := essink.New(essink.Options{URLs: []string{"http://127.0.0.1:1"}, DeadLetterIndex: f.Elasticsearch.DeadLetterIndex, Team: f.Team, Stream: f.Stream})
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline{team: f.Team, stream: f.Stream, index: idx, rules: rs, decodeOpts: decode.Options{Format: f.Decode}}, sink
}

func testBudget() *budget.File {
	return &budget.File{
		Team: "payments", Stream: "payments-logs", Decode: budget.DecodeAuto,
		Elasticsearch: budget.Elasticsearch{Index: "logs-payments-{yyyy.MM.dd}", DeadLetterIndex: "deadletter-payments"},
		Drop:          []budget.DropRule{{Name: "debug", Field: "level", In: []string{"DEBUG"}}, {Contains: "[DEBUG]"}},
		Redact:        []budget.RedactRule{{Field: "password"}, {Pattern: budget.PatternEmail}},
	}
}

func TestBuildBatch(t *testing.T) {
	p, sink := newPipeline(t, testBudget())
	records := []types.Record{
		rec("1", `{"level":"INFO","message":"ERROR with D E B U G letters","password":"hunter2","@timestamp":"2026-03-04T05:06:07Z"}`),
		rec("2", `{"level":"DEBUG","message":"noise"}`),
		rec("3", `{"message":"x [DEBUG] y"}`),
		rec("4", "\xff\xfe not utf-8 \xff"),
		rec("5", `plain text from alice@example.com`),
		rec("6", ""),
	}
	b := &batch{dec: decode.New(p.decodeOpts), dropped: map[string]int{}}
	p.build(b, "shardId-1", records, sink)

	if got, want := len(b.items), 4; got != want {
		t.Fatalf("got %d items, want %d (2 dropped)", got, want)
	}
	checkSources(t, b)
	if fmt.Sprint(b.recordEnd) != "[1 1 1 2 3 4]" {
		t.Errorf("recordEnd = %v, want [1 1 1 2 3 4]", b.recordEnd)
	}
	if b.dropped["debug"] != 1 || b.dropped["drop[1]"] != 1 {
		t.Errorf("dropped = %v, want one by debug and one by drop[1]", b.dropped)
	}
	var first map[string]any
	if err := json.Unmarshal(b.items[0].Source, &first); err != nil {
		t.Fatalf("item 0 is not JSON: %v: %s", err, b.items[0].Source)
	}
	if first["password"] != "[REDACTED]" || first["team"] != "payments" || first["@timestamp"] != "2026-03-04T05:06:07Z" {
		t.Errorf("item 0 = %v, want password redacted, team and the record's @timestamp", first)
	}
	if got := b.items[0].Index; got != "logs-payments-2026.03.04" {
		t.Errorf("index = %q, want logs-payments-2026.03.04", got)
	}
	k := first["kinesis"].(map[string]any)
	if k["shard_id"] != "shardId-1" || k["sequence_number"] != "1" || k["read_at"] == nil {
		t.Errorf("kinesis = %v, want the record's coordinates and read_at", k)
	}
	if b.items[1].Reason != decode.ReasonInvalidUTF8 || b.items[1].Index != "deadletter-payments" {
		t.Errorf("item 1 = %q in %q, want an invalid_utf8 dead letter", b.items[1].Reason, b.items[1].Index)
	}
	if bytes.Contains(b.items[2].Source, []byte("alice@example.com")) {
		t.Errorf("email not redacted: %s", b.items[2].Source)
	}
	if b.items[3].Reason != decode.ReasonEmpty {
		t.Errorf("item 3 reason %q, want %q", b.items[3].Reason, decode.ReasonEmpty)
	}
	ids := map[string]bool{}
	for _, it := range b.items {
		if ids[it.ID] {
			t.Errorf("duplicate id %s", it.ID)
		}
		ids[it.ID] = true
	}
}

// checkSources fails t unless every item is one line of valid JSON.
func checkSources(t *testing.T, b *batch) {
	t.Helper()
	for i, it := range b.items {
		if !json.Valid(it.Source) || bytes.ContainsAny(it.Source, "\n\r") {
			t.Errorf("item %d (reason %q) is not one line of JSON: %q", i, it.Reason, it.Source)
		}
	}
}

// TestBuildEveryDeadLetterKind runs every kind the load generator sends to
// the dead-letter path between good records: each good record is indexed,
// each bad one is a dead letter with its reason, all in order.
func TestBuildEveryDeadLetterKind(t *testing.T) {
	p, sink := newPipeline(t, testBudget())
	var records []types.Record
	records = append(records, rec("0", `{"message":"first",`+"\n"+`"nested": {`+"\r\n"+`"a": 1}}`))
	for i, bad := range loadgen.BadRecords() {
		records = append(records, rec(fmt.Sprint(i+1), string(bad)))
	}
	records = append(records, rec("99", `{"message":"last"}`))
	b := &batch{dec: decode.New(p.decodeOpts), dropped: map[string]int{}}
	p.build(b, "shardId-1", records, sink)
	if len(b.items) != len(records) {
		t.Fatalf("got %d items for %d records", len(b.items), len(records))
	}
	checkSources(t, b)
	// Under decode auto, JSON nested too deep is indexed as text.
	want := []string{"", decode.ReasonEmpty, decode.ReasonInvalidUTF8, "", decode.ReasonBadGzip, decode.ReasonDecompressedTooLarge, decode.ReasonBadCloudWatchLogs, ""}
	for i, w := range want {
		if got := b.items[i].Reason; got != w {
			t.Errorf("item %d reason %q, want %q", i, got, w)
		}
	}
}

func TestDocIDStable(t *testing.T) {
	a := docID("s", "shard-1", "123", 0, 0)
	if a != docID("s", "shard-1", "123", 0, 0) {
		t.Fatal("docID is not deterministic")
	}
	for _, other := range []string{docID("s", "shard-1", "123", 1, 0), docID("s", "shard-1", "123", 0, 1), docID("s", "shard-2", "123", 0, 0), docID("t", "shard-1", "123", 0, 0)} {
		if other == a {
			t.Errorf("docID collides across coordinates: %s", a)
		}
	}
}

func aggregate(t *testing.T, keys []string, recs []*kplrec.Record) []byte {
	t.Helper()
	body, err := proto.Marshal(&kplrec.AggregatedRecord{PartitionKeyTable: keys, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	return append(append(append([]byte{}, kplMagic...), body...), sum[:]...)
}

func TestKPLGuard(t *testing.T) {
	idx := func(i uint64) *uint64 { return &i }
	good := aggregate(t, []string{"k"}, []*kplrec.Record{{PartitionKeyIndex: idx(0), Data: []byte("a")}})
	badIndex := aggregate(t, []string{"k"}, []*kplrec.Record{{PartitionKeyIndex: idx(3), Data: []byte("a")}})
	garbage := append(append([]byte{}, kplMagic...), []byte("\xff\xff\xff not protobuf")...)
	sum := md5.Sum(garbage[len(kplMagic):])
	garbage = append(garbage, sum[:]...)
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"plain record", []byte(`{"a":1}`), false},
		{"valid aggregate", good, false},
		{"partition key index out of range", badIndex, true},
		{"magic and digest but not protobuf", garbage, true},
		{"magic with a wrong digest is not an aggregate", append(append([]byte{}, kplMagic...), strings.Repeat("x", 40)...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kplBroken(tc.data); got != tc.want {
				t.Errorf("kplBroken = %v, want %v", got, tc.want)
			}
		})
	}
}
