// Package budget reads and validates the per-team budget files in budgets/.
//
// A budget file is the one place an operator tunes a team: which stream it
// reads, how many records per poll interval each shard may deliver, how many
// pods read it, where documents go and which records are dropped or redacted.
// The package is the only reader of budgets/: everything else receives a *File.
package budget

import (
	"math"
	"time"
)

// Kinesis read limits per shard (GetRecords).
const (
	// MaxRecordsPerCall is the most records one GetRecords call returns.
	MaxRecordsPerCall = 10000
	// MaxCallsPerSecond is the most GetRecords calls a shard serves per second.
	MaxCallsPerSecond = 5
	// MinPollInterval follows from MaxCallsPerSecond.
	MinPollInterval = time.Second / MaxCallsPerSecond
	// MaxReadBytesPerSecond is the read throughput of one shard.
	MaxReadBytesPerSecond = 2 << 20
)

// Kinesis write limits per shard (PutRecord(s)); they decide how many shards a
// given incoming rate needs.
const (
	MaxWriteRecordsPerSecond = 1000
	MaxWriteBytesPerSecond   = 1 << 20
)

// DefaultMaxDecompressedBytes bounds what one gzip record may inflate to.
const DefaultMaxDecompressedBytes = 16 << 20

// Decode formats.
const (
	DecodeAuto           = "auto"
	DecodeJSON           = "json"
	DecodeText           = "text"
	DecodeCloudWatchLogs = "cloudwatch-logs"
)

// Built-in redaction detectors.
const (
	PatternEmail        = "email"
	PatternCreditCard   = "credit-card"
	PatternAWSAccessKey = "aws-access-key"
	PatternBearerToken  = "bearer-token"
)

// Patterns lists the built-in redaction detectors in documentation order.
var Patterns = []string{PatternEmail, PatternCreditCard, PatternAWSAccessKey, PatternBearerToken}

// File is one validated budget file.
type File struct {
	// Path is where the file was read from, as given.
	Path string
	// Raw holds the file's bytes, for the Helm chart's ConfigMap and checksums.
	Raw []byte

	Team          string
	Stream        string
	StreamARN     string
	Shards        int
	Budget        Budget
	Pods          int
	Elasticsearch Elasticsearch
	Decode        string
	Limits        Limits
	Drop          []DropRule
	Redact        []RedactRule
	Cluster       *Cluster
}

// Budget is the per-shard read budget.
type Budget struct {
	// MaxRecords is the records per GetRecords call per shard; zero when
	// RecordsPerSecond is given instead.
	MaxRecords int
	// RecordsPerSecond is the team's total; the per-shard maxRecords then
	// follows the live open-shard count.
	RecordsPerSecond int
	PollInterval     time.Duration
	// MaxBytesPerSecond is an optional per-shard byte cap; zero means none.
	MaxBytesPerSecond int64
}

// Elasticsearch says where documents go: each target is either a dated
// index pattern (written with op index and a deterministic _id: a replay
// overwrites) or a data stream (written with op create: a replay into the
// same backing index is refused as a duplicate, one after a rollover is
// not).
type Elasticsearch struct {
	URLs []string
	// Index or DataStream is the documents' target; exactly one is set.
	Index, DataStream string
	// DeadLetterIndex or DeadLetterDataStream is the dead letters' target.
	DeadLetterIndex, DeadLetterDataStream string
	// Retention is how long documents are kept (es-setup's lifecycle
	// policy); zero: no policy.
	Retention time.Duration
}

// Target is the documents' target and whether it is a data stream.
func (e Elasticsearch) Target() (name string, dataStream bool) {
	if e.DataStream != "" {
		return e.DataStream, true
	}
	return e.Index, false
}

// DeadLetterTarget is the dead letters' target and whether it is a data
// stream.
func (e Elasticsearch) DeadLetterTarget() (name string, dataStream bool) {
	if e.DeadLetterDataStream != "" {
		return e.DeadLetterDataStream, true
	}
	return e.DeadLetterIndex, false
}

// Limits bound what one record may cost.
type Limits struct {
	// MaxDecompressedBytes bounds a gzip record's inflated size.
	MaxDecompressedBytes int64
}

// DropRule drops the records it matches. Exactly one of In, Contains and
// Regex is set. Field names the document field the rule looks at; for
// Contains and Regex it defaults to "message".
type DropRule struct {
	Name     string
	Field    string
	In       []string
	Contains string
	Regex    string
}

// RedactRule replaces a field's value, or every match of a built-in
// detector in string values, with "[REDACTED]". Exactly one is set.
type RedactRule struct {
	Field   string
	Pattern string
}

// Cluster opts a team into work-conserving budgets shared with the other
// teams that name the same cluster.
type Cluster struct {
	Name     string
	Capacity int
	Borrow   bool
}

// StreamName is the stream's name, taken from the ARN when only that is set.
func (f *File) StreamName() string {
	if f.Stream != "" {
		return f.Stream
	}
	return streamNameFromARN(f.StreamARN)
}

// ApplicationName is the default KCL application (lease table) name.
func (f *File) ApplicationName() string { return "streambudget-" + f.Team }

// MaxRecordsFor is the per-shard records per call with the given number of
// open shards: the file's maxRecords, or recordsPerSecond spread over the
// shards and rounded up (never below 1, never above the Kinesis limit). It
// is the GetRecords limit and the pacing burst; the rate itself is exact
// (ShardRate).
func (b Budget) MaxRecordsFor(openShards int) int {
	if b.MaxRecords > 0 {
		return b.MaxRecords
	}
	n := int(math.Ceil(b.perShard(openShards)*b.PollInterval.Seconds() - 1e-9))
	return min(max(n, 1), MaxRecordsPerCall)
}

func (b Budget) perShard(openShards int) float64 {
	return float64(b.RecordsPerSecond) / float64(max(openShards, 1))
}

// ShardRate is one shard's budget in records per second: maxRecords per
// pollInterval, or exactly recordsPerSecond over the open shards (so 100
// records/s over 8 shards is 12.5 each, not 12).
func (b Budget) ShardRate(openShards int) float64 {
	if b.MaxRecords > 0 {
		return float64(b.MaxRecords) / b.PollInterval.Seconds()
	}
	perCall := min(b.perShard(openShards)*b.PollInterval.Seconds(), MaxRecordsPerCall)
	return perCall / b.PollInterval.Seconds()
}

// TeamRate is the team's budget in records per second:
// maxRecords x open shards per poll interval.
func (b Budget) TeamRate(openShards int) float64 {
	return b.ShardRate(openShards) * float64(openShards)
}
