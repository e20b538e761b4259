// Package metrics holds what every package's metrics share: the namespace,
// the registry a process exposes, and the /metrics handler. Each package
// registers its own series on the prometheus.Registerer it is given.
package metrics

import (
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every streambudget series.
const Namespace = "streambudget"

// NewRegistry returns a registry with the Go runtime and process collectors
// and streambudget_build_info. build_info carries the team and stream too: it
// is the one series every pod of a team exports from its start, so the fleet
// monitoring alerts on a team whose build_info is absent (all its pods gone).
func NewRegistry(version, team, stream string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Namespace:   Namespace,
		Name:        "build_info",
		Help:        "Always 1; labels carry the version of the running binary and the team and stream it reads.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion, "team": team, "stream": stream},
	}).Set(1)
	return reg
}

// Handler serves the registry in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: false})
}
