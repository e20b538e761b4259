package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB is what the cluster table needs of a DynamoDB client;
// *dynamodb.Client is one.
type DynamoDB interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// DynamoTable is the cluster table in DynamoDB: streambudget-cluster-<name>.
type DynamoTable struct {
	db   DynamoDB
	name string
}

// NewDynamoTable returns the table of cluster name.
func NewDynamoTable(db DynamoDB, cluster string) *DynamoTable {
	return &DynamoTable{db: db, name: "streambudget-cluster-" + cluster}
}

// Ensure creates the table when it does not exist (pay per request).
func (t *DynamoTable) Ensure(ctx context.Context) error {
	if _, err := t.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)}); err == nil {
		return nil
	}
	_, err := t.db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(t.name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("Key"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("Key"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create cluster table %s: %w", t.name, err)
	}
	return nil
}

func num(v float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'g', -1, 64)}
}

// Publish writes the pod's row unless a newer one of the same pod is there.
func (t *DynamoTable) Publish(ctx context.Context, p Peer) error {
	at := float64(p.At.UnixMilli())
	borrow := 0.0
	if p.Borrow {
		borrow = 1
	}
	_, err := t.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(t.name),
		Item: map[string]types.AttributeValue{
			"Key":           &types.AttributeValueMemberS{Value: p.Team + "#" + p.Pod},
			"Team":          &types.AttributeValueMemberS{Value: p.Team},
			"Pod":           &types.AttributeValueMemberS{Value: p.Pod},
			"Guarantee":     num(p.Guarantee),
			"Demand":        num(p.Demand),
			"Borrow":        num(borrow),
			"Shards":        num(float64(p.Shards)),
			"Allowance":     num(p.Allowance),
			"Uncoordinated": num(float64(p.Uncoordinated)),
			"At":            num(at),
		},
		ConditionExpression:       aws.String("attribute_not_exists(#at) OR #at < :at"),
		ExpressionAttributeNames:  map[string]string{"#at": "At"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(at)},
	})
	var cond *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &cond) {
		return fmt.Errorf("publish to %s: %w", t.name, err)
	}
	return nil
}

// Read returns every row.
func (t *DynamoTable) Read(ctx context.Context) ([]Peer, error) {
	var (
		peers []Peer
		start map[string]types.AttributeValue
	)
	for {
		out, err := t.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(t.name), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.name, err)
		}
		for _, item := range out.Items {
			str := func(k string) string {
				if v, ok := item[k].(*types.AttributeValueMemberS); ok {
					return v.Value
				}
				return ""
			}
			n := func(k string) float64 {
				if v, ok := item[k].(*types.AttributeValueMemberN); ok {
					if f, err := strconv.ParseFloat(v.Value, 64); err == nil {
						return f
					}
				}
				return math.NaN()
			}
			p := Peer{Team: str("Team"), Pod: str("Pod"), Guarantee: n("Guarantee"), Demand: n("Demand"),
				Borrow: n("Borrow") == 1, Shards: int(n("Shards")), Allowance: n("Allowance"), At: time.UnixMilli(int64(n("At")))}
			if u := n("Uncoordinated"); u > 0 {
				p.Uncoordinated = int(u)
			}
			peers = append(peers, p)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return peers, nil
		}
		start = out.LastEvaluatedKey
	}
}

// Forget deletes a pod's row.
func (t *DynamoTable) Forget(ctx context.Context, team, pod string) error {
	_, err := t.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(t.name),
		Key:       map[string]types.AttributeValue{"Key": &types.AttributeValueMemberS{Value: team + "#" + pod}},
	})
	if err != nil {
		return fmt.Errorf("delete %s#%s from %s: %w", team, pod, t.name, err)
	}
	return nil
}

// MemTable is a cluster table in memory, for tests and simulations. Fail,
// when set, is asked before every call.
type MemTable struct {
	mu   sync.Mutex
	rows map[string]Peer
	Fail func(op, pod string) error
}

// NewMemTable returns an empty table.
func NewMemTable() *MemTable { return &MemTable{rows: map[string]Peer{}} }

func (t *MemTable) fail(op, pod string) error {
	if t.Fail != nil {
		return t.Fail(op, pod)
	}
	return nil
}

// Ensure implements Table.
func (t *MemTable) Ensure(context.Context) error { return t.fail("ensure", "") }

// Publish implements Table.
func (t *MemTable) Publish(_ context.Context, p Peer) error {
	if err := t.fail("publish", p.Pod); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := p.Team + "#" + p.Pod
	if old, ok := t.rows[k]; ok && !old.At.Before(p.At) {
		return nil
	}
	t.rows[k] = p
	return nil
}

// Read implements Table.
func (t *MemTable) Read(_ context.Context) ([]Peer, error) {
	if err := t.fail("read", ""); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Peer, 0, len(t.rows))
	for _, p := range t.rows {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Team+"#"+out[i].Pod < out[j].Team+"#"+out[j].Pod })
	return out, nil
}

// Forget implements Table.
func (t *MemTable) Forget(_ context.Context, team, pod string) error {
	if err := t.fail("forget", pod); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.rows, team+"#"+pod)
	return nil
}
