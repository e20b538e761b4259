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
	urls, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(urls) == 0 {
		return usageError(fs, stderr, "no pod URLs given (e.g. http://127.0.0.1:9090)")
	}
	return top.Run(ctx, stdout, urls, *interval, *once, nil)
}
