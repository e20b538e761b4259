package advice

import (
	"strings"
	"testing"
	"time"
)

// base is a caught-up team: 2 shards at 500 records/s each, 2 pods.
func base() Snapshot {
	return Snapshot{
		PollInterval: time.Second, Budget: 1000, ShardBudget: 500, OpenShards: 2, Pods: 2,
		Retention: 24 * time.Hour, Lag: time.Second, Incoming: 400, IncomingBytes: 400 << 10, Read: 400,
	}
}

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*Snapshot)
		want   Action
		phrase string // in the sentence
	}{
		{"caught up is ok", func(s *Snapshot) {}, OK, "Caught up"},
		{"lag within a few poll intervals is ok", func(s *Snapshot) { s.Lag = 3 * time.Second; s.Backlog = 800 }, OK, "Caught up"},
		{"over budget: growing while waiting on the limiter", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog, s.WaitShare = time.Minute, 3000, 1000, 60000, 0.8
		}, OverBudget, "2000 over the 1000 records/s budget (3.0x)"},
		{"steady behind at the budget is over budget", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog, s.WaitShare = time.Minute, 1000, 1000, 60000, 0.6
		}, OverBudget, "raise maxRecords"},
		{"draining: the backlog shrinks", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog, s.WaitShare = 2*time.Minute, 400, 1000, 60000, 0.8
		}, Draining, "caught up in about 1m40s"},
		{"draining on borrowed capacity says so", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog, s.Guarantee, s.Budget = 2*time.Minute, 400, 1600, 60000, 1000, 1600
		}, Draining, "600 of it borrowed"},
		{"add pods: growing, not waiting, fewer pods than shards", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog, s.WaitShare, s.Pods = time.Minute, 900, 600, 20000, 0.01, 1
		}, AddPods, "Add pods (1 pods for 2 shards)"},
		{"reshard: growing, not waiting, a pod per shard", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog, s.WaitShare = time.Minute, 1900, 1200, 20000, 0.01
		}, Reshard, "reshard to 3 shards"},
		{"reshard: over budget with the budget at the read limit", func(s *Snapshot) {
			s.ShardBudget, s.Budget = 45000, 90000
			s.Lag, s.Incoming, s.Read, s.Backlog, s.WaitShare = time.Minute, 120000, 90000, 1e6, 0.7
		}, Reshard, "already at the shard read limit"},
		{"data loss risk: headroom under an hour", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog, s.WaitShare = 23*time.Hour+10*time.Minute, 3000, 1000, 1e7, 0.8
		}, DataLossRisk, "50m0s left"},
		{"data loss risk: headroom under 10% of a long retention", func(s *Snapshot) {
			s.Retention = 7 * 24 * time.Hour
			s.Lag, s.Incoming, s.Read, s.Backlog = 7*24*time.Hour-10*time.Hour, 400, 1000, 6e6
		}, DataLossRisk, "10h0m0s left"},
		{"data loss risk: drains after retention runs out", func(s *Snapshot) {
			s.Lag, s.Incoming, s.Read, s.Backlog = 20*time.Hour, 900, 1000, 3e6
		}, DataLossRisk, "drains in 8h20m0s"},
		{"scale down: a long quiet spell on several shards", func(s *Snapshot) {
			s.Incoming, s.Read, s.IncomingBytes, s.LowUtilisationFor = 50, 50, 50<<10, 7*time.Hour
		}, ScaleDown, "1 shard(s) would do"},
		{"no scale down on one shard", func(s *Snapshot) {
			s.OpenShards, s.Incoming, s.Read, s.LowUtilisationFor = 1, 50, 50, 7*time.Hour
		}, OK, "Caught up"},
		{"no scale down for a short quiet spell", func(s *Snapshot) {
			s.Incoming, s.Read, s.LowUtilisationFor = 50, 50, time.Hour
		}, OK, "Caught up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(&s)
			got := For(s)
			if got.Action != tc.want {
				t.Fatalf("action %s (%s), want %s", got.Action, got.Sentence, tc.want)
			}
			if !strings.Contains(got.Sentence, tc.phrase) {
				t.Errorf("sentence %q, want it to contain %q", got.Sentence, tc.phrase)
			}
		})
	}
}

func TestDrainETA(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		backlog, incoming, read float64
		want                    time.Duration
	}{
		{"none", 0, 100, 100, 0},
		{"shrinking", 6000, 400, 1000, 10 * time.Second},
		{"growing", 6000, 1400, 1000, -1},
		{"steady", 6000, 1000, 1000, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Snapshot{Backlog: tc.backlog, Incoming: tc.incoming, Read: tc.read}
			if got := DrainETA(s); got != tc.want {
				t.Errorf("DrainETA = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRecommendedShards(t *testing.T) {
	for _, tc := range []struct {
		name            string
		incoming, bytes float64
		budget          float64
		want            int
	}{
		{"idle", 0, 0, 100, 1},
		{"records bound", 3000, 1 << 20, 1000, 4},
		{"bytes bound", 1000, 4 << 20, 1000, 5},
		{"budget needs read capacity", 100, 0, 200000, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RecommendedShards(Snapshot{Incoming: tc.incoming, IncomingBytes: tc.bytes, Budget: tc.budget})
			if got != tc.want {
				t.Errorf("RecommendedShards = %d, want %d", got, tc.want)
			}
		})
	}
}
