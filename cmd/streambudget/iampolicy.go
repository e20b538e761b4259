package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/setup"
)

func runIAMPolicy(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("iam-policy", "[--region R] [--account ID] budgets/<team>.yaml", stderr)
	var acct setup.Account
	fs.StringVar(&acct.Region, "region", "", "the stream's region (default: from the budget's streamARN, else any)")
	fs.StringVar(&acct.ID, "account", "", "the AWS account id (default: from the budget's streamARN, else any)")
	paths, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(paths) != 1 {
		return usageError(fs, stderr, "give exactly one budget file")
	}
	if fi, err := os.Stat(paths[0]); err == nil && fi.IsDir() {
		return usageError(fs, stderr, "give exactly one budget file, not the directory %s: a policy is per team", paths[0])
	}
	f, err := budget.Load(paths[0])
	if err != nil {
		if es, ok := budget.AsErrors(err); ok {
			for _, e := range es {
				fmt.Fprintln(stderr, e.Error())
			}
			return exitError(1)
		}
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(setup.IAM(f, acct))
}
