// Package loadgen writes realistic JSON log records to a Kinesis stream at a
// given rate and shape: steady, or a spike to N times the rate for a while.
// It also sends, now and then, one record of every kind the dead-letter path
// handles, so a run exercises it. It works against real Kinesis as well as
// the emulators.
package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Shape is how the rate changes over a run.
type Shape struct {
	// Rate is the steady rate in records/s.
	Rate float64
	// SpikeFactor multiplies the rate from SpikeAt for SpikeFor.
	SpikeFactor float64
	SpikeAt     time.Duration
	SpikeFor    time.Duration
	// AfterSpike is the rate once the spike is over; Rate when zero.
	AfterSpike float64
	// Duration ends the run; zero runs until the context ends.
	Duration time.Duration
}

// RateAt is the target rate at offset t into the run.
func (s Shape) RateAt(t time.Duration) float64 {
	switch {
	case s.SpikeFactor > 0 && s.SpikeFor > 0 && t >= s.SpikeAt && t < s.SpikeAt+s.SpikeFor:
		return s.Rate * s.SpikeFactor
	case s.SpikeFor > 0 && t >= s.SpikeAt+s.SpikeFor && s.AfterSpike > 0:
		return s.AfterSpike
	}
	return s.Rate
}

// Phase names where offset t lies: steady, spike or after.
func (s Shape) Phase(t time.Duration) string {
	switch {
	case s.SpikeFor <= 0 || t < s.SpikeAt:
		return "steady"
	case t < s.SpikeAt+s.SpikeFor:
		return "spike"
	}
	return "after spike"
}

// Putter is the Kinesis call the generator needs.
type Putter interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Options configure a Generator.
type Options struct {
	Stream string
	Team   string
	Shape  Shape
	// BadEvery sends one record of each dead-letter kind this often; zero
	// sends none.
	BadEvery time.Duration
	// Seed makes the content repeatable.
	Seed uint64
}

// Generator writes records; its counters may be read while it runs.
type Generator struct {
	kc   Putter
	opts Options
	rnd  *rand.Rand
	seq  int64

	produced atomic.Int64 // records Kinesis accepted
	bad      atomic.Int64 // of which records meant for the dead-letter index
	failed   atomic.Int64 // put attempts Kinesis refused (retried)
}

// New returns a generator writing to opts.Stream.
func New(kc Putter, opts Options) *Generator {
	return &Generator{kc: kc, opts: opts, rnd: rand.New(rand.NewPCG(opts.Seed, 0x5eed))}
}

// Produced is the number of records Kinesis accepted so far.
func (g *Generator) Produced() int64 { return g.produced.Load() }

// Bad is how many of them were dead-letter kinds.
func (g *Generator) Bad() int64 { return g.bad.Load() }

// Throttled is how many puts Kinesis refused and were sent again.
func (g *Generator) Throttled() int64 { return g.failed.Load() }

// tick is how often the generator sends a batch.
const tick = 100 * time.Millisecond

// Run writes until the shape's duration passes or ctx ends. Records Kinesis
// refuses are sent again, so Produced counts only accepted ones.
func (g *Generator) Run(ctx context.Context) error {
	start := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	owed := 0.0
	nextBad := start.Add(g.opts.BadEvery)
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			off := now.Sub(start)
			if g.opts.Shape.Duration > 0 && off >= g.opts.Shape.Duration {
				return nil
			}
			owed += g.opts.Shape.RateAt(off) * tick.Seconds()
			n := int(owed)
			owed -= float64(n)
			var entries []types.PutRecordsRequestEntry
			bad := 0
			if g.opts.BadEvery > 0 && !now.Before(nextBad) {
				nextBad = now.Add(g.opts.BadEvery)
				for _, data := range BadRecords() {
					entries = append(entries, g.entry(data))
					bad++
				}
			}
			for i := 0; i < n; i++ {
				entries = append(entries, g.entry(g.record(now)))
			}
			if err := g.put(ctx, entries, bad); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

func (g *Generator) entry(data []byte) types.PutRecordsRequestEntry {
	return types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(fmt.Sprintf("%s-%d", g.opts.Team, g.rnd.IntN(64)))}
}

// put sends entries in calls of at most 500, sending refused ones again.
// The first bad entries are dead-letter kinds.
func (g *Generator) put(ctx context.Context, entries []types.PutRecordsRequestEntry, bad int) error {
	for start := 0; start < len(entries); start += 500 {
		chunk := entries[start:min(start+500, len(entries))]
		badInChunk := max(min(bad-start, len(chunk)), 0)
		isBad := make([]bool, len(chunk))
		for i := 0; i < badInChunk; i++ {
			isBad[i] = true
		}
		for attempt := 0; len(chunk) > 0; attempt++ {
			out, err := g.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(g.opts.Stream), Records: chunk})
			if err != nil {
				var notFound *types.ResourceNotFoundException
				var invalid *types.InvalidArgumentException
				if ctx.Err() != nil || attempt > 20 || errors.As(err, &notFound) || errors.As(err, &invalid) {
					return fmt.Errorf("put %d records into %s: %w", len(chunk), g.opts.Stream, err)
				}
				g.failed.Add(int64(len(chunk)))
				time.Sleep(100 * time.Millisecond << min(attempt, 4))
				continue
			}
			var again []types.PutRecordsRequestEntry
			var againBad []bool
			for i, r := range out.Records {
				if r.ErrorCode != nil {
					again = append(again, chunk[i])
					againBad = append(againBad, isBad[i])
					continue
				}
				g.produced.Add(1)
				if isBad[i] {
					g.bad.Add(1)
				}
			}
			if len(again) > 0 {
				g.failed.Add(int64(len(again)))
				time.Sleep(50 * time.Millisecond)
			}
			chunk, isBad = again, againBad
		}
	}
	return nil
}

var (
	levels   = []string{"INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR", "TRACE"}
	services = []string{"api", "worker", "scheduler", "gateway", "billing", "auth"}
	verbs    = []string{"handled request", "processed job", "cache miss", "retrying call", "opened connection", "closed connection", "validated input", "wrote batch"}
)

// record renders one realistic JSON log line: a level mix with DEBUG and
// TRACE to drop, a few healthcheck lines, message sizes from tens of bytes to
// a couple of kilobytes, and now and then an e-mail address or a password
// field for the redaction rules.
func (g *Generator) record(now time.Time) []byte {
	g.seq++
	level := levels[g.rnd.IntN(len(levels))]
	svc := services[g.rnd.IntN(len(services))]
	var msg string
	switch r := g.rnd.IntN(100); {
	case r < 3:
		msg = "healthcheck OK"
	case r < 6:
		msg = fmt.Sprintf("sent receipt to customer%d@example.com", g.rnd.IntN(1000))
	case r < 8:
		msg = "[DEBUG] cache warm-up step done"
	default:
		msg = verbs[g.rnd.IntN(len(verbs))]
		if g.rnd.IntN(10) == 0 {
			msg += ": " + strings.Repeat("detail ", 20+g.rnd.IntN(250))
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"@timestamp":%q,"level":%q,"service":%q,"team":%q,"id":"%s-%d","trace_id":"%016x","duration_ms":%d,"message":%q`,
		now.UTC().Format(time.RFC3339Nano), level, svc, g.opts.Team, g.opts.Team, g.seq, g.rnd.Uint64(), g.rnd.IntN(2000), msg)
	if g.rnd.IntN(50) == 0 {
		fmt.Fprintf(&b, `,"password":"hunter%d"`, g.rnd.IntN(100))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// BadRecords returns one record of every kind the dead-letter path handles
// under decode auto: empty, invalid UTF-8, JSON nested too deep, truncated
// gzip, a gzip bomb and a CloudWatch Logs payload of the wrong shape.
func BadRecords() [][]byte {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"x"}]}`))
	_ = w.Close()
	truncated := gz.Bytes()[:gz.Len()/2]

	var bomb bytes.Buffer
	bw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 20; i++ { // 20 MiB of zeros: past the 16 MiB default
		_, _ = bw.Write(zeros)
	}
	_ = bw.Close()

	var shape bytes.Buffer
	sw := gzip.NewWriter(&shape)
	_, _ = sw.Write([]byte(`{"messageType":"DATA_MESSAGE","logEvents":"not a list"}`))
	_ = sw.Close()

	return [][]byte{
		{},
		[]byte("caf\xe9 \xff\xfe not utf-8"),
		[]byte(strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)),
		truncated,
		bomb.Bytes(),
		shape.Bytes(),
	}
}
