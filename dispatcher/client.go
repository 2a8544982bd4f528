package dispatcher

import (
	"net"
	"net/http"
	"time"

	"github.com/onestack/webhooks/egress"
)

// NewClient returns the HTTP client that sends webhooks: it dials only
// addresses the policy allows, checked after DNS resolution, never follows
// redirects, ignores proxy settings (a proxy would dial for it) and keeps
// connections to receivers alive.
func NewClient(p egress.Policy) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.Control}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    512,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
