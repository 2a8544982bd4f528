package testenv

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/onestack/webhooks/signature"
)

// Received is one webhook as a receiver got it.
type Received struct {
	ID        string
	Timestamp string
	Signature string
	Header    http.Header
	Body      []byte
	At        time.Time
	// Path is the request's path: subscriptions to one receiver may use
	// several.
	Path string
	// Verified is the signature check's result against the receiver's
	// secrets at the time (nil when it has none).
	Verified error
	// ClientCert is the subject of the TLS client certificate the sender
	// presented ("" for none, or plain http).
	ClientCert string
}

// Receiver is an HTTP endpoint that records every webhook, verifies its
// signature against the secrets it is given, and answers as told.
type Receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	got     []Received
	secrets []signature.Secret
	respond func(n int, r *http.Request) int
	header  http.Header
	body    []byte
	notify  chan struct{}
}

// NewReceiver starts a receiver on a loopback port; it answers 204 until
// told otherwise with Respond.
func NewReceiver() *Receiver {
	rc := &Receiver{notify: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	return rc
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got := Received{
		ID: r.Header.Get(signature.HeaderID), Timestamp: r.Header.Get(signature.HeaderTimestamp),
		Signature: r.Header.Get(signature.HeaderSignature), Header: r.Header.Clone(), Path: r.URL.Path, Body: body, At: time.Now(),
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		got.ClientCert = r.TLS.PeerCertificates[0].Subject.String()
	}
	rc.mu.Lock()
	if len(rc.secrets) > 0 {
		got.Verified = signature.Verifier{Secrets: rc.secrets}.Verify(got.ID, got.Timestamp, got.Signature, body)
	}
	rc.got = append(rc.got, got)
	n := len(rc.got)
	respond := rc.respond
	for k, v := range rc.header {
		w.Header()[k] = v
	}
	answer := rc.body
	rc.mu.Unlock()
	select {
	case rc.notify <- struct{}{}:
	default:
	}
	status := http.StatusNoContent
	if respond != nil {
		status = respond(n, r)
	}
	w.WriteHeader(status)
	w.Write(answer)
}

// NewTLSReceiver starts a receiver served over TLS with cfg (its server
// certificate, and the client certificates it asks for).
func NewTLSReceiver(cfg *tls.Config) *Receiver {
	rc := &Receiver{notify: make(chan struct{}, 1)}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.TLS = cfg
	// Refused handshakes are what some tests are about, not news.
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	rc.srv.StartTLS()
	return rc
}

// URL is the receiver's address.
func (rc *Receiver) URL() string { return rc.srv.URL }

// Close stops the receiver.
func (rc *Receiver) Close() { rc.srv.Close() }

// SetSecrets sets the secrets signatures are verified against.
func (rc *Receiver) SetSecrets(secrets ...string) error {
	parsed := make([]signature.Secret, len(secrets))
	for i, s := range secrets {
		var err error
		if parsed[i], err = signature.ParseSecret(s); err != nil {
			return err
		}
	}
	rc.mu.Lock()
	rc.secrets = parsed
	rc.mu.Unlock()
	return nil
}

// Respond sets the status answered to the n-th request (1-based, counted
// over the receiver's life).
func (rc *Receiver) Respond(f func(n int, r *http.Request) int) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

// Body sets the body of every answer.
func (rc *Receiver) Body(b []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.body = b
}

// Header adds a header to every answer.
func (rc *Receiver) Header(name, value string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.header == nil {
		rc.header = http.Header{}
	}
	rc.header.Set(name, value)
}

// Received returns a copy of everything received so far.
func (rc *Receiver) Received() []Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Received(nil), rc.got...)
}

// Since returns a copy of what arrived after the first n webhooks.
func (rc *Receiver) Since(n int) []Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if n >= len(rc.got) {
		return nil
	}
	return append([]Received(nil), rc.got[n:]...)
}

// Count is how many webhooks arrived.
func (rc *Receiver) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// WaitFor waits until at least n webhooks arrived or timeout passes, and
// returns what arrived.
func (rc *Receiver) WaitFor(n int, timeout time.Duration) []Received {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got := rc.Received(); len(got) >= n {
			return got
		}
		select {
		case <-rc.notify:
		case <-deadline.C:
			return rc.Received()
		}
	}
}
