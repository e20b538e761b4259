package kinesis

import (
	"crypto/md5"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	deagg "github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
	kplrec "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"github.com/golang/protobuf/proto" //nolint:staticcheck // the message type the deaggregator uses
)

func aggregate(t *testing.T, keys []string, recs []*kplrec.Record) []byte {
	t.Helper()
	body, err := proto.Marshal(&kplrec.AggregatedRecord{PartitionKeyTable: keys, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(body)
	return append(append(append([]byte{}, kplMagic...), body...), sum[:]...)
}

func kplCases(t *testing.T) []struct {
	name string
	data []byte
	want bool
} {
	idx := func(i uint64) *uint64 { return &i }
	good := aggregate(t, []string{"k"}, []*kplrec.Record{{PartitionKeyIndex: idx(0), Data: []byte("a")}, {PartitionKeyIndex: idx(0), Data: []byte("b")}})
	badIndex := aggregate(t, []string{"k"}, []*kplrec.Record{{PartitionKeyIndex: idx(3), Data: []byte("a")}})
	empty := aggregate(t, []string{"k"}, nil)
	garbage := append(append([]byte{}, kplMagic...), []byte("\xff\xff\xff not protobuf")...)
	sum := md5.Sum(garbage[len(kplMagic):])
	garbage = append(garbage, sum[:]...)
	return []struct {
		name string
		data []byte
		want bool
	}{
		{"plain record", []byte(`{"a":1}`), false},
		{"valid aggregate", good, false},
		{"partition key index out of range (the deaggregator panics)", badIndex, true},
		{"magic and digest but not protobuf (the deaggregator fails)", garbage, true},
		{"an aggregate of no records (the deaggregator yields nothing)", empty, true},
		{"magic with a wrong digest is not an aggregate", append(append([]byte{}, kplMagic...), strings.Repeat("x", 40)...), false},
	}
}

func TestKPLBroken(t *testing.T) {
	for _, tc := range kplCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			if got := KPLBroken(types.Record{Data: tc.data}); got != tc.want {
				t.Errorf("KPLBroken = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDeaggregatorLosesBrokenAggregates shows the library behaviour the KPL
// guard exists for: given a batch with one broken aggregate, the KCL's
// de-aggregation (the same function) fails for the whole batch, panics, or
// drops the aggregate without a word; with the guard's prefix in front of
// the broken one, every record of the batch comes out.
func TestDeaggregatorLosesBrokenAggregates(t *testing.T) {
	plain := types.Record{Data: []byte(`{"a":1}`)}
	for _, tc := range kplCases(t) {
		if !tc.want {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			batch := []types.Record{plain, {Data: tc.data}, plain}
			n, err := func() (n int, err error) {
				defer func() {
					if recover() != nil {
						n, err = -1, nil
					}
				}()
				out, err := deagg.DeaggregateRecords(batch)
				return len(out), err
			}()
			if err == nil && n == len(batch) {
				t.Fatalf("the deaggregator handled the broken aggregate; the guard would be unneeded")
			}
			batch[1].Data = append(append([]byte{}, BadKPLPrefix...), tc.data...)
			out, err := deagg.DeaggregateRecords(batch)
			if err != nil || len(out) != len(batch) {
				t.Fatalf("guarded batch: %d records, %v; want %d and no error", len(out), err, len(batch))
			}
		})
	}
}
