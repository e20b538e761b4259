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
	paths, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageError(fs, stderr, "no budget files or directories given")
	}
	avgBytes, err := budget.ParseSize(*avg)
	if err != nil || avgBytes <= 0 {
		return fmt.Errorf("--avg-record-bytes: want a size such as 1KiB, got %q", *avg)
	}
	files, err := loadBudgets(paths, stderr)
	if err != nil {
		return err
	}
	p := budget.NewPlan(files, budget.PlanOptions{AvgRecordBytes: avgBytes, ClusterCapacity: *capacity})
	return p.Print(stdout)
}
