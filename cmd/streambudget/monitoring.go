package main

import (
	"context"
	"io"

	"github.com/streambudget/streambudget/pkg/fleet"
)

// runMonitoringValues prints the fleet monitoring chart's values from the
// budgets: helm install ... helm/streambudget-monitoring -f <(streambudget monitoring-values budgets/).
func runMonitoringValues(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("monitoring-values", "[--namespace NS] PATH...", stderr)
	namespace := fs.String("namespace", "", "namespace of the teams' releases; "+fleet.TeamPlaceholder+" stands for the team's name; empty matches any namespace")
	paths, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageError(fs, stderr, "no budget files or directories given")
	}
	files, err := loadBudgets(paths, stderr)
	if err != nil {
		return err
	}
	out, err := fleet.Values(files, fleet.Options{Namespace: *namespace})
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
