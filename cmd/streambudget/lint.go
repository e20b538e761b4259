package main

import (
	"context"
	"fmt"
	"io"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/document"
)

func runLint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lint", "[--strict] [--sample FILE] PATH...", stderr)
	strict := fs.Bool("strict", false, "exit 1 on warnings too")
	sample := fs.String("sample", "", "run the team's drop and redact rules over this file of log lines (one record per line) and report what each rule drops; needs exactly one budget file")
	paths, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageError(fs, stderr, "no budget files or directories given")
	}
	files, findings := budget.LoadPaths(paths...)
	for _, f := range findings {
		fmt.Fprintln(stdout, f.Error())
	}
	nErr, nWarn := 0, len(findings.Warnings())
	nErr = len(findings) - nWarn
	if nErr > 0 {
		fmt.Fprintf(stdout, "%d error(s), %d warning(s)\n", nErr, nWarn)
		return exitError(1)
	}
	if *sample != "" {
		if len(files) != 1 {
			return fmt.Errorf("--sample needs exactly one budget file, got %d", len(files))
		}
		report, err := document.Sample(ctx, files[0], *sample)
		if err != nil {
			return err
		}
		report.Print(stdout)
		nWarn += report.Warnings()
	}
	fmt.Fprintf(stdout, "%d budget file(s) ok, %d warning(s)\n", len(files), nWarn)
	if *strict && nWarn > 0 {
		return exitError(1)
	}
	return nil
}
