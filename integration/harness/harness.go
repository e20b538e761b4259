// Package harness is what the integration tests share: the local stack's
// endpoints, streams with records, consumer processes, and reading back what
// reached the search server. Everything that reads back goes through Search,
// so the same tests run against VictoriaLogs (the stand-in) or a real
// Elasticsearch given by STREAMBUDGET_TEST_ES_URL.
package harness

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Env is the local stack as written by stack-up to .stack/env and exported
// by integration/test.sh. A missing variable fails the test: the test command
// starts the stack, so an unset one means it is not up.
type Env struct {
	KinesisLocal string // kinesis-local: resharding, MillisBehindLatest
	Kinesalite   string // kinesalite: fast for volume
	DynamoDB     string
	ESURL        string // the search server
	Bin          string // the streambudget binary
	Search       Search
	// ES stands between consumers and the search server: it answers as a
	// default Elasticsearch 8 install would (data streams, 409 on a
	// replayed create) and injects faults. Consumers write through it
	// unless their options name another URL.
	ES *ESProxy
}

// Load reads the environment, failing t when the stack is not there.
func Load(t testing.TB) *Env {
	t.Helper()
	need := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("%s is not set: run the integration tests with `make test` (integration/test.sh starts the stack)", name)
		}
		return v
	}
	e := &Env{
		KinesisLocal: need("AWS_ENDPOINT_URL_KINESIS"),
		Kinesalite:   need("STREAMBUDGET_KINESALITE_URL"),
		DynamoDB:     need("AWS_ENDPOINT_URL_DYNAMODB"),
		Bin:          need("STREAMBUDGET_BIN"),
	}
	if es := os.Getenv("STREAMBUDGET_TEST_ES_URL"); es != "" {
		e.ESURL = es
		e.Search = &Elasticsearch{URL: strings.TrimRight(es, "/")}
	} else {
		e.ESURL = need("STREAMBUDGET_ES_URL")
		e.Search = &VictoriaLogs{QueryURL: need("STREAMBUDGET_LOGSQL_URL")}
	}
	need("AWS_REGION")
	e.ES = e.NewESProxy(t)
	return e
}

// Kinesis returns a client for the given emulator endpoint.
func (e *Env) Kinesis(t testing.TB, endpoint string) *kinesis.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// Unique returns a name unique to this run, for streams and teams.
func Unique(prefix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// CreateStream creates a stream, waits until it is active, and deletes it
// when the test ends (the emulators keep streams in memory).
func CreateStream(t testing.TB, kc *kinesis.Client, name string, shards int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	})
	WaitActive(t, kc, name)
}

// WaitActive waits until the stream is ACTIVE.
func WaitActive(t testing.TB, kc *kinesis.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stream %s did not become active", name)
}

// Record is one test record: a JSON log line with a unique id.
type Record struct {
	ID    string
	Key   string
	Seq   int // per-key sequence, for order checks
	Level string
	Data  []byte // overrides the generated JSON when set
}

// JSON renders the record as the log line services write.
func (r Record) JSON() []byte {
	if r.Data != nil {
		return r.Data
	}
	level := r.Level
	if level == "" {
		level = "INFO"
	}
	return fmt.Appendf(nil, `{"id":%q,"key":%q,"seq":%d,"level":%q,"service":"checkout","message":"order %s step %d done"}`,
		r.ID, r.Key, r.Seq, level, r.ID, r.Seq)
}

// Records makes n records spread round-robin over keys, ids prefixed by
// prefix. The keys' hashes are spread evenly over the hash key space, so
// with a power-of-two number of uniform shards dividing keys, every shard
// gets the same number of records.
func Records(prefix string, n, keys int) []Record {
	names := SpreadKeys(keys)
	out := make([]Record, n)
	seqs := make([]int, keys)
	for i := range out {
		k := i % keys
		out[i] = Record{ID: fmt.Sprintf("%s-%06d", prefix, i), Key: names[k], Seq: seqs[k]}
		seqs[k]++
	}
	return out
}

// SpreadKeys returns n partition keys whose MD5 hashes (how Kinesis maps a
// key to a shard) fall in n equal slices of the hash key space, in order.
func SpreadKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		for j := 0; ; j++ {
			k := fmt.Sprintf("key-%02d-%d", i, j)
			sum := md5.Sum([]byte(k))
			top := binary.BigEndian.Uint16(sum[:2])
			if int(top)*n/65536 == i {
				out[i] = k
				break
			}
		}
	}
	return out
}

// Put writes records in PutRecords calls of up to 500, retrying what the
// emulator refuses, in order per key.
func Put(t testing.TB, kc *kinesis.Client, stream string, recs []Record) {
	t.Helper()
	if err := PutErr(context.Background(), kc, stream, recs); err != nil {
		t.Fatal(err)
	}
}

// PutErr is Put for goroutines: it returns the error.
func PutErr(ctx context.Context, kc *kinesis.Client, stream string, recs []Record) error {
	for start := 0; start < len(recs); start += 500 {
		chunk := recs[start:min(start+500, len(recs))]
		entries := make([]types.PutRecordsRequestEntry, len(chunk))
		for i, r := range chunk {
			entries[i] = types.PutRecordsRequestEntry{Data: r.JSON(), PartitionKey: aws.String(r.Key)}
		}
		for attempt := 0; len(entries) > 0; attempt++ {
			if attempt > 50 {
				return fmt.Errorf("put records into %s: still failing after %d attempts", stream, attempt)
			}
			out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				time.Sleep(200 * time.Millisecond)
				continue
			}
			var again []types.PutRecordsRequestEntry
			failedKeys := map[string]bool{}
			for i, res := range out.Records {
				// keep per-key order: once a key failed, resend the rest of it too
				k := aws.ToString(entries[i].PartitionKey)
				if res.ErrorCode != nil || failedKeys[k] {
					failedKeys[k] = true
					again = append(again, entries[i])
				}
			}
			entries = again
			if len(entries) > 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	return nil
}

// Budget writes a budget file for a test team and returns its path. The
// team's documents go to the data stream logs-<team>-test, its dead letters
// to the index deadletter-<team>.
func Budget(t testing.TB, team, stream string, shards int, budgetYAML, extra string) string {
	t.Helper()
	es := fmt.Sprintf("dataStream: logs-%s-test\ndeadLetterIndex: deadletter-%s", team, team)
	return BudgetES(t, team, stream, shards, budgetYAML, es, extra)
}

// BudgetES is Budget with the elasticsearch section's targets given.
func BudgetES(t testing.TB, team, stream string, shards int, budgetYAML, esYAML, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`team: %s
stream: %s
shards: %d
budget:
%s
pods: 1
elasticsearch:
  urls: [http://unused.invalid:9200]
%s
decode: auto
%s`, team, stream, shards, indent(budgetYAML, "  "), indent(esYAML, "  "), extra)
	path := filepath.Join(t.TempDir(), team+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = pre + strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}

// Consumer is a running `streambudget run` process.
type Consumer struct {
	*process
	Addr string
}

// ConsumerOptions say how to start a consumer.
type ConsumerOptions struct {
	Budget   string
	Kinesis  string // endpoint
	ES       string // Elasticsearch URL; default env.ES
	WorkerID string
	Args     []string
	Env      []string
}

// StartConsumer starts a consumer and waits until it answers /healthz. The
// process is killed when the test ends.
func (e *Env) StartConsumer(t testing.TB, o ConsumerOptions) *Consumer {
	t.Helper()
	addr := freeAddr(t)
	es := o.ES
	if es == "" {
		es = e.ES.URL
	}
	args := append([]string{"run", "--budget", o.Budget, "--listen", addr, "--es-url", es,
		"--log-format", "text", "--log-level", "info"}, o.Args...)
	if o.WorkerID != "" {
		args = append(args, "--worker-id", o.WorkerID)
	}
	cmd := exec.Command(e.Bin, args...)
	// The collector as a pod runs it, whatever GOGC make test compiles with
	// (the memory figures and bounds depend on it).
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL_KINESIS="+o.Kinesis, "GOGC=100")
	cmd.Env = append(cmd.Env, o.Env...)
	healthy := func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}
	p := startProcess(t, "consumer", cmd, filepath.Join(t.TempDir(), "consumer.log"), healthy, (*process).Kill)
	return &Consumer{process: p, Addr: addr}
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Metrics scrapes /metrics into name{labels} -> value.
func (c *Consumer) Metrics() (map[string]float64, error) {
	return Scrape("http://" + c.Addr + "/metrics")
}

// Scrape reads a Prometheus text exposition into series -> value.
func Scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return ParseMetrics(resp.Body)
}

// ParseMetrics parses the text exposition format (no timestamps).
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Sum adds the series whose name is name and whose labels contain every
// given label="value" pair.
func Sum(m map[string]float64, name string, labels ...string) float64 {
	total := 0.0
	for series, v := range m {
		n := series
		if i := strings.IndexByte(series, '{'); i >= 0 {
			n = series[:i]
		}
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				ok = false
				break
			}
		}
		if ok && !math.IsNaN(v) {
			total += v
		}
	}
	return total
}

// Sampler scrapes a consumer every interval, keeping the samples.
type Sampler struct {
	mu      sync.Mutex
	Samples []Sample
	stop    chan struct{}
	done    chan struct{}
}

// Sample is one scrape.
type Sample struct {
	At      time.Time
	Metrics map[string]float64
}

// Sample starts scraping c every interval until Stop.
func (c *Consumer) Sample(every time.Duration) *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if m, err := c.Metrics(); err == nil {
				s.mu.Lock()
				s.Samples = append(s.Samples, Sample{At: time.Now(), Metrics: m})
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the samples.
func (s *Sampler) Stop() []Sample {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Samples
}

// Eventually polls cond every 250ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s (last: %s)", what, timeout, last)
}

// ErrNotFound is returned by Search for unknown fields.
var ErrNotFound = errors.New("not found")

// RSS is the resident set size of a process in bytes.
func RSS(pid int) (int64, error) { return procBytes(pid, "VmRSS") }

// RSSParts is the resident set split into anonymous memory (heap, stacks)
// and file-backed pages (the binary's code and data as they are touched).
func RSSParts(pid int) (anon, file int64, err error) {
	if anon, err = procBytes(pid, "RssAnon"); err != nil {
		return 0, 0, err
	}
	file, err = procBytes(pid, "RssFile")
	return anon, file, err
}

// PeakRSS is the largest resident set size the process has had, in bytes.
func PeakRSS(pid int) (int64, error) { return procBytes(pid, "VmHWM") }

func procBytes(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s for process %d", key, pid)
}
