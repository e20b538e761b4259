package kinesis

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // the KPL format's own checksum
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
	deagg "github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
)

// KPLGuard guards against a library behaviour: the KCL de-aggregates the
// KPL records of a GetRecords answer with the deaggregator package, and
// when one aggregate in the answer does not de-aggregate (a protobuf error)
// it logs the error and hands the processor an empty batch while moving its
// iterator past the whole answer; a bad partition-key index panics; and an
// aggregate with no sub-records vanishes without a word. Any of those would
// lose records silently.
//
// This Kinesis client API option looks at every GetRecords answer first and
// runs each aggregate (magic and matching digest) through the same
// deaggregator function alone. One that fails, panics or yields nothing gets
// BadKPLPrefix in front of its bytes: that hides it from the de-aggregator,
// which passes it through as one plain record, and tells the processor to
// dead-letter it with its original bytes.
func KPLGuard(stack *middleware.Stack) error {
	if stack.ID() != "GetRecords" {
		return nil
	}
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("streambudgetKPLGuard",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if err != nil {
				return out, md, err
			}
			if res, ok := out.Result.(*kinesis.GetRecordsOutput); ok {
				for i := range res.Records {
					if KPLBroken(res.Records[i]) {
						res.Records[i].Data = append(bytes.Clone(BadKPLPrefix), res.Records[i].Data...)
					}
				}
			}
			return out, md, nil
		}), middleware.After)
}

// BadKPLPrefix marks a record the KPL guard found to be a broken aggregate.
var BadKPLPrefix = []byte("\x00streambudget:bad-kpl\x00")

var kplMagic = []byte("\xf3\x89\x9a\xc2")

// KPLBroken reports whether r is a KPL aggregate (magic and a matching
// digest, as the deaggregator decides) that the deaggregator cannot turn
// into at least one record.
func KPLBroken(r types.Record) bool {
	data := r.Data
	if len(data) <= len(kplMagic)+md5.Size || !bytes.HasPrefix(data, kplMagic) {
		return false
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body) //nolint:gosec
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return false // not an aggregate: the deaggregator passes it through as is
	}
	n, err := deaggregate(r)
	return err != nil || n == 0
}

// deaggregate runs the library's deaggregator on one record and counts the
// records it yields, turning a panic into an error.
func deaggregate(r types.Record) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("deaggregator panicked: %v", p)
		}
	}()
	out, err := deagg.DeaggregateRecords([]types.Record{r})
	return len(out), err
}
