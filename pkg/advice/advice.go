// Package advice turns what a team's pods measure into the one thing an
// operator should do about the team's budget, with the figures behind it.
// Everything here is a pure function of a Snapshot.
//
// The rules follow Plaid's: if the queue grows while the stream is over its
// budget, the team logs more than its budget (raise it or cut volume); if it
// grows while the budget is not what holds it back, the consumer or the
// sink is the bottleneck (add pods, then reshard). Above all of them: warn
// before Kinesis retention deletes records that were never read.
package advice

import (
	"fmt"
	"math"
	"time"
)

// Action is the advice's verdict.
type Action string

// The actions, in documentation order.
const (
	OK           Action = "ok"
	OverBudget   Action = "over_budget"
	Draining     Action = "draining"
	AddPods      Action = "add_pods"
	Reshard      Action = "reshard"
	DataLossRisk Action = "data_loss_risk"
	ScaleDown    Action = "scale_down"
)

// Actions lists every action, for metrics that expose one series each.
var Actions = []Action{OK, OverBudget, Draining, AddPods, Reshard, DataLossRisk, ScaleDown}

// Kinesis limits per shard.
const (
	ShardWriteRecords = 1000    // records/s a shard accepts
	ShardWriteBytes   = 1 << 20 // bytes/s a shard accepts
	ShardReadRecords  = 50000   // 10,000 per call x 5 calls/s
	ShardReadBytes    = 2 << 20 // bytes/s a shard serves
)

// Thresholds.
const (
	// OKLagPolls is how many poll intervals of lag still count as caught up.
	OKLagPolls = 3
	// MinOKLag is the floor of the ok lag, for short poll intervals.
	MinOKLag = 5 * time.Second
	// WaitingShare is the share of time shards wait on the budget limiter
	// above which the budget is what holds the team back.
	WaitingShare = 0.2
	// TrendTolerance is the share of the read rate within which a backlog
	// counts as steady rather than growing or shrinking.
	TrendTolerance = 0.02
	// NearReadLimit is the share of the shard read limit at which a budget
	// cannot usefully be raised further.
	NearReadLimit = 0.8
	// ScaleDownShare is the utilisation below which shards are wasted, and
	// ScaleDownAfter how long it must last.
	ScaleDownShare = 0.10
	ScaleDownAfter = 6 * time.Hour
	// MinHeadroom is the retention headroom under which data is at risk,
	// or MinHeadroomShare of the retention if that is larger.
	MinHeadroom      = time.Hour
	MinHeadroomShare = 0.10
	// ShardHeadroom is the spare write capacity a recommended shard count
	// leaves for spikes.
	ShardHeadroom = 1.25
)

// Snapshot is what the team's pods see, added up over all of them.
type Snapshot struct {
	// PollInterval is the budget's poll interval.
	PollInterval time.Duration
	// Budget is the team's budget in records/s (its allowance when it
	// borrows capacity).
	Budget float64
	// Guarantee is the team's own budget without borrowing; zero means the
	// same as Budget.
	Guarantee float64
	// ShardBudget is one shard's budget in records/s.
	ShardBudget float64
	// ShardByteBudget is one shard's byte cap, zero when none.
	ShardByteBudget float64
	OpenShards      int
	Pods            int
	// Retention is the stream's retention period.
	Retention time.Duration
	// Lag is the largest shard lag: the age of the oldest unread record.
	Lag time.Duration
	// Incoming is the rate records arrive at the tip of the stream, and
	// IncomingBytes in bytes.
	Incoming      float64
	IncomingBytes float64
	// Read is the rate records are read.
	Read float64
	// Backlog is the records between the read positions and the tip.
	Backlog float64
	// WaitShare is the share of time the shards spent waiting on their
	// budget limiters (0 to 1).
	WaitShare float64
	// LowUtilisationFor is how long the incoming rate has stayed below
	// ScaleDownShare of the shards' write capacity.
	LowUtilisationFor time.Duration
}

// Advice is the verdict with its figures and a sentence for people.
type Advice struct {
	Action Action
	// Sentence explains the action and the figures behind it.
	Sentence string
	// DrainETA is when the backlog is gone at the current rates; zero with
	// no backlog, negative when the backlog does not shrink.
	DrainETA time.Duration
	// Headroom is the retention left before unread records are deleted.
	Headroom time.Duration
	// RecommendedShards is the shard count for the incoming rate.
	RecommendedShards int
	// OverBy is the records/s above the budget while over budget.
	OverBy float64
}

// Headroom is retention minus the oldest unread record's age.
func Headroom(s Snapshot) time.Duration { return s.Retention - s.Lag }

// Trend is how fast the backlog grows (positive) or shrinks (negative), in
// records/s.
func Trend(s Snapshot) float64 { return s.Incoming - s.Read }

// DrainETA is the time to read the backlog at the current rates: zero with
// none, negative when it does not shrink.
func DrainETA(s Snapshot) time.Duration {
	if s.Backlog <= 0 {
		return 0
	}
	shrink := s.Read - s.Incoming
	if shrink <= TrendTolerance*math.Max(s.Read, 1) {
		return -1
	}
	return time.Duration(s.Backlog / shrink * float64(time.Second))
}

// RecommendedShards is the shard count whose write limits take the incoming
// rate with ShardHeadroom to spare, and that lets the budget be read without
// any shard exceeding the read limit; at least 1.
func RecommendedShards(s Snapshot) int {
	n := math.Max(s.Incoming*ShardHeadroom/ShardWriteRecords, s.IncomingBytes*ShardHeadroom/ShardWriteBytes)
	n = math.Max(n, s.Budget/(ShardReadRecords*NearReadLimit))
	return max(int(math.Ceil(n-1e-9)), 1)
}

func okLag(s Snapshot) time.Duration {
	return max(time.Duration(OKLagPolls)*s.PollInterval, MinOKLag)
}

// atReadLimit reports whether the per-shard budget is at the shard read
// limit, so raising it further does nothing.
func atReadLimit(s Snapshot) bool {
	return s.ShardBudget >= NearReadLimit*ShardReadRecords ||
		(s.ShardByteBudget > 0 && s.ShardByteBudget >= NearReadLimit*ShardReadBytes)
}

// For returns the advice for a snapshot. Data loss risk wins over
// everything; then a caught-up team is ok (or wastes shards); a backlog
// that shrinks is draining; one that grows is over budget when the budget
// holds it back and a capacity problem otherwise.
func For(s Snapshot) Advice {
	a := Advice{
		DrainETA:          DrainETA(s),
		Headroom:          Headroom(s),
		RecommendedShards: RecommendedShards(s),
	}
	minHeadroom := max(MinHeadroom, time.Duration(MinHeadroomShare*float64(s.Retention)))
	trend := Trend(s)
	caughtUp := s.Lag <= okLag(s)
	shrinking := a.DrainETA > 0

	switch {
	case s.Retention > 0 && s.Lag > 0 && a.Headroom < minHeadroom:
		a.Action = DataLossRisk
		a.Sentence = fmt.Sprintf("Unread records are %s old and Kinesis deletes them after %s: %s left. Raise the budget or the retention now (aws kinesis increase-stream-retention-period).",
			round(s.Lag), round(s.Retention), round(a.Headroom))
	case s.Retention > 0 && shrinking && a.Headroom < a.DrainETA:
		a.Action = DataLossRisk
		a.Sentence = fmt.Sprintf("The backlog drains in %s but retention deletes the oldest unread records in %s. Raise the budget or the retention now.",
			round(a.DrainETA), round(a.Headroom))
	case caughtUp && s.OpenShards > 1 && s.LowUtilisationFor >= ScaleDownAfter:
		a.Action = ScaleDown
		a.Sentence = fmt.Sprintf("Incoming %.0f records/s has used under %.0f%% of %d shards' write capacity for %s: %d shard(s) would do.",
			s.Incoming, ScaleDownShare*100, s.OpenShards, round(s.LowUtilisationFor), a.RecommendedShards)
	case caughtUp:
		a.Action = OK
		a.Sentence = fmt.Sprintf("Caught up: lag %s, incoming %.0f of a %.0f records/s budget.", round(s.Lag), s.Incoming, s.Budget)
	case shrinking:
		a.Action = Draining
		borrowed := ""
		if s.Guarantee > 0 && s.Budget > s.Guarantee {
			borrowed = fmt.Sprintf(" (%.0f of it borrowed from quiet teams)", s.Budget-s.Guarantee)
		}
		a.Sentence = fmt.Sprintf("Draining a backlog of %.0f records at %.0f records/s%s against %.0f incoming: caught up in about %s.",
			s.Backlog, s.Read, borrowed, s.Incoming, round(a.DrainETA))
	case s.WaitShare >= WaitingShare && atReadLimit(s):
		a.Action = Reshard
		a.OverBy = math.Max(s.Incoming-s.Budget, 0)
		a.Sentence = fmt.Sprintf("Logging %.0f records/s, %.0f over a budget already at the shard read limit: reshard to %d shards (new child shards are read only after their parents drain, so this does not drain the current backlog faster) or cut volume.",
			s.Incoming, a.OverBy, a.RecommendedShards)
	case s.WaitShare >= WaitingShare:
		a.Action = OverBudget
		a.OverBy = math.Max(s.Incoming-s.Budget, 0)
		a.Sentence = fmt.Sprintf("Logging %.0f records/s, %.0f over the %.0f records/s budget (%.1fx): raise maxRecords (up to the shard read limit) or cut volume; the excess waits in Kinesis.",
			s.Incoming, a.OverBy, s.Budget, s.Incoming/math.Max(s.Budget, 1))
	case s.Pods < s.OpenShards:
		a.Action = AddPods
		a.Sentence = fmt.Sprintf("The backlog grows by %.0f records/s while the budget is not what holds the shards back: the pods or the sink cannot keep up. Add pods (%d pods for %d shards).",
			trend, s.Pods, s.OpenShards)
	default:
		a.Action = Reshard
		a.Sentence = fmt.Sprintf("The backlog grows by %.0f records/s with a pod per shard and the budget not holding it back: reshard to %d shards (new child shards are read only after their parents drain, so this does not drain the current backlog faster).",
			trend, a.RecommendedShards)
	}
	return a
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
