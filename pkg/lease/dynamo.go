package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The KCL's attribute names.
const (
	attrKey        = "ShardID"
	attrOwner      = "AssignedTo"
	attrTimeout    = "LeaseTimeout"
	attrCheckpoint = "Checkpoint"
	attrParent     = "ParentShardId"
	// numberPrefix marks a heartbeat's numbers.
	numberPrefix = "r_"
)

// DynamoDB is what the table needs of a DynamoDB client; *dynamodb.Client
// is one.
type DynamoDB interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// DynamoTable is the lease table in DynamoDB.
type DynamoTable struct {
	db   DynamoDB
	name string
}

// NewDynamoTable returns the table called name.
func NewDynamoTable(db DynamoDB, name string) *DynamoTable { return &DynamoTable{db: db, name: name} }

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func key(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrKey: s(k)}
}

// conflict turns a failed condition into ErrConflict.
func conflict(err error, what string) error {
	var cond *types.ConditionalCheckFailedException
	if errors.As(err, &cond) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Ensure implements Table: the table is created on demand (pay per
// request), as the KCL does.
func (t *DynamoTable) Ensure(ctx context.Context) error {
	if _, err := t.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)}); err == nil {
		return nil
	}
	_, err := t.db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(t.name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrKey), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create lease table %s: %w", t.name, err)
	}
	return nil
}

// Get implements Table.
func (t *DynamoTable) Get(ctx context.Context, k string) (Row, bool, error) {
	out, err := t.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(t.name), Key: key(k), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Row{}, false, fmt.Errorf("read %s from %s: %w", k, t.name, err)
	}
	if out.Item == nil {
		return Row{}, false, nil
	}
	return rowOf(out.Item), true, nil
}

// Scan implements Table.
func (t *DynamoTable) Scan(ctx context.Context) ([]Row, error) {
	var (
		rows  []Row
		start map[string]types.AttributeValue
	)
	for {
		out, err := t.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(t.name), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", t.name, err)
		}
		for _, item := range out.Items {
			rows = append(rows, rowOf(item))
		}
		if len(out.LastEvaluatedKey) == 0 {
			return rows, nil
		}
		start = out.LastEvaluatedKey
	}
}

func rowOf(item map[string]types.AttributeValue) Row {
	str := func(k string) string {
		if v, ok := item[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	r := Row{Key: str(attrKey), Owner: str(attrOwner), Timeout: str(attrTimeout), Checkpoint: str(attrCheckpoint), Parent: str(attrParent)}
	for k, v := range item {
		name, ok := strings.CutPrefix(k, numberPrefix)
		n, isN := v.(*types.AttributeValueMemberN)
		if !ok || !isN {
			continue
		}
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			if r.Numbers == nil {
				r.Numbers = map[string]float64{}
			}
			r.Numbers[name] = f
		}
	}
	return r
}

func itemOf(r Row) map[string]types.AttributeValue {
	item := key(r.Key)
	for k, v := range map[string]string{attrOwner: r.Owner, attrTimeout: r.Timeout, attrCheckpoint: r.Checkpoint, attrParent: r.Parent} {
		if v != "" {
			item[k] = s(v)
		}
	}
	for name, v := range r.Numbers {
		item[numberPrefix+name] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'g', -1, 64)}
	}
	return item
}

// Take implements Table.
func (t *DynamoTable) Take(ctx context.Context, k string, prev, next Lease, parent string) error {
	in := &dynamodb.UpdateItemInput{
		TableName:                aws.String(t.name),
		Key:                      key(k),
		UpdateExpression:         aws.String("SET #o = :no, #t = :nt"),
		ExpressionAttributeNames: map[string]string{"#o": attrOwner, "#t": attrTimeout},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":no": s(next.Owner), ":nt": s(next.Timeout),
		},
	}
	if parent != "" {
		in.UpdateExpression = aws.String("SET #o = :no, #t = :nt, #p = :p")
		in.ExpressionAttributeNames["#p"] = attrParent
		in.ExpressionAttributeValues[":p"] = s(parent)
	}
	if prev.Owner == "" {
		in.ConditionExpression = aws.String("attribute_not_exists(#o)")
	} else {
		in.ConditionExpression = aws.String("#o = :po AND #t = :pt")
		in.ExpressionAttributeValues[":po"] = s(prev.Owner)
		in.ExpressionAttributeValues[":pt"] = s(prev.Timeout)
	}
	_, err := t.db.UpdateItem(ctx, in)
	return conflict(err, "take the lease on "+k)
}

// SetCheckpoint implements Table.
func (t *DynamoTable) SetCheckpoint(ctx context.Context, k, owner, checkpoint string) error {
	_, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       key(k),
		UpdateExpression:          aws.String("SET #c = :c"),
		ConditionExpression:       aws.String("#o = :me"),
		ExpressionAttributeNames:  map[string]string{"#c": attrCheckpoint, "#o": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": s(checkpoint), ":me": s(owner)},
	})
	return conflict(err, "checkpoint "+k)
}

// Release implements Table.
func (t *DynamoTable) Release(ctx context.Context, k, owner string) error {
	_, err := t.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       key(k),
		UpdateExpression:          aws.String("REMOVE #o"),
		ConditionExpression:       aws.String("#o = :me"),
		ExpressionAttributeNames:  map[string]string{"#o": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":me": s(owner)},
	})
	return conflict(err, "release the lease on "+k)
}

// Put implements Table.
func (t *DynamoTable) Put(ctx context.Context, r Row) error {
	_, err := t.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(t.name), Item: itemOf(r)})
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", r.Key, t.name, err)
	}
	return nil
}

// PutIfAbsent implements Table.
func (t *DynamoTable) PutIfAbsent(ctx context.Context, r Row) error {
	_, err := t.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(t.name),
		Item:                     itemOf(r),
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": attrKey},
	})
	return conflict(err, "write "+r.Key+" to "+t.name)
}

// Delete implements Table.
func (t *DynamoTable) Delete(ctx context.Context, k string) error {
	_, err := t.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(t.name), Key: key(k)})
	if err != nil {
		return fmt.Errorf("delete %s from %s: %w", k, t.name, err)
	}
	return nil
}
