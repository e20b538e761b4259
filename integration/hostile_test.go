//go:build integration

package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	h "github.com/streambudget/streambudget/integration/harness"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// hostile is every kind of bad input, each with what must become of it.
func hostile() []struct {
	name string
	data []byte
	dead bool // dead-lettered rather than indexed
} {
	bomb := gz(make([]byte, 20<<20))
	big := []byte(`{"message":"` + strings.Repeat("x", (1<<20)-64) + `"}`)
	return []struct {
		name string
		data []byte
		dead bool
	}{
		{"invalid JSON", []byte(`{"message": "unterminated`), false}, // auto: indexed as text
		{"10,000 levels of nesting", []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)), false},
		{"a 1 MiB record", big, false},
		{"invalid UTF-8", []byte("bad \xff\xfe bytes"), true},
		{"NUL bytes", []byte("nul \x00 inside \x00"), false},
		{"truncated gzip", gz([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[]}`))[:20], true},
		{"gzip bomb", bomb, true},
		{"CloudWatch Logs of the wrong shape", gz([]byte(`{"messageType":"DATA_MESSAGE","logEvents":{"id":1}}`)), true},
		{"empty record", []byte{}, true},
		{"field type A", []byte(`{"conflict":{"nested":true},"message":"object"}`), false},
		// Dynamic mapping made conflict an object: Elasticsearch refuses
		// the string (document_parsing_exception), so it is dead-lettered.
		{"field type B", []byte(`{"conflict":"a string now","message":"string"}`), true},
		{"control characters", []byte("ctl \x01\x02\x1b[31m red \x7f"), false},
		{"a long line", []byte(strings.Repeat("long line ", 50000)), false},
	}
}

// TestHostileInput sends every bad input through a real stream between
// good records: each ends indexed or dead-lettered with a reason, and the
// shard keeps going (the good record after them all is indexed).
func TestHostileInput(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("hostile")
	h.CreateStream(t, kc, team, 1)
	cases := hostile()
	var recs []h.Record
	good := h.Records(team, 2, 1)
	recs = append(recs, good[0])
	for i, c := range cases {
		recs = append(recs, h.Record{ID: fmt.Sprint("bad-", i), Key: "k", Data: c.data})
	}
	recs = append(recs, good[1])
	h.Put(t, kc, team, recs)
	budget := h.Budget(t, team, team, 1, "maxRecords: 100\npollInterval: 1s", "")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite})
	start := time.Now()
	waitIndexed(t, env, team, good, 60*time.Second)
	wantDead, wantDocs := 0, 2
	for _, c := range cases {
		if c.dead {
			wantDead++
		} else {
			wantDocs++
		}
	}
	var dead, docs []h.Doc
	h.Eventually(t, 30*time.Second, "every record accounted for", func() (bool, string) {
		var err error
		if dead, err = env.Search.Docs(context.Background(), team, true, "deadletter.reason", "deadletter.raw_encoding", "kinesis.sequence_number"); err != nil {
			return false, err.Error()
		}
		if docs, err = env.Search.Docs(context.Background(), team, false, "message"); err != nil {
			return false, err.Error()
		}
		return len(dead) == wantDead && len(docs) == wantDocs, fmt.Sprintf("%d dead letters (want %d), %d documents (want %d)", len(dead), wantDead, len(docs), wantDocs)
	})
	reasons := map[string]int{}
	for _, d := range dead {
		if d["deadletter.reason"] == "" {
			t.Errorf("dead letter without a reason: %v", d)
		}
		reasons[d["deadletter.reason"]]++
	}
	if c.Exited() {
		t.Fatal("the consumer exited on hostile input")
	}
	rss, _ := h.RSS(c.PID())
	t.Logf("%d hostile records: %d indexed, %d dead-lettered %v, in %s; consumer RSS %d KiB",
		len(cases), wantDocs-2, len(dead), reasons, time.Since(start).Round(time.Second), rss>>10)
}

// TestSecretsStayOut plants a secret as the Elasticsearch password and in
// records (a password field, an e-mail in an undecodable record) and greps
// the pod's log, its metrics, its status page and the search server for it.
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("secret")
	h.CreateStream(t, kc, team, 1)
	const secret = "s3cr3t-planted-7f1c"
	recs := []h.Record{
		{ID: "a", Key: "k", Data: []byte(`{"id":"a","password":"` + secret + `","message":"login"}`)},
		{ID: "b", Key: "k", Data: []byte("not utf-8 \xff from " + secret + "@example.com")},
		{ID: "c", Key: "k", Data: []byte(`{"id":"c","message":"mail to ` + secret + `@example.com"}`)},
	}
	h.Put(t, kc, team, recs)
	budget := h.Budget(t, team, team, 1, "maxRecords: 100\npollInterval: 1s", "redact:\n  - field: password\n  - pattern: email\n")
	c := env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite,
		Env: []string{"ELASTICSEARCH_USERNAME=elastic", "ELASTICSEARCH_PASSWORD=" + secret}, Args: []string{"--log-level", "debug"}})
	waitIndexed(t, env, team, []h.Record{recs[0], recs[2]}, 60*time.Second)
	var dead []h.Doc
	h.Eventually(t, 30*time.Second, "the undecodable record dead-lettered", func() (bool, string) {
		var err error
		dead, err = env.Search.Docs(context.Background(), team, true, "deadletter.raw", "deadletter.raw_encoding", "deadletter.reason")
		return err == nil && len(dead) == 1, fmt.Sprintf("%d dead letters, %v", len(dead), err)
	})
	docs, err := env.Search.Docs(context.Background(), team, false, "password", "message")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		resp, err := http.Get("http://" + c.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	places := map[string]string{"log": c.Log(), "metrics": get("/metrics"), "status page": get("/"), "documents": fmt.Sprint(docs), "dead letters": fmt.Sprint(dead)}
	for where, text := range places {
		if strings.Contains(text, secret) {
			t.Errorf("the planted secret appears in the %s", where)
		}
	}
	// The team has a field rule, which needs a decoded document: the
	// undecodable record's bytes cannot be redacted with certainty, so the
	// dead letter keeps only their size and hash, and says why.
	if dead[0]["deadletter.raw"] != "" || dead[0]["deadletter.raw_encoding"] != "withheld" {
		t.Errorf("dead letter raw %q (%s): want the bytes withheld", dead[0]["deadletter.raw"], dead[0]["deadletter.raw_encoding"])
	}
	if !strings.Contains(fmt.Sprint(docs), "[REDACTED]") {
		t.Errorf("redaction did not apply before indexing: %v", docs)
	}
}

// TestTLS indexes through a TLS endpoint with a private CA that requires a
// client certificate: --es-ca, --es-cert and --es-key.
func TestTLS(t *testing.T) {
	t.Parallel()
	env := h.Load(t)
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "streambudget test CA", true)
	srvCert, srvKey := newCert(t, ca, caKey, "127.0.0.1", false)
	cliCert, cliKey := newCert(t, ca, caKey, "streambudget", false)
	write := func(name string, der []byte, typ string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPath := write("ca.pem", ca.Raw, "CERTIFICATE")
	certPath := write("client.pem", cliCert.Raw, "CERTIFICATE")
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := write("client-key.pem", keyDER, "EC PRIVATE KEY")

	target, err := url.Parse(env.ES.URL)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	var requests atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientCAs:    pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		proxy.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	kc := env.Kinesis(t, env.Kinesalite)
	team := h.Unique("tls")
	h.CreateStream(t, kc, team, 1)
	recs := h.Records(team, 50, 5)
	h.Put(t, kc, team, recs)
	budget := h.Budget(t, team, team, 1, "maxRecords: 100\npollInterval: 1s", "")
	tlsURL := "https://" + ln.Addr().String() + target.Path
	env.StartConsumer(t, h.ConsumerOptions{Budget: budget, Kinesis: env.Kinesalite,
		Args: []string{"--es-url", tlsURL, "--es-ca", caPath, "--es-cert", certPath, "--es-key", keyPath}})
	waitIndexed(t, env, team, recs, 60*time.Second)
	if requests.Load() == 0 {
		t.Fatal("no request went through the TLS endpoint")
	}
}

func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
