package main

import (
	"context"
	"fmt"
	"io"

	"github.com/streambudget/streambudget/pkg/budget"
)

func runPlan(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plan", "[--avg-record-bytes N] [--cluster-capacity N] PATH...", stderr)
	avg := fs.String("avg-record-bytes", "1KiB", "average record size used to turn records/s into bytes/s")
	capacity := fs.Int("cluster-capacity", 0, "documents/s the Elasticsearch cluster is sized for; warns when the budgets add up to more")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	avgBytes, err := budget.ParseSize(*avg)
	if err != nil || avgBytes <= 0 {
		return fmt.Errorf("--avg-record-bytes: want a size such as 1KiB, got %q", *avg)
	}
	files, findings := budget.LoadPaths(fs.Args()...)
	if err := findings.Err(); err != nil {
		for _, f := range findings {
			fmt.Fprintln(stderr, f.Error())
		}
		return exitError(1)
	}
	p := budget.NewPlan(files, budget.PlanOptions{AvgRecordBytes: avgBytes, ClusterCapacity: *capacity})
	return p.Print(stdout)
}
