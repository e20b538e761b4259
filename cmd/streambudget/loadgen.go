package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streambudget/streambudget/pkg/loadgen"
)

func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", "--stream NAME --rate N [flags]", stderr)
	opts := loadgen.Options{}
	fs.StringVar(&opts.Stream, "stream", "", "Kinesis stream to write to (required)")
	fs.StringVar(&opts.Team, "team", "demo", "team name put in the records")
	fs.Float64Var(&opts.Shape.Rate, "rate", 100, "steady rate in records/s")
	fs.Float64Var(&opts.Shape.SpikeFactor, "spike-factor", 0, "multiply the rate by this during the spike")
	fs.DurationVar(&opts.Shape.SpikeAt, "spike-at", 0, "when the spike starts, from the start of the run")
	fs.DurationVar(&opts.Shape.SpikeFor, "spike-for", 0, "how long the spike lasts")
	fs.Float64Var(&opts.Shape.AfterSpike, "after-spike-rate", 0, "rate after the spike (default: the steady rate)")
	fs.DurationVar(&opts.Shape.Duration, "duration", 0, "stop after this long (default: until interrupted)")
	fs.DurationVar(&opts.BadEvery, "bad-every", 0, "send one record of every dead-letter kind this often (0: never)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case opts.Stream == "":
		return usageError(fs, stderr, "--stream is required (the Kinesis stream to write to)")
	case opts.Shape.Rate < 0:
		return usageError(fs, stderr, "--rate must be 0 or more, got %g", opts.Shape.Rate)
	case len(rest) > 0:
		return usageError(fs, stderr, "unexpected argument %q", rest[0])
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	opts.Seed = uint64(time.Now().UnixNano())
	g := loadgen.New(kinesis.NewFromConfig(cfg), opts)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			fmt.Fprintf(stdout, "produced %d records (%d dead-letter kinds) in %s; %d puts refused and sent again\n",
				g.Produced(), g.Bad(), time.Since(start).Round(time.Second), g.Throttled())
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		case <-t.C:
			off := time.Since(start)
			fmt.Fprintf(stderr, "%s %s: %d records, target %.0f/s\n", off.Round(time.Second), opts.Shape.Phase(off), g.Produced(), opts.Shape.RateAt(off))
		}
	}
}
