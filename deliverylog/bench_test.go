package deliverylog

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/internal/natstest"
)

// BenchmarkAppend measures the writer against an embedded JetStream: many
// goroutines append happy-path records for 20 tenants, and each run waits
// until every record is stored. It reports records/s, the stream's bytes per
// record and records per message; allocs/op are the writer's per record.
// The baseline is what the product does today: one message per delivery,
// a JSON snapshot on a subject of its own, published asynchronously.
func BenchmarkAppend(b *testing.B) {
	srv := natstest.Start(b, natstest.Options{})
	_, js := srv.Connect(b)
	ctx := context.Background()
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(4096, 20, 200)

	b.Run("writer", func(b *testing.B) {
		w := NewWriter(js, WriterConfig{}, nil)
		defer w.Close(ctx)
		var stored atomic.Int64
		done := func(err error) {
			if err != nil {
				panic(err)
			}
			stored.Add(1)
		}
		before := streamState(b, js)
		var next atomic.Uint64
		b.ReportAllocs()
		b.SetParallelism(100) // 200 appending goroutines on 2 cores
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				if err := w.Append(ctx, recs[i%uint64(len(recs))], done); err != nil {
					panic(err)
				}
			}
		})
		for stored.Load() < int64(b.N) {
			runtime.Gosched()
		}
		b.StopTimer()
		after := streamState(b, js)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(after.Bytes-before.Bytes)/float64(b.N), "stream-B/record")
		b.ReportMetric(float64(b.N)/float64(after.Msgs-before.Msgs), "records/msg")
	})

	// The rate the dispatcher is expected to reach, over 200 tenants: fewer
	// records share a message, so each carries more of its overhead.
	b.Run("writer-paced-40k-per-s-200-tenants", func(b *testing.B) {
		recs := benchRecords(8192, 200, 2000)
		w := NewWriter(js, WriterConfig{}, nil)
		defer w.Close(ctx)
		const producers, rate = 40, 40_000 // records/s
		var stored atomic.Int64
		lat := make([]time.Duration, b.N)
		before := streamState(b, js)
		b.ResetTimer()
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range producers {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					// Pacing, not waiting for a condition: record i is due
					// at i/rate; late ones go at once.
					time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
					t0 := time.Now()
					err := w.Append(ctx, recs[i%int64(len(recs))], func(err error) {
						if err != nil {
							panic(err)
						}
						lat[i] = time.Since(t0)
						stored.Add(1)
					})
					if err != nil {
						panic(err)
					}
				}
			})
		}
		wg.Wait()
		for stored.Load() < int64(b.N) {
			runtime.Gosched()
		}
		b.StopTimer()
		after := streamState(b, js)
		slices.Sort(lat)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(after.Bytes-before.Bytes)/float64(b.N), "stream-B/record")
		b.ReportMetric(float64(b.N)/float64(after.Msgs-before.Msgs), "records/msg")
		b.ReportMetric(float64(lat[len(lat)/2])/1e6, "stored-p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "stored-p99-ms")
	})

	b.Run("baseline-message-per-delivery", func(b *testing.B) {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: "DLOGBASE", Subjects: []string{"dlogbase.>"}, Storage: jetstream.FileStorage,
			MaxAge: DefaultRetention, Duplicates: duplicateWindow,
		}); err != nil {
			b.Fatal(err)
		}
		type snapshot struct { // the product's Delivery JSON today
			ID             string     `json:"id"`
			EventID        string     `json:"eventId"`
			EventType      string     `json:"eventType"`
			SubscriptionID string     `json:"subscriptionId"`
			TenantID       string     `json:"tenantId"`
			Status         string     `json:"status"`
			Attempts       []Attempt  `json:"attempts"`
			NextAttemptAt  *time.Time `json:"nextAttemptAt,omitempty"`
			CreatedAt      time.Time  `json:"createdAt"`
			EventSeq       uint64     `json:"eventSeq,omitempty"`
		}
		before := streamStateOf(b, js, "DLOGBASE")
		var next atomic.Uint64
		b.ReportAllocs()
		b.SetParallelism(100)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := &recs[next.Add(1)%uint64(len(recs))]
				data, _ := json.Marshal(snapshot{
					ID: r.DeliveryID, EventID: r.EventID, EventType: r.EventType, SubscriptionID: r.SubscriptionID,
					TenantID: r.TenantID, Status: r.Status, Attempts: []Attempt{*r.Attempt}, CreatedAt: r.CreatedAt, EventSeq: r.EventSeq,
				})
				subj := "dlogbase." + r.TenantID + "." + r.SubscriptionID + "." + r.DeliveryID
				for {
					_, err := js.PublishAsync(subj, data)
					if err == nil {
						break
					}
					if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
						panic(err)
					}
					<-js.PublishAsyncComplete() // at nats.go's in-flight limit
				}
			}
		})
		<-js.PublishAsyncComplete()
		b.StopTimer()
		after := streamStateOf(b, js, "DLOGBASE")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(after.Bytes-before.Bytes)/float64(b.N), "stream-B/record")
		b.ReportMetric(1, "records/msg")
	})
}

func streamState(b *testing.B, js jetstream.JetStream) jetstream.StreamState {
	return streamStateOf(b, js, StreamName)
}

func streamStateOf(b *testing.B, js jetstream.JetStream, name string) jetstream.StreamState {
	b.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.State
}

// benchRecords makes n happy-path records over the given tenants and
// subscriptions.
func benchRecords(n, tenants, subs int) []Record {
	now := time.Now()
	recs := make([]Record, n)
	for i := range recs {
		sub := ulid.Make().String()
		if i >= subs {
			sub = recs[i%subs].SubscriptionID[len(subPrefix):]
		}
		created := now.Add(time.Duration(i) * time.Millisecond)
		recs[i] = Record{
			DeliveryID:     deliveryPrefix + ulid.Make().String() + sub,
			TenantID:       fmt.Sprintf("ten_01JZ%022d", i%tenants),
			SubscriptionID: subPrefix + sub,
			EventID:        "evt_" + ulid.Make().String(),
			EventType:      "ticket.updated",
			EventSeq:       uint64(1_000_000 + i),
			CreatedAt:      created,
			Status:         StatusSucceeded,
			Attempt:        &Attempt{N: 1, At: created.Add(80 * time.Millisecond), StatusCode: 200, DurationMs: 80, ResponseBody: `{"received":true}`},
		}
	}
	return recs
}

// BenchmarkIndexLarge builds an index of DELIVERYLOG_BENCH_DELIVERIES
// deliveries (default 2,000,000) through the apply path, without NATS: 2,000
// subscriptions in 20 tenants, one of them holding 16% of all (320,000 of
// 2,000,000), about 5% failed with two attempts, creation times spread over
// 29 days. It reports the process RSS at 200,000 and at the end, then the
// latency of reads. DELIVERYLOG_BENCH_CACHE_MB sets the block cache (default
// 32). It runs only with DELIVERYLOG_BENCH_LARGE=1:
//
//	DELIVERYLOG_BENCH_LARGE=1 go test -run '^$' -bench IndexLarge -benchtime 2000x -timeout 30m ./deliverylog/
func BenchmarkIndexLarge(b *testing.B) {
	if os.Getenv("DELIVERYLOG_BENCH_LARGE") != "1" {
		b.Skip("set DELIVERYLOG_BENCH_LARGE=1 to build a 2,000,000-delivery index")
	}
	total := 2_000_000
	if v := os.Getenv("DELIVERYLOG_BENCH_DELIVERIES"); v != "" {
		var err error
		if total, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	g := newCorpus(total, time.Now())
	cacheMB, _ := strconv.Atoi(os.Getenv("DELIVERYLOG_BENCH_CACHE_MB"))
	ix, err := openStore(IndexConfig{Dir: b.TempDir(), Now: g.now, CacheBytes: int64(cacheMB) << 20}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close(context.Background())

	start := time.Now()
	rss200k := 0.0
	applied := 0
	for applied < total {
		end := min(applied+100_000, total)
		if applied < 200_000 {
			end = min(end, 200_000)
		}
		g.apply(b, ix, applied, end)
		applied = end
		if applied%500_000 == 0 {
			b.Logf("%d applied in %v", applied, time.Since(start).Round(time.Second))
		}
		if applied == 200_000 || (total < 200_000 && applied == total) {
			rss200k = rssMB()
		}
	}
	build := time.Since(start)
	rssAll := rssMB()
	primary, status, event, created := ix.KeyCounts()
	b.Logf("built %d deliveries in %v (%.0f/s); keys: primary %d, status %d, event %d, created %d; disk %s",
		total, build.Round(time.Second), float64(total)/build.Seconds(), primary, status, event, created, diskUsage(ix))
	b.Logf("RSS after 200,000: %.1f MB; after %d: %.1f MB; growth %.1f MB", rss200k, total, rssAll, rssAll-rss200k)

	b.Run("build", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(rss200k, "rss-200k-MB")
		b.ReportMetric(rssAll, "rss-all-MB")
		b.ReportMetric(rssAll-rss200k, "rss-growth-MB")
		b.ReportMetric(float64(total)/build.Seconds(), "deliveries/s")
	})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	b.Run("get", func(b *testing.B) {
		latencies(b, func() {
			i := rng.IntN(total)
			if _, err := ix.Delivery(ctx, g.tenant(i), g.id(i)); err != nil {
				b.Fatal(err)
			}
		})
	})
	list := func(sub int, status string, deep bool) func(b *testing.B) {
		return func(b *testing.B) {
			cursors := []string{""}
			if deep { // random places in the subscription's history
				cursors = cursors[:0]
				for range 256 {
					cursors = append(cursors, g.id(g.randomOf(rng, sub)))
				}
			}
			n := 0
			latencies(b, func() {
				page, _, err := ix.List(ctx, g.tenantOfSub(sub), g.subID(sub), status, cursors[n%len(cursors)], 50)
				if err != nil || len(page) != 50 && !deep {
					b.Fatalf("List: %d, %v", len(page), err)
				}
				n++
			})
		}
	}
	b.Run("list-big-newest", list(0, "", false))
	b.Run("list-big-deep", list(0, "", true))
	b.Run("list-big-failed-newest", list(0, StatusFailed, false))
	b.Run("list-big-failed-deep", list(0, StatusFailed, true))
	b.Run("list-small-newest", list(7, "", false))
	b.Run("list-small-failed-deep", list(7, StatusFailed, true))
	b.Run("event", func(b *testing.B) {
		latencies(b, func() {
			i := rng.IntN(total)
			if got, err := ix.EventDeliveries(ctx, g.tenant(i), g.eventID(i)); err != nil || len(got) != 1 {
				b.Fatalf("EventDeliveries: %d, %v", len(got), err)
			}
		})
	})

	rssReads := rssMB()
	b.Logf("RSS after the reads: %.1f MB", rssReads)
	b.Run("rss-after-reads", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(rssReads, "rss-MB")
		b.ReportMetric(rssReads-rss200k, "rss-growth-from-200k-MB")
	})

	// Last, as it deletes: the oldest 1% pass the retention limit.
	g.clock.Store(g.created(total / 100).Add(DefaultRetention).UnixNano())
	t0 := time.Now()
	expired, err := ix.Expire()
	if err != nil {
		b.Fatal(err)
	}
	expireTook := time.Since(t0)
	b.Logf("retention deleted %d deliveries in %v", expired, expireTook)
	b.Run("expire-oldest-1pct", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(float64(expired), "deleted")
		b.ReportMetric(float64(expireTook)/1e6, "ms")
	})
}

// latencies runs op b.N times and reports its p50 and p99 in ms.
func latencies(b *testing.B, op func()) {
	ds := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t := time.Now()
		op()
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / 1e6 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1])/1e6, "max-ms")
}

// corpus makes the large benchmark's deliveries from their number alone,
// so that none need to be kept in memory.
type corpus struct {
	total int
	start time.Time // delivery 0's creation
	step  time.Duration
	subs  []ulid.ULID
	clock atomic.Int64
}

const (
	corpusSubs    = 2000
	corpusTenants = 20
)

func newCorpus(total int, now time.Time) *corpus {
	g := &corpus{total: total, start: now.Add(-29 * 24 * time.Hour)}
	g.step = 29 * 24 * time.Hour / time.Duration(total)
	g.clock.Store(now.UnixNano())
	for s := range corpusSubs {
		var u ulid.ULID
		binary.BigEndian.PutUint64(u[8:], uint64(s)*0x9E3779B97F4A7C15+1)
		_ = u.SetTime(ulid.Timestamp(g.start))
		g.subs = append(g.subs, u)
	}
	return g
}

func (g *corpus) now() time.Time { return time.Unix(0, g.clock.Load()) }

// sub: every 25 deliveries, 4 go to subscription 0; the others spread
// over the rest.
func (g *corpus) sub(i int) int {
	if i%25 < 4 {
		return 0
	}
	return 1 + int(mix(uint64(i))%(corpusSubs-1))
}

// randomOf returns a random delivery of subscription s.
func (g *corpus) randomOf(rng *rand.Rand, s int) int {
	for {
		i := rng.IntN(g.total)
		if s == 0 {
			return i - i%25 + rng.IntN(4)
		}
		if g.sub(i) == s {
			return i
		}
	}
}

func (g *corpus) tenantOfSub(s int) string { return fmt.Sprintf("ten_01JZ%022d", s%corpusTenants) }
func (g *corpus) tenant(i int) string      { return g.tenantOfSub(g.sub(i)) }
func (g *corpus) subID(s int) string       { return subPrefix + g.subs[s].String() }
func (g *corpus) created(i int) time.Time  { return g.start.Add(time.Duration(i) * g.step) }

func (g *corpus) key(i int) deliveryKey {
	var u ulid.ULID
	binary.BigEndian.PutUint64(u[6:14], mix(uint64(i)))
	_ = u.SetTime(ulid.Timestamp(g.created(i)))
	return deliveryKey{dlv: u, sub: g.subs[g.sub(i)]}
}

func (g *corpus) id(i int) string      { return g.key(i).id() }
func (g *corpus) eventID(i int) string { return "evt_" + strconv.Itoa(i) }

// records appends delivery i's records: about 5% fail twice.
func (g *corpus) records(dst []Record, i int) []Record {
	k := g.key(i)
	created := g.created(i)
	r := Record{
		DeliveryID: k.id(), TenantID: g.tenant(i), SubscriptionID: k.subscriptionID(),
		EventID: g.eventID(i), EventType: "ticket.updated", EventSeq: uint64(i + 1), CreatedAt: created,
	}
	if mix(uint64(i)^0xfa11)%20 == 0 {
		next := created.Add(time.Second)
		r1, r2 := r, r
		r1.Status, r1.Attempt, r1.NextAttemptAt = StatusPending, &Attempt{N: 1, At: created, StatusCode: 500, Error: "HTTP 500", DurationMs: 30, ResponseBody: "oops"}, &next
		r2.Status, r2.Attempt = StatusFailed, &Attempt{N: 2, At: next, StatusCode: 500, Error: "HTTP 500", DurationMs: 30, ResponseBody: "oops"}
		return append(dst, r1, r2)
	}
	r.Status, r.Attempt = StatusSucceeded, &Attempt{N: 1, At: created.Add(80 * time.Millisecond), StatusCode: 200, DurationMs: 80, ResponseBody: `{"received":true}`}
	return append(dst, r)
}

// apply applies deliveries [from, to) in store batches of about 512
// records, as the follower does with one stream message each.
func (g *corpus) apply(b *testing.B, ix *Index, from, to int) {
	recs := make([]Record, 0, 600)
	for i := from; i < to; {
		recs = recs[:0]
		for ; i < to && len(recs) < 512; i++ {
			recs = g.records(recs, i)
		}
		err := ix.store.Commit(ix.Applied()+1, 1, func(b *pebble.Batch) error { return ix.put(b, recs) })
		if err != nil {
			b.Fatal(err)
		}
	}
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// rssMB returns the process's resident memory after a GC that returns
// what it can to the OS.
func rssMB() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return -1
}

func diskUsage(ix *Index) string {
	m := ix.db.Metrics()
	return fmt.Sprintf("%.0f MB in %d tables", float64(m.DiskSpaceUsage())/(1<<20), m.Total().TablesCount)
}

// BenchmarkApply applies b.N deliveries of the large benchmark's corpus,
// 16 records a batch (what the follower sees at a few thousand deliveries
// a second), to an empty index through the store's Commit and put, and
// reports the process's CPU per delivery, pebble's flushes and compactions
// included. Run it with a fixed count, such as -benchtime 200000x.
func BenchmarkApply(b *testing.B) {
	g := newCorpus(max(b.N, 1), time.Now())
	ix, err := openStore(IndexConfig{Dir: b.TempDir(), Now: g.now}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close(context.Background())
	recs := make([]Record, 0, 32)
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		recs = recs[:0]
		for ; i < b.N && len(recs) < 16; i++ {
			recs = g.records(recs, i)
		}
		err := ix.store.Commit(ix.Applied()+1, 1, func(pb *pebble.Batch) error { return ix.put(pb, recs) })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N)/1e3, "cpu-µs/delivery")
}
