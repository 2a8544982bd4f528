// Package client is a Go client for the One Stack Webhooks tenant API that
// behaves as the platform's rate-limit contract asks: it waits Retry-After
// on 429, backs off exponentially with jitter on other transient failures,
// keeps ETags and revalidates with If-None-Match (304s do not count against
// the budget), offers the batch calls, and reports the budget headers.
// It imports only the standard library.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config sets up a Client. BaseURL and APIKey are required; the zero value
// of every other field means its default.
type Config struct {
	BaseURL string
	APIKey  string
	// HTTPClient sends the requests (default: a client with a 30 s timeout).
	HTTPClient *http.Client
	// MaxAttempts bounds the tries of one call, the first included
	// (default 4).
	MaxAttempts int
	// BaseBackoff is the first backoff after a transient failure; each
	// further one doubles, with full jitter (default 500 ms).
	BaseBackoff time.Duration
	// MaxWait bounds any single wait, Retry-After included (default 60 s).
	MaxWait time.Duration
	// Sleep waits d or until ctx ends (default: a timer); tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// CacheEntries bounds the GET answers kept for revalidation with
	// If-None-Match, least recently used first out (default 256). It is
	// not read when Cache is set.
	CacheEntries int
	// Cache, when set, is where the client keeps those answers, shared
	// with other clients (default: a cache of its own).
	Cache *Cache
	// CacheScope keeps this client's answers in a shared Cache apart from
	// those of clients that act for someone else: clients of different
	// tenants or keys must have different scopes (default: APIKey).
	CacheScope string
}

// Client calls the tenant API. It is safe for concurrent use.
type Client struct {
	cfg Config

	mu     sync.Mutex
	budget Budget
	cache  *Cache // cacheKey(GET path) → last 200 answer and its ETag
	scope  string // the prefix of this client's keys in cache
}

type cached struct {
	etag string
	body []byte
}

// Budget is the rate-limit state the last answer reported.
type Budget struct {
	Limit     int
	Remaining int
	Reset     time.Time
}

// Known reports whether an answer has reported the budget yet.
func (b Budget) Known() bool { return b.Limit > 0 }

// Error is an API error in the API's error shape.
type Error struct {
	Status  int            `json:"-"`
	Message string         `json:"error"`
	Code    string         `json:"code"`
	Details map[string]any `json:"details,omitempty"`
	// RetryAfter is the answer's Retry-After in seconds (0 when absent):
	// when to try again after a 429 or a 503.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("onestack api: %d %s: %s", e.Status, e.Code, e.Message)
}

// FieldError is one field a 400 VALIDATION_FAILED refused, and why.
type FieldError struct {
	// Field is the field's path in the request body, such as "url",
	// "eventTypes[1]" or "auth.clientSecret".
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Fields returns the fields the error refused (details.fields), in the
// API's order; none when it names no field.
func (e *Error) Fields() []FieldError {
	raw, _ := e.Details["fields"].([]any)
	out := make([]FieldError, 0, len(raw))
	for _, f := range raw {
		m, _ := f.(map[string]any)
		field, _ := m["field"].(string)
		reason, _ := m["reason"].(string)
		out = append(out, FieldError{Field: field, Reason: reason})
	}
	return out
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" || cfg.APIKey == "" {
		return nil, errors.New("client: BaseURL and APIKey are required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 500 * time.Millisecond
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = time.Minute
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = 256
	}
	c := &Client{cfg: cfg, cache: cfg.Cache}
	if c.cache == nil {
		c.cache = NewCache(cfg.CacheEntries)
	} else {
		c.scope = cmp.Or(cfg.CacheScope, cfg.APIKey) + " "
	}
	return c, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Budget returns the rate-limit state of the last answer.
func (c *Client) Budget() Budget {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.budget
}

// do sends one call with retries and decodes a 2xx body into out (if not
// nil). GETs are revalidated with If-None-Match when an ETag is cached.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out, safe(method))
}

// call is do for a call that is idempotent or not: an idempotent call (a
// GET, PUT or DELETE, or a publish whose events carry their ids) is sent
// again after any failure the server may have half done, a transient 5xx
// or a connection cut; any other only when the server cannot have acted.
func (c *Client) call(ctx context.Context, method, path string, in, out any, idempotent bool) error {
	return c.exchange(ctx, method, path, in, out, extras{idempotent: idempotent})
}

// extras are what a call sends besides its body, and what it reads
// besides the answer's body.
type extras struct {
	idempotent bool
	// header is set on every try (If-Match, Idempotency-Key).
	header http.Header
	// etag, when not nil, is set to the ETag of the answer the body was
	// read from: the answer's own, or on a 304 the cached one's.
	etag *string
}

// exchange is call with the extras x: headers to send, the ETag to read.
func (c *Client) exchange(ctx context.Context, method, path string, in, out any, x extras) error {
	idempotent := x.idempotent
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	var last error
	for attempt := 1; ; attempt++ {
		resp, err := c.send(ctx, method, path, body, x.header)
		if err != nil {
			last = err
			// A connection never made is safe to retry for every call:
			// nothing reached the server.
			if (!idempotent && !errors.Is(err, syscall.ECONNREFUSED)) || ctx.Err() != nil || attempt >= c.cfg.MaxAttempts {
				return last
			}
			if err := c.cfg.Sleep(ctx, c.backoff(attempt)); err != nil {
				return err
			}
			continue
		}
		wait, retry, err := c.handle(method, path, resp, out, idempotent, x.etag)
		if !retry || attempt >= c.cfg.MaxAttempts {
			return err
		}
		if err := c.cfg.Sleep(ctx, wait(attempt)); err != nil {
			return err
		}
	}
}

func (c *Client) send(ctx context.Context, method, path string, body []byte, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if method == http.MethodGet {
		if e, ok := c.cache.get(c.scope + path); ok {
			req.Header.Set("If-None-Match", e.etag)
		}
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// handle reads one answer. It returns whether to retry and how long to
// wait before the given attempt's successor.
func (c *Client) handle(method, path string, resp *http.Response, out any, idempotent bool, etag *string) (func(int) time.Duration, bool, error) {
	defer resp.Body.Close()
	c.readBudget(resp.Header)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return c.backoff, idempotent, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		e, ok := c.cache.get(c.scope + path)
		if !ok {
			return nil, false, fmt.Errorf("%s %s: 304 without a cached answer", method, path)
		}
		if etag != nil {
			*etag = e.etag
		}
		return nil, false, decodeInto(e.body, out)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if etag != nil {
			*etag = resp.Header.Get("ETag")
		}
		if method == http.MethodGet {
			if etag := resp.Header.Get("ETag"); etag != "" {
				c.cache.put(c.scope+path, cached{etag: etag, body: body})
			}
		}
		return nil, false, decodeInto(body, out)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		c.cache.remove(c.scope + path) // gone: its answer will not be revalidated
	}
	apiErr := &Error{Status: resp.StatusCode}
	if json.Unmarshal(body, apiErr) != nil || apiErr.Code == "" {
		apiErr.Message = strings.TrimSpace(string(body))
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		apiErr.RetryAfter = secs
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		// Refused before anything was done: always safe to send again.
		after, ok := c.retryAfter(resp.Header)
		if !ok {
			after = min(defaultRetryAfter, c.cfg.MaxWait) // the contract's example default
		}
		return func(int) time.Duration { return after }, true, apiErr
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusInternalServerError:
		if after, ok := c.retryAfter(resp.Header); ok {
			return func(int) time.Duration { return after }, idempotent, apiErr
		}
		return c.backoff, idempotent, apiErr
	}
	return nil, false, apiErr
}

// safe reports whether a method may be sent again after a failure the
// server may have half done: GET, PUT and DELETE are idempotent.
func safe(method string) bool {
	return method == http.MethodGet || method == http.MethodPut || method == http.MethodDelete
}

func decodeInto(body []byte, out any) error {
	if out == nil || len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// backoff is the wait after the attempt-th failure: full jitter over an
// exponentially growing ceiling.
func (c *Client) backoff(attempt int) time.Duration {
	ceiling := c.cfg.BaseBackoff << min(attempt-1, 16)
	ceiling = min(ceiling, c.cfg.MaxWait)
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

// defaultRetryAfter is waited on a 429 that names no Retry-After.
const defaultRetryAfter = 5 * time.Second

// retryAfter reads Retry-After in seconds, bounded by MaxWait; false when
// it is absent or unusable.
func (c *Client) retryAfter(h http.Header) (time.Duration, bool) {
	secs, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || secs < 0 {
		return 0, false
	}
	return min(time.Duration(secs)*time.Second, c.cfg.MaxWait), true
}

func (c *Client) readBudget(h http.Header) {
	limit, err1 := strconv.Atoi(h.Get("X-RateLimit-Limit"))
	remaining, err2 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	reset, err3 := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return
	}
	c.mu.Lock()
	c.budget = Budget{Limit: limit, Remaining: remaining, Reset: time.Unix(reset, 0)}
	c.mu.Unlock()
}

// readPage reads one page of a list the API answers as data and
// nextCursor: path with the query q, plus limit and cursor when set.
func readPage[T any](ctx context.Context, c *Client, path string, q url.Values, limit int, cursor string) ([]T, string, error) {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Data       []T    `json:"data"`
		NextCursor string `json:"nextCursor"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Data, out.NextCursor, err
}
