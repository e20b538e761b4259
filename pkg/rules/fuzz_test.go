package rules

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/streambudget/streambudget/pkg/budget"
	"github.com/streambudget/streambudget/pkg/decode"
)

// FuzzRedact tries to get a secret past the redaction rules, however a
// record spells it. Any JSON object the decoder accepts is redacted with a
// field rule (user.token) and every built-in pattern; the output is parsed
// again by encoding/json (its own unescaping), and then:
//   - it is valid JSON;
//   - every value at or below the field path user.token, reached the way
//     Elasticsearch reaches it (nested objects, dotted keys, arrays), keys
//     in any case, is "[REDACTED]";
//   - no key or string, and no number (nor the whole number a fraction or
//     exponent spells), holds anything a pattern finds.
func FuzzRedact(f *testing.F) {
	for _, seed := range []string{
		`{"user":{"token":"a","token":"b"}}`,
		`{"user":[{"token":"a"},{"tok\u0065n":"b"}]}`,
		`{"user.token":"x","us\u0065r":{"token":"y"}}`,
		`{"a@b.io":{"c":"jane\u0040example.com"},"n":4111111111111111}`,
		`{"m":["Bearer abc","AKIAIOSFODNN7EXAMPLE",{"k":"4111 1111 1111 1111"}]}`,
		`{"user":{"x.y":{"token":1}},"user.tok":{"en":2}}`,
		`{"User":{"TOKEN.value":"x"},"user.token.old":"y","n":4.111111111111111e15,"m":41111111111111110E-1}`,
		`{"n":43e11,"m":4.3E+12,"k":4.1111105E15,"uſer":{"token":"z"}}`,
	} {
		f.Add([]byte(seed))
	}
	s, err := Compile(nil, []budget.RedactRule{{Field: "user.token"}, {Pattern: budget.PatternEmail},
		{Pattern: budget.PatternCreditCard}, {Pattern: budget.PatternAWSAccessKey}, {Pattern: budget.PatternBearerToken}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, _, err := decode.New(decode.Options{Format: budget.DecodeJSON, MaxRecordBytes: 16 << 10}).Decode(&decode.Record{Data: data}, nil)
		if err != nil || len(docs) != 1 {
			return
		}
		doc := &docs[0]
		if keep, _ := s.Apply(doc); !keep {
			t.Fatal("a redaction-only set dropped a document")
		}
		out := []byte("{" + string(doc.AppendFields(nil)) + "}")
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("redacted document is not valid JSON: %v\n%s", err, out)
		}
		check := func(what, text string) {
			if text == redactedText {
				return
			}
			if spans := s.patterns.find([]byte(text), nil); len(spans) > 0 {
				t.Fatalf("%s %q still holds %q\ninput  %s\noutput %s", what, text, text[spans[0].start:spans[0].end], data, out)
			}
		}
		var walk func(path []string, v any)
		walk = func(path []string, v any) {
			// At or below user.token, in any case (a key may hold dots).
			if len(path) >= 2 && strings.ToLower(path[0]+"."+path[1]) == "user.token" {
				if v != redactedText {
					t.Fatalf("user.token is %v, not redacted\ninput  %s\noutput %s", v, data, out)
				}
				return
			}
			switch x := v.(type) {
			case map[string]any:
				for k, val := range x {
					check("key", k)
					walk(append(append([]string(nil), path...), strings.Split(k, ".")...), val)
				}
			case []any:
				for _, e := range x {
					walk(path, e)
				}
			case string:
				check("string", x)
			case json.Number:
				check("number", x.String())
				// A number with a fraction or an exponent whose value is a
				// whole card number is one all the same.
				if f, _, err := big.ParseFloat(x.String(), 10, 256, big.ToNearestEven); err == nil && f.IsInt() && f.Sign() >= 0 {
					check("number", f.Text('f', 0))
				}
			}
		}
		walk(nil, v)
	})
}
