//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	h "github.com/streambudget/streambudget/integration/harness"
)

// TestBorrowing: three teams share a cluster of capacity 300 records/s, each
// guaranteed 100. Two log 25/s; the third spikes to 400/s for 15 s. It
// borrows what the quiet teams leave, so it drains faster than its plain
// budget allows, the cluster never reads more than its capacity, the quiet
// teams' lag stays low, and when a quiet team ramps up to its guarantee it
// gets it back within two intervals.
func TestBorrowing(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	clusterName := h.Unique("logs")
	extra := fmt.Sprintf("cluster:\n  name: %s\n  capacity: 300\n  borrow: true\n", clusterName)
	type team struct {
		name string
		c    *h.Consumer
		s    *h.Sampler
	}
	var teams []*team
	for _, n := range []string{"quiet1", "quiet2", "spiky"} {
		name := h.Unique(n)
		h.CreateStream(t, kc, name, 2)
		budget := h.Budget(t, name, name, 2, "maxRecords: 50\npollInterval: 1s", extra)
		teams = append(teams, &team{name: name, c: env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})})
	}
	for _, tm := range teams {
		h.Eventually(t, 30*time.Second, tm.name+" owns its shards", func() (bool, string) {
			m, err := tm.c.Metrics()
			return err == nil && h.Sum(m, "streambudget_consumer_shards_owned") == 2, "not yet"
		})
		tm.s = tm.c.Sample(time.Second)
	}
	quiet1, quiet2, spiky := teams[0], teams[1], teams[2]

	var wg sync.WaitGroup
	write := func(name string, perSecond, seconds int, delay time.Duration) []h.Record {
		recs := h.Records(name+fmt.Sprint(perSecond), perSecond*seconds, 20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			start := time.Now()
			for i := 0; i < seconds; i++ {
				h.Put(t, kc, name, recs[i*perSecond:(i+1)*perSecond])
				time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second)))
			}
		}()
		return recs
	}
	q1 := write(quiet1.name, 25, 50, 0)
	q2 := write(quiet2.name, 25, 50, 0)
	sp := write(spiky.name, 400, 15, 5*time.Second)
	spikeEnd := time.Now().Add(20 * time.Second)
	// At 30 s, quiet1 ramps up to its guarantee for 15 s.
	rampAt := time.Now().Add(30 * time.Second)
	ramp := write(quiet1.name, 100, 15, 30*time.Second)
	wg.Wait()
	waitIndexed(t, env, spiky.name, sp, 120*time.Second)
	drained := time.Now()
	waitIndexed(t, env, quiet1.name, append(q1, ramp...), 60*time.Second)
	waitIndexed(t, env, quiet2.name, q2, 60*time.Second)
	samples := make([][]h.Sample, len(teams))
	for i, tm := range teams {
		samples[i] = tm.s.Stop()
	}

	// The spiking team read well above its own 100/s while the others were quiet.
	spikeRate := 0.0
	for _, r := range rates(samples[2], 5*time.Second, spikeEnd.Add(-15*time.Second), spikeEnd.Add(10*time.Second), spiky.name) {
		spikeRate = max(spikeRate, r)
	}
	if spikeRate < 150 {
		t.Errorf("the spiking team read at most %.0f records/s; with two quiet teams it should borrow well above its 100", spikeRate)
	}
	// With its plain 100/s it reads 1,500 of the 6,000 during the spike and
	// needs 45 s after it; borrowing must do clearly better.
	drain := drained.Sub(spikeEnd).Seconds()
	if drain > 40 {
		t.Errorf("the spiking team drained %.0fs after the spike; with its plain budget it takes 45s", drain)
	}
	// The cluster's total read rate over every 5 s window.
	worst := 0.0
	for i := range samples[0] {
		for j := i + 1; j < len(samples[0]); j++ {
			dt := samples[0][j].At.Sub(samples[0][i].At)
			if dt < 5*time.Second {
				continue
			}
			total := 0.0
			for k := range teams {
				total += readAt(samples[k], samples[0][j].At) - readAt(samples[k], samples[0][i].At)
			}
			worst = max(worst, total/dt.Seconds())
			break
		}
	}
	if worst > 300*1.02 {
		t.Errorf("the cluster read %.0f records/s over a 5 s window, above its capacity of 300 (+2%%)", worst)
	}
	// The quiet teams' lag stayed low.
	for k := 0; k < 2; k++ {
		lag := 0.0
		for _, s := range samples[k] {
			if s.At.Before(rampAt) {
				lag = max(lag, h.Sum(s.Metrics, "streambudget_shard_lag_seconds"))
			}
		}
		if lag > 5 {
			t.Errorf("%s: lag %.1fs before its ramp, want under 5s", teams[k].name, lag)
		}
	}
	// quiet1 got its guarantee back within two intervals of needing it.
	back := time.Duration(-1)
	for _, s := range samples[0] {
		if s.At.After(rampAt) && h.Sum(s.Metrics, "streambudget_team_allowance_records_per_second") >= 99 {
			back = s.At.Sub(rampAt)
			break
		}
	}
	// One interval to see it held back, one for the others to make room
	// (increases wait a round), plus a sample and a batch.
	if back < 0 || back > 10*time.Second {
		t.Errorf("quiet1 got its guarantee back %s after its ramp; want within two intervals of being held back", back)
	}
	// The status page says what the team borrows or lends.
	for _, tm := range teams {
		resp, err := http.Get("http://" + tm.c.Addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `id="allowance"`) || !strings.Contains(string(page), "cluster "+clusterName) {
			t.Errorf("%s status page (%s) lacks the allowance row:\n%s", tm.name, resp.Status, page)
		}
	}
	t.Logf("borrowing: spiking team read up to %.0f records/s (guarantee 100), drained %.0fs after the spike (plain budget: 45s); cluster at most %.0f records/s over 5 s (capacity 300); quiet team had its guarantee back %s after ramping",
		spikeRate, drain, worst, back)
}

// readAt is the team's read counter at (or just before) time at.
func readAt(samples []h.Sample, at time.Time) float64 {
	v := 0.0
	for _, s := range samples {
		if s.At.After(at) {
			break
		}
		v = h.Sum(s.Metrics, "streambudget_shard_records_read_total")
	}
	return v
}
