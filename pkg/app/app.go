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
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/cluster"
	"github.com/streambudget/streambudget/pkg/consumer"
	"github.com/streambudget/streambudget/pkg/decode"
	"github.com/streambudget/streambudget/pkg/document"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/kinesis"
	"github.com/streambudget/streambudget/pkg/lease"
	"github.com/streambudget/streambudget/pkg/metrics"
	"github.com/streambudget/streambudget/pkg/monitor"
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

// Run loads the budget, starts the consumer, its monitor (and cluster
// coordinator) and the HTTP server, and returns when ctx ends and all have
// stopped, or with the first error that stopped one of them.
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
	target, dataStream := f.Elasticsearch.Target()
	dlTarget, dlDataStream := f.Elasticsearch.DeadLetterTarget()
	if opts.DataStream && !dataStream {
		// --data-stream predates elasticsearch.dataStream: the index is a
		// data stream's name.
		log.Warn("--data-stream is deprecated: name the target with elasticsearch.dataStream in the budget file", "index", target)
		dataStream = true
	}
	schema, err := document.New(document.Options{
		Team: f.Team, Stream: f.StreamName(),
		Index: target, DataStream: dataStream,
		DeadLetterIndex: dlTarget, DeadLetterDataStream: dlDataStream,
		Drop: f.Drop, Redact: f.Redact,
		Decode: decode.Options{Format: f.Decode, MaxDecompressedBytes: f.Limits.MaxDecompressedBytes},
	})
	if err != nil {
		return err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	var c *consumer.Consumer
	var coord *cluster.Coordinator
	var mon *monitor.Monitor
	copts := consumer.Options{
		Budget:            f,
		Schema:            schema,
		Sink:              sink,
		AWS:               awsCfg,
		ApplicationName:   opts.ApplicationName,
		WorkerID:          opts.WorkerID,
		FromLatest:        opts.FromLatest,
		ShardSyncInterval: opts.ShardSync,
		FailoverTime:      opts.FailoverTime,
		ShutdownTimeout:   opts.ShutdownTimeout,
		Logger:            log,
		Registerer:        reg,
	}
	if copts.WorkerID == "" {
		copts.WorkerID = lease.DefaultWorker()
	}
	if f.Cluster != nil {
		coord = cluster.NewCoordinator(cluster.CoordinatorOptions{
			Cluster:   *f.Cluster,
			Team:      f.Team,
			Pod:       copts.WorkerID,
			Table:     cluster.NewDynamoTable(dynamodb.NewFromConfig(awsCfg), f.Cluster.Name),
			Guarantee: func() float64 { return c.TeamRate() },
			Demand: func() (float64, float64) {
				s := mon.Team().Snapshot
				return s.Incoming, s.Backlog
			},
			Owned:      func() int { return len(c.Shards()) },
			Waited:     func() time.Duration { return waited(c.Shards()) },
			Reading:    func() int { return c.Reading() },
			Teammates:  func() []cluster.Teammate { return teammates(c.Leases()) },
			Failover:   opts.FailoverTime,
			Logger:     log.With("team", f.Team),
			Registerer: reg,
		}, f.StreamName())
		copts.Allowance = coord
	}
	c, err = consumer.New(copts)
	if err != nil {
		return err
	}
	mopts := monitor.Options{
		Team: f.Team, Stream: f.StreamName(), Worker: c.WorkerID(), Budget: f.Budget,
		Shards:     func() []monitor.Shard { return monitorShards(c.Shards()) },
		Kinesis:    awskinesis.NewFromConfig(awsCfg, func(o *awskinesis.Options) { o.APIOptions = append(o.APIOptions, kinesis.FastGetRecords) }),
		View:       c.View(),
		Reading:    c.Reading,
		Heartbeats: c.Leases(),
		Logger:     log.With("team", f.Team, "component", "monitor"),
		Registerer: reg,
	}
	if coord != nil {
		mopts.Allowance = func() (float64, bool) {
			a := coord.Allocation()
			return a.Allowance, a.Allowance > 0
		}
	}
	mon = monitor.New(mopts)

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	pre := newPreflight(sink, f, opts.DataStream, log.With("team", f.Team, "component", "preflight"), reg)
	mux := routes(reg, c, sink, pre, statusHandler(f, c, mon, coord, opts.Version))
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

	// The consumer runs until ctx ends (or the server fails); the server,
	// the monitor and the coordinator run until the consumer has stopped,
	// so that its last checkpoints and releases are still observed.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	var g errgroup.Group
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			err = fmt.Errorf("HTTP server: %w", err)
			stopRun(err)
			return err
		}
		return nil
	})
	// Nothing is read before the cluster is known to take the writes as
	// configured; a refusal stops the pod with its sentence.
	if err = pre.start(runCtx); err == nil {
		g.Go(func() error { return pre.run(bg) })
		g.Go(func() error { return mon.Run(bg) })
		if coord != nil {
			g.Go(func() error { return coord.Run(bg) })
		}
		err = c.Run(runCtx)
	} else if ctx.Err() != nil && context.Cause(runCtx) == ctx.Err() {
		err = nil // stopped while waiting for the cluster
	}
	stopBackground()
	shutCtx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	_ = srv.Shutdown(shutCtx)
	if gerr := g.Wait(); err == nil {
		err = gerr
	}
	return err
}

// monitorShards is what the monitor reads of the consumer's shards.
func monitorShards(snaps []consumer.ShardSnapshot) []monitor.Shard {
	out := make([]monitor.Shard, len(snaps))
	for i, s := range snaps {
		out[i] = monitor.Shard{ID: s.ID, ReadTotal: s.ReadTotal, BytesTotal: s.BytesTotal, WaitTotal: s.WaitTotal,
			Lag: s.Lag, LastArrival: s.LastArrival, CaughtUp: s.CaughtUp, CallSlot: s.CallSlot}
	}
	return out
}

func waited(snaps []consumer.ShardSnapshot) time.Duration {
	var d time.Duration
	for _, s := range snaps {
		d += s.WaitTotal
	}
	return d
}

// teammates are the team's live pods from the lease table's heartbeats.
func teammates(l *lease.Manager) []cluster.Teammate {
	beats, _ := l.Team()
	out := make([]cluster.Teammate, len(beats))
	for i, h := range beats {
		out[i] = cluster.Teammate{Pod: h.Worker, Shards: int(h.Numbers["Shards"])}
	}
	return out
}

// pinger is the sink's reachability check.
type pinger interface {
	Ping(ctx context.Context) error
}

// checker says why the targets are not writable, or nil.
type checker interface {
	Err() error
}

func routes(reg *prometheus.Registry, c *consumer.Consumer, sink pinger, pre checker, status http.Handler) *http.ServeMux {
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
		if err := pre.Err(); err != nil {
			http.Error(w, "preflight: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
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
