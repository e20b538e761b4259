// Package kinesis is the wire to Kinesis: a one-pass GetRecords decoder
// (checked against the SDK's by a test and a fuzz target), the KPL guard
// that keeps a broken aggregate from losing its neighbours, the per-call
// GetRecords limit, and the stream view (open shards, parents, retention).
package kinesis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK decodes a GetRecords answer into a tree of interface values first
// and builds the output from the tree: a CPU profile of the consumer at full
// speed put 60% of its time there, more than decoding, filtering and
// encoding the records themselves. FastGetRecords swaps in a one-pass parser
// of the same JSON straight into the output (getrecords_parse.go). Answers other than 2xx still go
// through the SDK's own deserializer, so errors keep their types
// (ProvisionedThroughputExceededException, ExpiredIteratorException, ...).
// A test checks the two decoders agree on every field.

// operationDeserializer is the ID the SDK gives each operation's
// deserializer middleware.
const operationDeserializer = "OperationDeserializer"

// FastGetRecords is a Kinesis client API option (kinesis.Options.APIOptions)
// that decodes GetRecords answers with the one-pass parser.
func FastGetRecords(stack *middleware.Stack) error {
	if stack.ID() != "GetRecords" {
		return nil
	}
	sdk, ok := stack.Deserialize.Get(operationDeserializer)
	if !ok {
		return fmt.Errorf("kinesis GetRecords: no %s middleware to replace", operationDeserializer)
	}
	_, err := stack.Deserialize.Swap(operationDeserializer, &getRecordsDeserializer{sdk: sdk})
	return err
}

type getRecordsDeserializer struct {
	sdk middleware.DeserializeMiddleware
}

func (*getRecordsDeserializer) ID() string { return operationDeserializer }

func (d *getRecordsDeserializer) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return d.sdk.HandleDeserialize(ctx, in, answered{out, md})
	}
	output, err := decodeGetRecords(resp)
	if err != nil {
		return out, md, &smithy.DeserializationError{Err: fmt.Errorf("failed to decode response body, %w", err)}
	}
	out.Result = output
	return out, md, nil
}

// answered hands the SDK's deserializer the response already received.
type answered struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
}

func (a answered) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return a.out, a.md, nil
}

// bodyBufs holds read buffers for answers (up to 10 MB of data each);
// parsing copies every value out, so a buffer is free once parsed.
var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxAnswer bounds what is read of one answer: 10 MB of data is 13.4 MB in
// base64, plus up to 10,000 records' other fields. The SDK reads without a
// bound; an answer this large is an error here, not memory.
const maxAnswer = 32 << 20

func decodeGetRecords(resp *smithyhttp.Response) (*kinesis.GetRecordsOutput, error) {
	buf := bodyBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 16<<20 {
			buf.Reset()
			bodyBufs.Put(buf)
		}
	}()
	buf.Reset()
	if n := resp.ContentLength; n > 0 && n <= maxAnswer {
		buf.Grow(int(n))
	}
	_, readErr := buf.ReadFrom(io.LimitReader(resp.Body, maxAnswer+1))
	if buf.Len() > maxAnswer {
		return nil, fmt.Errorf("answer larger than %d bytes", maxAnswer)
	}
	out, err := parseGetRecords(buf.Bytes())
	if err != nil && readErr != nil {
		return nil, readErr
	}
	// A read error after a whole answer is no error: json.Decoder, which
	// the SDK uses, stops reading at the end of the first value.
	return out, err
}
