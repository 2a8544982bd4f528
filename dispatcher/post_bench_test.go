//go:build unix

package dispatcher

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

// processCPU is the CPU time this process has used, user and system: on
// a shared machine a steadier measure of a change than elapsed time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPost is an attempt's HTTP part, d.post, from 64 goroutines
// (the default per-subscription cap): build the request, sign it, send it
// through the webhook client, read the answer. Each op is one webhook
// answered 204; the receiver runs in this process, so its allocations
// count too (the same before and after a change of post), and so does
// its CPU in cpu-µs/op (the process's CPU time per webhook).
func BenchmarkPost(b *testing.B) {
	for _, tt := range []struct {
		name string
		in   subscriptions.CreateInput
	}{
		{"traceparent", subscriptions.CreateInput{}},
		{"custom headers", subscriptions.CreateInput{Headers: map[string]string{"X-Team": "blue", "X-Env": "bench"}}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			ps := newPostStack(b, false, nil)
			sub := ps.subscribe(b, tt.in)
			body := `{"id":"evt_01KBE0SM4D7ZV9Q1Y8W3N6T2RX","type":"ticket.updated","tenantId":"ten_x","occurredAt":"2026-12-03T10:00:00Z","data":{"ticketId":"T-1","status":"open"}}`
			b.ReportAllocs()
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(p *testing.PB) {
				dl := ps.delivery(sub, body)
				wk := ps.d.newWorker()
				defer wk.close()
				for p.Next() {
					if r := ps.d.post(wk, sub, dl, time.Now(), tracing.Child(dl.ev.trace)); !r.ok() {
						b.Errorf("post = %+v, want a success", r)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
			if n := ps.got.Load(); n < int64(b.N) {
				b.Errorf("receiver got %d webhooks, want %d", n, b.N)
			}
		})
	}
}
