package document

import (
	"bytes"
	"compress/gzip"
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
