package main

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/streambudget/streambudget/pkg/app"
	"github.com/streambudget/streambudget/pkg/budget"
)

func runRun(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("run", "--budget FILE [flags]", stderr)
	opts := app.Options{Version: version, Getenv: os.Getenv}
	fs.StringVar(&opts.BudgetPath, "budget", "", "the team's budget file (required)")
	fs.StringVar(&opts.Listen, "listen", "127.0.0.1:9090", "address for /, /metrics, /healthz and /readyz")
	esURL := fs.String("es-url", "", "Elasticsearch URL(s), comma-separated; overrides the budget file's urls")
	fs.StringVar(&opts.ApplicationName, "application", "", "KCL application and lease table name (default streambudget-<team>)")
	fs.StringVar(&opts.WorkerID, "worker-id", os.Getenv("POD_NAME"), "this pod's id in the lease table (default $POD_NAME, else host name and a random suffix)")
	fs.BoolVar(&opts.FromLatest, "from-latest", false, "start shards that have no checkpoint at the tip instead of the oldest record")
	fs.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "bound on a graceful stop after SIGTERM")
	fs.DurationVar(&opts.FailoverTime, "failover-time", 10*time.Second, "lease duration: a pod that does not renew within it loses its shards")
	fs.DurationVar(&opts.ShardSync, "shard-sync-interval", 500*time.Millisecond, "how often the worker lists shards and takes at most one new lease")
	fs.BoolVar(&opts.DataStream, "data-stream", false, "index with op_type create (the index pattern names a data stream)")
	fs.StringVar(&opts.ESCAFile, "es-ca", "", "PEM file of CAs to trust for Elasticsearch instead of the system pool")
	fs.StringVar(&opts.ESCertFile, "es-cert", "", "client certificate (PEM) for Elasticsearch")
	fs.StringVar(&opts.ESKeyFile, "es-key", "", "client key (PEM) for Elasticsearch")
	fs.BoolVar(&opts.ESInsecureSkipVerify, "es-insecure-skip-verify", false, "do not verify Elasticsearch's certificate (test clusters only)")
	fs.BoolVar(&opts.Pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on the listen address (for diagnosis; off in production)")
	logFormat := fs.String("log-format", "json", "json or text")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case opts.BudgetPath == "":
		return usageError(fs, stderr, "--budget is required: the team's budget file, e.g. --budget budgets/payments.yaml")
	case len(rest) > 0:
		return usageError(fs, stderr, "unexpected argument %q (flags start with --)", rest[0])
	}
	if *esURL != "" {
		opts.ESURLs = strings.Split(*esURL, ",")
		for i, u := range opts.ESURLs {
			u = strings.TrimSpace(u)
			opts.ESURLs[i] = u
			if err := budget.CheckURL(u); err != nil {
				return usageError(fs, stderr, "--es-url %v", err)
			}
		}
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	opts.Logger = log
	if err := app.Run(ctx, opts); err != nil {
		log.Error("streambudget run", "err", err)
		return exitError(1)
	}
	return nil
}
