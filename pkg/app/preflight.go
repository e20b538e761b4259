package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/metrics"
)

// preflight asks the cluster, before the consumer reads anything and again
// on every recovery of the sink, whether the team's targets can be written
// as configured. A refusal at start stops the pod with its sentence; later
// it makes /readyz fail and streambudget_sink_preflight_ok 0 while the
// consumer goes on (the sink then blocks on what the refusal said).
type preflight struct {
	sink  *essink.Sink
	file  *budget.File
	log   *slog.Logger
	gauge prometheus.Gauge
	// indexIsDataStream: --data-stream (deprecated) says the index target
	// names a data stream.
	indexIsDataStream bool
	mu                sync.Mutex
	lastErr           error
}

func newPreflight(sink *essink.Sink, f *budget.File, indexIsDataStream bool, log *slog.Logger, reg prometheus.Registerer) *preflight {
	g := promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Subsystem: "sink", Name: "preflight_ok",
		ConstLabels: prometheus.Labels{"team": f.Team, "stream": f.StreamName()},
		Help:        "1 when the last preflight found the targets writable as configured, 0 while it fails (the log and /readyz say why).",
	})
	return &preflight{sink: sink, file: f, indexIsDataStream: indexIsDataStream, log: log, gauge: g, lastErr: errors.New("not checked yet")}
}

// targets are the team's targets as of now (a dated index is today's).
func (p *preflight) targets(now time.Time) []essink.Target {
	es := p.file.Elasticsearch
	target := func(role, indexKey, streamKey string, name string, ds bool) essink.Target {
		if ds {
			return essink.Target{Role: role, Field: "elasticsearch." + streamKey, Name: name, DataStream: true}
		}
		if ip, err := budget.ParseIndexPattern(name); err == nil {
			name = ip.Format(now)
		}
		if indexKey == "index" && p.indexIsDataStream {
			return essink.Target{Role: role, Field: "elasticsearch.index (with --data-stream)", Name: name, DataStream: true}
		}
		return essink.Target{Role: role, Field: "elasticsearch." + indexKey, Name: name}
	}
	name, ds := es.Target()
	dlName, dlDS := es.DeadLetterTarget()
	return []essink.Target{
		target("documents", "index", "dataStream", name, ds),
		target("dead letters", "deadLetterIndex", "deadLetterDataStream", dlName, dlDS),
	}
}

// check runs the preflight once and records its result.
func (p *preflight) check(ctx context.Context) error {
	cl, notes, err := p.sink.Preflight(ctx, p.targets(time.Now()))
	p.mu.Lock()
	p.lastErr = err
	p.mu.Unlock()
	if err != nil {
		p.gauge.Set(0)
		return err
	}
	p.gauge.Set(1)
	p.log.Info("preflight passed", "cluster", cl.String(), "notes", strings.Join(notes, "; "))
	return nil
}

// Err is why the last preflight failed, or nil.
func (p *preflight) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// start checks until the preflight passes (nil) or refuses (its error),
// retrying a cluster that does not answer; it returns ctx's error if ctx
// ends first.
func (p *preflight) start(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := p.check(ctx)
		var refusal *essink.Refusal
		switch {
		case err == nil:
			return nil
		case errors.As(err, &refusal):
			p.log.Error("the targets cannot be written as configured", "err", refusal.Sentence)
			return refusal
		}
		p.log.Warn("preflight: the cluster does not answer yet; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt)*2*time.Second, 30*time.Second)):
		}
	}
}

// run checks again each time the sink recovers, and every minute while the
// last check failed, until ctx ends.
func (p *preflight) run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.sink.Recovered():
		case <-t.C:
			if p.Err() == nil {
				continue
			}
		}
		if err := p.check(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("preflight after a recovery of the sink failed", "err", err)
		}
	}
}
