package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streambudget/streambudget/pkg/budget"
)

// The preflight checks the targets as the documents are written: an index
// target given --data-stream (deprecated) is checked as a data stream, so
// the preflight does not refuse what the flag exists for.
func TestPreflightTargets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "payments.yaml")
	if err := os.WriteFile(path, []byte(`team: payments
stream: payments-logs
shards: 1
budget:
  maxRecords: 100
  pollInterval: 1s
pods: 1
elasticsearch:
  urls: [http://127.0.0.1:9200]
  index: logs-payments-{yyyy.MM.dd}
  deadLetterIndex: deadletter-payments
`), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := budget.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		flag bool
		want string
	}{
		{false, "elasticsearch.index logs-payments-2026.12.01 index"},
		{true, "elasticsearch.index (with --data-stream) logs-payments-2026.12.01 data stream"},
	} {
		ts := (&preflight{file: f, indexIsDataStream: tc.flag}).targets(now)
		kind := "index"
		if ts[0].DataStream {
			kind = "data stream"
		}
		if got := ts[0].Field + " " + ts[0].Name + " " + kind; got != tc.want {
			t.Errorf("--data-stream=%v: documents target %q, want %q", tc.flag, got, tc.want)
		}
		if ts[1].DataStream || ts[1].Name != "deadletter-payments" {
			t.Errorf("--data-stream=%v: dead letter target %+v, want the index deadletter-payments", tc.flag, ts[1])
		}
	}
}
