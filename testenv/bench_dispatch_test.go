package testenv_test

import (
	"testing"

	"github.com/onestack/webhooks/testenv"
)

// BenchmarkEndToEndOneSubscription is BenchmarkEndToEnd with one
// subscription: each event delivered once, the shape of issue 16's
// single-event target on the delivery side (events are published through
// the Go publisher in batches, not POSTed one by one). Each op is one
// event: fan-out, signed POST, outcome logged, event acknowledged.
func BenchmarkEndToEndOneSubscription(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	ten, err := env.CreateTenant("bench", 1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	srv, got := countingReceiver(b)
	if _, err := env.Subscribe(ten, srv.URL, "ticket.updated"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	publishAndAwait(b, []*testenv.Env{env}, ten, "ticket.updated", 1, got)
}
