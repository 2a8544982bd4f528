package portal

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/client"
)

// Every portal action is an API call made with package client, the one
// outsiders use, over inProcess: the API's own handler serves it in this
// process as the signed-in tenant (api.AsTenant), through the same
// middleware chain as a call from outside. So the portal has no business
// rule of its own: validation, field errors, isolation, the rate-limit
// budget and its headers are exactly the API's.

// inProcessURL is the base URL of the portal's clients: inProcess never
// dials it, and the API sees only the path and the browser's host.
const inProcessURL = "http://api.in-process"

// sessionKey is the API key of the portal's clients, which inProcess
// removes: the session's principal says who calls, not a key.
const sessionKey = "portal-session"

// clientCacheEntries bounds the GET answers the portal keeps for
// revalidation, across tenants.
const clientCacheEntries = 4096

// inProcess is an http.RoundTripper that serves each request with the
// API's handler, as principal, from the browser request's address and
// host (the API limits and logs by them as for any caller).
type inProcess struct {
	api        http.Handler
	principal  api.Principal
	remoteAddr string
	host       string
}

// RoundTrip serves req with the API's handler and returns its answer,
// read whole.
func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	in := req.Clone(api.AsTenant(req.Context(), t.principal))
	in.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	in.Host, in.RemoteAddr = t.host, t.remoteAddr
	in.Header.Del("Authorization")
	if in.Body == nil {
		in.Body = http.NoBody // as a server's request always has one
	}
	w := &answerWriter{header: http.Header{}, status: http.StatusOK}
	t.api.ServeHTTP(w, in)
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode: w.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        w.header,
		Body:          io.NopCloser(&w.body),
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}, nil
}

// answerWriter is the ResponseWriter the API answers an in-process
// request into.
type answerWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (w *answerWriter) Header() http.Header { return w.header }

func (w *answerWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
}

func (w *answerWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}

// apiClient is the client of one signed-in request: it calls the API as
// the session's tenant (and key, when it signed in with one), shares the
// portal's cache of answers under the tenant, and makes one try, for the
// page answers a 429 or a 503 itself. Its Budget is what this request's
// calls reported.
func (p *Portal) apiClient(r *http.Request, ses Session) *client.Client {
	c, err := client.New(client.Config{
		BaseURL: inProcessURL,
		APIKey:  sessionKey,
		HTTPClient: &http.Client{
			Transport: &inProcess{api: p.cfg.API, principal: api.Principal{Tenant: ses.Tenant, KeyID: ses.KeyID},
				remoteAddr: r.RemoteAddr, host: r.Host},
			// An API answer is the page's to read, a redirect included.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		MaxAttempts: 1,
		Cache:       p.cache,
		CacheScope:  ses.Tenant,
	})
	if err != nil {
		panic("portal: " + err.Error()) // BaseURL and APIKey are constants
	}
	return c
}

// apiMessage is what the portal shows of an API error: its message, or
// the status's text when the answer was not in the API's error shape.
func apiMessage(e *client.Error) string {
	if e.Code == "" {
		return http.StatusText(e.Status)
	}
	return e.Message
}
