package harness

import (
	"io"
	"net"
	"sync"
	"testing"
)

// TCPProxy forwards connections to a server of the stack and can take it
// down for one test without stopping it for the others: down, it closes
// its listener and every connection, so clients see exactly what a dead
// server gives them (connection refused); up again, it listens on the same
// address.
type TCPProxy struct {
	// URL is http://<the proxy's address>.
	URL string

	t            testing.TB
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
	closed       bool
}

// NewTCPProxy starts a proxy to target (host:port); it is closed when the
// test ends.
func NewTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCPProxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.URL = "http://" + p.addr
	p.serve(ln)
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.SetDown(true)
	})
	return p
}

func (p *TCPProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *TCPProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// SetDown takes the server down for the proxy's clients, or brings it back.
func (p *TCPProxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case down && p.ln != nil:
		p.ln.Close()
		p.ln = nil
		for c := range p.conns {
			c.Close()
		}
	case !down && p.ln == nil && !p.closed:
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Fatalf("listen again on %s: %v", p.addr, err)
		}
		p.mu.Unlock()
		p.serve(ln)
		p.mu.Lock()
	}
}
