package top

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const podMetrics = `# TYPE streambudget_consumer_shards_owned gauge
streambudget_consumer_shards_owned{stream="payments-logs",team="payments"} 1
# TYPE streambudget_shard_records_read_total counter
streambudget_shard_records_read_total{shard="shardId-0",stream="payments-logs",team="payments"} %d
# TYPE streambudget_shard_lag_seconds gauge
streambudget_shard_lag_seconds{shard="shardId-0",stream="payments-logs",team="payments"} %g
# TYPE streambudget_team_open_shards gauge
streambudget_team_open_shards{stream="payments-logs",team="payments"} 2
# TYPE streambudget_team_budget_records_per_second gauge
streambudget_team_budget_records_per_second{stream="payments-logs",team="payments"} 1000
# TYPE streambudget_team_incoming_records_per_second gauge
streambudget_team_incoming_records_per_second{stream="payments-logs",team="payments"} 3000
# TYPE streambudget_team_retention_headroom_seconds gauge
streambudget_team_retention_headroom_seconds{stream="payments-logs",team="payments"} 86000
# TYPE streambudget_team_drain_eta_seconds gauge
streambudget_team_drain_eta_seconds{stream="payments-logs",team="payments"} -1
# TYPE streambudget_advice gauge
streambudget_advice{action="ok",stream="payments-logs",team="payments"} 0
streambudget_advice{action="over_budget",stream="payments-logs",team="payments"} 1
`

// pod serves metrics whose read counter grows by perScrape each scrape.
func pod(t *testing.T, perScrape int, lag float64) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, podMetrics, n.Add(1)*int64(perScrape), lag)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunOnce(t *testing.T) {
	a, b := pod(t, 100, 12.5), pod(t, 50, 40)
	var out strings.Builder
	if err := Run(context.Background(), &out, []string{a.URL, strings.TrimPrefix(b.URL, "http://") + "/metrics"}, 100*time.Millisecond, true, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines:\n%s\nwant a header and one team", len(lines), out.String())
	}
	f := strings.Fields(lines[1])
	// TEAM PODS SHARDS BUDGET READ INCOMING BACKLOG LAG ETA HEADROOM ADVICE
	want := []string{"payments", "2", "2/2", "1000", "", "3000", "0", "40.0s", "-", "23h53m", "over_budget"}
	for i, w := range want {
		if w != "" && f[i] != w {
			t.Errorf("column %d = %q, want %q (line %q)", i, f[i], w, lines[1])
		}
	}
	// 150 records per 100ms between the scrapes: about 1500/s, less for
	// scheduling delays.
	var read float64
	fmt.Sscan(f[4], &read)
	if read < 500 || read > 1600 {
		t.Errorf("read rate %v, want about 1500", read)
	}
}

func TestRunOnceNoPod(t *testing.T) {
	var out strings.Builder
	err := Run(context.Background(), &out, []string{"127.0.0.1:1"}, 10*time.Millisecond, true, nil)
	if err == nil || !strings.Contains(out.String(), "unreachable: 127.0.0.1:1") {
		t.Fatalf("got %v and %q, want an error and the unreachable pod listed", err, out.String())
	}
}
