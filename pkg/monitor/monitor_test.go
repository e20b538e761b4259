package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"golang.org/x/time/rate"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/kinesis"
)

// view is a stream view of one stream with fixed figures.
type view struct{ open int }

func (v view) Open() int                { return v.open }
func (v view) Retention() time.Duration { return 24 * time.Hour }
func (v view) Stream() kinesis.Stream   { return kinesis.Stream{Name: "s"} }

// fakeShard answers GetShardIterator and GetRecords over one shard's
// records, arrival times given; an iterator is "it-<offset>".
type fakeShard struct {
	arrivals []time.Time
	mu       sync.Mutex
	limits   []int // the Limit of every GetRecords call
}

func (f *fakeShard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ShardIterator string
		Limit         int
		Timestamp     float64
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch target := r.Header.Get("X-Amz-Target"); {
	case strings.HasSuffix(target, ".GetShardIterator"):
		at := time.UnixMilli(int64(in.Timestamp * 1000))
		i := 0
		for i < len(f.arrivals) && f.arrivals[i].Before(at) {
			i++
		}
		fmt.Fprintf(w, `{"ShardIterator":"it-%d"}`, i)
	case strings.HasSuffix(target, ".GetRecords"):
		f.mu.Lock()
		f.limits = append(f.limits, in.Limit)
		f.mu.Unlock()
		from, _ := strconv.Atoi(strings.TrimPrefix(in.ShardIterator, "it-"))
		to := min(from+in.Limit, len(f.arrivals))
		recs := make([]string, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, fmt.Sprintf(`{"Data":"eHh4","PartitionKey":"k","SequenceNumber":"%d","ApproximateArrivalTimestamp":%.3f}`,
				i, float64(f.arrivals[i].UnixMilli())/1000))
		}
		fmt.Fprintf(w, `{"Records":[%s],"NextShardIterator":"it-%d","MillisBehindLatest":0}`, strings.Join(recs, ","), to)
	default:
		http.Error(w, "unexpected "+target, http.StatusBadRequest)
	}
}

// inProcess serves a client's requests with a handler, without a socket.
type inProcess struct{ h http.Handler }

func (c inProcess) Do(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// TestProbeWindow counts the records in a one-second window. Its first
// call asks for a little more than the highest rate seen, and reads on
// with the full limit (booking the extra call) only when that did not reach
// the window's end.
func TestProbeWindow(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	var arrivals []time.Time
	add := func(from time.Time, n int, span time.Duration) {
		for i := range n {
			arrivals = append(arrivals, from.Add(span*time.Duration(i)/time.Duration(n)))
		}
	}
	add(t0.Add(-time.Second), 30, time.Second)   // before the window: skipped
	add(t0, 150, time.Second)                    // the window
	add(t0.Add(time.Second), 400, 2*time.Second) // after it

	for _, tc := range []struct {
		name      string
		history   []float64 // rates already known
		wantCalls []int
	}{
		{"no history: one call of probeLimit", nil, []int{probeLimit}},
		{"history above the window: one small call", []float64{200}, []int{200*5/4 + probeHintSlack}},
		{"history below the window: reads on", []float64{20, 40}, []int{40*5/4 + probeHintSlack, probeLimit}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeShard{arrivals: arrivals}
			kc := awskinesis.New(awskinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://kinesis.test"),
				HTTPClient: inProcess{fake}, Credentials: aws.AnonymousCredentials{}})
			m := New(Options{Kinesis: kc, View: view{open: 1}, ProbeTimeout: time.Minute})
			calls := rate.NewLimiter(budget.MaxCallsPerSecond, 1)
			st := &track{cur: Shard{ID: "shardId-000000000000", CallSlot: calls.Wait}}
			for i, r := range tc.history {
				st.tips = append(st.tips, tipSample{at: t0.Add(time.Duration(i-10) * time.Second), rate: r})
			}
			start := time.Now()
			got, err := m.probeWindow(context.Background(), st, t0)
			if err != nil {
				t.Fatal(err)
			}
			if got.rate != 150 || got.bytes != 450 {
				t.Errorf("window = %v records, %v bytes; want 150, 450", got.rate, got.bytes)
			}
			if fmt.Sprint(fake.limits) != fmt.Sprint(tc.wantCalls) {
				t.Errorf("GetRecords limits %v, want %v", fake.limits, tc.wantCalls)
			}
			// The shard's next call slot is due one slot interval after
			// each one the probe took.
			next := time.Since(start) + calls.Reserve().Delay()
			if slots := int(math.Round(next.Seconds() * budget.MaxCallsPerSecond)); slots != len(tc.wantCalls) {
				t.Errorf("took %d of the shard's call slots, want %d", slots, len(tc.wantCalls))
			}
		})
	}
}

// TestReadRateOverPolls reads 50 records per 1 s poll, seen by a measure
// every 5 s at a phase that catches one poll more or fewer per measure
// than the average: the rate stays within 5% of 50/s once the window is
// full, where over one 5 s step it is off by a whole poll (20%).
func TestReadRateOverPolls(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	tr := &track{}
	var total int64
	worst := 0.0
	for step := 0; step < 40; step++ {
		now := start.Add(time.Duration(step) * 5 * time.Second)
		// Polls land at 0.9 s past each second; measures see 4, 5 or 6.
		polls := int64(5)
		switch step % 3 {
		case 1:
			polls = 4
		case 2:
			polls = 6
		}
		total += 50 * polls
		tr.cur = Shard{ID: "s", ReadTotal: total}
		f := tr.measure(now, rateWindow)
		if step >= 5 {
			worst = math.Max(worst, math.Abs(f.read-50)/50)
		}
	}
	if worst > 0.05 {
		t.Errorf("read rate off by %.0f%% at worst, want within 5%%", worst*100)
	}
	// A lease taken again starts its totals from zero: no negative rate.
	tr.cur = Shard{ID: "s", ReadTotal: 10}
	if f := tr.measure(start.Add(time.Hour), rateWindow); f.read < 0 {
		t.Errorf("read rate %v after the totals restarted", f.read)
	}
}
