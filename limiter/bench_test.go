package limiter

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// The three benchmarks measure one request through a handler that writes
// 200: bare, behind the limiter counting locally, and behind the limiter
// counting in NATS. Their difference is the limiter's added cost.

// discard is a ResponseWriter that keeps nothing, as cheap as the
// benchmark can make the rest of the server; httptest's recorder would
// clone the headers on WriteHeader and charge that to the limiter.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func serveBench(b *testing.B, h *HTTP) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	req := httptest.NewRequest("GET", "/api/subscriptions", nil)
	w := &discard{h: make(http.Header)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		clear(w.h)
		if h == nil {
			ok.ServeHTTP(w, req)
			continue
		}
		i++
		// A budget no benchmark spends, spread over 64 tenants.
		ww, done, err := h.Admit(w, req, "ten_bench"+strconv.Itoa(i%64), 1_000_000_000)
		if err != nil {
			b.Fatal(err)
		}
		ok.ServeHTTP(ww, req)
		done()
	}
}

func BenchmarkRouteWithoutLimiter(b *testing.B) { serveBench(b, nil) }

func BenchmarkRouteLocalLimiter(b *testing.B) {
	serveBench(b, NewHTTP(New(NewLocal(), nil), nil, slog.New(slog.NewTextHandler(io.Discard, nil))))
}

func BenchmarkRouteNATSLimiter(b *testing.B) {
	srv := startNATS(b, b.TempDir(), -1)
	defer srv.Shutdown()
	l, _ := natsLimiter(b, srv.ClientURL(), nil)
	serveBench(b, NewHTTP(l, nil, slog.New(slog.DiscardHandler)))
}

// BenchmarkNATSDecisionsParallel measures decisions per second with many
// requests in flight, as a busy API has.
func BenchmarkNATSDecisionsParallel(b *testing.B) {
	srv := startNATS(b, b.TempDir(), -1)
	defer srv.Shutdown()
	l, _ := natsLimiter(b, srv.ClientURL(), nil)
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Take(context.Background(), "ten_par", 1_000_000_000); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
