package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBuildInfo checks the labels the fleet monitoring's absent-team alert
// selects build_info by.
func TestBuildInfo(t *testing.T) {
	reg := NewRegistry("1.2.3", "payments", "payments-logs")
	n, err := testutil.GatherAndCount(reg, "streambudget_build_info")
	if err != nil || n != 1 {
		t.Fatalf("streambudget_build_info: got %d series (%v), want 1", n, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		if mf.GetName() != "streambudget_build_info" {
			continue
		}
		m := mf.GetMetric()[0]
		if v := m.GetGauge().GetValue(); v != 1 {
			t.Errorf("value: got %v, want 1", v)
		}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
	}
	for k, want := range map[string]string{"version": "1.2.3", "team": "payments", "stream": "payments-logs"} {
		if got[k] != want {
			t.Errorf("label %s: got %q, want %q", k, got[k], want)
		}
	}
	if !strings.HasPrefix(got["goversion"], "go") {
		t.Errorf("label goversion: got %q, want go...", got["goversion"])
	}
}
