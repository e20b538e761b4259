package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/streambudget/streambudget/pkg/consumer/ledger"
	"github.com/streambudget/streambudget/pkg/document"
	"github.com/streambudget/streambudget/pkg/essink"
	"github.com/streambudget/streambudget/pkg/lease"
)

// Sink is what a processor needs of Elasticsearch: write items and say
// what became of each (see essink.Sink.Index). *essink.Sink is one.
type Sink interface {
	Index(ctx context.Context, items []essink.Item, results []essink.Result) error
}

// processor reads one shard for as long as this pod holds its lease: the
// library's record processor. Every batch it is handed is entered in the
// shard's ledger before anything else, and settled (what is not done is
// abandoned) whatever path it returns by.
type processor struct {
	c       *Consumer
	shardID string
	log     *slog.Logger
	ledger  *ledger.Ledger
	pacer   *pacer
	builder *document.Builder
	chunk   document.Chunk
	results []essink.Result
	levels  []uint8 // per item: 0 a document, 1 a dead letter, 2 the smallest dead letter
	recs    []document.Record
	seqs    []string
	state   *shardState

	// work ends when the lease ends or the consumer's hard stop comes;
	// new batches are not started after the soft stop.
	work     context.Context
	stopWork func() bool
	cancel   context.CancelFunc
	// refused is closed when the library's renewal of this lease has been
	// refused: from then on it stops reading the shard (leaseOver).
	refused    chan struct{}
	refuseOnce sync.Once
	once       sync.Once
}

func (c *Consumer) newProcessor(shardID string) *processor {
	p := &processor{c: c, shardID: shardID, log: c.log.With("shard", shardID), ledger: ledger.New(), refused: make(chan struct{})}
	work, cancel := context.WithCancel(c.leases.Context(shardID))
	p.stopWork = context.AfterFunc(c.hardStop, cancel)
	p.work, p.cancel = work, cancel
	rate, limit := c.shardRate()
	p.pacer = newPacer(rate, limit, c.budget.MaxBytesPerSecond, time.Now)
	p.builder = c.schema.NewBuilder(shardID)
	p.state = c.shards.add(shardID, rate)
	return p
}

// ProcessRecords indexes one batch in chunks, checkpoints what the ledger
// allows after each, and then waits for the shard's budget before handing
// back to the library.
func (p *processor) ProcessRecords(in *kcl.ProcessRecordsInput) {
	// The library calls GetRecords as soon as this returns, whatever the
	// batch held: take that call's slot, which the tip probes share, so the
	// two together stay within the five calls a second Kinesis serves a
	// shard. A stopping processor does not wait.
	defer func() { _ = p.state.callSlot(p.work) }()
	p.state.observe(in.Records, in.MillisBehindLatest)
	if len(in.Records) == 0 {
		return
	}
	recs, seqs := p.convert(in.Records)
	first := p.ledger.Add(seqs)
	defer p.settle(first, len(recs))
	switch {
	case p.c.softStop.Err() != nil:
		return // stopping: abandoned, read again by the next owner
	case p.work.Err() != nil || p.c.leases.GivingUp(p.shardID):
		// The lease is over or being given up (balance): likewise, and no
		// more reading until the library stops (leaseOver).
		p.leaseOver()
		return
	}
	bytes := 0
	for i := range recs {
		bytes += len(recs[i].Data)
	}
	p.c.m.recordsRead.WithLabelValues(p.shardID).Add(float64(len(recs)))
	p.c.m.bytesRead.WithLabelValues(p.shardID).Add(float64(bytes))
	waited, _ := p.index(recs, first, in.Checkpointer)
	if waited > 0 {
		p.c.m.budgetWait.WithLabelValues(p.shardID).Add(waited.Seconds())
	}
	p.state.count(len(recs), bytes, waited)
}

// convert turns the library's records into the builder's, numbering the
// sub-records of each KPL aggregate (they share its sequence number).
func (p *processor) convert(in []types.Record) ([]document.Record, []string) {
	p.recs, p.seqs = p.recs[:0], p.seqs[:0]
	sub := 0
	for i := range in {
		r := &in[i]
		seq := aws.ToString(r.SequenceNumber)
		if i > 0 && seq == p.seqs[i-1] {
			sub++
		} else {
			sub = 0
		}
		p.recs = append(p.recs, document.Record{Data: r.Data, PartitionKey: aws.ToString(r.PartitionKey),
			SequenceNumber: seq, SubSequence: sub, Arrival: aws.ToTime(r.ApproximateArrivalTimestamp)})
		p.seqs = append(p.seqs, seq)
	}
	return p.recs, p.seqs
}

// settle tells the ledger the batch is over: what is not done is abandoned.
// A shard with abandoned records is given up, so that the next reader (this
// pod or another) resumes from the last checkpoint; until the lease ends
// this reader takes no more batches.
func (p *processor) settle(first int64, n int) {
	abandoned := p.ledger.Settle(first, n)
	if abandoned == 0 {
		return
	}
	p.c.m.abandoned.WithLabelValues(p.shardID).Add(float64(abandoned))
	p.log.Info("batch abandoned; its unconfirmed records are read again by the next reader", "records", abandoned)
	if p.c.softStop.Err() != nil {
		return // the library stops the shard after this batch
	}
	p.c.leases.GiveUp(p.shardID, "records abandoned")
	p.leaseOver()
}

// leaseOver holds a reader whose lease is over or being given up until the
// library has been refused its renewal, after which it stops reading the
// shard. It guards against a library behaviour: the library learns that a
// lease ended only from its renewal goroutine, every LeaseRefreshWaitTime,
// and meanwhile reads again at once after every batch the processor
// returns, unpaced: without this wait a lease that ended would read
// batches above the budget until the next renewal.
func (p *processor) leaseOver() {
	select {
	case <-p.refused:
	case <-p.c.hardStop.Done():
	}
}

// index sends the batch chunk by chunk, each after the shard's budget has
// room for its records, and reports how long it waited on the budget and
// whether every record got its final answer. Paying per chunk, before it
// is sent, holds Elasticsearch to the budget even when one GetRecords call
// returns more records than the budget's batch (KPL aggregates: the call's
// limit counts an aggregate as one record).
func (p *processor) index(recs []document.Record, first int64, cp kcl.IRecordProcessorCheckpointer) (time.Duration, bool) {
	readAt := time.Now()
	b, c := p.builder, &p.chunk
	b.Start(recs, readAt, p.pace())
	defer b.Done(c)
	var waited time.Duration
	for ; b.Next(c); b.ChunkRecords(p.pace()) {
		for _, d := range c.Dropped {
			p.c.m.dropped.WithLabelValues(d.Rule).Inc()
		}
		if len(c.Skipped) > 0 {
			p.c.m.skipped.Add(float64(len(c.Skipped)))
		}
		for _, rec := range c.Of {
			p.ledger.Expect(first+int64(rec), 1)
		}
		size := 0
		for _, rec := range c.Sealed {
			p.ledger.Seal(first + int64(rec))
			size += len(recs[rec].Data)
		}
		d, err := p.pacer.wait(p.work, len(c.Sealed), size)
		if waited += d; err != nil {
			return waited, false
		}
		err = p.send(c, readAt)
		for i, r := range p.results {
			if r.Written() { // a rejected document counts once its dead letter is written
				p.ledger.Confirm(first + int64(c.Of[i]))
			}
		}
		p.checkpoint(cp)
		if err != nil {
			return waited, false
		}
	}
	return waited, true
}

// pace sets the pacer to the shard's rate now (a reshard, parents
// finishing or an allowance change apply from the next chunk, also within
// a long batch) and returns the records one chunk may start: its burst.
func (p *processor) pace() int {
	rate, limit := p.c.shardRate()
	p.pacer.setRate(rate, limit, p.c.budget.PollInterval)
	p.state.setBudget(rate)
	return p.pacer.burst()
}

// send indexes a chunk until every item has its final answer or the work
// ends. A document Elasticsearch rejects is replaced by its dead letter; a
// dead letter it rejects, by the smallest one, which keeps only the size and
// hash of what was refused; and if even that is refused, the dead-letter
// target is broken: it is retried until it takes it, and nothing passes
// the record meanwhile.
func (p *processor) send(c *document.Chunk, readAt time.Time) error {
	n := len(c.Items)
	if cap(p.results) < n {
		p.results, p.levels = make([]essink.Result, n), make([]uint8, n)
	}
	p.results, p.levels = p.results[:n], p.levels[:n]
	clear(p.results)
	for i := range c.Items {
		p.levels[i] = 0
		if c.Items[i].DeadLetter != "" {
			p.levels[i] = 1
		}
	}
	for attempt := 1; ; attempt++ {
		if err := p.c.sink.Index(p.work, c.Items, p.results); err != nil {
			return err
		}
		again, stuck := false, false
		for i, r := range p.results {
			if r.Status != essink.Rejected {
				continue
			}
			at := p.builder.At(c.Of[i])
			switch p.levels[i] {
			case 0:
				c.Items[i] = p.c.schema.Rejected(c.Items[i], &at, c.Event[i], readAt, r.Reason, r.Detail, "")
			case 1:
				c.Items[i] = p.c.schema.Rejected(c.Items[i], &at, c.Event[i], readAt, r.Reason, r.Detail,
					"the dead letter with them was refused too ("+r.Reason+")")
			default:
				stuck = true
				p.log.Error("the dead-letter target refuses even the smallest dead letter; retrying", "index", c.Items[i].Index, "reason", r.Reason)
			}
			p.levels[i] = min(p.levels[i]+1, 2)
			p.results[i] = essink.Result{}
			again = true
		}
		if !again {
			return nil
		}
		if stuck {
			if err := sleepCtx(p.work, min(time.Duration(attempt)*time.Second, 30*time.Second)); err != nil {
				return err
			}
		}
	}
}

// checkpoint writes what the ledger allows.
func (p *processor) checkpoint(cp kcl.IRecordProcessorCheckpointer) {
	seq, pos, ok := p.ledger.Allowed()
	if !ok {
		return
	}
	if err := cp.Checkpoint(aws.String(seq)); err != nil {
		p.ledger.Unwritten(pos)
		if errors.Is(err, lease.ErrLeaseEnded) {
			p.log.Info("checkpoint skipped: the lease has ended")
			return
		}
		p.log.Warn("checkpoint failed; the next one covers it", "err", err)
		return
	}
	p.ledger.Checkpointed(pos)
	p.state.checkpointed(time.Now())
}

// Shutdown is called when the lease ends: the shard is finished
// (TERMINATE) or the worker stops. It guards against a library behaviour:
// the KCL calls Shutdown(TERMINATE) at a shard's end whatever the processor
// did with the last batch, and expects SHARD_END to be checkpointed so that
// the children start. SHARD_END is written only when the ledger is
// finished; otherwise the lease is given up without it and the next reader
// resumes from the last checkpoint.
func (p *processor) Shutdown(in *kcl.ShutdownInput) {
	defer p.close()
	if in.ShutdownReason != kcl.TERMINATE {
		return
	}
	if !p.ledger.Finished() {
		p.log.Warn("shard end reached with records not confirmed; SHARD_END not written, the next reader resumes from the last checkpoint")
		return
	}
	for attempt := 1; ; attempt++ {
		err := in.Checkpointer.Checkpoint(nil)
		if err == nil {
			p.log.Info("shard read to its end; its children may start")
			return
		}
		if errors.Is(err, lease.ErrLeaseEnded) || p.work.Err() != nil {
			p.log.Warn("shard end not recorded; the next owner reads the shard's tail again", "err", err)
			return
		}
		p.log.Warn("record shard end", "attempt", attempt, "err", err)
		if sleepCtx(p.work, min(time.Duration(attempt)*time.Second, 10*time.Second)) != nil {
			return
		}
	}
}

// refuse records that the library's renewal of the lease was refused.
func (p *processor) refuse() { p.refuseOnce.Do(func() { close(p.refused) }) }

// close releases what the processor holds. The library may drop a
// processor without Shutdown (lost lease), so the consumer also calls it
// on release.
func (p *processor) close() {
	p.once.Do(func() {
		p.stopWork()
		p.cancel()
		if p.c.shards.remove(p.shardID, p.state) {
			p.c.m.deleteShard(p.shardID)
		}
	})
}
