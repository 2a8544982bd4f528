package dispatcher

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/destination"
	"github.com/onestack/webhooks/egress"
)

// TestClientRefusesInternalAddressesAtDialTime sends to a hostname that
// resolves to 127.0.0.1: with the default policy the receiver is never
// reached, and the attempt says why without internal detail.
func TestClientRefusesInternalAddressesAtDialTime(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	url := "http://localhost:" + port + "/hook"

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, nil)
	_, err := NewClient(egress.Policy{AllowHTTP: true}).Do(req)
	if err == nil {
		t.Fatal("strict client reached a loopback receiver")
	}
	if got := describe(ctx, err); got != "destination refused: internal address" {
		t.Errorf("describe = %q, want the internal-address refusal", got)
	}
	if hits.Load() != 0 {
		t.Errorf("receiver got %d requests, want 0", hits.Load())
	}

	req, _ = http.NewRequestWithContext(ctx, "POST", url, nil)
	resp, err := NewClient(egress.Policy{AllowHTTP: true, AllowPrivate: true}).Do(req)
	if err != nil {
		t.Fatalf("client allowing private destinations: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("receiver got %d requests with private destinations allowed, want 1", hits.Load())
	}
}

func TestDescribeTransportErrors(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	client := NewClient(egress.Policy{AllowHTTP: true, AllowPrivate: true})
	tests := []struct {
		url     string
		timeout time.Duration
		want    string
	}{
		{closed, 5 * time.Second, "connection refused"},
		{"http://nonexistent.invalid/", 5 * time.Second, "host not found"},
		{slow.URL, 50 * time.Millisecond, "timeout"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
		req, _ := http.NewRequestWithContext(ctx, "POST", tt.url, nil)
		_, err := client.Do(req)
		if got := describe(ctx, err); got != tt.want {
			t.Errorf("describe(POST %s) = %q (%v), want %q", tt.url, got, err, tt.want)
		}
		cancel()
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"0", time.Second},
		{"-5", 0},
		{"soon", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Second},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestScheduleWaits(t *testing.T) {
	c := Config{Schedule: []time.Duration{time.Second, time.Minute}, Jitter: -1}.withDefaults()
	tests := []struct {
		after int
		want  time.Duration
		more  bool
	}{
		{1, time.Second, true},
		{2, time.Minute, true},
		{3, 0, false},
	}
	for _, tt := range tests {
		got, more := c.wait(tt.after)
		if got != tt.want || more != tt.more {
			t.Errorf("wait(%d) = %v, %v; want %v, %v", tt.after, got, more, tt.want, tt.more)
		}
	}
	j := Config{Schedule: []time.Duration{10 * time.Second}}.withDefaults()
	for range 100 {
		if got, _ := j.wait(1); got < 8*time.Second || got > 12*time.Second {
			t.Fatalf("jittered wait = %v, want within ±20%% of 10s", got)
		}
	}
	if _, err := ParseSchedule("1s,2s"); err != nil {
		t.Errorf("ParseSchedule(1s,2s) = %v", err)
	}
	if _, err := ParseSchedule("1s,-2s"); err == nil {
		t.Error("ParseSchedule(1s,-2s) accepted a negative wait")
	}
}

// TestClientNeverFollowsRedirects: a 3xx is the answer, and its target is
// never requested.
func TestClientNeverFollowsRedirects(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	req, _ := http.NewRequest("POST", redirector.URL, nil)
	resp, err := NewClient(egress.Policy{AllowHTTP: true, AllowPrivate: true}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || targetHits.Load() != 0 {
		t.Errorf("status %d, target hit %d times; want 307 and 0", resp.StatusCode, targetHits.Load())
	}
	if (result{status: resp.StatusCode}).ok() {
		t.Error("a 3xx counts as success")
	}
}

func TestDestinationOutcome(t *testing.T) {
	tests := []struct {
		name string
		r    result
		want destination.Outcome
	}{
		{"an answer", result{status: 500, err: "endpoint answered 500"}, destination.Answered},
		{"a success", result{status: 204}, destination.Answered},
		{"429", result{status: 429, err: "endpoint answered 429"}, destination.Overloaded},
		{"503", result{status: 503, err: "endpoint answered 503"}, destination.Overloaded},
		{"a timeout", result{err: "timeout", unreachable: true}, destination.Failed},
		{"a refusal before dialling", result{err: "destination refused: internal address"}, destination.Unknown},
		{"an invalid URL", result{err: "invalid url"}, destination.Unknown},
		{"cut by a shutdown", result{cut: true}, destination.Unknown},
	}
	for _, tt := range tests {
		if got := tt.r.destinationOutcome(); got != tt.want {
			t.Errorf("%s: destinationOutcome() = %v, want %v", tt.name, got, tt.want)
		}
	}
}
