package decode

import (
	"testing"

	"github.com/streambudget/streambudget/pkg/budget"
)

func TestDocGetText(t *testing.T) {
	in := `{"message":"hi \"there\"","status":200,"ok":false,"nil":null,
		"http":{"req":{"method":"GET","a.b":"dotted"},"list":[1]},"k8s.pod":"p-1","k8s":{"pod":"shadowed"},
		"esc":{"n\u0061me":"x"}}`
	docs, _, err := decodeRecord(t, Options{Format: budget.DecodeJSON}, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	doc := docs[0]
	cases := []struct {
		key     string
		raw     string
		text    string
		hasText bool
	}{
		{key: "message", raw: `"hi \"there\""`, text: `hi "there"`, hasText: true},
		{key: "status", raw: `200`, text: "200", hasText: true},
		{key: "ok", raw: `false`, text: "false", hasText: true},
		{key: "nil", raw: `null`},
		{key: "http", raw: `{"req":{"method":"GET","a.b":"dotted"},"list":[1]}`},
		{key: "http.req.method", raw: `"GET"`, text: "GET", hasText: true},
		{key: "http.req.a.b", raw: `"dotted"`, text: "dotted", hasText: true},
		{key: "http.list", raw: `[1]`},
		{key: "k8s.pod", raw: `"p-1"`, text: "p-1", hasText: true},
		{key: "esc.name", raw: `"x"`, text: "x", hasText: true},
		{key: "missing"},
		{key: "http.missing"},
		{key: "message.x"},
		{key: "http.list.0"},
		{key: ""},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			raw, ok := doc.Get(tc.key)
			if string(raw) != tc.raw || ok != (tc.raw != "") {
				t.Errorf("Get: got %q %v, want %q %v", raw, ok, tc.raw, tc.raw != "")
			}
			text, ok := doc.Text(tc.key)
			if text != tc.text || ok != tc.hasText {
				t.Errorf("Text: got %q %v, want %q %v", text, ok, tc.text, tc.hasText)
			}
		})
	}
}

func TestDocSet(t *testing.T) {
	docs, _, err := decodeRecord(t, Options{}, []byte(`{"a":1,"b":2}`+"\n"+`x`))
	if err != nil {
		t.Fatal(err)
	}
	// The record was text: one message field.
	doc := docs[0]
	doc.Set("message", []byte(`"replaced"`))
	doc.Set("extra", []byte(`[1,2]`))
	if got, want := render(doc), `{"message":"replaced","extra":[1,2]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestSetDoesNotClobberNextDoc(t *testing.T) {
	payload := cwPayload(`{"id":"1","timestamp":1,"message":"one"}`, `{"id":"2","timestamp":2,"message":"two"}`)
	docs, _, err := decodeRecord(t, Options{Format: budget.DecodeCloudWatchLogs}, gz(t, payload))
	if err != nil {
		t.Fatal(err)
	}
	docs[0].Set("added", []byte(`true`))
	if got, want := render(docs[1]), `{"message":"two","cloudwatch":{"logGroup":"/aws/lambda/f","logStream":"s","owner":"123","id":"2"}}`; got != want {
		t.Errorf("second doc: got %s, want %s", got, want)
	}
}

func TestAppendFieldsEmptyValue(t *testing.T) {
	doc := Doc{Fields: []Field{{Key: "a\"", Value: nil}, {Key: "b", Value: []byte(`1`)}}}
	if got, want := render(doc), `{"a\"":null,"b":1}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
