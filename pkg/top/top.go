// Package top reads the /metrics of one or more streambudget pods and
// renders one line per team: budget, read rate, lag, retention headroom and
// the advice. It is what `streambudget top` and the demo show.
package top

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one read of every pod.
type Scrape struct {
	At    time.Time
	Teams map[string]*Team
	// Errors are the pods that did not answer, by URL.
	Errors map[string]error
}

// Team is a team's figures over the pods that answered.
type Team struct {
	Name, Stream string
	Pods         int
	// Owned is the shards the pods hold; Open the stream's open shards.
	Owned, Open int
	Budget      float64
	Incoming    float64
	Backlog     float64
	DrainETA    float64 // seconds; -1 when not draining
	Headroom    float64 // seconds
	MaxLag      float64 // seconds
	Advice      string
	// readTotal is the sum of the shards' read counters, for rates.
	readTotal float64
	// Dropped is the documents the drop rules dropped, over the pods.
	Dropped float64
	// Read is the read rate between two scrapes, records/s.
	Read float64
	// Borrowed is records/s above the guarantee (work-conserving budgets).
	Allowance float64
}

// Fetch scrapes every URL (a pod's base URL or its /metrics).
func Fetch(ctx context.Context, client *http.Client, urls []string) *Scrape {
	s := &Scrape{At: time.Now(), Teams: map[string]*Team{}, Errors: map[string]error{}}
	for _, u := range urls {
		fams, err := fetch(ctx, client, u)
		if err != nil {
			s.Errors[u] = err
			continue
		}
		s.add(fams)
	}
	return s
}

func metricsURL(u string) string {
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	if !strings.HasSuffix(u, "/metrics") {
		u = strings.TrimRight(u, "/") + "/metrics"
	}
	return u
}

func fetch(ctx context.Context, client *http.Client, u string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL(u), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return math.NaN()
}

func (s *Scrape) add(fams map[string]*dto.MetricFamily) {
	seen := map[string]bool{}
	team := func(m *dto.Metric) *Team {
		name := label(m, "team")
		t, ok := s.Teams[name]
		if !ok {
			t = &Team{Name: name, Stream: label(m, "stream"), DrainETA: -1, Headroom: math.NaN()}
			s.Teams[name] = t
		}
		if !seen[name] {
			seen[name] = true
			t.Pods++
		}
		return t
	}
	each := func(name string, f func(t *Team, m *dto.Metric, v float64)) {
		if fam, ok := fams[name]; ok {
			for _, m := range fam.GetMetric() {
				f(team(m), m, value(m))
			}
		}
	}
	each("streambudget_consumer_shards_owned", func(t *Team, _ *dto.Metric, v float64) { t.Owned += int(v) })
	each("streambudget_shard_records_read_total", func(t *Team, _ *dto.Metric, v float64) { t.readTotal += v })
	each("streambudget_rules_dropped_total", func(t *Team, _ *dto.Metric, v float64) { t.Dropped += v })
	each("streambudget_shard_lag_seconds", func(t *Team, _ *dto.Metric, v float64) { t.MaxLag = math.Max(t.MaxLag, v) })
	// Team gauges are the same on every pod: keep one.
	each("streambudget_team_open_shards", func(t *Team, _ *dto.Metric, v float64) { t.Open = int(v) })
	each("streambudget_team_budget_records_per_second", func(t *Team, _ *dto.Metric, v float64) { t.Budget = v })
	each("streambudget_team_incoming_records_per_second", func(t *Team, _ *dto.Metric, v float64) { t.Incoming = v })
	each("streambudget_team_backlog_records", func(t *Team, _ *dto.Metric, v float64) { t.Backlog = v })
	each("streambudget_team_drain_eta_seconds", func(t *Team, _ *dto.Metric, v float64) { t.DrainETA = v })
	each("streambudget_team_retention_headroom_seconds", func(t *Team, _ *dto.Metric, v float64) { t.Headroom = v })
	each("streambudget_team_allowance_records_per_second", func(t *Team, _ *dto.Metric, v float64) { t.Allowance = v })
	each("streambudget_advice", func(t *Team, m *dto.Metric, v float64) {
		if v == 1 {
			t.Advice = label(m, "action")
		}
	})
}

// ReadTotal is the records the team's pods have read, over their shards.
func (t *Team) ReadTotal() float64 { return t.readTotal }

// Rates fills in read rates from an earlier scrape of the same pods.
func (s *Scrape) Rates(prev *Scrape) {
	if prev == nil {
		return
	}
	dt := s.At.Sub(prev.At).Seconds()
	if dt <= 0 {
		return
	}
	for name, t := range s.Teams {
		if p, ok := prev.Teams[name]; ok && t.readTotal >= p.readTotal {
			t.Read = (t.readTotal - p.readTotal) / dt
		}
	}
}

// Print writes the table, teams sorted by name.
func (s *Scrape) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tPODS\tSHARDS\tBUDGET/S\tREAD/S\tINCOMING/S\tBACKLOG\tMAX LAG\tDRAIN ETA\tHEADROOM\tADVICE")
	names := make([]string, 0, len(s.Teams))
	for n := range s.Teams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := s.Teams[n]
		budget := fmt.Sprintf("%.0f", t.Budget)
		if t.Allowance > t.Budget {
			budget = fmt.Sprintf("%.0f(+%.0f)", t.Budget, t.Allowance-t.Budget)
		}
		advice := t.Advice
		if advice == "" {
			advice = "measuring"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\n",
			t.Name, t.Pods, t.Owned, t.Open, budget, t.Read, t.Incoming, t.Backlog, secs(t.MaxLag), eta(t.DrainETA), secs(t.Headroom), advice)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	urls := make([]string, 0, len(s.Errors))
	for u := range s.Errors {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		fmt.Fprintf(w, "unreachable: %s: %v\n", u, s.Errors[u])
	}
	return nil
}

func eta(s float64) string {
	if s < 0 {
		return "-"
	}
	return secs(s)
}

func secs(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Run refreshes the table every interval in place until ctx ends; footer,
// when set, adds lines under it (the demo's progress). With once, it
// scrapes twice an interval apart (for rates) and prints one table.
func Run(ctx context.Context, w io.Writer, urls []string, interval time.Duration, once bool, footer func() string) error {
	client := &http.Client{}
	prev := Fetch(ctx, client, urls)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		cur := Fetch(ctx, client, urls)
		cur.Rates(prev)
		prev = cur
		var b strings.Builder
		if !once {
			b.WriteString("\033[H\033[2J") // home and clear: refresh in place
			fmt.Fprintf(&b, "streambudget top · %s · every %s · Ctrl-C to quit\n\n", cur.At.Format("15:04:05"), interval)
		}
		if err := cur.Print(&b); err != nil {
			return err
		}
		if footer != nil {
			b.WriteString("\n" + footer() + "\n")
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
		if once {
			if len(cur.Errors) == len(urls) {
				return fmt.Errorf("no pod answered")
			}
			return nil
		}
	}
}
