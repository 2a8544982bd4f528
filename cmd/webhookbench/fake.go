package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A fakeKind is how a noisy neighbour's endpoint misbehaves.
type fakeKind string

const (
	fakeNever  fakeKind = "never"  // accepts the connection, reads the request, never answers
	fakeSlow   fakeKind = "slow"   // answers 204 after a random wait (5 to 30 s in the bench)
	fakeRefuse fakeKind = "refuse" // a closed port: every connection is refused
	fakeReset  fakeKind = "reset"  // accepts the connection and resets it (SO_LINGER 0) at once
	fakeOK     fakeKind = "ok"     // answers 204 at once
)

// A fake is one loopback port behaving as its kind says; it counts the
// connections it accepts and how many are open at once, so the bench sees
// the sockets webhookd holds toward it. Its address is 127.0.0.1 only.
type fake struct {
	kind fakeKind
	addr string

	ln  net.Listener // never, reset, slow, ok
	srv *http.Server // slow, ok
	fd  int          // refuse: a socket bound to the port that never listens, so nobody else takes it

	// slow answers after a wait drawn uniformly from [lo, hi].
	lo, hi time.Duration

	accepted, open, maxOpen, requests atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // never: open connections, cut on Close
	closed bool
	wg     sync.WaitGroup
}

// newFake starts an endpoint of kind on a fresh loopback port; lo and hi
// bound a slow one's wait (ignored by the other kinds).
func newFake(kind fakeKind, lo, hi time.Duration) (*fake, error) {
	f := &fake{kind: kind, lo: lo, hi: max(lo, hi), fd: -1, conns: map[net.Conn]struct{}{}}
	if kind == fakeRefuse {
		return f, f.bindOnly()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.ln, f.addr = ln, ln.Addr().String()
	switch kind {
	case fakeNever, fakeReset:
		f.wg.Go(f.acceptLoop)
	case fakeSlow, fakeOK:
		f.srv = &http.Server{Handler: http.HandlerFunc(f.serveHTTP), ReadHeaderTimeout: 10 * time.Second, ConnState: f.connState}
		f.wg.Go(func() { f.srv.Serve(ln) })
	default:
		ln.Close()
		return nil, fmt.Errorf("unknown endpoint kind %q", kind)
	}
	return f, nil
}

// bindOnly takes a loopback port without listening on it: the kernel
// answers every connection to it with a reset (ECONNREFUSED), and the port
// stays ours until Close.
func (f *fake) bindOnly() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("bind 127.0.0.1:0: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return fmt.Errorf("getsockname: %w", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		syscall.Close(fd)
		return fmt.Errorf("getsockname: %T, want an IPv4 address", sa)
	}
	f.fd, f.addr = fd, net.JoinHostPort("127.0.0.1", strconv.Itoa(in4.Port))
	return nil
}

// URL is the endpoint's address with path.
func (f *fake) URL(path string) string { return "http://" + f.addr + path }

// opened counts a connection accepted.
func (f *fake) opened() {
	f.accepted.Add(1)
	n := f.open.Add(1)
	for {
		m := f.maxOpen.Load()
		if n <= m || f.maxOpen.CompareAndSwap(m, n) {
			return
		}
	}
}

func (f *fake) acceptLoop() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		f.opened()
		if f.kind == fakeReset {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
			f.open.Add(-1)
			continue
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			f.open.Add(-1)
			return
		}
		f.conns[c] = struct{}{}
		f.mu.Unlock()
		f.wg.Go(func() { f.hold(c) })
	}
}

// hold reads and drops what the client sends, never answering, until the
// client (or Close) ends the connection.
func (f *fake) hold(c net.Conn) {
	io.Copy(io.Discard, c)
	c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	f.open.Add(-1)
}

func (f *fake) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		f.opened()
	case http.StateClosed, http.StateHijacked:
		f.open.Add(-1)
	}
}

func (f *fake) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	io.Copy(io.Discard, r.Body)
	if f.kind == fakeSlow {
		wait := f.lo
		if f.hi > f.lo {
			wait += rand.N(f.hi - f.lo + 1)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	w.WriteHeader(http.StatusNoContent)
}

// Close stops the endpoint and cuts the connections it holds; it waits
// for its goroutines.
func (f *fake) Close() {
	if f.fd >= 0 {
		syscall.Close(f.fd)
		f.fd = -1
		return
	}
	if f.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if f.srv.Shutdown(ctx) != nil {
			f.srv.Close()
		}
		cancel()
	} else {
		f.ln.Close()
	}
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
