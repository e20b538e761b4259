package setup

import (
	"fmt"
	"strings"

	"github.com/streambudget/streambudget/pkg/budget"
)

// Policy is an AWS IAM policy document.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a policy.
type Statement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// Account says where the team's stream and tables live. Empty fields
// become "*" (any region, any account); a stream ARN in the budget gives
// both.
type Account struct {
	Region, ID string
}

// IAM returns the least the team's pods need of AWS: read its stream (the
// KCL's and the monitor's calls), and keep its lease table (and, with
// cluster:, the cluster table) in DynamoDB, which they create on first
// start.
func IAM(f *budget.File, acct Account) Policy {
	if parts := strings.Split(f.StreamARN, ":"); len(parts) >= 6 {
		acct.Region, acct.ID = parts[3], parts[4]
	}
	region, id := or(acct.Region), or(acct.ID)
	stream := fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", region, id, f.StreamName())
	if f.StreamARN != "" {
		stream = f.StreamARN
	}
	tables := []string{fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", region, id, f.ApplicationName())}
	if f.Cluster != nil {
		tables = append(tables, fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/streambudget-cluster-%s", region, id, f.Cluster.Name))
	}
	return Policy{Version: "2012-10-17", Statement: []Statement{
		{Sid: "ReadTheStream", Effect: "Allow", Resource: []string{stream},
			Action: []string{"kinesis:DescribeStreamSummary", "kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"}},
		{Sid: "LeasesAndCheckpoints", Effect: "Allow", Resource: tables,
			Action: []string{"dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
				"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan"}},
	}}
}

func or(s string) string {
	if s == "" {
		return "*"
	}
	return s
}
