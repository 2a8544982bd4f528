package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/limiter"
	"github.com/onestack/webhooks/subscriptions"
)

// ingestStack is the API as webhookd builds it for the publish routes:
// its real middleware, the subscriptions store, the publisher and the
// rate limiter counting in NATS, on an embedded JetStream server. The
// duplicate window and the stored bytes are answered in memory
// (unseenIDs): the event index is not this package's cost.
type ingestStack struct {
	api *API
	key string
}

// unseenIDs is a Duplicates that has seen no id, and a StoredBytes that
// counts nothing.
type unseenIDs struct{}

func (unseenIDs) Seen(_ context.Context, _ string, ids []string) ([]bool, error) {
	return make([]bool, len(ids)), nil
}

func (unseenIDs) StoredBytes(context.Context, string) (int64, error) { return 0, nil }

func startIngest(tb testing.TB) *ingestStack {
	tb.Helper()
	ctx := context.Background()
	srv := natstest.Start(tb, natstest.Options{})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{}); err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	store, err := subscriptions.Open(ctx, js, subscriptions.Config{}, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close)
	counters, err := limiter.NewNATS(ctx, nc, js, 1, 0, nil, logger)
	if err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a := New(Config{
		Store:      store,
		Rules:      subscriptions.NewRules(events.DefaultCatalog(), egress.Policy{}),
		Publisher:  events.NewPublisher(js, events.PublisherConfig{}),
		Limiter:    limiter.NewHTTP(limiter.New(counters, nil), reg, logger),
		Duplicates: unseenIDs{},
		Stored:     unseenIDs{},
		Registry:   reg,
		Logger:     logger,
	})
	_, key, _, err := store.CreateTenant(ctx, subscriptions.TenantInput{Name: "bench", RateLimit: ptr(1_000_000_000)})
	if err != nil {
		tb.Fatal(err)
	}
	return &ingestStack{api: a, key: string(key)}
}

func ptr[T any](v T) *T { return &v }

// discardWriter is the cheapest ResponseWriter: a header map reused from
// one request to the next, and the status and body kept for a check.
type discardWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	return d.body.Write(b)
}
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}

func (d *discardWriter) reset() {
	clear(d.h)
	d.status = 0
	d.body.Reset()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchIngest serves single-event POSTs, each with a producer id of its
// own, straight to the API's ServeHTTP from 8 goroutines per CPU, and reports
// the process's CPU time per event (the server's included: it runs in
// this process) next to ns/op.
func benchIngest(b *testing.B, path string, body func(id string) string) {
	s := startIngest(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	start := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: make(http.Header)}
		for pb.Next() {
			id := "evt_bench_" + strconv.FormatInt(n.Add(1), 10)
			// As net/http serves it: a context canceled once answered.
			ctx, cancel := context.WithCancel(context.Background())
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader([]byte(body(id))))
			if err != nil {
				cancel()
				b.Error(err)
				return
			}
			r.RemoteAddr = "192.0.2.1:40000"
			r.Header.Set("Authorization", "Bearer "+s.key)
			r.Header.Set("Content-Type", "application/json")
			w.reset()
			s.api.ServeHTTP(w, r)
			cancel()
			if w.status != http.StatusAccepted {
				b.Errorf("POST %s = %d %s", path, w.status, w.body.Bytes())
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

const benchData = `{"ticketId":"T-1042","status":"open","priority":"high","assignee":"agent-7","tags":["billing","vip"]}`

// BenchmarkIngestBatchOfOne is POST /api/events/batch with one event.
func BenchmarkIngestBatchOfOne(b *testing.B) {
	benchIngest(b, "/api/events/batch", func(id string) string {
		return `{"events":[{"type":"ticket.updated","id":"` + id + `","data":` + benchData + `}]}`
	})
}

// BenchmarkIngestOne is POST /api/events.
func BenchmarkIngestOne(b *testing.B) {
	benchIngest(b, "/api/events", func(id string) string {
		return `{"type":"ticket.updated","id":"` + id + `","data":` + benchData + `}`
	})
}
