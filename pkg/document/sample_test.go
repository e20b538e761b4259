package document

import (
	"context"
	"strings"
	"testing"

	"github.com/streambudget/streambudget/pkg/budget"
)

// TestSample: what each drop rule drops from a sample, by level, with a
// warning for serious levels. The Klaviyo regex drops ERROR lines; the
// literal rule drops only the line that contains [DEBUG].
func TestSample(t *testing.T) {
	f := &budget.File{
		Team: "payments", Decode: budget.DecodeAuto,
		Drop: []budget.DropRule{
			{Name: "debug-trace", Field: "level", In: []string{"DEBUG", "TRACE"}},
			{Name: "klaviyo", Regex: "[DEBUG]"},
			{Name: "literal", Contains: "[DEBUG]"},
		},
	}
	rep, err := Sample(context.Background(), f, "testdata/sample.log")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]RuleReport{}
	for _, r := range rep.Rules {
		got[r.Rule] = r
	}
	if rep.Lines != 7 || rep.Kept != 3 {
		t.Errorf("lines %d kept %d, want 7 and 3", rep.Lines, rep.Kept)
	}
	if r := got["debug-trace"]; r.Dropped != 2 || r.Levels["DEBUG"] != 1 || r.Levels["TRACE"] != 1 {
		t.Errorf("debug-trace: %+v, want DEBUG 1 and TRACE 1", r)
	}
	// "[DEBUG]" as a regex is a character class: it drops the ERROR line
	// whose message has a capital D, E, B, U or G, and the [DEBUG] line
	// before the literal rule gets to it.
	if r := got["klaviyo"]; r.Dropped != 2 || r.Levels["ERROR"] != 1 || r.Levels["-"] != 1 {
		t.Errorf("klaviyo: %+v, want 2 lines: 1 ERROR, 1 without a level", r)
	}
	if r := got["literal"]; r.Dropped != 0 {
		t.Errorf("literal: %+v, want nothing left for it", r)
	}
	var out strings.Builder
	rep.Print(&out)
	if !strings.Contains(out.String(), "warning: rule klaviyo drops 1 ERROR lines") {
		t.Errorf("report lacks the ERROR warning:\n%s", out.String())
	}
}
