package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// script answers the n-th request (0-based) with answers[n], and records
// what it was sent.
type script struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter)
	got     []*http.Request
	bodies  [][]byte
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.got)
	s.got = append(s.got, r.Clone(context.Background()))
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	s.answers[min(n, len(s.answers)-1)](w)
}

func status(code int, headers ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		if code >= 400 {
			w.Write([]byte(`{"error":"x","code":"SOME_CODE"}`))
		} else if code == 200 {
			w.Write([]byte(`{"data":[{"type":"ticket.updated","description":"d"}]}`))
		}
	}
}

func newTest(t *testing.T, s *script) (*Client, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	var waits []time.Duration
	c, err := New(Config{BaseURL: srv.URL, APIKey: "sk_test", BaseBackoff: 100 * time.Millisecond,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return c, &waits
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		answers  []func(http.ResponseWriter)
		requests int
		waits    []time.Duration // exact, or upper bounds when jittered
		jittered bool
		wantErr  int // status of the returned error, 0 for none
	}{
		{"429 waits Retry-After", "GET", []func(http.ResponseWriter){status(429, "Retry-After", "7"), status(200)}, 2, []time.Duration{7 * time.Second}, false, 0},
		{"429 without Retry-After waits 5 s", "POST", []func(http.ResponseWriter){status(429), status(200)}, 2, []time.Duration{5 * time.Second}, false, 0},
		{"429 forever gives up after 4", "GET", []func(http.ResponseWriter){status(429, "Retry-After", "1")}, 4, []time.Duration{time.Second, time.Second, time.Second}, false, 429},
		{"503 on GET backs off", "GET", []func(http.ResponseWriter){status(503), status(503), status(200)}, 3, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, true, 0},
		{"503 on a create is not retried", "POST", []func(http.ResponseWriter){status(503), status(200)}, 1, nil, false, 503},
		{"503 on a publish is retried with the same id", "PUBLISH", []func(http.ResponseWriter){status(503), status(200)}, 2, []time.Duration{100 * time.Millisecond}, true, 0},
		{"400 is not retried", "GET", []func(http.ResponseWriter){status(400), status(200)}, 1, nil, false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{answers: tt.answers}
			c, waits := newTest(t, s)
			var err error
			switch tt.method {
			case "GET":
				_, err = c.EventTypes(context.Background())
			case "PUBLISH":
				_, err = c.Publish(context.Background(), Event{Type: "ticket.updated", Data: []byte(`{}`)})
			default:
				_, err = c.CreateSubscription(context.Background(), NewSubscription{URL: "https://example.com/h", EventTypes: []string{"*"}})
			}
			var apiErr *Error
			switch {
			case tt.wantErr == 0 && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tt.wantErr != 0 && (!errors.As(err, &apiErr) || apiErr.Status != tt.wantErr):
				t.Fatalf("err = %v, want an API error %d", err, tt.wantErr)
			}
			if len(s.got) != tt.requests {
				t.Errorf("sent %d requests, want %d", len(s.got), tt.requests)
			}
			if tt.method == "PUBLISH" {
				ids := map[string]bool{}
				for _, body := range s.bodies {
					var e Event
					if err := json.Unmarshal(body, &e); err != nil || !strings.HasPrefix(e.ID, "evt_") {
						t.Fatalf("publish body %s: want an evt_ id chosen by the client", body)
					}
					ids[e.ID] = true
				}
				if len(ids) != 1 {
					t.Errorf("a retried publish carried %d different ids, want the same one each time", len(ids))
				}
			}
			if len(*waits) != len(tt.waits) {
				t.Fatalf("waits = %v, want %d of them", *waits, len(tt.waits))
			}
			for i, w := range *waits {
				if tt.jittered && (w <= 0 || w > tt.waits[i]) || !tt.jittered && w != tt.waits[i] {
					t.Errorf("wait %d = %v, want %v (jittered: %v)", i, w, tt.waits[i], tt.jittered)
				}
			}
		})
	}
}

func TestETagRevalidation(t *testing.T) {
	s := &script{answers: []func(http.ResponseWriter){
		status(200, "ETag", `"v1"`, "X-RateLimit-Limit", "100", "X-RateLimit-Remaining", "99", "X-RateLimit-Reset", "1764172860"),
		status(304, "ETag", `"v1"`, "X-RateLimit-Limit", "100", "X-RateLimit-Remaining", "99", "X-RateLimit-Reset", "1764172860"),
	}}
	c, _ := newTest(t, s)
	first, err := c.EventTypes(context.Background())
	if err != nil || len(first) != 1 {
		t.Fatalf("first = %v, %v", first, err)
	}
	second, err := c.EventTypes(context.Background())
	if err != nil || len(second) != 1 || second[0].Type != "ticket.updated" {
		t.Fatalf("after a 304 = %v, %v; want the cached catalog", second, err)
	}
	if got := s.got[1].Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("second request If-None-Match = %q, want the cached ETag", got)
	}
	if b := c.Budget(); b.Limit != 100 || b.Remaining != 99 || b.Reset.Unix() != 1764172860 {
		t.Errorf("Budget = %+v", b)
	}
}

// TestETagCacheIsBounded: a client that reads many paths keeps at most
// CacheEntries answers, dropping the least recently used, and still
// revalidates the ones it kept.
func TestETagCacheIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		etag := `"` + r.URL.Path + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, APIKey: "k", CacheEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := c.do(context.Background(), http.MethodGet, "/api/p/"+strconv.Itoa(i), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.cache.len(); n != 8 {
		t.Errorf("cache holds %d answers after 1,000 paths, want 8", n)
	}
	if _, ok := c.cache.get("/api/p/999"); !ok {
		t.Error("the most recent path was dropped")
	}
	if _, ok := c.cache.get("/api/p/0"); ok {
		t.Error("the oldest path was kept")
	}
}
