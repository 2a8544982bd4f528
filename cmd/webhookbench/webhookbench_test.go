package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/filter"
)

func TestNewPlan(t *testing.T) {
	tests := []struct {
		rate     float64
		maxBatch int
		interval time.Duration
		want     int
	}{
		{250, 100, 10 * time.Millisecond, 3},      // 2.5 events per 10 ms, rounded up
		{100, 100, 10 * time.Millisecond, 1},      // exactly one
		{50, 100, 10 * time.Millisecond, 1},       // never below one
		{10_000, 100, 10 * time.Millisecond, 100}, // exactly full
		{50_000, 100, 10 * time.Millisecond, 100}, // capped
		{5_000, 20, 10 * time.Millisecond, 20},
	}
	for _, tt := range tests {
		if got := newPlan(tt.rate, tt.maxBatch, tt.interval).Batch; got != tt.want {
			t.Errorf("newPlan(%v, %d, %v).Batch = %d, want %d", tt.rate, tt.maxBatch, tt.interval, got, tt.want)
		}
	}
}

func TestPlanOffersTheRateExactly(t *testing.T) {
	tests := []struct {
		rate  float64
		batch int
		d     time.Duration
	}{
		{250, 3, 10 * time.Second},
		{562.5, 6, 10 * time.Second},
		{1000, 100, 3 * time.Second},
		{333, 7, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		p := plan{Rate: tt.rate, Batch: tt.batch}
		total := p.Events(tt.d)
		if want := int64(math.Floor(tt.rate * tt.d.Seconds())); total != want {
			t.Errorf("plan %+v: Events(%v) = %d, want %d", p, tt.d, total, want)
		}
		var sum int64
		n := p.Batches(total)
		for k := range n {
			size := p.BatchSize(k, total)
			if size < 1 || size > tt.batch {
				t.Fatalf("plan %+v: BatchSize(%d, %d) = %d, want 1..%d", p, k, total, size, tt.batch)
			}
			sum += int64(size)
			// The events due by batch k's time never exceed the rate.
			if due := p.Due(k); float64(sum-int64(size)) > tt.rate*due.Seconds()+1e-6 {
				t.Errorf("plan %+v: %d events sent before %v, more than the rate allows", p, sum-int64(size), due)
			}
		}
		if sum != total {
			t.Errorf("plan %+v: batches carry %d events, want %d", p, sum, total)
		}
		if got := p.BatchSize(n, total); got != 0 {
			t.Errorf("plan %+v: BatchSize past the end = %d, want 0", p, got)
		}
		// The last batch leaves within the run.
		if last := p.Due(n - 1); last >= tt.d {
			t.Errorf("plan %+v: last batch due at %v, after the run's %v", p, last, tt.d)
		}
	}
}

func TestPlanDue(t *testing.T) {
	p := plan{Rate: 250, Batch: 5}
	for k, want := range []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond} {
		if got := p.Due(int64(k)); got != want {
			t.Errorf("plan{250, 5}.Due(%d) = %v, want %v", k, got, want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	prevHi := int64(-1)
	for i := range histBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d (contiguous)", i, lo, prevHi+1)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucketOf(%d), bucketOf(%d) = %d, %d, want %d", lo, hi, bucketOf(lo), bucketOf(hi), i)
		}
		if lo >= 256 && float64(hi-lo+1)/float64(lo) > 1.0/128 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/128 of its values", i, lo, hi)
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			if i != histBuckets-1 {
				t.Fatalf("bucket %d reaches MaxInt64 but %d buckets follow", i, histBuckets-1-i)
			}
			return
		}
	}
	t.Fatalf("buckets end at %d, short of MaxInt64", prevHi)
}

func TestQuantileExactForSmallValues(t *testing.T) {
	var h histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	tests := []struct {
		q    float64
		want int64
	}{
		{0.01, 1}, {0.5, 50}, {0.99, 99}, {0.995, 100}, {1, 100},
	}
	for _, tt := range tests {
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%v) of 1..100 = %d, want %d", tt.q, got, tt.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 {
		t.Errorf("Count, Max = %d, %d, want 100, 100", h.Count(), h.Max())
	}
	var empty histogram
	if got := empty.Quantile(0.99); got != 0 {
		t.Errorf("Quantile of an empty histogram = %d, want 0", got)
	}
}

func TestQuantileWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]int64, 20_000)
	for i := range vals {
		// Latency-like: 1 ms .. 2 s, heavy-tailed.
		vals[i] = int64(float64(time.Millisecond) * math.Exp(rng.Float64()*math.Log(2000)))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(math.Ceil(q*float64(len(vals))))-1] // nearest rank
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("Quantile(%v) = %d, want %d within 1%% (off by %.2f%%)", q, got, want, 100*rel)
		}
	}
	var merged histogram
	merged.Merge(&h)
	if merged.Count() != h.Count() || merged.Quantile(0.99) != h.Quantile(0.99) || merged.Max() != h.Max() {
		t.Errorf("Merge into an empty histogram changed the figures")
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name      string
		stat      string
		user, sys uint64
		err       error
	}{
		{"plain", "1234 (webhookd) S 1 1234 1234 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 12 0 100 1000000 5000 18446744073709551615", 150, 25, nil},
		{"name with spaces and parens", "99 (a (b) c) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 10 20", 7, 3, nil},
		{"short", "99 (x) R 1 2 3", 0, 0, errProcFormat},
		{"no name", "99 x R", 0, 0, errProcFormat},
		{"not numbers", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0", 0, 0, errProcFormat},
	}
	for _, tt := range tests {
		user, sys, err := parseStatCPU([]byte(tt.stat))
		if user != tt.user || sys != tt.sys || !errors.Is(err, tt.err) {
			t.Errorf("parseStatCPU(%s) = %d, %d, %v, want %d, %d, %v", tt.name, user, sys, err, tt.user, tt.sys, tt.err)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\twebhookd\nVmPeak:\t  900000 kB\nVmRSS:\t   51234 kB\nThreads:\t12\n"
	if got, err := parseStatusRSS([]byte(status)); got != 51234 || err != nil {
		t.Errorf("parseStatusRSS = %d, %v, want 51234, nil", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseStatusRSS([]byte(bad)); !errors.Is(err, errProcFormat) {
			t.Errorf("parseStatusRSS(%q) error = %v, want errProcFormat", bad, err)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	p, err := readProc(pidSelf())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if p.RSSKB <= 0 {
		t.Errorf("readProc(self).RSSKB = %d, want > 0", p.RSSKB)
	}
}

func TestMarksRoundTrip(t *testing.T) {
	for _, m := range []struct {
		ph      int
		seq, at int64
	}{{0, 0, 0}, {3, 1_234_567, 1_795_943_802_469_305_387}, {17, math.MaxInt32, math.MaxInt64}} {
		body := []byte(`{"id":"evt_1","type":"ticket.updated","tenantId":"ten_1","occurredAt":"2026-11-29T09:16:42Z","data":`)
		body = append(appendData(body, m.ph, m.seq, m.at), '}')
		ph, seq, at, ok := parseMarks(body)
		if !ok || ph != m.ph || seq != m.seq || at != m.at {
			t.Errorf("parseMarks(%s) = %d, %d, %d, %v, want %d, %d, %d, true", body, ph, seq, at, ok, m.ph, m.seq, m.at)
		}
	}
	for _, bad := range []string{`{}`, `{"ph":1,"seq":2}`, `{"ph":1,"seq":2,"sentAtNs":}`, `{"ph":1,"seq":2,"sentAtNs":99999999999999999999}`} {
		if _, _, _, ok := parseMarks([]byte(bad)); ok {
			t.Errorf("parseMarks(%s) ok, want not ok", bad)
		}
	}
}

func TestSeqCounts(t *testing.T) {
	var c seqCounts
	for _, seq := range []int64{0, 1, 1 << seqChunkBits, 5} {
		if n := c.add(seq); n != 1 {
			t.Errorf("first add(%d) = %d, want 1", seq, n)
		}
	}
	if n := c.add(5); n != 2 {
		t.Errorf("second add(5) = %d, want 2", n)
	}
	if n := c.add(-1); n != 0 {
		t.Errorf("add(-1) = %d, want 0 (not counted)", n)
	}
}

func TestParseSeries(t *testing.T) {
	page := `# HELP webhooks_attempts_total Attempts.
# TYPE webhooks_attempts_total counter
webhooks_attempts_total{outcome="succeeded"} 1234
webhooks_attempts_total{outcome="odd label} x"} 2
webhooks_tasks_deferred_total 7
webhooks_attempt_duration_seconds_count 99
webhooks_consumer_pending 5
go_goroutines 42
other_total 3
`
	want := map[string]float64{
		`webhooks_attempts_total{outcome="succeeded"}`:    1234,
		`webhooks_attempts_total{outcome="odd label} x"}`: 2,
		`webhooks_tasks_deferred_total`:                   7,
	}
	if diff := cmp.Diff(want, parseSeries([]byte(page), isCounter)); diff != "" {
		t.Errorf("parseSeries(counters) mismatch (-want +got):\n%s", diff)
	}
	before := map[string]float64{`webhooks_tasks_deferred_total`: 3}
	got := deltas(before, want, 2)
	wantD := []delta{
		{Name: `webhooks_attempts_total{outcome="odd label} x"}`, Delta: 2, PerDelivery: 1},
		{Name: `webhooks_attempts_total{outcome="succeeded"}`, Delta: 1234, PerDelivery: 617},
		{Name: `webhooks_tasks_deferred_total`, Delta: 4, PerDelivery: 2},
	}
	if diff := cmp.Diff(wantD, got); diff != "" {
		t.Errorf("deltas mismatch (-want +got):\n%s", diff)
	}
}

func TestCores(t *testing.T) {
	if got := cores(300, 100, 2*time.Second); got != 1.5 {
		t.Errorf("cores(300 ticks, 100/s, 2 s) = %v, want 1.5", got)
	}
	if got := cores(300, 100, 0); got != 0 {
		t.Errorf("cores over no time = %v, want 0", got)
	}
}

func TestParseCPUTimes(t *testing.T) {
	stat := "cpu  112917 0 20390 87013 368 0 723 126 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
	got, err := parseCPUTimes([]byte(stat))
	want := cpuTimes{Busy: 112917 + 20390 + 723 + 126, Total: 112917 + 20390 + 87013 + 368 + 723 + 126, User: 112917}
	if got != want || err != nil {
		t.Errorf("parseCPUTimes = %+v, %v, want %+v, nil", got, err, want)
	}
	if _, err := parseCPUTimes([]byte("intr 1 2 3\n")); !errors.Is(err, errProcFormat) {
		t.Errorf("parseCPUTimes(no cpu line) error = %v, want errProcFormat", err)
	}
}

func TestOtherCores(t *testing.T) {
	m0, m1 := cpuTimes{User: 1000}, cpuTimes{User: 1300}
	w0, w1 := procSample{UserTicks: 50}, procSample{UserTicks: 150}
	s0, s1 := procSample{UserTicks: 10}, procSample{UserTicks: 60}
	if got := otherCores(m0, m1, w0, w1, s0, s1, 100, time.Second); got != 1.5 {
		t.Errorf("otherCores(300 machine, 100 webhookd, 50 bench ticks over 1 s) = %v, want 1.5", got)
	}
	// Sampled a moment apart, the processes can seem to have used more
	// than the machine: never below zero, never wrapped around.
	if got := otherCores(m0, cpuTimes{User: 1100}, w0, w1, s0, s1, 100, time.Second); got != 0 {
		t.Errorf("otherCores with more process than machine time = %v, want 0", got)
	}
}

func TestAverages(t *testing.T) {
	got := averages([]int64{1, 2, 3, 4, 5, 6, 7}, 3)
	if diff := cmp.Diff([]int64{2, 5, 7}, got); diff != "" {
		t.Errorf("averages mismatch (-want +got):\n%s", diff)
	}
}

func TestFakeNeverHoldsConnections(t *testing.T) {
	f, err := newFake(fakeNever, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("POST /a/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if !waitFor(context.Background(), 30*time.Second, func() bool { return f.open.Load() == 3 }) {
		t.Fatalf("open = %d after 3 connections, want 3", f.open.Load())
	}
	conns[0].Close()
	if !waitFor(context.Background(), 30*time.Second, func() bool { return f.open.Load() == 2 }) {
		t.Fatalf("open = %d after the client closed one of 3, want 2", f.open.Load())
	}
	f.Close()
	// Close cut the others, and nothing was ever written back.
	for _, c := range conns[1:] {
		if n, err := c.Read(make([]byte, 16)); n != 0 || err == nil {
			t.Errorf("Read after Close = %d, %v, want 0 and an error", n, err)
		}
	}
	if a, m, o := f.accepted.Load(), f.maxOpen.Load(), f.open.Load(); a != 3 || m != 3 || o != 0 {
		t.Errorf("accepted, maxOpen, open = %d, %d, %d, want 3, 3, 0", a, m, o)
	}
}

func TestFakeResetResets(t *testing.T) {
	f, err := newFake(fakeReset, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The reset may come before the dial has seen the connection made.
	c, err := net.Dial("tcp", f.addr)
	if err == nil {
		defer c.Close()
		_, err = c.Read(make([]byte, 16))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Dial and Read = %v, want ECONNRESET", err)
	}
	if !waitFor(context.Background(), 30*time.Second, func() bool { return f.accepted.Load() == 1 && f.open.Load() == 0 }) {
		t.Errorf("accepted, open = %d, %d, want 1, 0", f.accepted.Load(), f.open.Load())
	}
}

func TestFakeRefuseRefuses(t *testing.T) {
	f, err := newFake(fakeRefuse, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if host, _, _ := net.SplitHostPort(f.addr); host != "127.0.0.1" {
		t.Errorf("addr = %s, want 127.0.0.1", f.addr)
	}
	for range 2 {
		if c, err := net.Dial("tcp", f.addr); !errors.Is(err, syscall.ECONNREFUSED) {
			if c != nil {
				c.Close()
			}
			t.Errorf("Dial(%s) = %v, want ECONNREFUSED", f.addr, err)
		}
	}
}

func TestFakeHTTPAnswers(t *testing.T) {
	for _, kind := range []fakeKind{fakeOK, fakeSlow} {
		f, err := newFake(kind, time.Millisecond, 2*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(f.URL("/a/1"), "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s: status %d, want 204", kind, resp.StatusCode)
		}
		if n := f.requests.Load(); n != 1 {
			t.Errorf("%s: requests = %d, want 1", kind, n)
		}
		f.Close()
	}
}

func TestCostlyFilterNearTheLimit(t *testing.T) {
	c, err := filter.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(appendData(nil, 3, 123_456, time.Now().UnixNano()), &data); err != nil {
		t.Fatal(err)
	}
	in := filter.NewInput("ticket.updated", time.Now(), data)
	p, err := c.Compile(neighbourFilter)
	if err != nil {
		t.Fatalf("Compile(neighbourFilter) = %v", err)
	}
	if ok, err := p.Match(in); ok || err != nil {
		t.Errorf("neighbourFilter matches = %v, %v; want false, nil (under the cost limit, matching nothing)", ok, err)
	}
	// A tenth more work is past the limit: the filter is near it.
	p, err = c.Compile(costlyFilter(34, 28))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Match(in); !errors.Is(err, filter.ErrEval) {
		t.Errorf("costlyFilter(34, 28) = %v, want past the cost limit (filter.ErrEval)", err)
	}
}

func TestForEach(t *testing.T) {
	var seen [50]atomic.Int32
	if err := forEach(len(seen), 4, func(i int) error { seen[i].Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Errorf("index %d ran %d times, want 1", i, n)
		}
	}
	boom := errors.New("boom")
	var ran atomic.Int32
	if err := forEach(1000, 1, func(i int) error {
		ran.Add(1)
		if i == 2 {
			return boom
		}
		return nil
	}); err != boom || ran.Load() != 3 {
		t.Errorf("forEach with an error at 2 = %v after %d calls, want boom after 3", err, ran.Load())
	}
}

func TestParseNeighbourVariants(t *testing.T) {
	c, err := parse([]string{"-run", "neighbours"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Split(defaultNeighbourVariants, ","), c.neighboursVariants); diff != "" {
		t.Errorf("default variants mismatch (-want +got):\n%s", diff)
	}
	if _, err := parse([]string{"-run", "neighbours", "-neighbours-variants", "never-12,nope"}, io.Discard); err == nil {
		t.Error("parse(-neighbours-variants never-12,nope) = nil, want an error")
	}
	for _, v := range neighbourVariants {
		if v.subs < 1 || v.ports < 1 || v.ports > v.subs || len(v.kinds) == 0 {
			t.Errorf("variant %s: %d subscriptions, %d ports, %d kinds", v.name, v.subs, v.ports, len(v.kinds))
		}
	}
}
