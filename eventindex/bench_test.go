package eventindex

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/streamindex"
)

// benchHistory is how many events the benchmarks' index holds before it
// is measured: EVENTINDEX_BENCH_HISTORY, default 1,000,000.
func benchHistory(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("EVENTINDEX_BENCH_HISTORY"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// benchCorpus makes the benchmarks' events from their number alone: one
// tenant, one type, ids as cmd/webhookbench posts them, stored 200 µs
// apart (5,000 a second), each with an event id and a traceparent header
// as the publisher writes them.
type benchCorpus struct {
	base   time.Time
	tenant string
}

func newBenchCorpus() benchCorpus {
	return benchCorpus{base: time.Now().Add(-time.Hour).UTC(), tenant: "ten_01JZBENCH0000000000000000"}
}

func (c benchCorpus) id(i int) string { return "bench-7-" + strconv.Itoa(i) }

func (c benchCorpus) stored(i int) time.Time {
	return c.base.Add(time.Duration(i) * 200 * time.Microsecond)
}

// msg makes event i's message in m, reusing its data and header (the
// id's string is the one allocation).
func (c benchCorpus) msg(m *streamindex.Msg, i int) {
	id, stored := c.id(i), c.stored(i)
	if m.Header == nil {
		m.Header = nats.Header{
			events.HeaderEventID: {""},
			"Traceparent":        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		}
		m.Subject = events.Subject(c.tenant, "ticket.updated")
	}
	m.Header[events.HeaderEventID][0] = id
	m.Seq, m.Stored = uint64(i+1), stored
	d := append(m.Data[:0], `{"id":"`...)
	d = append(d, id...)
	d = append(d, `","type":"ticket.updated","tenantId":"`...)
	d = append(d, c.tenant...)
	d = append(d, `","occurredAt":"`...)
	d = stored.AppendFormat(d, time.RFC3339Nano)
	d = append(d, `","data":{"ticket":{"id":"tic_`...)
	d = strconv.AppendInt(d, int64(i), 10)
	m.Data = append(d, `","status":"open","priority":"high"}}}`...)
}

// apply applies events [from, to) in batches of batch messages, as the
// follower does, through the store's Commit and the index's apply.
func (c benchCorpus) apply(b testing.TB, ix *Index, from, to, batch int) {
	msgs := make([]streamindex.Msg, batch)
	for i := from; i < to; {
		n := 0
		for ; i < to && n < batch; i++ {
			c.msg(&msgs[n], i)
			n++
		}
		fresh := msgs[:n]
		if err := ix.store.Commit(fresh[n-1].Seq, uint64(n), func(pb *pebble.Batch) error { return ix.apply(pb, fresh) }); err != nil {
			b.Fatal(err)
		}
	}
}

func openBenchIndex(b testing.TB) *Index {
	ix, err := openStore(Config{Dir: b.TempDir(), RetentionEvery: time.Hour}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ix.Close(context.Background()) })
	return ix
}

// cpuTime is the process's user and system CPU time so far: it counts the
// store's compactions and flushes, which run in goroutines of their own.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// compacted waits until the store runs no compaction and no flush, so
// that the CPU they spend on what was applied is counted.
func compacted(b *testing.B, ix *Index) {
	poll.Until(b, 5*time.Minute, "compactions to end", func() bool {
		m := ix.db.Metrics()
		return m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0
	})
}

// BenchmarkApply applies b.N events, 16 a batch (the follower's batches at
// a few thousand events a second are small), to an empty index and to one
// that holds EVENTINDEX_BENCH_HISTORY events already. It reports the
// process's CPU per event, compactions and flushes included (they run in
// pebble's goroutines): the cost per event must not grow with the history
// kept. Run it with a fixed count, such as -benchtime 200000x.
func BenchmarkApply(b *testing.B) {
	for _, history := range []int{0, benchHistory(b)} {
		b.Run("history="+strconv.Itoa(history), func(b *testing.B) {
			c := newBenchCorpus()
			ix := openBenchIndex(b)
			c.apply(b, ix, 0, history, 256)
			compacted(b, ix)
			cpu0 := cpuTime(b)
			b.ReportAllocs()
			b.ResetTimer()
			c.apply(b, ix, history, history+b.N, 16)
			compacted(b, ix)
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N)/1e3, "cpu-µs/event")
			m := ix.db.Metrics()
			if os.Getenv("EVENTINDEX_BENCH_LSM") != "" {
				b.Logf("LSM after %d events:\n%s", history+b.N, m)
			}
			b.ReportMetric(float64(m.Total().TableBytesCompacted)/float64(history+b.N), "compacted-B/event")
		})
	}
}

// BenchmarkSeen checks one id at a time, as a POST of one event with an
// id does, against an index holding EVENTINDEX_BENCH_HISTORY events: ids
// it does not hold (a new event, the usual case) and ids it does (a
// repeat).
func BenchmarkSeen(b *testing.B) {
	c := newBenchCorpus()
	ix := openBenchIndex(b)
	history := benchHistory(b)
	c.apply(b, ix, 0, history, 256)
	compacted(b, ix)
	last := c.stored(history - 1)
	since, reach := last.Add(-24*time.Hour), last.Add(-time.Second)
	ctx := context.Background()
	run := func(id func(i int) string, want bool) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				seen, err := ix.Seen(ctx, c.tenant, []string{id(i)}, since, reach)
				if err != nil || seen[0] != want {
					b.Fatalf("Seen(%s) = %v, %v; want %v", id(i), seen, err, want)
				}
				i++
			}
		}
	}
	b.Run("new", run(func(i int) string { return c.id(history + i) }, false))
	b.Run("repeat", run(func(i int) string { return c.id(int(mix(uint64(i)) % uint64(history))) }, true))
	// As webhookd checks: while the index applies 5,000 events a second,
	// 16 every 3.2 ms, with the flushes and compactions they make.
	b.Run("new-while-applying", func(b *testing.B) {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(16 * 200 * time.Microsecond)
			defer t.Stop()
			msgs := make([]streamindex.Msg, 16)
			for i := history; ; {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				for j := range msgs {
					c.msg(&msgs[j], i)
					i++
				}
				if err := ix.store.Commit(msgs[15].Seq, 16, func(pb *pebble.Batch) error { return ix.apply(pb, msgs) }); err != nil {
					panic(err)
				}
			}
		}()
		defer func() { close(stop); <-done }()
		// Ids the applier never reaches.
		run(func(i int) string { return c.id(1<<40 + i) }, false)(b)
	})
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
