package budget

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// PlanOptions are the assumptions a plan is made under.
type PlanOptions struct {
	// AvgRecordBytes turns records/s into bytes/s.
	AvgRecordBytes int64
	// ClusterCapacity is the documents/s the Elasticsearch cluster is sized
	// for; zero skips the check.
	ClusterCapacity int
}

// PlanRow is one team's line in a plan.
type PlanRow struct {
	Team         string
	Stream       string
	Shards       int
	MaxRecords   int
	PollInterval string
	// RecordsPerSecond is the team's budget: maxRecords x shards per poll interval.
	RecordsPerSecond float64
	// BytesPerSecond is that budget at the average record size.
	BytesPerSecond float64
	Pods           int
	Warnings       []string
}

// Plan is a table of every team's budget with warnings, and the total.
type Plan struct {
	Rows     []PlanRow
	Total    float64
	Warnings []string
}

// NearLimit is the share of a shard's read limit above which a budget is
// reported as near it.
const NearLimit = 0.8

// NewPlan derives each team's figures from its file as declared (shards is
// the expected open-shard count).
func NewPlan(files []*File, opts PlanOptions) *Plan {
	if opts.AvgRecordBytes <= 0 {
		opts.AvgRecordBytes = 1 << 10
	}
	p := &Plan{}
	for _, f := range files {
		b := f.Budget
		row := PlanRow{
			Team:             f.Team,
			Stream:           f.StreamName(),
			Shards:           f.Shards,
			MaxRecords:       b.MaxRecordsFor(f.Shards),
			PollInterval:     b.PollInterval.String(),
			RecordsPerSecond: b.TeamRate(f.Shards),
			Pods:             f.Pods,
		}
		row.BytesPerSecond = row.RecordsPerSecond * float64(opts.AvgRecordBytes)
		shardRate := b.ShardRate(f.Shards)
		shardBytes := shardRate * float64(opts.AvgRecordBytes)
		if f.Pods > f.Shards {
			row.Warnings = append(row.Warnings, fmt.Sprintf("%d pods for %d shards: %d pods sit idle (a shard is read by one pod)", f.Pods, f.Shards, f.Pods-f.Shards))
		}
		maxShardRate := float64(MaxRecordsPerCall * MaxCallsPerSecond)
		byteCap := float64(MaxReadBytesPerSecond)
		if b.MaxBytesPerSecond > 0 {
			byteCap = float64(b.MaxBytesPerSecond)
		}
		switch {
		case shardBytes > byteCap:
			row.Warnings = append(row.Warnings, fmt.Sprintf("at %s per record a shard's %s/s byte limit caps the budget at %.0f records/s per shard, not %.0f",
				FormatSize(opts.AvgRecordBytes), FormatSize(int64(byteCap)), byteCap/float64(opts.AvgRecordBytes), shardRate))
		case shardRate >= NearLimit*maxShardRate || shardBytes >= NearLimit*float64(MaxReadBytesPerSecond):
			row.Warnings = append(row.Warnings, "budget is near the shard read limit (50,000 records/s or 2 MiB/s per shard): raise it further by adding shards")
		}
		if accept := float64(f.Shards * MaxWriteRecordsPerSecond); row.RecordsPerSecond > accept {
			row.Warnings = append(row.Warnings, fmt.Sprintf("budget %.0f records/s is above what %d shards accept (%.0f records/s): it never binds", row.RecordsPerSecond, f.Shards, accept))
		}
		p.Total += row.RecordsPerSecond
		p.Rows = append(p.Rows, row)
	}
	if opts.ClusterCapacity > 0 && p.Total > float64(opts.ClusterCapacity) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the budgets add up to %.0f records/s, above the cluster capacity of %d documents/s: a spike in every team at once overloads the cluster",
			p.Total, opts.ClusterCapacity))
	}
	return p
}

// Print writes the plan as an aligned table.
func (p *Plan) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tSTREAM\tSHARDS\tMAXRECORDS\tPOLL\tBUDGET REC/S\tBUDGET MiB/S\tPODS\tWARNINGS")
	for _, r := range p.Rows {
		warn := "-"
		if len(r.Warnings) > 0 {
			warn = strings.Join(r.Warnings, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%.0f\t%.2f\t%d\t%s\n",
			r.Team, r.Stream, r.Shards, r.MaxRecords, r.PollInterval, r.RecordsPerSecond, r.BytesPerSecond/(1<<20), r.Pods, warn)
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t\t\t%.0f\t\t\t\n", p.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, warn := range p.Warnings {
		if _, err := fmt.Fprintln(w, "warning:", warn); err != nil {
			return err
		}
	}
	return nil
}
