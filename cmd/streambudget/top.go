package main

import (
	"context"
	"io"
	"time"

	"github.com/streambudget/streambudget/pkg/top"
)

func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("top", "[--once] [--interval 2s] URL...", stderr)
	once := fs.Bool("once", false, "print one snapshot and exit")
	interval := fs.Duration("interval", 2*time.Second, "refresh interval (and the gap between the two scrapes of --once)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	return top.Run(ctx, stdout, fs.Args(), *interval, *once, nil)
}
