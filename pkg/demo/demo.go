// Package demo runs the scenario `make demo` shows: one stream and one
// consumer process per example budget on the local stack, two teams logging
// steadily under their budgets and a third spiking to several times its
// budget, a live view, and at the end an account of every record.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/loadgen"
	"github.com/streambudget/streambudget/pkg/top"
)

// Options configure a demo run.
type Options struct {
	BudgetDir string
	// Bin is the streambudget binary the consumers run.
	Bin string
	// Kinesis is the emulator endpoint (kinesalite: fast for volume).
	Kinesis     string
	ESURL       string
	LogsQLURL   string
	LogDir      string
	Seconds     int     // how long load is written
	SpikeFactor float64 // the spiking team's rate during the spike, in budgets
	SpikeTeam   string  // default: the team with the smallest budget
	PortBase    int     // consumers listen on PortBase+1, +2, ...
	Live        bool    // refresh a table in place; else print progress lines
	Borrowing   bool    // add a second act with work-conserving budgets
	Out         io.Writer
	KC          *kinesis.Client
}

// TeamResult is one team's account at the end.
type TeamResult struct {
	Team         string   `json:"team"`
	Stream       string   `json:"stream"`
	Budget       float64  `json:"budget_records_per_second"`
	Spiking      bool     `json:"spiking"`
	Produced     int64    `json:"produced"`
	Indexed      int64    `json:"indexed"`
	Dropped      int64    `json:"dropped"`
	DeadLettered int64    `json:"dead_lettered"`
	Unaccounted  int64    `json:"unaccounted"`
	MaxLag       float64  `json:"max_lag_seconds"`
	MaxRead10s   float64  `json:"max_read_rate_10s"`
	DrainSeconds float64  `json:"drain_seconds,omitempty"`
	Advice       []string `json:"advice"`
	StatusURL    string   `json:"status_url"`
}

// Summary is the whole run's account.
type Summary struct {
	Seconds     int          `json:"seconds"`
	SpikeFactor float64      `json:"spike_factor"`
	SpikeAt     float64      `json:"spike_at_seconds"`
	SpikeFor    float64      `json:"spike_for_seconds"`
	Teams       []TeamResult `json:"teams"`
	// Borrowing is the second act, when it ran.
	Borrowing *Summary `json:"borrowing,omitempty"`
}

type team struct {
	file    *budget.File
	stream  string
	addr    string
	cmd     *exec.Cmd
	done    chan struct{}
	gen     *loadgen.Generator
	shape   loadgen.Shape
	res     TeamResult
	samples []sample
}

type sample struct {
	at      time.Time
	read    float64
	lag     float64
	dropped float64
	advice  string
}

// Run plays the scenario and returns the account; the error says when a
// record is unaccounted for or the stack misbehaved. With o.Borrowing, a
// second act runs the same spike with the teams sharing one cluster
// (work-conserving budgets) and the two drain times are compared.
func Run(ctx context.Context, o Options) (*Summary, error) {
	plain, err := runAct(ctx, o, false)
	if err != nil || !o.Borrowing {
		return plain, err
	}
	fmt.Fprintln(o.Out, "\nSecond act: the same spike, the three teams sharing one cluster whose capacity is the sum of their budgets;")
	fmt.Fprintln(o.Out, "the spiking team may borrow what the quiet teams leave unused.")
	o.PortBase += 10
	shared, err := runAct(ctx, o, true)
	if shared != nil {
		plain.Borrowing = shared
		for _, a := range plain.Teams {
			for _, b := range shared.Teams {
				if a.Spiking && b.Team == a.Team {
					fmt.Fprintf(o.Out, "\n%s drained its backlog %.0fs after the spike with its plain budget, %.0fs borrowing (peak read %.0f vs %.0f records/s).\n",
						a.Team, a.DrainSeconds, b.DrainSeconds, a.MaxRead10s, b.MaxRead10s)
				}
			}
		}
	}
	return plain, err
}

func runAct(ctx context.Context, o Options, borrow bool) (*Summary, error) {
	files, err := budget.LoadDir(o.BudgetDir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no budgets")
	}
	spikeTeam := o.SpikeTeam
	if spikeTeam == "" {
		sort.Slice(files, func(i, j int) bool {
			return files[i].Budget.TeamRate(files[i].Shards) < files[j].Budget.TeamRate(files[j].Shards)
		})
		spikeTeam = files[0].Team
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Team < files[j].Team })
	secs := time.Duration(o.Seconds) * time.Second
	spikeAt := max(5*time.Second, secs/10)
	spikeFor := secs * 27 / 100
	sum := &Summary{Seconds: o.Seconds, SpikeFactor: o.SpikeFactor, SpikeAt: spikeAt.Seconds(), SpikeFor: spikeFor.Seconds()}

	var runID [3]byte
	_, _ = rand.Read(runID[:])
	id := hex.EncodeToString(runID[:])
	tmp, err := os.MkdirTemp("", "streambudget-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var teams []*team
	defer func() {
		for _, t := range teams {
			t.stop(10 * time.Second)
		}
		// The emulator keeps streams in memory: remove this run's.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, t := range teams {
			_, _ = o.KC.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(t.stream), EnforceConsumerDeletion: aws.Bool(true)})
		}
	}()
	for i, f := range files {
		t := &team{file: f, stream: f.StreamName() + "-" + id, addr: fmt.Sprintf("127.0.0.1:%d", o.PortBase+1+i)}
		rate := f.Budget.TeamRate(f.Shards)
		t.res = TeamResult{Team: f.Team, Stream: t.stream, Budget: rate, Spiking: f.Team == spikeTeam, StatusURL: "http://" + t.addr + "/"}
		t.shape = loadgen.Shape{Rate: rate / 2, Duration: secs}
		if t.res.Spiking {
			t.shape = loadgen.Shape{Rate: rate / 4, SpikeFactor: o.SpikeFactor * 4, SpikeAt: spikeAt, SpikeFor: spikeFor, Duration: secs}
		}
		teams = append(teams, t)
		if err := createStream(ctx, o.KC, t.stream, f.Shards); err != nil {
			return nil, err
		}

		var cluster string
		if borrow {
			total := 0.0
			for _, g := range files {
				total += g.Budget.TeamRate(g.Shards)
			}
			cluster = fmt.Sprintf("\ncluster:\n  name: demo-%s\n  capacity: %.0f\n  borrow: true\n", id, total)
		}
		if err := t.start(o, tmp, id, cluster); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.Out, "streambudget demo: %d teams on the local stack; %s spikes to %.0fx its budget for %s after %s.\n",
		len(teams), spikeTeam, o.SpikeFactor, spikeFor, spikeAt)
	for _, t := range teams {
		fmt.Fprintf(o.Out, "  %-10s budget %5.0f records/s  status page %s\n", t.file.Team, t.res.Budget, t.res.StatusURL)
	}
	for _, t := range teams {
		if err := t.awaitShards(ctx, 60*time.Second); err != nil {
			return nil, err
		}
	}

	// Load, sampling every pod each second; the live view refreshes on top.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	genErr := make(chan error, len(teams))
	for _, t := range teams {
		t.gen = loadgen.New(o.KC, loadgen.Options{Stream: t.stream, Team: t.file.Team, Shape: t.shape, BadEvery: 15 * time.Second, Seed: uint64(len(t.stream))})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.gen.Run(runCtx); err != nil {
				genErr <- fmt.Errorf("load for %s: %w", t.file.Team, err)
			}
		}()
	}
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				for _, t := range teams {
					t.sample()
				}
			}
		}
	}()
	var addrs []string
	for _, t := range teams {
		addrs = append(addrs, t.addr)
	}
	progress := func() string {
		off := time.Since(start)
		var b strings.Builder
		phase := "load"
		if off > secs {
			phase = "draining and counting"
		}
		fmt.Fprintf(&b, "t=%3.0fs of %ds (%s; spike %s-%s):", off.Seconds(), o.Seconds, phase,
			spikeAt, spikeAt+spikeFor)
		for _, t := range teams {
			fmt.Fprintf(&b, "  %s %d produced", t.file.Team, t.gen.Produced())
		}
		return b.String()
	}
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		if o.Live {
			_ = top.Run(runCtx, o.Out, addrs, 2*time.Second, false, progress)
			return
		}
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				fmt.Fprintln(o.Out, progress())
			}
		}
	}()

	wg.Wait()
	select {
	case err := <-genErr:
		return nil, err
	default:
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Drain: wait until every record is accounted for, or give up.
	deadline := time.Now().Add(max(2*secs, 90*time.Second))
	for {
		complete := true
		for _, t := range teams {
			if err := t.account(ctx, o.LogsQLURL); err != nil {
				return nil, err
			}
			complete = complete && t.res.Unaccounted == 0
		}
		if complete || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Second)
	}
	time.Sleep(time.Second) // one more sample after the drain
	cancel()
	<-sampleDone
	<-viewDone
	for _, t := range teams {
		t.summarise(start.Add(spikeAt+spikeFor), start.Add(spikeAt), start.Add(spikeAt+spikeFor))
		sum.Teams = append(sum.Teams, t.res)
	}
	printSummary(o.Out, sum)
	for _, t := range sum.Teams {
		if t.Unaccounted != 0 {
			return sum, fmt.Errorf("%s: %d records unaccounted for", t.Team, t.Unaccounted)
		}
	}
	return sum, nil
}

func createStream(ctx context.Context, kc *kinesis.Client, name string, shards int) error {
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))}); err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	for i := 0; i < 300; i++ {
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == "ACTIVE" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("stream %s did not become active", name)
}

// start writes the team's budget with this run's stream and starts its
// consumer, like one deployment per team.
func (t *team) start(o Options, tmp, id, cluster string) error {
	if ln, err := net.Listen("tcp", t.addr); err != nil {
		return fmt.Errorf("port for %s's consumer: %w (another demo still running? set DEMO_PORT_BASE)", t.file.Team, err)
	} else {
		ln.Close()
	}
	raw := bytes.Replace(t.file.Raw, []byte("stream: "+t.file.StreamName()), []byte("stream: "+t.stream), 1)
	raw = append(raw, cluster...)
	path := filepath.Join(tmp, t.file.Team+".yaml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(o.LogDir, "demo-"+t.file.Team+".log"))
	if err != nil {
		return err
	}
	t.cmd = exec.Command(o.Bin, "run", "--budget", path, "--listen", t.addr, "--es-url", o.ESURL,
		"--application", "streambudget-"+t.file.Team+"-"+id, "--log-format", "json")
	t.cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL_KINESIS="+o.Kinesis)
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C reaches the demo, which stops it.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := t.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start consumer for %s: %w", t.file.Team, err)
	}
	t.done = make(chan struct{})
	go func() {
		_ = t.cmd.Wait()
		logf.Close()
		close(t.done)
	}()
	return nil
}

func (t *team) stop(timeout time.Duration) {
	if t.cmd == nil || t.cmd.Process == nil {
		return
	}
	select {
	case <-t.done:
		return
	default:
	}
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.done:
	case <-time.After(timeout):
		_ = t.cmd.Process.Kill()
		<-t.done
	}
}

func (t *team) awaitShards(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-t.done:
			return fmt.Errorf("the consumer for %s exited; see its log", t.file.Team)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		s := top.Fetch(ctx, http.DefaultClient, []string{t.addr})
		if tm, ok := s.Teams[t.file.Team]; ok && tm.Owned == t.file.Shards {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("the consumer for %s did not own its %d shards within %s", t.file.Team, t.file.Shards, timeout)
}

func (t *team) sample() {
	s := top.Fetch(context.Background(), http.DefaultClient, []string{t.addr})
	tm, ok := s.Teams[t.file.Team]
	if !ok {
		return
	}
	t.samples = append(t.samples, sample{at: s.At, read: tm.ReadTotal(), lag: tm.MaxLag, dropped: tm.Dropped, advice: tm.Advice})
}

// account counts the team's documents and dead letters in the search server
// and its drops from its pod's metrics.
func (t *team) account(ctx context.Context, logsQL string) error {
	docs, err := count(ctx, logsQL, fmt.Sprintf(`kinesis.stream:=%q deadletter.reason:""`, t.stream))
	if err != nil {
		return err
	}
	dls, err := count(ctx, logsQL, fmt.Sprintf(`kinesis.stream:=%q deadletter.reason:*`, t.stream))
	if err != nil {
		return err
	}
	s := top.Fetch(ctx, http.DefaultClient, []string{t.addr})
	if tm, ok := s.Teams[t.file.Team]; ok {
		t.res.Dropped = int64(tm.Dropped)
	}
	t.res.Produced, t.res.Indexed, t.res.DeadLettered = t.gen.Produced(), docs, dls
	t.res.Unaccounted = t.res.Produced - t.res.Indexed - t.res.Dropped - t.res.DeadLettered
	return nil
}

func count(ctx context.Context, logsQL, filter string) (int64, error) {
	q := filter + " | stats count() n"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, logsQL, strings.NewReader(url.Values{"query": {q}}.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("count in the search server: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("count in the search server: %s: %s", resp.Status, body)
	}
	var row struct {
		N json.Number `json:"n"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, nil
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &row); err != nil {
		return 0, fmt.Errorf("count in the search server: %w: %s", err, body)
	}
	n, err := row.N.Int64()
	return n, err
}

// summarise derives the lag and rate figures from the samples.
func (t *team) summarise(spikeEnd, from, to time.Time) {
	var last string
	var drainedAt time.Time
	for i, s := range t.samples {
		t.res.MaxLag = math.Max(t.res.MaxLag, s.lag)
		if s.advice != "" && s.advice != last {
			t.res.Advice = append(t.res.Advice, s.advice)
			last = s.advice
		}
		if s.at.After(spikeEnd) && drainedAt.IsZero() && s.lag < 5 && i > 0 && t.samples[i-1].lag >= 5 {
			drainedAt = s.at
		}
		for _, e := range t.samples[i+1:] {
			if e.at.Sub(s.at) >= 10*time.Second {
				if !s.at.Before(from.Add(3*time.Second)) && !e.at.After(to.Add(10*time.Second)) {
					t.res.MaxRead10s = math.Max(t.res.MaxRead10s, (e.read-s.read)/e.at.Sub(s.at).Seconds())
				}
				break
			}
		}
	}
	if t.res.Spiking && !drainedAt.IsZero() {
		t.res.DrainSeconds = drainedAt.Sub(spikeEnd).Seconds()
	}
}

func printSummary(w io.Writer, s *Summary) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Summary (produced = indexed + dropped by rule + dead-lettered):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tBUDGET/S\tPRODUCED\tINDEXED\tDROPPED\tDEAD-LETTERED\tUNACCOUNTED\tMAX LAG\tMAX READ/S (10s)\tADVICE SEEN")
	for _, t := range s.Teams {
		name := t.Team
		if t.Spiking {
			name += " (spiked)"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%d\t%d\t%d\t%d\t%.1fs\t%.0f\t%s\n", name, t.Budget, t.Produced, t.Indexed, t.Dropped, t.DeadLettered,
			t.Unaccounted, t.MaxLag, t.MaxRead10s, strings.Join(t.Advice, " -> "))
	}
	_ = tw.Flush()
	for _, t := range s.Teams {
		switch {
		case t.Spiking && t.DrainSeconds > 0:
			fmt.Fprintf(w, "%s spiked to %.0fx its budget for %.0fs: read at most %.0f records/s (budget %.0f), peak lag %.1fs, backlog drained %.0fs after the spike.\n",
				t.Team, s.SpikeFactor, s.SpikeFor, t.MaxRead10s, t.Budget, t.MaxLag, t.DrainSeconds)
		case t.Spiking:
			fmt.Fprintf(w, "%s spiked to %.0fx its budget: read at most %.0f records/s (budget %.0f), peak lag %.1fs.\n", t.Team, s.SpikeFactor, t.MaxRead10s, t.Budget, t.MaxLag)
		default:
			fmt.Fprintf(w, "%s stayed under its budget: maximum lag %.1fs.\n", t.Team, t.MaxLag)
		}
	}
}
