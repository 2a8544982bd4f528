package portal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/onestack/webhooks/api"
)

// Every portal action is an API request served in-process by the API's
// own handler, as the signed-in tenant (api.AsTenant): the portal has no
// business rule of its own, so validation, field errors, isolation, the
// rate-limit budget and its headers are exactly the API's.

// answer is an API response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// apiError is an answer in the API's error shape.
type apiError struct {
	Status  int            `json:"-"`
	Message string         `json:"error"`
	Code    string         `json:"code"`
	Details map[string]any `json:"details"`
	// RetryAfter is the Retry-After header in seconds, 0 when absent.
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return fmt.Sprintf("api: %d %s: %s", e.Status, e.Code, e.Message) }

// fieldErrors maps the API's details.fields to their reasons by field.
func (e *apiError) fieldErrors() []fieldError {
	raw, _ := e.Details["fields"].([]any)
	out := make([]fieldError, 0, len(raw))
	for _, f := range raw {
		m, _ := f.(map[string]any)
		field, _ := m["field"].(string)
		reason, _ := m["reason"].(string)
		out = append(out, fieldError{Field: field, Reason: reason})
	}
	return out
}

type fieldError struct{ Field, Reason string }

// Budget is the rate-limit state an API answer reported.
type Budget struct {
	Limit, Remaining int
	Reset            time.Time
}

// Known reports whether an answer carried the headers.
func (b Budget) Known() bool { return b.Limit > 0 }

func readBudget(h http.Header) (Budget, bool) {
	limit, err1 := strconv.Atoi(h.Get("X-RateLimit-Limit"))
	remaining, err2 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	reset, err3 := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Budget{}, false
	}
	return Budget{Limit: limit, Remaining: remaining, Reset: time.Unix(reset, 0).UTC()}, true
}

// call serves one API request as the request's session and decodes a 2xx
// JSON body into out (when not nil). A non-2xx answer is returned as an
// *apiError. The budget the answer reported is kept on rq for the page.
func (p *Portal) call(rq *request, method, path string, in, out any, header ...string) (*answer, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	ctx := api.AsTenant(rq.r.Context(), api.Principal{Tenant: rq.ses.Tenant, KeyID: rq.ses.KeyID})
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.RemoteAddr = rq.r.RemoteAddr
	req.Host = rq.r.Host
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	cacheKey := rq.ses.Tenant + " " + path
	var stale *cachedAnswer
	if method == http.MethodGet {
		if c, ok := p.cache.get(cacheKey); ok {
			stale = &c
			req.Header.Set("If-None-Match", c.etag)
		}
	}
	rec := newRecorder()
	p.cfg.API.ServeHTTP(rec, req)
	ans := &answer{status: rec.status, header: rec.h, body: rec.buf.Bytes()}
	if b, ok := readBudget(ans.header); ok {
		rq.budget = b
	}
	switch {
	case ans.status == http.StatusNotModified && stale != nil:
		ans.status, ans.body = http.StatusOK, stale.body
	case ans.status == http.StatusOK && method == http.MethodGet && ans.header.Get("ETag") != "":
		p.cache.put(cacheKey, cachedAnswer{etag: ans.header.Get("ETag"), body: ans.body})
	}
	if ans.status >= 200 && ans.status < 300 {
		if out != nil && len(ans.body) > 0 {
			if err := json.Unmarshal(ans.body, out); err != nil {
				return ans, fmt.Errorf("decode %s %s: %w", method, path, err)
			}
		}
		return ans, nil
	}
	e := &apiError{Status: ans.status}
	if json.Unmarshal(ans.body, e) != nil || e.Code == "" {
		e.Message = http.StatusText(ans.status)
	}
	e.RetryAfter, _ = strconv.Atoi(ans.header.Get("Retry-After"))
	return ans, e
}

// recorder is the in-process ResponseWriter the API answers into.
type recorder struct {
	h      http.Header
	status int
	wrote  bool
	buf    bytes.Buffer
}

func newRecorder() *recorder { return &recorder{h: http.Header{}, status: http.StatusOK} }

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.buf.Write(b)
}

// cachedAnswer is a GET answer kept with its ETag: the portal revalidates
// with If-None-Match, and a 304 costs the tenant no budget.
type cachedAnswer struct {
	etag string
	body []byte
}

// etagCache keeps the latest ETagged answers by tenant and path, at most
// max of them (the oldest go first).
type etagCache struct {
	mu    sync.Mutex
	max   int
	m     map[string]cachedAnswer
	order []string
}

func newETagCache(max int) *etagCache {
	return &etagCache{max: max, m: make(map[string]cachedAnswer)}
}

func (c *etagCache) get(k string) (cachedAnswer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *etagCache) put(k string, v cachedAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		c.order = append(c.order, k)
	}
	c.m[k] = v
	for len(c.order) > c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
}
