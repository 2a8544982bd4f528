package dispatcher

import (
	"net"
	"net/http"
	"time"

	"github.com/onestack/webhooks/egress"
)

// connectTimeout bounds a connection's dial and its TLS handshake.
const connectTimeout = 5 * time.Second

// NewClient returns the HTTP client that sends webhooks: it dials only
// addresses the policy allows, checked after DNS resolution, never follows
// redirects, ignores proxy settings (a proxy would dial for it) and keeps
// connections to receivers alive. Connecting and the TLS handshake are
// bounded by connectTimeout each, well within an attempt's timeout: a
// destination that does not take connections is known as failing sooner.
func NewClient(p egress.Policy) *http.Client { return clientOf(newTransport(p)) }

// newTransport is NewClient's transport: the dial guard, no proxy, the
// timeouts. Endpoint authentication clones it (see endpointauth).
func newTransport(p egress.Policy) *http.Transport {
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second, Control: p.Control}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    512,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    connectTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// clientOf is the client over tr that never follows redirects.
func clientOf(tr *http.Transport) *http.Client {
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
