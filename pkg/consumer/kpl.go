package consumer

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // the KPL format's own checksum
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
	kplrec "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"github.com/golang/protobuf/proto" //nolint:staticcheck // the message type the deaggregator uses
)

// The library de-aggregates KPL records and, when one aggregate is corrupt,
// drops the whole GetRecords batch (or panics on a bad partition key index).
// This middleware looks at every GetRecords answer first: an aggregate the
// de-aggregator would choke on gets kplBadPrefix in front of its bytes, which
// hides it from the de-aggregator and tells the processor to dead-letter it.
var (
	kplMagic     = []byte("\xf3\x89\x9a\xc2")
	kplBadPrefix = []byte("\x00streambudget:bad-kpl\x00")
)

func kplGuard(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("streambudgetKPLGuard",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if err != nil {
				return out, md, err
			}
			if res, ok := out.Result.(*kinesis.GetRecordsOutput); ok {
				for i := range res.Records {
					if data := res.Records[i].Data; kplBroken(data) {
						res.Records[i].Data = append(bytes.Clone(kplBadPrefix), data...)
					}
				}
			}
			return out, md, nil
		}), middleware.After)
}

// kplBroken reports whether data is a KPL aggregate (magic and a matching
// digest) that does not de-aggregate cleanly.
func kplBroken(data []byte) bool {
	if len(data) <= len(kplMagic)+md5.Size || !bytes.HasPrefix(data, kplMagic) {
		return false
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body) //nolint:gosec
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return false // not an aggregate: the library passes it through as is
	}
	return checkAggregate(body) != nil
}

func checkAggregate(body []byte) error {
	var agg kplrec.AggregatedRecord
	if err := proto.Unmarshal(body, &agg); err != nil {
		return err
	}
	for i, r := range agg.Records {
		if r.PartitionKeyIndex == nil || *r.PartitionKeyIndex >= uint64(len(agg.PartitionKeyTable)) {
			return fmt.Errorf("sub-record %d: partition key index out of range", i)
		}
	}
	return nil
}
