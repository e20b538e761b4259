package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"golang.org/x/term"

	"github.com/streambudget/streambudget/pkg/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "[flags]  (run by make demo, with the local stack's endpoints in the environment)", stderr)
	o := demo.Options{Out: stdout}
	fs.StringVar(&o.BudgetDir, "budgets", "budgets", "directory of example budgets: one stream and one consumer each")
	fs.IntVar(&o.Seconds, "seconds", envInt("DEMO_SECONDS", 75), "seconds of load per act (env DEMO_SECONDS); draining and counting follow")
	fs.BoolVar(&o.Borrowing, "borrowing", envOr("DEMO_BORROWING", "yes") != "no", "second act: the same spike with work-conserving budgets (env DEMO_BORROWING=no skips it)")
	spike := fs.String("spike-factor", envOr("DEMO_SPIKE_FACTOR", "3"), "the spiking team's rate during the spike, in multiples of its budget (env DEMO_SPIKE_FACTOR)")
	fs.StringVar(&o.SpikeTeam, "spike-team", os.Getenv("DEMO_SPIKE_TEAM"), "the team that spikes (default: the smallest budget)")
	fs.IntVar(&o.PortBase, "port-base", envInt("DEMO_PORT_BASE", 9100), "consumers listen on 127.0.0.1:port-base+1, +2, ...")
	live := fs.String("live", "auto", "refresh a table in place: yes, no or auto (when stdout is a terminal)")
	summary := fs.String("summary", "", "also write the summary as JSON to this file")
	fs.StringVar(&o.LogDir, "log-dir", filepath.Join(envOr("STACK_DIR", ".stack"), "logs"), "directory for the consumers' logs (demo-<team>.log)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError(fs, stderr, "unexpected argument %q", rest[0])
	}
	f, err := strconv.ParseFloat(*spike, 64)
	if err != nil || f <= 1 {
		return fmt.Errorf("--spike-factor: want a number above 1, got %q", *spike)
	}
	o.SpikeFactor = f
	switch *live {
	case "yes":
		o.Live = true
	case "auto":
		if fh, ok := stdout.(*os.File); ok {
			o.Live = term.IsTerminal(int(fh.Fd()))
		}
	}
	need := func(name string) (string, error) {
		if v := os.Getenv(name); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("%s is not set: run `make demo` (it starts the local stack and sets it)", name)
	}
	if o.Kinesis, err = need("STREAMBUDGET_KINESALITE_URL"); err != nil {
		return err
	}
	if o.ESURL, err = need("STREAMBUDGET_ES_URL"); err != nil {
		return err
	}
	if o.LogsQLURL, err = need("STREAMBUDGET_LOGSQL_URL"); err != nil {
		return err
	}
	if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return err
	}
	if o.Bin, err = os.Executable(); err != nil {
		return err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	o.KC = kinesis.NewFromConfig(cfg, func(ko *kinesis.Options) { ko.BaseEndpoint = &o.Kinesis })
	sum, runErr := demo.Run(ctx, o)
	if *summary != "" && sum != nil {
		b, err := json.MarshalIndent(sum, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*summary, b, 0o644); err != nil {
			return err
		}
	}
	return runErr
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
