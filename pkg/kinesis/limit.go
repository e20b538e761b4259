package kinesis

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"

	"github.com/streambudget/streambudget/pkg/budget"
)

// GetRecordsLimit guards against a library behaviour: the KCL asks every
// GetRecords call for the Limit it was configured with at start, so a
// budget that changes later (a reshard with recordsPerSecond, parents
// finishing, a borrowed allowance) would keep the first batch size. This
// Kinesis client API option sets each GetRecords call's Limit to what limit
// returns at the time of the call (1 to 10,000).
func GetRecordsLimit(limit func() int32) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if stack.ID() != "GetRecords" {
			return nil
		}
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("streambudgetGetRecordsLimit",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if p, ok := in.Parameters.(*kinesis.GetRecordsInput); ok {
					n := min(max(limit(), 1), budget.MaxRecordsPerCall)
					p.Limit = aws.Int32(n)
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
}
