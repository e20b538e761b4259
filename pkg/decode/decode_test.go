package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/streambudget/streambudget/pkg/budget"
)

var arrival = time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))

// render is a document as the sink would write its fields: {<AppendFields>}.
func render(doc Doc) string { return "{" + string(doc.AppendFields(nil)) + "}" }

func decodeRecord(t testing.TB, opts Options, data []byte) ([]Doc, bool, error) {
	t.Helper()
	return New(opts).Decode(&Record{Data: data, Arrival: arrival}, nil)
}

func reasonOf(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	if err != nil {
		return "not a *Failure: " + err.Error()
	}
	return ""
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type decodeCase struct {
	name   string
	format string
	data   string
	want   []string // each document rendered
	reason string   // failure reason, if any
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, _, err := decodeRecord(t, Options{Format: tc.format}, []byte(tc.data))
			if got := reasonOf(err); got != tc.reason {
				t.Fatalf("failure reason: got %q (%v), want %q", got, err, tc.reason)
			}
			if err != nil {
				if len(docs) != 0 {
					t.Errorf("docs on failure: got %d, want 0", len(docs))
				}
				return
			}
			var got []string
			for _, d := range docs {
				got = append(got, render(d))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("docs:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	j := budget.DecodeJSON
	runDecodeCases(t, []decodeCase{
		{name: "object", format: j, data: `{"level":"info","n":1,"ok":true,"x":null,"a":[1,{"b":"c"}]}`,
			want: []string{`{"level":"info","n":1,"ok":true,"x":null,"a":[1,{"b":"c"}]}`}},
		{name: "space and trailing newline", format: j, data: " \t{ \"a\" : 1 , \"b\":[ ] }\r\n",
			want: []string{`{"a":1,"b":[ ]}`}},
		{name: "empty object", format: j, data: `{}`, want: []string{`{}`}},
		{name: "duplicate keys keep the last value", format: j, data: `{"a":1,"b":2,"a":3}`,
			want: []string{`{"a":3,"b":2}`}},
		{name: "escapes in keys", format: j, data: `{"ab":1,"a\u0062":2,"q\"k":3}`,
			want: []string{`{"ab":2,"q\"k":3}`}},
		{name: "reserved keys dropped", format: j, data: `{"team":"evil","kinesis":{"x":1},"@timestamp":"2024-05-14T09:21:33Z","a":1}`,
			want: []string{`{"a":1}`}},
		{name: "unparseable @timestamp renamed", format: j, data: `{"@timestamp":"yesterday","a":1}`,
			want: []string{`{"a":1,"@timestamp_raw":"yesterday"}`}},
		{name: "timestamp and time stay", format: j, data: `{"timestamp":"2024-05-14T09:21:33Z","time":12}`,
			want: []string{`{"timestamp":"2024-05-14T09:21:33Z","time":12}`}},
		{name: "escaped NUL kept", format: j, data: `{"m":"a\u0000b"}`, want: []string{`{"m":"a\u0000b"}`}},
		{name: "multi-byte UTF-8 kept", format: j, data: `{"m":"héllo 世界 🎉"}`, want: []string{`{"m":"héllo 世界 🎉"}`}},
		{name: "string becomes message", format: j, data: `"hello"`, want: []string{`{"message":"\"hello\""}`}},
		{name: "number becomes message", format: j, data: "42\n", want: []string{`{"message":"42"}`}},
		{name: "array becomes message", format: j, data: `[1,"a"]`, want: []string{`{"message":"[1,\"a\"]"}`}},
		{name: "null becomes message", format: j, data: `null`, want: []string{`{"message":"null"}`}},
		{name: "invalid", format: j, data: `{"a":}`, reason: ReasonInvalidJSON},
		{name: "truncated", format: j, data: `{"a":"b`, reason: ReasonInvalidJSON},
		{name: "trailing garbage", format: j, data: `{"a":1} x`, reason: ReasonInvalidJSON},
		{name: "two objects", format: j, data: "{\"a\":1}\n{\"a\":2}", reason: ReasonInvalidJSON},
		{name: "trailing comma", format: j, data: `{"a":1,}`, reason: ReasonInvalidJSON},
		{name: "single quotes", format: j, data: `{'a':1}`, reason: ReasonInvalidJSON},
		{name: "raw NUL in string", format: j, data: "{\"a\":\"x\x00y\"}", reason: ReasonInvalidJSON},
		{name: "raw newline in string", format: j, data: "{\"a\":\"x\ny\"}", reason: ReasonInvalidJSON},
		{name: "bad escape", format: j, data: `{"a":"\x"}`, reason: ReasonInvalidJSON},
		{name: "bad number", format: j, data: `{"a":01}`, reason: ReasonInvalidJSON},
		{name: "bad literal", format: j, data: `{"a":tru}`, reason: ReasonInvalidJSON},
		{name: "only space", format: j, data: "  \n", reason: ReasonInvalidJSON},
		{name: "invalid UTF-8 in value", format: j, data: "{\"a\":\"\xff\"}", reason: ReasonInvalidUTF8},
		{name: "invalid UTF-8 in key", format: j, data: "{\"\xc3\x28\":1}", reason: ReasonInvalidUTF8},
		{name: "surrogate encoded in UTF-8", format: j, data: "{\"a\":\"\xed\xa0\x80\"}", reason: ReasonInvalidUTF8},
		{name: "too deep", format: j, data: `{"a":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`, reason: ReasonTooDeep},
		{name: "at the depth limit", format: j, data: `{"a":` + strings.Repeat("[", 19) + strings.Repeat("]", 19) + `}`,
			want: []string{`{"a":` + strings.Repeat("[", 19) + strings.Repeat("]", 19) + `}`}},
		{name: "empty", format: j, data: "", reason: ReasonEmpty},
	})
}

func TestDecodeText(t *testing.T) {
	x := budget.DecodeText
	runDecodeCases(t, []decodeCase{
		{name: "line", format: x, data: "hello world\n", want: []string{`{"message":"hello world"}`}},
		{name: "CRLF trimmed", format: x, data: "hello\r\n", want: []string{`{"message":"hello"}`}},
		{name: "only one newline trimmed", format: x, data: "a\n\n", want: []string{`{"message":"a\n"}`}},
		{name: "quotes and backslashes", format: x, data: `say "hi" \o/`, want: []string{`{"message":"say \"hi\" \\o/"}`}},
		{name: "control characters and NUL", format: x, data: "a\x00b\x01c\td\x1fe\x7f",
			want: []string{`{"message":"a\u0000b\u0001c\td\u001fe` + "\x7f" + `"}`}},
		{name: "multi-byte UTF-8", format: x, data: "naïve ☃ 𝄞", want: []string{`{"message":"naïve ☃ 𝄞"}`}},
		{name: "JSON is just text", format: x, data: `{"a":1}`, want: []string{`{"message":"{\"a\":1}"}`}},
		{name: "a lone newline", format: x, data: "\n", want: []string{`{"message":""}`}},
		{name: "invalid UTF-8", format: x, data: "abc\xffdef", reason: ReasonInvalidUTF8},
		{name: "truncated UTF-8", format: x, data: "abc\xe2\x82", reason: ReasonInvalidUTF8},
		{name: "empty", format: x, data: "", reason: ReasonEmpty},
	})
}

func TestDecodeAuto(t *testing.T) {
	a := budget.DecodeAuto
	deep := `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	runDecodeCases(t, []decodeCase{
		{name: "object", format: a, data: `{"a":"b"}` + "\n", want: []string{`{"a":"b"}`}},
		{name: "object after space", format: a, data: "  {\"a\":1}", want: []string{`{"a":1}`}},
		{name: "invalid JSON becomes text", format: a, data: `{"a": oops}`, want: []string{`{"message":"{\"a\": oops}"}`}},
		{name: "array becomes text", format: a, data: `[1,2]`, want: []string{`{"message":"[1,2]"}`}},
		{name: "plain line", format: a, data: "GET /health 200\n", want: []string{`{"message":"GET /health 200"}`}},
		{name: "too deep object becomes text", format: a, data: deep, want: []string{`{"message":` + string(AppendString(nil, deep)) + `}`}},
		{name: "invalid UTF-8 in JSON", format: a, data: "{\"a\":\"\xff\"}", reason: ReasonInvalidUTF8},
		{name: "empty", format: a, data: "", reason: ReasonEmpty},
		{name: "unknown format is auto", format: "yaml", data: `{"a":1}`, want: []string{`{"a":1}`}},
	})
}

func TestDecodeLimits(t *testing.T) {
	mib := 1 << 20
	maxJSON := []byte(`{"message":"` + strings.Repeat("x", mib-len(`{"message":""}`)) + `"}`)
	deepObject := []byte(`{"a":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10001))
	deepArray := []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))
	cases := []struct {
		name   string
		opts   Options
		data   []byte
		reason string
	}{
		{name: "1 MiB JSON record is indexed", opts: Options{Format: budget.DecodeJSON}, data: maxJSON},
		{name: "1 MiB text record is indexed", opts: Options{Format: budget.DecodeText}, data: bytes.Repeat([]byte("y"), mib)},
		{name: "over the default limit", opts: Options{Format: budget.DecodeText}, data: bytes.Repeat([]byte("y"), DefaultMaxRecordBytes+1), reason: ReasonTooLarge},
		{name: "over a set limit", opts: Options{MaxRecordBytes: 10}, data: []byte(`{"a":"12345"}`), reason: ReasonTooLarge},
		{name: "10,000 nested objects", opts: Options{Format: budget.DecodeJSON}, data: deepObject, reason: ReasonTooDeep},
		{name: "10,000 nested arrays", opts: Options{Format: budget.DecodeJSON}, data: deepArray, reason: ReasonTooDeep},
		{name: "a set depth", opts: Options{Format: budget.DecodeJSON, MaxDepth: 2}, data: []byte(`{"a":{"b":{}}}`), reason: ReasonTooDeep},
		{name: "within a set depth", opts: Options{Format: budget.DecodeJSON, MaxDepth: 2}, data: []byte(`{"a":{"b":1}}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, _, err := decodeRecord(t, tc.opts, tc.data)
			if got := reasonOf(err); got != tc.reason {
				t.Fatalf("failure reason: got %q (%v), want %q", got, err, tc.reason)
			}
			if err == nil {
				if len(docs) != 1 {
					t.Fatalf("docs: got %d, want 1", len(docs))
				}
				if out := render(docs[0]); !json.Valid([]byte(out)) {
					t.Errorf("rendered document is not valid JSON")
				}
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	utc := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts.UTC()
	}
	cases := []struct {
		name string
		data string
		want time.Time
	}{
		{name: "@timestamp RFC3339", data: `{"@timestamp":"2024-05-14T09:21:33Z"}`, want: utc("2024-05-14T09:21:33Z")},
		{name: "@timestamp nano with offset", data: `{"@timestamp":"2024-05-14T11:21:33.123456789+02:00"}`, want: utc("2024-05-14T09:21:33.123456789Z")},
		{name: "@timestamp millis fraction", data: `{"@timestamp":"2024-05-14T09:21:33.5-01:30"}`, want: utc("2024-05-14T10:51:33.5Z")},
		{name: "@timestamp escaped", data: `{"@timestamp":"2024-05-14T09:21:33\u005a"}`, want: utc("2024-05-14T09:21:33Z")},
		{name: "@timestamp first", data: `{"time":1,"timestamp":2,"@timestamp":"2024-05-14T09:21:33Z"}`, want: utc("2024-05-14T09:21:33Z")},
		{name: "timestamp before time", data: `{"time":1,"timestamp":"2024-05-14T09:21:33Z"}`, want: utc("2024-05-14T09:21:33Z")},
		{name: "time epoch seconds", data: `{"time":1715678493}`, want: utc("2024-05-14T09:21:33Z")},
		{name: "time epoch seconds fraction", data: `{"time":1715678493.25}`, want: utc("2024-05-14T09:21:33.25Z")},
		{name: "timestamp epoch millis", data: `{"timestamp":1715678493512}`, want: utc("2024-05-14T09:21:33.512Z")},
		{name: "epoch with exponent", data: `{"time":1.715678493e9}`, want: utc("2024-05-14T09:21:33Z")},
		{name: "duplicate @timestamp keeps last", data: `{"@timestamp":"2020-01-01T00:00:00Z","@timestamp":"2024-05-14T09:21:33Z"}`, want: utc("2024-05-14T09:21:33Z")},
		{name: "unparseable @timestamp uses arrival", data: `{"@timestamp":"2024-13-01T00:00:00Z","time":1715678493}`, want: arrival.UTC()},
		{name: "unparseable timestamp uses arrival", data: `{"timestamp":"14/05/2024"}`, want: arrival.UTC()},
		{name: "negative epoch uses arrival", data: `{"time":-5}`, want: arrival.UTC()},
		{name: "epoch past year 9999 uses arrival", data: `{"time":99999999999999999}`, want: arrival.UTC()},
		{name: "boolean uses arrival", data: `{"time":true}`, want: arrival.UTC()},
		{name: "February 30 uses arrival", data: `{"time":"2024-02-30T00:00:00Z"}`, want: arrival.UTC()},
		{name: "leap day", data: `{"time":"2024-02-29T00:00:00Z"}`, want: utc("2024-02-29T00:00:00Z")},
		{name: "none uses arrival", data: `{"a":1}`, want: arrival.UTC()},
		{name: "text uses arrival", data: `hello`, want: arrival.UTC()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, _, err := decodeRecord(t, Options{}, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			got := docs[0].Timestamp
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Errorf("timestamp: got %v, want %v in UTC", got, tc.want)
			}
		})
	}
}

// TestRoundTrip checks that valid objects come out as the same JSON, minus
// the reserved keys.
func TestRoundTrip(t *testing.T) {
	inputs := map[string]string{
		"log line":        string(readFixture(t, "log512.json")),
		"nested":          `{"a":{"b":[1,2,{"c":"d"}],"e":{}},"f":[],"g":-1.5e-3,"h":"\u00e9\ud83c\udf89\n\t\"\\/"}`,
		"duplicates":      `{"a":1,"b":2,"a":{"x":[true,false,null]}}`,
		"escaped keys":    `{"a\u0062":1,"\u0000":2,"tab\tkey":3,"\"":4}`,
		"reserved":        `{"team":"x","kinesis":1,"@timestamp":"2024-05-14T09:21:33Z","message":"m"}`,
		"lone surrogates": `{"s":"\ud800x","t":"\udc00"}`,
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			docs, _, err := decodeRecord(t, Options{Format: budget.DecodeJSON}, []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			var want, got map[string]any
			if err := json.Unmarshal([]byte(in), &want); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"@timestamp", "team", "kinesis"} {
				delete(want, k)
			}
			out := render(docs[0])
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("unmarshal %s: %v", out, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestDecoderReuse(t *testing.T) {
	d := New(Options{})
	var docs []Doc
	for i, in := range []string{`{"a":"one","b":2}`, "plain text", `{"c":[3]}`} {
		var err error
		docs, _, err = d.Decode(&Record{Data: []byte(in), Arrival: arrival}, docs[:0])
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if got, want := render(docs[0]), `{"c":[3]}`; got != want {
		t.Errorf("third record: got %s, want %s", got, want)
	}
	// A failure leaves dst as it was.
	before := len(docs)
	docs, _, err := d.Decode(&Record{Data: []byte("{\"bad\xff\"")}, docs)
	if err == nil || len(docs) != before {
		t.Errorf("failure: got %d docs and %v, want %d docs and a failure", len(docs), err, before)
	}
}

func TestManyFields(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `":` + "1")
	}
	b.WriteString(`,"ka":"last"}`)
	docs, _, err := decodeRecord(t, Options{Format: budget.DecodeJSON}, []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal([]byte(b.String()), &want); err != nil {
		t.Fatal(err)
	}
	if got := len(docs[0].Fields); got != len(want) {
		t.Errorf("fields: got %d, want %d", got, len(want))
	}
	if got, _ := docs[0].Text("ka"); got != "last" {
		t.Errorf("ka: got %q, want %q", got, "last")
	}
}

func TestFailureError(t *testing.T) {
	_, _, err := decodeRecord(t, Options{Format: budget.DecodeJSON}, []byte(`{"password":"hunter2"`))
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("got %v, want a *Failure", err)
	}
	if strings.Contains(f.Error(), "hunter2") {
		t.Errorf("failure text %q holds payload", f.Error())
	}
	if got, want := f.Error(), "decode record: invalid_json: invalid JSON at byte 21"; got != want {
		t.Errorf("Error: got %q, want %q", got, want)
	}
}

func TestAppendString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"plain ascii text that is longer than eight", `"plain ascii text that is longer than eight"`},
		{"q\"b\\s/", `"q\"b\\s/"`},
		{"\n\r\t\x00\x08\x0c\x1f", `"\n\r\t\u0000\u0008\u000c\u001f"`},
		{"é世🎉", `"é世🎉"`},
		{"a\xffb", "\"a\uFFFDb\""},
		{"\xe2\x82", "\"\uFFFD\uFFFD\""},
		{"\xed\xa0\x80", "\"\uFFFD\uFFFD\uFFFD\""},
		{"\u2028", "\"\u2028\""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got := string(AppendString([]byte("x"), tc.in))
			if got != "x"+tc.want {
				t.Errorf("got %s, want x%s", got, tc.want)
			}
			if !json.Valid([]byte(got[1:])) || !utf8.ValidString(got) {
				t.Errorf("%s is not valid JSON and UTF-8", got[1:])
			}
			var back string
			if err := json.Unmarshal([]byte(got[1:]), &back); err != nil || (utf8.ValidString(tc.in) && back != tc.in) {
				t.Errorf("unmarshal: got %q (%v), want %q", back, err, tc.in)
			}
		})
	}
}

func TestAppendText(t *testing.T) {
	cases := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"a\"b\u00e9\ud83c\udf89"`, "a\"bé🎉", true},
		{`"\ud800"`, "\uFFFD", true},
		{`12.5`, "12.5", true},
		{`-1`, "-1", true},
		{`true`, "true", true},
		{`false`, "false", true},
		{`null`, "", false},
		{`{"a":1}`, "", false},
		{`[1]`, "", false},
		{``, "", false},
		{`"`, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			got, ok := AppendText(nil, []byte(tc.raw))
			if string(got) != tc.want || ok != tc.ok {
				t.Errorf("got %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
