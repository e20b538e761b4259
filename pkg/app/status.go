package app

import (
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/cluster"
	"github.com/streambudget/streambudget/pkg/consumer"
	"github.com/streambudget/streambudget/pkg/monitor"
)

//go:embed status.html
var statusFS embed.FS

var statusTmpl = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"dur":  fmtDuration,
	"rate": func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"sub":  func(a, b float64) float64 { return a - b },
	"pct": func(a, b float64) string {
		if b <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*a/b)
	},
}).ParseFS(statusFS, "status.html"))

// statusPage is what the page shows.
type statusPage struct {
	Team, Stream, Worker string
	Version              string
	Budget               budget.Budget
	TeamBudget           float64
	OpenShards           int
	Retention            time.Duration
	Ready                bool
	Reading              int
	Team0                monitor.TeamStatus
	Cluster              string
	Allowance, Borrowed  float64
	Borrowing            bool
	Shards               []shardRow
	Now                  time.Time
}

type shardRow struct {
	consumer.ShardSnapshot
	monitor.ShardFigures
	Headroom time.Duration
}

// statusHandler serves / : a self-contained page (no external assets) with
// the team's budget, each owned shard's rates, lag and retention headroom,
// and the advice in a sentence. It refreshes itself every 5 seconds.
func statusHandler(f *budget.File, c *consumer.Consumer, mon *monitor.Monitor, coord *cluster.Coordinator, version string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		open := c.View().Open()
		p := statusPage{
			Team: f.Team, Stream: f.StreamName(), Worker: c.WorkerID(), Version: version,
			Budget: f.Budget, TeamBudget: f.Budget.TeamRate(open), OpenShards: open, Reading: c.Reading(),
			Retention: c.View().Retention(), Ready: c.Ready(), Team0: mon.Team(), Now: time.Now(),
		}
		if coord != nil {
			if a := coord.Allocation(); a.Allowance > 0 {
				p.Cluster, p.Allowance, p.Borrowed, p.Borrowing = f.Cluster.Name, a.Allowance, a.Borrowed, true
			}
		}
		for _, s := range c.Shards() {
			p.Shards = append(p.Shards, shardRow{ShardSnapshot: s, ShardFigures: mon.Shard(s.ID), Headroom: p.Retention - s.Lag})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := statusTmpl.Execute(w, p); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", math.Floor(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
