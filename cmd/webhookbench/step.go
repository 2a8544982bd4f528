package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// stepResult holds the figures of one stretch of offered load.
type stepResult struct {
	Name              string    `json:"name"`
	OfferedEventsPS   float64   `json:"offeredEventsPerSec"`
	OfferedPS         float64   `json:"offeredDeliveriesPerSec"`
	Seconds           float64   `json:"seconds"` // the window the load was offered in
	DeliveredPS       float64   `json:"deliveredPerSec"`
	Latency           quantiles `json:"latency"` // publish → first receipt
	P999ms            float64   `json:"p999Ms"`
	LatencyLowerBound bool      `json:"latencyLowerBound,omitempty"` // p99 falls among deliveries never received
	Offered           int64     `json:"offered"`                     // events
	Accepted          int64     `json:"accepted"`                    // events answered 202 or acknowledged
	Expected          int64     `json:"expected"`                    // deliveries owed for them
	Received          int64     `json:"received"`                    // of those, first receipts by the end of the drain
	Lost              int64     `json:"lost"`
	Duplicates        int64     `json:"duplicates"`
	FailedOnPurpose   int64     `json:"failedOnPurpose,omitempty"`
	DrainSeconds      float64   `json:"drainSeconds"`
	CPUPer1k          float64   `json:"webhookdCpuSecondsPer1kDeliveries"`
	WebhookdCores     float64   `json:"webhookdCores"`
	BenchCores        float64   `json:"benchCores"`
	OtherCores        float64   `json:"otherCores"` // user-mode CPU of every other process of the machine: interference
	QuietWaitS        float64   `json:"quietWaitSeconds"`
	// Disturbed: other processes took -quiet-cores or more during the
	// step, or the machine was not quiet within -quiet-wait before it.
	Disturbed     bool      `json:"disturbed"`
	RSSMB         float64   `json:"webhookdRssMB"`
	Ingest        quantiles `json:"ingest"` // scheduled send → answer, per request
	Requests      int64     `json:"requests"`
	R429          int64     `json:"status429"`
	Non202        int64     `json:"non202"`
	Errors        int64     `json:"errors"`
	LastError     string    `json:"lastError,omitempty"`
	MaxPacerLagMs float64   `json:"maxPacerLagMs"`
	Pass          bool      `json:"pass"`
}

// stepSpec describes one stretch: rate events/s for d, or total events at
// rate when total > 0; then up to drain for the deliveries owed to
// drainSubs (all of subs when nil).
type stepSpec struct {
	name      string
	subs      []int
	rate      float64
	d         time.Duration
	total     int64
	drain     time.Duration
	drainSubs []int
	batch     int       // events per request (0: sized from -batch and -batch-interval)
	perSecond int       // per-second ingest histograms to keep
	start     time.Time // when the load starts (zero: now, after waiting for a quiet machine)
	warmup    bool      // no waiting for a quiet machine
	// atWindowEnd, when set, is called as the load ends, before the drain.
	atWindowEnd func(p *phase, at time.Time)
}

// runStep offers one stretch of load, waits for its deliveries, and
// measures it.
func (b *bench) runStep(ctx context.Context, st *stack, in *ingester, sp stepSpec) (stepResult, *phase) {
	var waited time.Duration
	quiet := true
	if sp.start.IsZero() && !sp.warmup {
		waited, quiet = b.quiet(ctx, st.pid())
	}
	p := newPhase(sp.name, sp.subs, sp.perSecond)
	ph := st.tr.addPhase(p)
	pl := newPlan(sp.rate, b.cfg.batch, b.cfg.batchInterval)
	if sp.batch > 0 {
		pl.Batch = sp.batch
	}
	cpu0, self0 := st.sample(), selfSample()
	m0, _ := readCPUTimes()
	u0 := st.tr.unique.Load()
	start := sp.start
	if start.IsZero() {
		start = time.Now()
	}
	in.offer(ctx, p, ph, pl, start, sp.d, sp.total)
	if sp.d > 0 {
		sleepUntil(ctx, start.Add(sp.d))
	}
	windowEnd := time.Now()
	u1 := st.tr.unique.Load()
	if sp.atWindowEnd != nil {
		sp.atWindowEnd(p, windowEnd)
	}
	p.inflight.Wait()
	drainSubs := sp.drainSubs
	if drainSubs == nil {
		drainSubs = sp.subs
	}
	drainStart := time.Now()
	waitFor(ctx, sp.drain, func() bool {
		acc := p.accepted.Load()
		for _, s := range drainSubs {
			if p.unique[s].Load() < acc {
				return false
			}
		}
		return true
	})
	drainEnd := time.Now()
	cpu1, self1 := st.sample(), selfSample()
	m1, _ := readCPUTimes()
	r := measure(p, drainSubs)
	r.OfferedEventsPS = sp.rate
	r.OfferedPS = sp.rate * float64(len(sp.subs))
	r.Seconds = windowEnd.Sub(start).Seconds()
	r.DeliveredPS = float64(u1-u0) / windowEnd.Sub(start).Seconds()
	r.DrainSeconds = drainEnd.Sub(drainStart).Seconds()
	if r.Lost > 0 {
		// Count each delivery never received as at least as late as the
		// drain allowed, so the percentiles do not flatter the step.
		h := p.latency(drainSubs...)
		floor := int64(drainEnd.Sub(windowEnd))
		for range r.Lost {
			h.Record(floor)
		}
		r.Latency = summarize(h)
		r.P999ms = ms(h.Quantile(0.999))
		r.LatencyLowerBound = float64(r.Lost) > 0.01*float64(r.Expected)
	}
	all := st.tr.unique.Load() - u0
	if all > 0 {
		r.CPUPer1k = float64(cpu1.CPUTicks-cpu0.CPUTicks) / float64(b.ticks) / float64(all) * 1000
	}
	r.WebhookdCores = cores(cpu1.CPUTicks-cpu0.CPUTicks, b.ticks, drainEnd.Sub(start))
	r.BenchCores = cores(self1.CPUTicks-self0.CPUTicks, b.ticks, drainEnd.Sub(start))
	r.OtherCores = otherCores(m0, m1, cpu0, cpu1, self0, self1, b.ticks, drainEnd.Sub(start))
	r.RSSMB = float64(cpu1.RSSKB) / 1024
	r.QuietWaitS = waited.Seconds()
	r.Disturbed = !quiet || r.OtherCores >= b.cfg.quietCores
	r.Pass = r.DeliveredPS >= 0.9*r.OfferedPS && r.Latency.P99ms <= 2000
	return r, p
}

// measure reads a phase's figures for the subscriptions subs.
func measure(p *phase, subs []int) stepResult {
	acc := p.accepted.Load()
	var recv, failed int64
	for _, s := range subs {
		recv += p.unique[s].Load()
		failed += p.failed[s].Load()
	}
	h := p.latency(subs...)
	r := stepResult{
		Name: p.name, Latency: summarize(h), P999ms: ms(h.Quantile(0.999)),
		Offered: p.offered.Load(), Accepted: acc, Expected: acc * int64(len(subs)), Received: recv,
		Duplicates: p.dups.Load(), FailedOnPurpose: failed,
		Ingest: summarize(&p.ingest), Requests: p.requests.Load(), R429: p.r429.Load(),
		Non202: p.non202.Load(), Errors: p.errs.Load(), MaxPacerLagMs: ms(p.maxLagNs.Load()),
	}
	r.Lost = max(0, r.Expected-recv)
	if e := p.lastErr.Load(); e != nil {
		r.LastError = *e
	}
	return r
}

// warmup sends a few events and waits until every subscription has them:
// subscriptions are live and connections open before anything is timed.
func (b *bench) warmup(ctx context.Context, st *stack, in *ingester, n int64) error {
	r, _ := b.runStep(ctx, st, in, stepSpec{name: "warm-up", subs: st.subs(), rate: 200, total: n, drain: 30 * time.Second, warmup: true})
	if r.Accepted != r.Offered || r.Lost > 0 {
		// Say what webhookd itself recorded, to tell a bench fault from an
		// engine fault.
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		if len(st.subIDs) > 0 {
			code, _, err := st.get(ctx, "/api/subscriptions/"+st.subIDs[0]+"/deliveries?limit=1", &page)
			switch {
			case err != nil || code != 200:
				fmt.Fprintf(b.stderr, "list deliveries of the first subscription: %d %v\n", code, err)
			case len(page.Data) == 0:
				fmt.Fprintf(b.stderr, "webhookd recorded no delivery for the first subscription\n")
			default:
				fmt.Fprintf(b.stderr, "latest delivery webhookd recorded for the first subscription: %s\n", page.Data[0])
			}
		}
		return fmt.Errorf("warm-up: %d of %d events accepted (%s), %d of %d deliveries received in 30 s",
			r.Accepted, r.Offered, r.LastError, r.Received, r.Expected)
	}
	return nil
}

func selfSample() procSample {
	p, _ := readProc(pidSelf())
	return p
}

// sleepUntil sleeps until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// waitFor polls cond every 10 ms until it holds, timeout passes or ctx
// ends, and reports whether it held.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		sleepUntil(ctx, time.Now().Add(10*time.Millisecond))
	}
}

// quiet waits, up to -quiet-wait, for one second in which the machine's
// other processes (all but webhookd, pid, and the bench) use less than
// -quiet-cores. It returns how long it waited and whether it found one.
// The decision is taken before a measurement, never after.
func (b *bench) quiet(ctx context.Context, pid int) (time.Duration, bool) {
	if b.cfg.quietWait <= 0 {
		return 0, true
	}
	t0 := time.Now()
	for {
		m0, err := readCPUTimes()
		if err != nil {
			return 0, true
		}
		w0, s0, at := procOrZero(pid), selfSample(), time.Now()
		sleepUntil(ctx, at.Add(time.Second))
		m1, _ := readCPUTimes()
		w1, s1, wall := procOrZero(pid), selfSample(), time.Since(at)
		others := otherCores(m0, m1, w0, w1, s0, s1, b.ticks, wall)
		if others < b.cfg.quietCores {
			return time.Since(t0), true
		}
		if time.Since(t0) >= b.cfg.quietWait || ctx.Err() != nil {
			return time.Since(t0), false
		}
	}
}

// procOrZero samples process pid, or nothing when pid is 0 or gone.
func procOrZero(pid int) procSample {
	if pid == 0 {
		return procSample{}
	}
	p, _ := readProc(pid)
	return p
}
