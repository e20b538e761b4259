// Package app wires the packages into the running service: budget, sink,
// consumer, metrics and the HTTP endpoints. It owns no signals and never
// exits the process; main does that.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/consumer"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// Options are the run subcommand's settings.
type Options struct {
	BudgetPath      string
	Listen          string   // address of /metrics, /healthz, /readyz
	ESURLs          []string // override the budget file's urls
	ApplicationName string
	WorkerID        string
	FromLatest      bool
	ShutdownTimeout time.Duration
	FailoverTime    time.Duration
	ShardSync       time.Duration
	DataStream      bool
	Version         string
	// Pprof serves net/http/pprof under /debug/pprof/ on Listen. Off by
	// default: profiles show record contents and cost CPU on demand.
	Pprof bool

	// TLS for Elasticsearch.
	ESCAFile, ESCertFile, ESKeyFile string
	ESInsecureSkipVerify            bool

	Logger *slog.Logger
	// Getenv reads credentials; os.Getenv when nil.
	Getenv func(string) string
	// Ready, when set, receives the HTTP address once listening (tests).
	Ready func(addr string)
}

// Run loads the budget, starts the consumer and the HTTP server, and returns
// when ctx ends and both have stopped.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	f, err := budget.Load(opts.BudgetPath)
	if err != nil {
		return err
	}
	setMemoryLimit(log, getenv, "/sys/fs/cgroup")
	reg := metrics.NewRegistry(opts.Version, f.Team, f.StreamName())
	urls := f.Elasticsearch.URLs
	if len(opts.ESURLs) > 0 {
		urls = opts.ESURLs
	}
	sink, err := essink.New(essink.Options{
		URLs:               urls,
		DeadLetterIndex:    f.Elasticsearch.DeadLetterIndex,
		Team:               f.Team,
		Stream:             f.StreamName(),
		Username:           getenv("ELASTICSEARCH_USERNAME"),
		Password:           getenv("ELASTICSEARCH_PASSWORD"),
		APIKey:             getenv("ELASTICSEARCH_API_KEY"),
		CAFile:             opts.ESCAFile,
		CertFile:           opts.ESCertFile,
		KeyFile:            opts.ESKeyFile,
		InsecureSkipVerify: opts.ESInsecureSkipVerify,
		Logger:             log.With("team", f.Team, "component", "sink"),
		Registerer:         reg,
	})
	if err != nil {
		return err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	c, err := consumer.New(consumer.Options{
		Budget:            f,
		AWS:               awsCfg,
		Sink:              sink,
		ApplicationName:   opts.ApplicationName,
		WorkerID:          opts.WorkerID,
		FromLatest:        opts.FromLatest,
		ShardSyncInterval: opts.ShardSync,
		FailoverTime:      opts.FailoverTime,
		ShutdownTimeout:   opts.ShutdownTimeout,
		DataStream:        opts.DataStream,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	mux := routes(reg, c, sink, statusHandler(f, c, opts.Version))
	if opts.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving metrics and health", "addr", ln.Addr().String(), "team", f.Team)
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	var wg sync.WaitGroup
	srvErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srvErr <- err
		}
	}()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case err := <-srvErr:
			log.Error("HTTP server failed", "err", err)
			cancel()
		case <-runCtx.Done():
		}
	}()
	err = c.Run(runCtx)
	shutCtx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	_ = srv.Shutdown(shutCtx)
	wg.Wait()
	return err
}

// pinger is the sink's reachability check.
type pinger interface {
	Ping(ctx context.Context) error
}

func routes(reg *prometheus.Registry, c *consumer.Consumer, sink pinger, status http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /", status)
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	var (
		mu       sync.Mutex
		lastPing time.Time
		lastErr  error
	)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !c.Ready() {
			http.Error(w, "worker not running", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		if time.Since(lastPing) > 5*time.Second {
			lastErr, lastPing = sink.Ping(r.Context()), time.Now()
		}
		err := lastErr
		mu.Unlock()
		if err != nil {
			http.Error(w, "sink unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
