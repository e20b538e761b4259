//go:build integration

package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	h "github.com/streambudget/streambudget/integration/harness"
)

// Elasticsearch as a default install is: the consumers in these tests write
// through env.ES, which answers as Elasticsearch 8 does out of the box (a
// built-in template makes every logs-*-* name a data stream, which takes
// only op create; a replayed create is answered 409; dynamic mapping
// refuses a value where an object was) and injects the faults of a real
// cluster. Given STREAMBUDGET_TEST_ES_URL, the cluster answers for itself
// and the proxy only injects faults.

// TestElasticsearch8Defaults indexes a team configured like the example
// budgets (a logs-<team>-<env> data stream) into a default Elasticsearch 8:
// nothing is dead-lettered, no write is refused. The first version's
// default, an index named logs-<team>-<date>, stops the pod before it reads
// a record, with the sentence that names the fix.
func TestElasticsearch8Defaults(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("es8")
	h.CreateStream(t, kc, team, 2)
	recs := h.Records(team, 400, 8)
	h.Put(t, kc, team, recs)

	// The old default first: the pod must refuse before reading.
	old := h.BudgetES(t, team, team, 2, "maxRecords: 100\npollInterval: 1s",
		fmt.Sprintf("index: logs-%s-{yyyy.MM.dd}\ndeadLetterIndex: deadletter-%s", team, team), "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Bin, "run", "--budget", old, "--listen", "127.0.0.1:0", "--es-url", env.ES.URL,
		"--log-format", "text", "--application", team+"-old")
	cmd.Env = append(cmd.Environ(), "AWS_ENDPOINT_URL_KINESIS="+env.Kinesalite)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a pod configured to write a data stream with op index did not stop within 90 s:\n%s", out)
	}
	if err == nil {
		t.Fatalf("the pod exited 0 with an index target that is a data stream:\n%s", out)
	}
	want := fmt.Sprintf(`elasticsearch.index \"logs-%s-`, team)
	for _, w := range []string{want, "is a data stream on this cluster", "elasticsearch.dataStream"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("the pod's last words lack %q:\n%s", w, out)
		}
	}
	if env.ES.Refused()["illegal_argument_exception"] > 0 {
		t.Errorf("the refused pod wrote: refused %v", env.ES.Refused())
	}

	// The example budgets' shape: everything indexed, nothing refused.
	budget := h.Budget(t, team, team, 2, "maxRecords: 100\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	counts := waitIndexed(t, env, team, recs, 90*time.Second)
	exactlyOnce(t, counts, recs, 0)
	dead, err := env.Search.Docs(context.Background(), team, true, "deadletter.reason")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) > 0 || len(env.ES.Refused()) > 0 {
		t.Errorf("a default Elasticsearch 8 refused writes: %d dead letters, refused %v", len(dead), env.ES.Refused())
	}
	if !strings.Contains(c.Log(), "preflight passed") {
		t.Errorf("the consumer did not log its preflight")
	}
	m, err := c.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := maxSeries(m, "streambudget_sink_preflight_ok"); v != 1 {
		t.Errorf("streambudget_sink_preflight_ok = %v, want 1", v)
	}
}

// TestSinkForbidden revokes the consumer's write privilege for a while (a
// 403 on every item, as a role edit does): nothing is dead-lettered or lost,
// streambudget_sink_blocked{reason="forbidden"} says why the lag grows, and
// writing resumes by itself when the privilege returns.
func TestSinkForbidden(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("forbidden")
	h.CreateStream(t, kc, team, 2)
	recs := h.Records(team, 1500, 16)
	budget := h.Budget(t, team, team, 2, "maxRecords: 100\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	wait := trickle(t, kc, team, recs, 100)
	time.Sleep(3 * time.Second)
	env.ES.SetForbidden(true)
	blocked := func() float64 {
		m, err := c.Metrics()
		if err != nil {
			return -1
		}
		return m[fmt.Sprintf(`streambudget_sink_blocked{reason="forbidden",stream=%q,team=%q}`, team, team)]
	}
	h.Eventually(t, 30*time.Second, "the sink reports itself blocked", func() (bool, string) {
		v := blocked()
		return v == 1, fmt.Sprintf("streambudget_sink_blocked{reason=\"forbidden\"} = %v", v)
	})
	time.Sleep(8 * time.Second)
	refused := env.ES.Refused()["security_exception"]
	env.ES.SetForbidden(false)
	wait()
	counts := waitIndexed(t, env, team, recs, 90*time.Second)
	exactlyOnce(t, counts, recs, 0)
	dead, err := env.Search.Docs(context.Background(), team, true, "deadletter.reason")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) > 0 {
		t.Errorf("%d records dead-lettered during a 403 window: %v", len(dead), dead[0])
	}
	h.Eventually(t, 30*time.Second, "the sink reports itself unblocked", func() (bool, string) {
		v := blocked()
		return v == 0, fmt.Sprintf("streambudget_sink_blocked{reason=\"forbidden\"} = %v", v)
	})
	if refused == 0 {
		t.Fatal("no write was refused during the window: the fault was not injected")
	}
	t.Logf("403 window: %d items refused, %d records indexed once each, %d replays", refused, len(recs), env.ES.Replays())
}

// TestReplayWrittenOnce reads a whole stream twice (a second application,
// as after lost checkpoints): every document and dead letter goes to a
// data stream with op create and a deterministic _id, so the cluster
// answers the replays 409 and holds each once; streambudget counts them in
// streambudget_sink_replayed_total.
func TestReplayWrittenOnce(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("replay")
	h.CreateStream(t, kc, team, 1)
	recs := h.Records(team, 200, 4)
	bad := []h.Record{
		{ID: "bad-0", Key: "k", Data: gz([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[]}`))[:20]},
		{ID: "bad-1", Key: "k", Data: []byte{}},
		{ID: "bad-2", Key: "k", Data: gz([]byte(`{"messageType":"DATA_MESSAGE","logEvents":{"id":1}}`))},
	}
	h.Put(t, kc, team, append(append(recs[:100:100], bad...), recs[100:]...))
	budget := h.BudgetES(t, team, team, 1, "maxRecords: 100\npollInterval: 1s",
		fmt.Sprintf("dataStream: logs-%s-test\ndeadLetterDataStream: logs-%s-deadletter", team, team), "")
	deadLetters := func() []h.Doc {
		dead, err := env.Search.Docs(context.Background(), team, true, "deadletter.reason", "kinesis.sequence_number")
		if err != nil {
			t.Fatal(err)
		}
		return dead
	}
	first := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	waitIndexed(t, env, team, recs, 60*time.Second)
	h.Eventually(t, 30*time.Second, "the dead letters written", func() (bool, string) {
		n := len(deadLetters())
		return n == len(bad), fmt.Sprintf("%d dead letters, want %d", n, len(bad))
	})
	if _, err := first.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	second := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite,
		Args: []string{"--application", team + "-again"}})
	want := float64(len(recs) + len(bad))
	h.Eventually(t, 60*time.Second, "the second reading answered as replays", func() (bool, string) {
		m, err := second.Metrics()
		if err != nil {
			return false, err.Error()
		}
		v := maxSeries(m, "streambudget_sink_replayed_total")
		return v == want, fmt.Sprintf("streambudget_sink_replayed_total = %v, want %v", v, want)
	})
	counts, err := h.IDCounts(context.Background(), env.Search, team)
	if err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, counts, recs, 0)
	seqs := map[string]int{}
	for _, d := range deadLetters() {
		seqs[d["kinesis.sequence_number"]]++
	}
	if len(seqs) != len(bad) {
		t.Errorf("dead letters for %d records, want %d: %v", len(seqs), len(bad), seqs)
	}
	for seq, n := range seqs {
		if n != 1 {
			t.Errorf("the dead letter of record %s is held %d times", seq, n)
		}
	}
	if got := env.ES.Replays(); float64(got) != want {
		t.Errorf("the cluster answered %d replays, want %v", got, want)
	}
}

// TestDocumentTooLarge puts a record larger than the cluster takes in one
// request (a 413, as http.max_content_length or a proxy in front answers)
// between ordinary ones: the others are indexed, and the large one is
// dead-lettered as too_large with its bytes withheld (a dead letter
// carrying them would be refused too), never retried forever.
func TestDocumentTooLarge(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("large")
	h.CreateStream(t, kc, team, 1)
	env.ES.SetMaxBytes(256 << 10)
	t.Cleanup(func() { env.ES.SetMaxBytes(0) })
	recs := h.Records(team, 100, 4)
	large := h.Record{ID: "large", Key: "k", Data: []byte(`{"message":"` + strings.Repeat("x", 600<<10) + `"}`)}
	h.Put(t, kc, team, append(append(recs[:50:50], large), recs[50:]...))
	budget := h.Budget(t, team, team, 1, "maxRecords: 200\npollInterval: 1s", "")
	env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	counts := waitIndexed(t, env, team, recs, 60*time.Second)
	exactlyOnce(t, counts, recs, 0)
	var dead []h.Doc
	h.Eventually(t, 30*time.Second, "the large record dead-lettered", func() (bool, string) {
		var err error
		dead, err = env.Search.Docs(context.Background(), team, true, "deadletter.reason", "deadletter.raw_encoding", "deadletter.raw_bytes", "deadletter.withheld")
		if err != nil {
			return false, err.Error()
		}
		return len(dead) == 1, fmt.Sprintf("%d dead letters, want 1", len(dead))
	})
	d := dead[0]
	if d["deadletter.reason"] != "too_large" || d["deadletter.raw_encoding"] != "withheld" || d["deadletter.withheld"] == "" {
		t.Errorf("dead letter %v: want reason too_large with the bytes withheld and why", d)
	}
	t.Logf("a %d-byte record against a 256 KiB request limit: %v", len(large.Data), d)
}
