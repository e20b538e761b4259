package document

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"strings"
	"testing"

	"github.com/streambudget/streambudget/pkg/budget"
)

// TestRedactionBypasses tries the spellings a secret can take past a field
// rule, in every decode format: each must be redacted in the document or
// dead-lettered with its bytes withheld; never indexed as it was. Found by
// review: JSON that fell back to text (a trailing comma, NaN, two objects
// in one record, too deep, a byte order mark, JSON encoded twice, an array
// of objects, a CloudWatch Logs message), a dotted key under the rule's
// field, a key in another case, a card number with an exponent.
func TestRedactionBypasses(t *testing.T) {
	const secret = "hunter2"
	deep := `{"password":"hunter2","a":` + strings.Repeat("[", 21) + strings.Repeat("]", 21) + `}`
	cw := func(message string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = w.Write([]byte(`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1700000000000,"message":` + message + `}]}`))
		_ = w.Close()
		return b.String()
	}
	for _, tc := range []struct {
		name, format, data string
		redact             []budget.RedactRule
	}{
		{"trailing comma", budget.DecodeAuto, `{"user":"bob","password":"hunter2",}`, nil},
		{"truncated", budget.DecodeAuto, `{"user":"bob","password":"hunter2"`, nil},
		{"NaN", budget.DecodeAuto, `{"password":"hunter2","latency":NaN}`, nil},
		{"two objects in one record", budget.DecodeAuto, "{\"password\":\"hunter2\"}\n{\"password\":\"hunter3\"}\n", nil},
		{"too deep", budget.DecodeAuto, deep, nil},
		{"byte order mark", budget.DecodeAuto, "\xEF\xBB\xBF{\"password\":\"hunter2\"}", nil},
		{"JSON encoded twice", budget.DecodeAuto, `"{\"password\":\"hunter2\"}"`, nil},
		{"array of objects", budget.DecodeAuto, `[{"password":"hunter2"}]`, nil},
		{"array of objects, json format", budget.DecodeJSON, `[{"password":"hunter2"}]`, nil},
		{"JSON encoded twice, json format", budget.DecodeJSON, `"{\"password\":\"hunter2\"}"`, nil},
		{"too deep, json format", budget.DecodeJSON, deep, nil},
		{"CloudWatch message, broken JSON", budget.DecodeCloudWatchLogs, cw(`"{\"password\":\"hunter2\",}"`), nil},
		{"CloudWatch message, too deep", budget.DecodeAuto, cw(`"{\"password\":\"hunter2\",\"a\":` + strings.Repeat("[", 21) + strings.Repeat("]", 21) + `}"`), nil},
		{"dotted key below the field", budget.DecodeAuto, `{"password.old":"hunter2"}`, nil},
		{"dotted key below a nested field", budget.DecodeAuto, `{"user":{"token.value":"hunter2"}}`, []budget.RedactRule{{Field: "user.token"}}},
		{"dotted key spanning the path", budget.DecodeAuto, `{"user.token.value":"hunter2"}`, []budget.RedactRule{{Field: "user.token"}}},
		{"another case", budget.DecodeAuto, `{"Password":"hunter2"}`, nil},
		{"upper case, escaped", budget.DecodeAuto, `{"PASS\u0057ORD":"hunter2"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			opts.Drop, opts.Decode.Format = nil, tc.format
			opts.Redact = []budget.RedactRule{{Field: "password"}}
			if tc.redact != nil {
				opts.Redact = tc.redact
			}
			out := build(t, schema(t, opts), []Record{rec("1", tc.data)})
			if len(out.items) == 0 {
				t.Fatal("no item: the record vanished")
			}
			for _, it := range out.items {
				if bytes.Contains(it.Source, []byte(secret)) || bytes.Contains(it.Source, []byte("hunter3")) {
					t.Errorf("the secret is in the %s: %s", kind(it.DeadLetter), it.Source)
				}
			}
		})
	}
	// The same spellings, for a card number pattern: a JSON number with an
	// exponent is the card number all the same.
	for _, n := range []string{"4111111111111111e0", "4.111111111111111e15", "41111111111111110E-1"} {
		opts := testOptions()
		opts.Redact = []budget.RedactRule{{Pattern: budget.PatternCreditCard}}
		out := build(t, schema(t, opts), []Record{rec("1", `{"n":`+n+`}`)})
		for _, it := range out.items {
			if bytes.Contains(it.Source, []byte(n)) {
				t.Errorf("card number %s kept in the %s: %s", n, kind(it.DeadLetter), it.Source)
			}
		}
	}
	// Without field rules nothing changes: text stays text.
	opts := testOptions()
	opts.Drop, opts.Redact = nil, nil
	out := build(t, schema(t, opts), []Record{rec("1", `{"a":1,}`), rec("2", `[INFO] started`), rec("3", `"quoted" text`)})
	for _, it := range out.items {
		if it.DeadLetter != "" {
			t.Errorf("without field rules a record was dead-lettered: %s", it.Source)
		}
	}
}

func kind(deadLetter string) string {
	if deadLetter != "" {
		return "dead letter (" + deadLetter + ")"
	}
	return "document"
}

func cwEvents(t *testing.T, messages ...string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	var evs []string
	for i, m := range messages {
		q, _ := json.Marshal(m)
		evs = append(evs, `{"id":"`+string(rune('a'+i))+`","timestamp":1700000000000,"message":`+string(q)+`}`)
	}
	_, _ = w.Write([]byte(`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[` + strings.Join(evs, ",") + `]}`))
	_ = w.Close()
	return b.String()
}

// TestFieldRulesReachText (found by the second review): a text message
// that may hold a redacted field (an array holding objects, a byte order
// mark, a Lambda log line ending in JSON, decode: text) is redacted whole.
func TestFieldRulesReachText(t *testing.T) {
	for _, tc := range []struct {
		name, format, data string
	}{
		{"array, scalar first (auto)", budget.DecodeAuto, `[1,{"password":"hunter2"}]`},
		{"array, string first (auto)", budget.DecodeAuto, `["login",{"password":"hunter2"}]`},
		{"array, scalar first (json)", budget.DecodeJSON, `[1,{"password":"hunter2"}]`},
		{"CloudWatch message with a BOM", budget.DecodeAuto, cwEvents(t, "\ufeff{\"password\":\"hunter2\"}")},
		{"CloudWatch Lambda line (default Node/Python prefix)", budget.DecodeAuto, cwEvents(t, "2026-12-01T00:00:00.000Z\t6f1c\tINFO\t{\"password\":\"hunter2\"}")},
		{"decode: text", budget.DecodeText, `{"password":"hunter2"}`},
		{"escaped tab before '=' (text)", budget.DecodeText, `PASSWORD\t= hunter2`},
		{"escaped line break before ':' (broken JSON)", budget.DecodeAuto, `{"password"\n: "hunter2"`},
		{"escaped letter in the key (text)", budget.DecodeText, `Pass\u0057ord = hunter2`},
		{"backslash before r inside the key (text)", budget.DecodeText, `passwo\rd=hunter2`},
		{"backslash before t, n inside the key (broken JSON)", budget.DecodeAuto, `{"\password"\n: "hunter2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			opts.Drop, opts.Decode.Format = nil, tc.format
			opts.Redact = []budget.RedactRule{{Field: "password"}}
			out := build(t, schema(t, opts), []Record{rec("1", tc.data)})
			for _, it := range out.items {
				if bytes.Contains(it.Source, []byte("hunter2")) {
					t.Errorf("secret in the %s: %s", kind(it.DeadLetter), it.Source)
				}
			}
		})
	}
}

// TestTextIsNotDeadLettered (found by the second review): text that is not
// a JSON object, with or without field rules, stays a document: only a
// message that may hold a redacted field is redacted, and one CloudWatch
// Logs event never takes its record's others with it.
func TestTextIsNotDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want int // documents wanted
	}{
		{"CloudWatch: python dict repr among good events", cwEvents(t, `{"msg":"ok"}`, `{'user': 'bob', 'n': 1}`, "plain text"), 3},
		{"CloudWatch: pretty-printed JSON, one line per event", cwEvents(t, "{", `  "a": 1`, "}", "next line"), 4},
		{"CloudWatch: Java Map.toString", cwEvents(t, "{user=bob, action=login}", "ok"), 2},
		{"auto: NDJSON record (two objects)", "{\"a\":1}\n{\"b\":2}\n", 1},
		{"auto: python dict repr", `{'user': 'bob'}`, 1},
		{"auto: TOML-ish [[section]]", `[[main]] started`, 1},
		{"auto: a JSON string holding a bracketed log line", `"[2026-12-01 10:00:00] ERROR payment failed"`, 1},
		{"auto: Go %+v struct", `{Name:bob Age:42} saved`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, field := range []bool{false, true} {
				opts := testOptions()
				opts.Drop = nil
				opts.Redact = []budget.RedactRule{{Pattern: budget.PatternEmail}}
				if field {
					opts.Redact = append(opts.Redact, budget.RedactRule{Field: "password"})
				}
				out := build(t, schema(t, opts), []Record{rec("1", tc.data)})
				docs, dls := 0, 0
				for _, it := range out.items {
					if it.DeadLetter != "" {
						dls++
						if !bytes.Contains(it.Source, []byte(`"raw_encoding":"withheld"`)) {
							t.Logf("dead letter keeps bytes: %s", it.Source)
						}
					} else {
						docs++
					}
				}
				t.Logf("field rule %v: %d documents, %d dead letters", field, docs, dls)
				if docs != tc.want {
					t.Errorf("field rule %v: %d documents (%d dead letters, bytes withheld), want %d", field, docs, dls, tc.want)
				}
			}
		})
	}
}

// TestShortCardSpelling (found by the second review): card numbers spelled
// with an exponent in fewer than 13 characters.
func TestShortCardSpelling(t *testing.T) {
	for _, n := range []string{"4300000000000", "43e11", "4.3e12", "4.3E+12", "4111110500000000", "4.1111105E15"} {
		opts := testOptions()
		opts.Redact = []budget.RedactRule{{Pattern: budget.PatternCreditCard}}
		out := build(t, schema(t, opts), []Record{rec("1", `{"n":`+n+`}`)})
		for _, it := range out.items {
			if bytes.Contains(it.Source, []byte(`"n":`+n)) {
				t.Errorf("card number spelled %s kept: %s", n, it.Source)
			}
		}
	}
}
