package testenv_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/testenv"
)

// countingReceiver answers 204 to every POST and counts them.
func countingReceiver(b *testing.B) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv, &n
}

// BenchmarkBareHTTP is the baseline: a bare net/http client posting
// HMAC-signed bodies from 64 goroutines to the same kind of receiver.
func BenchmarkBareHTTP(b *testing.B) {
	srv, _ := countingReceiver(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	secret := signature.NewSecret()
	body := []byte(`{"id":"evt_x","type":"ticket.updated","tenantId":"ten_x","occurredAt":"2026-11-26T10:00:00Z","data":{"ticketId":"T-1"}}`)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader(body))
			req.Header.Set("webhook-id", "evt_x")
			req.Header.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
			req.Header.Set("webhook-signature", signature.Sign(secret, "evt_x", now, body))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkEndToEnd publishes b.N events through the Go publisher (in
// batches of 500, acks awaited together) to one tenant with 4
// subscriptions on one receiver, and waits until every delivery arrived.
// Each op is one delivery: publish, fan-out, signed POST, attempt logged.
func BenchmarkEndToEnd(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	ten, err := env.CreateTenant("bench", 1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	deliverAll(b, []*testenv.Env{env}, ten)
}

// BenchmarkReplicas is BenchmarkEndToEnd on a 3-node JetStream cluster
// (every stream and bucket at R3), with one webhookd and with three, all
// in this process on this machine; events are published through each
// replica in turn.
func BenchmarkReplicas(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			c := natstest.StartCluster(b, 3)
			var envs []*testenv.Env
			for range n {
				envs = append(envs, testenv.Start(b, testenv.Options{NATSURL: c.URLs(), Server: func(cfg *server.Config) { cfg.Replicas = 3 }}))
			}
			ten, err := envs[0].CreateTenant("bench", 1_000_000)
			if err != nil {
				b.Fatal(err)
			}
			deliverAll(b, envs, ten)
		})
	}
}

// deliverAll publishes b.N/4 events through the stacks' publishers in
// turn (batches of 500, acks awaited together) to one tenant with 4
// subscriptions on one receiver, and waits until every delivery arrived.
// Each op is one delivery: publish, fan-out, signed POST, outcome logged.
func deliverAll(b *testing.B, envs []*testenv.Env, ten testenv.Tenant) {
	srv, got := countingReceiver(b)
	const subs = 4
	for range subs {
		if _, err := envs[0].Subscribe(ten, srv.URL, "ticket.updated"); err != nil {
			b.Fatal(err)
		}
	}
	publishAndAwait(b, envs, ten, "ticket.updated", subs, got)
}

// publishAndAwait publishes b.N/subs events of typ through the stacks'
// publishers in turn (batches of 500, acks awaited together), waits until
// got counts every delivery of them (subs each), and reports deliveries/s.
func publishAndAwait(b *testing.B, envs []*testenv.Env, ten testenv.Tenant, typ string, subs int, got *atomic.Int64) {
	data := []byte(`{"ticketId":"T-1","status":"open"}`)
	events_ := b.N/subs + 1
	want := int64(events_ * subs)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, start := 0, 0; start < events_; i, start = i+1, start+500 {
		n := min(500, events_-start)
		batch := make([]events.Event, n)
		for i := range batch {
			batch[i] = events.Event{ID: events.NewID(), Type: typ, TenantID: ten.ID, OccurredAt: time.Now().UTC(), Data: data}
		}
		pub := envs[i%len(envs)].Publisher()
		wg.Go(func() {
			if err := pub.PublishEvents(context.Background(), false, batch...); err != nil {
				b.Error(err)
			}
		})
		if start%5000 == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	poll.Until(b, 5*time.Minute, "every delivery", func() bool { return got.Load() >= want })
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkFanoutWide publishes one event to a tenant with 10,000
// subscriptions to its type (all on one receiver) and waits until every
// one of them received it. Each op is one event: its ns/op is the time
// from publish until the last of its 10,000 webhooks arrived.
func BenchmarkFanoutWide(b *testing.B) {
	const subs = 10_000
	env := testenv.Start(b, testenv.Options{})
	ten, err := env.CreateTenant("wide", 1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	srv, got := countingReceiver(b)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for range subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := env.Subscribe(ten, srv.URL, "ticket.updated"); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	data := []byte(`{"ticketId":"T-1","status":"open"}`)
	var want int64
	for b.Loop() {
		want += subs
		ev := events.Event{ID: events.NewID(), Type: "ticket.updated", TenantID: ten.ID, OccurredAt: time.Now().UTC(), Data: data}
		if err := env.Publisher().PublishEvents(context.Background(), false, ev); err != nil {
			b.Fatal(err)
		}
		poll.Until(b, time.Minute, "the event's 10,000 deliveries", func() bool { return got.Load() >= want })
	}
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
}
