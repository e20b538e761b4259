// Package essink indexes documents into Elasticsearch with synchronous bulk
// requests and reads every item of every response, so that the caller knows
// exactly which writes were confirmed. Failures that can pass (connection
// errors, timeouts, 429, 5xx) are retried with capped exponential backoff and
// jitter for as long as it takes; documents Elasticsearch rejects for good
// (mapping conflicts, bad documents) go to the dead-letter index with the
// reason. Nothing is confirmed that is not in one index or the other.
package essink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// Options configure a Sink.
type Options struct {
	URLs            []string
	DeadLetterIndex string // pattern, formatted with the time of the dead letter
	Team, Stream    string

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

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// HTTPClient replaces the client built from the TLS options (tests).
	HTTPClient *http.Client
}

// Sink writes documents with synchronous bulk requests. It is safe for
// concurrent use: each shard calls Index from its own goroutine.
type Sink struct {
	client   *elastic.Client
	opts     Options
	dlIndex  *budget.IndexPattern
	log      *slog.Logger
	now      func() time.Time
	m        sinkMetrics
	lastPing time.Time
}

type sinkMetrics struct {
	indexed      prometheus.Counter
	deadLettered *prometheus.CounterVec
	retries      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	requests     *prometheus.CounterVec
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dl, err := budget.ParseIndexPattern(opts.DeadLetterIndex)
	if err != nil {
		return nil, fmt.Errorf("dead-letter index: %w", err)
	}
	hc := opts.HTTPClient
	if hc == nil {
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
	s := &Sink{client: client, opts: opts, dlIndex: dl, log: opts.Logger, now: opts.Now}
	s.m = sinkMetrics{
		indexed: f.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "indexed_total", ConstLabels: labels,
			Help: "Documents Elasticsearch confirmed (including replays it already had).",
		}),
		deadLettered: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "dead_lettered_total", ConstLabels: labels,
			Help: "Records written to the dead-letter index, by reason.",
		}, []string{"reason"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "sink", Name: "retries_total", ConstLabels: labels,
			Help: "Bulk requests or items sent again, by reason (request_error, item_429, item_5xx, dead_letter_rejected).",
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

// backoff returns the wait before attempt n (1-based): exponential from
// MinBackoff, capped at MaxBackoff, with full jitter in the upper half.
func (s *Sink) backoff(n int) time.Duration {
	d := s.opts.MinBackoff << min(n-1, 20)
	if d <= 0 || d > s.opts.MaxBackoff {
		d = s.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
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
