// Package essink indexes what it is given into Elasticsearch with
// synchronous bulk requests (olivere/elastic's Bulk(), never its
// BulkProcessor, which cannot say which writes were confirmed) and reads
// every item of every response, so that the caller knows exactly what became
// of each document: indexed, there already, or rejected with a reason.
// Failures that pass are retried for as long as it takes; it builds no
// documents and dead-letters nothing itself (pkg/document does that).
package essink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streambudget/streambudget/pkg/metrics"
)

// Options configure a Sink.
type Options struct {
	URLs         []string
	Team, Stream string // the metrics' labels

	// Credentials, from the environment, never from the budget file.
	Username, Password string
	APIKey             string
	// TLS: a PEM bundle of CAs to trust instead of the system pool, and an
	// optional client certificate.
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool

	MaxDocsPerRequest  int           // default 1000
	MaxBytesPerRequest int           // default 5 MiB
	RequestTimeout     time.Duration // default 30s
	MinBackoff         time.Duration // default 100ms
	MaxBackoff         time.Duration // default 30s
	// BlockedRetry is the least wait between attempts while the sink is
	// blocked (401, 403, 404, a data-stream mismatch); default 10s.
	BlockedRetry time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// HTTPClient replaces the client built from the TLS options (tests).
	HTTPClient *http.Client
}

// Sink writes documents with synchronous bulk requests. It is safe for
// concurrent use: each shard calls Index from its own goroutine.
type Sink struct {
	client *elastic.Client
	opts   Options
	log    *slog.Logger
	bo     *elastic.ExponentialBackoff
	m      sinkMetrics

	mu      sync.Mutex
	blocked string // the current Blocked* reason, "" when not blocked
	// recovered gets a value when the sink stops being blocked.
	recovered chan struct{}
}

type sinkMetrics struct {
	indexed      prometheus.Counter
	replayed     prometheus.Counter
	deadLettered *prometheus.CounterVec
	retries      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	requests     *prometheus.CounterVec
	blocked      *prometheus.GaugeVec
}

// New builds a sink. It does not contact Elasticsearch.
func New(opts Options) (*Sink, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("no Elasticsearch URL")
	}
	if opts.MaxDocsPerRequest <= 0 {
		opts.MaxDocsPerRequest = 1000
	}
	if opts.MaxBytesPerRequest <= 0 {
		opts.MaxBytesPerRequest = 5 << 20
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.BlockedRetry <= 0 {
		opts.BlockedRetry = 10 * time.Second
	}
	hc := opts.HTTPClient
	if hc == nil {
		var err error
		hc, err = httpClient(opts)
		if err != nil {
			return nil, err
		}
	}
	copts := []elastic.ClientOptionFunc{
		elastic.SetURL(opts.URLs...),
		elastic.SetHttpClient(hc),
		elastic.SetRetrier(elastic.NewStopRetrier()), // retries are ours: per item, forever
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
	}
	switch {
	case opts.APIKey != "":
		copts = append(copts, elastic.SetHeaders(http.Header{"Authorization": []string{"ApiKey " + opts.APIKey}}))
	case opts.Username != "":
		copts = append(copts, elastic.SetBasicAuth(opts.Username, opts.Password))
	}
	client, err := elastic.NewSimpleClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client for %s: %w", strings.Join(opts.URLs, ","), err)
	}
	labels := prometheus.Labels{"team": opts.Team, "stream": opts.Stream}
	f := promauto.With(opts.Registerer)
	s := &Sink{client: client, opts: opts, log: opts.Logger, bo: elastic.NewExponentialBackoff(opts.MinBackoff, opts.MaxBackoff),
		recovered: make(chan struct{}, 1)}
	s.m = sinkMetrics{
		indexed: f.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "indexed_total", ConstLabels: labels,
			Help: "Documents Elasticsearch confirmed (including replays it already had).",
		}),
		replayed: f.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "replayed_total", ConstLabels: labels,
			Help: "Creates Elasticsearch answered 409 because it already had the document (documents and dead letters): records read again after a restart, a lease move or a lost confirmation. Each is written once.",
		}),
		deadLettered: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "dead_lettered_total", ConstLabels: labels,
			Help: "Records written to the dead-letter index, by reason.",
		}, []string{"reason"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "retries_total", ConstLabels: labels,
			Help: "Bulk requests or items sent again, by reason (request_error, request_429, request_split, item_429, item_5xx, item_blocked_index, blocked).",
		}, []string{"reason"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "bulk_request_duration_seconds", ConstLabels: labels,
			Help:    "Duration of bulk requests, by result (ok or error).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "bulk_requests_total", ConstLabels: labels,
			Help: "Bulk requests sent, by result (ok or error).",
		}, []string{"result"}),
		blocked: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "blocked", ConstLabels: labels,
			Help: "1 for the reason Elasticsearch refuses every write now (unauthorized, forbidden, index_not_found, data_stream_mismatch): no retry of one document fixes it, nothing is dead-lettered; 0 otherwise.",
		}, []string{"reason"}),
	}
	for _, r := range BlockedReasons {
		s.m.blocked.WithLabelValues(r).Set(0)
	}
	return s, nil
}

func httpClient(opts Options) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = opts.RequestTimeout
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.InsecureSkipVerify} //nolint:gosec // opt-in flag for test clusters
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read Elasticsearch CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read Elasticsearch CA bundle %s: no PEM certificates in it", opts.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	if opts.CertFile != "" || opts.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load Elasticsearch client certificate: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = tlsConf
	return &http.Client{Transport: tr, Timeout: opts.RequestTimeout}, nil
}

// Ping checks that Elasticsearch answers. It is what /readyz asks.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := s.client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "GET", Path: "/"})
	if err != nil {
		return fmt.Errorf("ping Elasticsearch: %w", err)
	}
	return nil
}

// Blocked is the reason Elasticsearch refuses every write now, or "".
func (s *Sink) Blocked() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blocked
}

// Recovered receives a value each time the sink stops being blocked (at
// most one waits), so that the caller can check the cluster again.
func (s *Sink) Recovered() <-chan struct{} { return s.recovered }

// setBlocked records the blocked reason ("" when writes go through again)
// and reports whether it changed.
func (s *Sink) setBlocked(reason string) bool {
	s.mu.Lock()
	prev := s.blocked
	if prev == reason {
		s.mu.Unlock()
		return false
	}
	s.blocked = reason
	s.mu.Unlock()
	for _, r := range BlockedReasons {
		v := 0.0
		if r == reason {
			v = 1
		}
		s.m.blocked.WithLabelValues(r).Set(v)
	}
	if reason == "" {
		s.log.Info("Elasticsearch accepts writes again", "was", prev)
		select {
		case s.recovered <- struct{}{}:
		default:
		}
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
