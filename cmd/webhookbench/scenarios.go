package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

func (b *bench) scenario(ctx context.Context, name, ingest string) error {
	switch name {
	case "saturation":
		_, err := b.saturation(ctx, ingest)
		return err
	case "latency":
		return b.latency(ctx, ingest)
	case "overload":
		return b.overload(ctx, ingest)
	case "memory":
		return b.memory(ctx, ingest)
	case "slow":
		return b.slow(ctx, ingest)
	case "logquery":
		return b.logQueryAlone(ctx, ingest)
	case "neighbours":
		return b.neighbours(ctx)
	}
	return fmt.Errorf("unknown scenario %q", name)
}

// newRun registers a run in the report and prints its title.
func (b *bench) newRun(name, ingest string, subs int, extra []string) *runResult {
	r := &runResult{Scenario: name, Ingest: ingest, Subs: subs, WebhookdArgs: append(append([]string(nil), extra...), b.cfg.webhookdArgs...)}
	b.rep.Runs = append(b.rep.Runs, r)
	fmt.Fprintf(b.out, "== %s · ingest %s · %d subscription(s)\n", name, ingest, subs)
	return r
}

// setup subscribes n receivers and warms them up.
func (b *bench) setup(ctx context.Context, st *stack, in *ingester, n int) error {
	for range n {
		if _, err := st.addSubscription(ctx); err != nil {
			return err
		}
	}
	return b.warmup(ctx, st, in, 40)
}

// observation is the state of a stack at the start of a measured stretch.
type observation struct {
	at       time.Time
	counters map[string]float64
	streams  map[string]uint64
	bytes    map[string]uint64
	unique   int64
}

func (b *bench) observe(ctx context.Context, st *stack) observation {
	o := observation{at: time.Now(), unique: st.tr.unique.Load()}
	o.counters, _ = st.counters(ctx)
	o.streams, o.bytes, _ = st.streamSeqs(ctx)
	return o
}

// finish fills a run's counter and stream deltas since o, per delivery
// (per owed delivery when owed > 0, else per delivery received), and the
// receivers' figures.
func (b *bench) finish(ctx context.Context, r *runResult, st *stack, o observation, owed int64) {
	per := owed
	if per <= 0 {
		per = st.tr.unique.Load() - o.unique
	}
	c, _ := st.counters(ctx)
	s, bytes, _ := st.streamSeqs(ctx)
	r.Counters = deltas(o.counters, c, per)
	r.Streams = deltas(o.streams, s, per)
	r.StreamBytes = deltas(o.bytes, bytes, per)
	for _, rc := range st.recv {
		r.Verified += rc.verified.Load()
		r.BadSignatures += rc.badSig.Load()
	}
	r.Stray = st.tr.stray.Load()
	var stored float64
	for _, d := range r.Streams {
		stored += d.Delta
	}
	what := "delivery received"
	if owed > 0 {
		what = "delivery owed"
	}
	fmt.Fprintf(b.out, "JetStream messages stored: %.0f, %.2f per %s (%s)\n", stored, stored/float64(max(per, 1)), what, streamSummary(r.Streams))
	var held float64
	for _, d := range r.StreamBytes {
		held += d.Delta
	}
	fmt.Fprintf(b.out, "JetStream bytes held at the end, more than at the start: %.0f, %.0f per %s (%s)\n", held, held/float64(max(per, 1)), what, streamSummary(r.StreamBytes))
}

func streamSummary(ds []delta) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %.0f", d.Name, d.Delta)
	}
	return s
}

func (b *bench) satKey(ingest string, subs int) string { return ingest + "/" + strconv.Itoa(subs) }

// saturation steps the offered rate up until webhookd falls behind.
func (b *bench) saturation(ctx context.Context, ingest string) (float64, error) {
	r := b.newRun("saturation", ingest, b.cfg.subs, nil)
	t0 := time.Now()
	rate, passed := b.cfg.startRate, 0.0
	err := b.withStack(ctx, ingest, nil, func(st *stack, in *ingester) error {
		if err := b.setup(ctx, st, in, b.cfg.subs); err != nil {
			return err
		}
		o := b.observe(ctx, st)
		for i := 1; i <= b.cfg.maxSteps && rate <= b.cfg.maxRate && ctx.Err() == nil; i++ {
			s, _ := b.saturationStep(ctx, st, in, r, strconv.Itoa(i), rate)
			if !s.Pass {
				r.Saturated = true
				break
			}
			passed = rate
			rate *= b.cfg.stepFactor
		}
		b.printSteps(r.Steps)
		b.finish(ctx, r, st, o, 0)
		return nil
	})
	// Narrow the gap between the last rate kept up with and the first one
	// that was not. Each try runs on a fresh webhookd: after an overloaded
	// step a webhookd may carry its backlog or its damage into the next.
	lo, hi := passed, rate
	main := len(r.Steps)
	for k := 1; err == nil && r.Saturated && lo > 0 && k <= b.cfg.refine && ctx.Err() == nil; k++ {
		mid := math.Sqrt(lo * hi)
		var s stepResult
		err = b.withStack(ctx, ingest, nil, func(st *stack, in *ingester) error {
			if err := b.setup(ctx, st, in, b.cfg.subs); err != nil {
				return err
			}
			s, _ = b.saturationStep(ctx, st, in, r, "refine "+strconv.Itoa(k), mid)
			return nil
		})
		if s.Pass {
			lo = mid
		} else {
			hi = mid
		}
	}
	for i, st := range r.Steps {
		if i < main {
			r.SaturationStepped = max(r.SaturationStepped, st.DeliveredPS)
		} else {
			r.SaturationRefined = max(r.SaturationRefined, st.DeliveredPS)
		}
	}
	if len(r.Steps) > main {
		b.printSteps(r.Steps[main:])
		fmt.Fprintf(b.out, "highest delivered/s: %.0f stepping up on one webhookd, %.0f in the refinement on fresh ones (which carry no history of earlier steps)\n",
			r.SaturationStepped, r.SaturationRefined)
	}
	r.SaturationRatio = b.ratio(r.Saturation)
	b.sats[b.satKey(ingest, b.cfg.subs)] = r.Saturation
	limit := "the highest delivered/s of any step"
	if !r.Saturated {
		limit = "NOT saturated: -max-rate or -max-steps ended the stepping; the figure is a lower bound"
	}
	fmt.Fprintf(b.out, "saturation: %.0f deliveries/s = %s the baseline before (%s)\n", r.Saturation, fmtRatio(r.SaturationRatio), limit)
	r.Seconds = time.Since(t0).Seconds()
	b.printRunFooter(r)
	return r.Saturation, err
}

// saturationStep runs one saturation step at rate events/s, and repeats it
// (up to -disturbed-retries times) when it fails while other processes took
// the machine; every attempt goes into r. It returns the last attempt.
func (b *bench) saturationStep(ctx context.Context, st *stack, in *ingester, r *runResult, name string, rate float64) (stepResult, *phase) {
	for attempt := 0; ; attempt++ {
		n := name
		if attempt > 0 {
			n += " again"
		}
		s, p := b.runStep(ctx, st, in, stepSpec{name: n, subs: st.subs(), rate: rate, d: b.cfg.stepDur, drain: b.cfg.drain})
		r.Steps = append(r.Steps, s)
		fmt.Fprintf(b.stderr, "  step %s: offered %.0f deliveries/s, delivered %.0f/s, p99 %s, lost %d, other processes %.2f cores\n",
			n, s.OfferedPS, s.DeliveredPS, fmtMs(s.Latency.P99ms, s.LatencyLowerBound), s.Lost, s.OtherCores)
		r.Saturation = max(r.Saturation, s.DeliveredPS)
		if s.Pass || !s.Disturbed || attempt >= b.cfg.disturbedRetries || ctx.Err() != nil {
			return s, p
		}
		// Repeat a step that failed while something else took the
		// machine, once its backlog is gone.
		if !waitFor(ctx, 2*time.Minute, func() bool { return p.lost() == 0 }) {
			fmt.Fprintf(b.out, "step %s not repeated: its backlog did not drain within 2 minutes\n", n)
			return s, p
		}
	}
}

// latency offers a steady moderate rate and reads the latency figures.
func (b *bench) latency(ctx context.Context, ingest string) error {
	r := b.newRun("latency", ingest, b.cfg.subs, nil)
	t0 := time.Now()
	err := b.withStack(ctx, ingest, nil, func(st *stack, in *ingester) error {
		if err := b.setup(ctx, st, in, b.cfg.subs); err != nil {
			return err
		}
		o := b.observe(ctx, st)
		s, _ := b.runStep(ctx, st, in, stepSpec{name: "latency", subs: st.subs(), rate: b.cfg.latencyRate, d: b.cfg.latencyDur, drain: b.cfg.drain})
		r.Steps = []stepResult{s}
		b.printSteps(r.Steps)
		fmt.Fprintf(b.out, "publish→receipt over %d deliveries: p50 %s  p99 %s  p99.9 %s  max %s  (lost %d, duplicates %d)\n",
			s.Latency.N, fmtMs(s.Latency.P50ms, false), fmtMs(s.Latency.P99ms, s.LatencyLowerBound), fmtMs(s.P999ms, s.LatencyLowerBound),
			fmtMs(s.Latency.Maxms, false), s.Lost, s.Duplicates)
		b.finish(ctx, r, st, o, 0)
		return nil
	})
	r.Seconds = time.Since(t0).Seconds()
	b.printRunFooter(r)
	return err
}

// overloadResult holds the overload figures.
type overloadResult struct {
	SaturationUsed     float64         `json:"saturationUsed"`
	SaturationSource   string          `json:"saturationSource"`
	Step               stepResult      `json:"step"`
	PerSecond          []overloadFrame `json:"perSecond"`
	LongestGapMs       float64         `json:"longestGapMs"`      // while load was offered
	LongestGapDrainMs  float64         `json:"longestGapDrainMs"` // load and drain together
	BacklogAtEnd       int64           `json:"backlogAtEnd"`      // deliveries owed and not received when the load stopped
	DrainSeconds       float64         `json:"drainSeconds"`      // from the end of the load until nothing was owed (or the timeout)
	DrainPerSecond     float64         `json:"drainPerSecond"`    // backlog / drain time
	Drained            bool            `json:"drained"`
	DrainDeliveredPS   []int64         `json:"drainDeliveredPerSecond"`
	DeliveredInWindowS float64         `json:"deliveredPerSecInWindow"`
}

type overloadFrame struct {
	Second    int     `json:"second"`
	Delivered int64   `json:"delivered"`
	Requests  int64   `json:"requests"`
	IngestP99 float64 `json:"ingestP99Ms"`
}

// overload offers twice the saturation and watches webhookd cope and drain.
func (b *bench) overload(ctx context.Context, ingest string) error {
	sat, src := b.cfg.saturation, "-saturation"
	if sat == 0 {
		sat, src = b.sats[b.satKey(ingest, b.cfg.subs)], "this run's saturation scenario"
	}
	if sat == 0 {
		fmt.Fprintf(b.out, "overload: no saturation figure for ingest %s with %d subscriptions: measuring it first\n", ingest, b.cfg.subs)
		var err error
		if sat, err = b.saturation(ctx, ingest); err != nil {
			return err
		}
		src = "measured first, on its own webhookd"
	}
	r := b.newRun("overload", ingest, b.cfg.subs, nil)
	res := &overloadResult{SaturationUsed: sat, SaturationSource: src}
	r.Overload = res
	t0 := time.Now()
	err := b.withStack(ctx, ingest, nil, func(st *stack, in *ingester) error {
		if err := b.setup(ctx, st, in, b.cfg.subs); err != nil {
			return err
		}
		o := b.observe(ctx, st)
		secs := int(math.Ceil(b.cfg.overloadDur.Seconds()))
		b.quiet(ctx, st.pid())
		startSec := st.tr.second(time.Now()) + 1
		start := st.tr.t0.Add(time.Duration(startSec) * time.Second)
		sleepUntil(ctx, start)
		st.tr.resetGap(start)
		var windowEnd time.Time
		var recvAtEnd int64
		var p *phase
		spec := stepSpec{name: "overload", subs: st.subs(), rate: 2 * sat / float64(b.cfg.subs), d: b.cfg.overloadDur,
			drain: b.cfg.overloadDrain, perSecond: secs, start: start}
		spec.atWindowEnd = func(pp *phase, at time.Time) {
			p, windowEnd = pp, at
			recvAtEnd = pp.received()
			res.LongestGapMs = ms(int64(st.tr.gap(at)))
		}
		s, _ := b.runStep(ctx, st, in, spec)
		drainEnd := time.Now()
		res.Step = s
		res.LongestGapDrainMs = ms(int64(st.tr.gap(drainEnd)))
		res.BacklogAtEnd = max(0, p.expected()-recvAtEnd)
		res.Drained = s.Lost == 0
		res.DrainSeconds = drainEnd.Sub(windowEnd).Seconds()
		if res.DrainSeconds > 0 {
			res.DrainPerSecond = float64(p.received()-recvAtEnd) / res.DrainSeconds
		}
		res.DeliveredInWindowS = s.DeliveredPS
		for i := range secs {
			f := overloadFrame{Second: i + 1, Delivered: st.tr.delivered(startSec+i, startSec+i+1)}
			f.Requests = p.ingestSec[i].Count()
			f.IngestP99 = ms(p.ingestSec[i].Quantile(0.99))
			res.PerSecond = append(res.PerSecond, f)
		}
		for sec := startSec + secs; sec <= st.tr.second(drainEnd); sec++ {
			res.DrainDeliveredPS = append(res.DrainDeliveredPS, st.tr.delivered(sec, sec+1))
		}
		b.printOverload(res)
		b.finish(ctx, r, st, o, 0)
		return nil
	})
	r.Seconds = time.Since(t0).Seconds()
	b.printRunFooter(r)
	return err
}

func (b *bench) printOverload(res *overloadResult) {
	s := res.Step
	fmt.Fprintf(b.out, "offered %.0f deliveries/s (%.0f events/s) for %.0f s: twice the saturation of %.0f/s (%s)\n",
		s.OfferedPS, s.OfferedEventsPS, s.Seconds, res.SaturationUsed, res.SaturationSource)
	w := b.table()
	fmt.Fprintln(w, "second\tdelivered\tingest requests\tingest p99\t")
	for _, f := range res.PerSecond {
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t\n", f.Second, f.Delivered, f.Requests, fmtMs(f.IngestP99, false))
	}
	w.Flush()
	fmt.Fprintf(b.out, "over the load: delivered %.0f/s (%.2f of offered, %s the baseline); ingest p50 %s p99 %s max %s (target p99 <= 50 ms); %d requests: %d non-202, %d 429, %d errors\n",
		s.DeliveredPS, s.DeliveredPS/max(s.OfferedPS, 1e-9), fmtRatio(b.ratio(s.DeliveredPS)), fmtMs(s.Ingest.P50ms, false), fmtMs(s.Ingest.P99ms, false),
		fmtMs(s.Ingest.Maxms, false), s.Requests, s.Non202, s.R429, s.Errors)
	if s.LastError != "" {
		fmt.Fprintf(b.out, "last ingest error: %s\n", s.LastError)
	}
	fmt.Fprintf(b.out, "longest gap with no delivery: %s during the load (target < 1 s), %s including the drain\n",
		fmtMs(res.LongestGapMs, false), fmtMs(res.LongestGapDrainMs, false))
	state := "drained"
	if !res.Drained {
		state = "NOT drained within -overload-drain"
	}
	if res.BacklogAtEnd == 0 {
		fmt.Fprintf(b.out, "no backlog when the load stopped: webhookd kept up\n")
	} else {
		fmt.Fprintf(b.out, "backlog when the load stopped: %d deliveries; %s in %.1f s at %.0f deliveries/s\n",
			res.BacklogAtEnd, state, res.DrainSeconds, res.DrainPerSecond)
	}
	if res.BacklogAtEnd > 0 && len(res.DrainDeliveredPS) > 0 {
		fmt.Fprintf(b.out, "delivered per second while draining, averaged over 10 s: %v\n", averages(res.DrainDeliveredPS, 10))
	}
	fmt.Fprintf(b.out, "at the end: %d of %d deliveries received, lost %d, duplicates %d; publish→receipt p50 %s p99 %s max %s; webhookd RSS %.0f MB\n",
		s.Received, s.Expected, s.Lost, s.Duplicates, fmtMs(s.Latency.P50ms, false), fmtMs(s.Latency.P99ms, s.LatencyLowerBound), fmtMs(s.Latency.Maxms, false), s.RSSMB)
}

// memRate is the events/s of the memory and logquery runs.
func (b *bench) memRate(ingest string, subs int) (float64, string) {
	if b.cfg.memoryRate > 0 {
		return b.cfg.memoryRate, "-memory-rate"
	}
	if sat := b.sats[b.satKey(ingest, subs)]; sat > 0 {
		return 0.6 * sat / float64(subs), "60% of this run's saturation"
	}
	return 1000, "default: no saturation measured in this run"
}

// memoryResult holds the memory figures.
type memoryResult struct {
	RateEventsPS  float64      `json:"rateEventsPerSec"`
	RateSource    string       `json:"rateSource"`
	Marks         []memoryMark `json:"marks"`
	GrowthMB      float64      `json:"growthMB"`
	BytesPerDlv   float64      `json:"bytesPerDelivery"`
	Steps         []stepResult `json:"steps"`
	FailFraction  float64      `json:"failFraction"`
	IdlePauseSecs float64      `json:"idlePauseSeconds"`
}

type memoryMark struct {
	Deliveries  int64   `json:"deliveries"` // received in all by then
	RSSMB       float64 `json:"rssMB"`
	HeapInuseMB float64 `json:"heapInuseMB"` // go_memstats_heap_inuse_bytes, if webhookd exports it
	Goroutines  float64 `json:"goroutines"`
	DataDirMB   float64 `json:"dataDirMB"`
}

// logExtra is how webhookd runs when its log is to hold failed deliveries:
// one attempt, so a failure is final and retries do not pile up.
func (b *bench) logExtra() []string {
	if b.cfg.logFail > 0 {
		return []string{"--retry-schedule="}
	}
	return nil
}

// memory delivers many events and reads webhookd's RSS on the way; when
// logquery is also asked for, it runs on the same webhookd afterwards.
func (b *bench) memory(ctx context.Context, ingest string) error {
	withLog := slices.Contains(b.cfg.run, "logquery")
	var extra []string
	if withLog {
		extra = b.logExtra()
	}
	r := b.newRun("memory", ingest, b.cfg.subs, extra)
	rate, src := b.memRate(ingest, b.cfg.subs)
	res := &memoryResult{RateEventsPS: rate, RateSource: src, IdlePauseSecs: b.cfg.idlePause.Seconds()}
	if withLog {
		res.FailFraction = b.cfg.logFail
		fmt.Fprintf(b.out, "the receivers answer 500 to %.1f%% of deliveries, for the logquery run that follows on this webhookd\n", 100*b.cfg.logFail)
	}
	r.Memory = res
	t0 := time.Now()
	var lq *runResult
	err := b.withStack(ctx, ingest, extra, func(st *stack, in *ingester) error {
		if err := b.setup(ctx, st, in, b.cfg.subs); err != nil {
			return err
		}
		b.setFail(st, res.FailFraction)
		o := b.observe(ctx, st)
		var done int64
		for _, mark := range []int64{b.cfg.memoryMark, b.cfg.memoryDeliveries} {
			n := (mark - done + int64(b.cfg.subs) - 1) / int64(b.cfg.subs)
			if n <= 0 {
				continue
			}
			drain := time.Duration(max(60, 2*float64(n)/rate) * float64(time.Second))
			fmt.Fprintf(b.stderr, "  memory: %d events at %.0f/s toward %d deliveries\n", n, rate, mark)
			s, _ := b.runStep(ctx, st, in, stepSpec{name: "to " + strconv.FormatInt(mark, 10), subs: st.subs(), rate: rate, total: n, drain: drain})
			res.Steps = append(res.Steps, s)
			done += s.Expected
			sleepUntil(ctx, time.Now().Add(b.cfg.idlePause))
			m := memoryMark{Deliveries: st.tr.unique.Load(), RSSMB: float64(st.sample().RSSKB) / 1024}
			if g, err := st.gauges(ctx); err == nil {
				m.HeapInuseMB = g["go_memstats_heap_inuse_bytes"] / (1 << 20)
				m.Goroutines = g["go_goroutines"]
			}
			if du, err := diskUsage(st.dataDir); err == nil {
				m.DataDirMB = float64(du) / (1 << 20)
			}
			res.Marks = append(res.Marks, m)
		}
		b.printSteps(res.Steps)
		w := b.table()
		fmt.Fprintln(w, "deliveries received\twebhookd RSS MB\tGo heap in use MB\tgoroutines\tdata dir MB\t")
		for _, m := range res.Marks {
			fmt.Fprintf(w, "%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", m.Deliveries, m.RSSMB, m.HeapInuseMB, m.Goroutines, m.DataDirMB)
		}
		w.Flush()
		if len(res.Marks) == 2 {
			a, z := res.Marks[0], res.Marks[1]
			res.GrowthMB = z.RSSMB - a.RSSMB
			if z.Deliveries > a.Deliveries {
				res.BytesPerDlv = res.GrowthMB * (1 << 20) / float64(z.Deliveries-a.Deliveries)
			}
			fmt.Fprintf(b.out, "RSS growth from %d to %d deliveries: %.0f MB (target <= 64 MB), %.0f bytes per delivery; each reading after %s idle; rate %.0f events/s (%s)\n",
				a.Deliveries, z.Deliveries, res.GrowthMB, res.BytesPerDlv, b.cfg.idlePause, rate, src)
		}
		b.finish(ctx, r, st, o, 0)
		r.Seconds = time.Since(t0).Seconds()
		b.printRunFooter(r)
		if withLog {
			lq = b.newRun("logquery", ingest, b.cfg.subs, extra)
			t1 := time.Now()
			lq.LogQuery = &logQueryResult{Deliveries: st.tr.unique.Load(), After: "memory run"}
			err := b.queries(ctx, st, lq.LogQuery)
			lq.Seconds = time.Since(t1).Seconds()
			b.printRunFooter(lq)
			return err
		}
		return nil
	})
	if r.Seconds == 0 {
		r.Seconds = time.Since(t0).Seconds()
	}
	return err
}

// setFail makes every receiver answer 500 to a fraction of events.
func (b *bench) setFail(st *stack, frac float64) {
	for _, rc := range st.recv {
		rc.failPPM.Store(int64(frac * 1e6))
	}
}

// slowResult holds the slow-endpoint figures.
type slowResult struct {
	Alone         stepResult `json:"fastAlone"`
	WithSlow      stepResult `json:"fastWithSlow"`
	SlowArrivals  int64      `json:"slowArrivals"` // requests that reached the slow endpoint during the phase
	SlowBacklog   int64      `json:"slowBacklog"`  // its deliveries owed and not yet started
	SlowDelayS    float64    `json:"slowDelaySeconds"`
	DeltaPer      string     `json:"deltaPer"`
	DeliveriesOwe int64      `json:"deliveriesOwed"`
}

// slow puts a slow endpoint next to a fast one and watches the fast one.
func (b *bench) slow(ctx context.Context, ingest string) error {
	r := b.newRun("slow", ingest, 2, nil)
	res := &slowResult{SlowDelayS: b.cfg.slowWait.Seconds(), DeltaPer: "delivery owed (accepted events x 2)"}
	r.Slow = res
	t0 := time.Now()
	err := b.withStack(ctx, ingest, nil, func(st *stack, in *ingester) error {
		if err := b.setup(ctx, st, in, 1); err != nil {
			return err
		}
		res.Alone, _ = b.runStep(ctx, st, in, stepSpec{name: "fast alone", subs: []int{0}, rate: b.cfg.slowRate, d: b.cfg.slowBase, drain: b.cfg.drain})
		slowRcv, err := st.addSubscription(ctx)
		if err != nil {
			return err
		}
		slowRcv.delay.Store(int64(b.cfg.slowWait))
		if err := b.warmup(ctx, st, in, 8); err != nil {
			return err
		}
		o := b.observe(ctx, st)
		var p *phase
		res.WithSlow, p = b.runStep(ctx, st, in, stepSpec{name: "fast with slow", subs: []int{0, 1}, rate: b.cfg.slowRate,
			d: b.cfg.slowDur, drain: b.cfg.drain, drainSubs: []int{0}})
		res.SlowArrivals = p.unique[1].Load()
		res.SlowBacklog = max(0, p.accepted.Load()-res.SlowArrivals)
		res.DeliveriesOwe = 2 * p.accepted.Load()
		w := b.table()
		fmt.Fprintln(w, "fast endpoint\toffered ev/s\tseconds\tdeliveries\tp50\tp99\tmax\tlost\tdups\twebhookd cores\tother cores\t")
		for _, s := range []stepResult{res.Alone, res.WithSlow} {
			fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%d\t%s\t%s\t%s\t%d\t%d\t%.2f\t%.2f\t\n", s.Name, s.OfferedEventsPS, s.Seconds, s.Received,
				fmtMs(s.Latency.P50ms, false), fmtMs(s.Latency.P99ms, s.LatencyLowerBound), fmtMs(s.Latency.Maxms, false), s.Lost, s.Duplicates, s.WebhookdCores, s.OtherCores)
		}
		w.Flush()
		fmt.Fprintf(b.out, "fast p99: %s alone, %s with the slow neighbour\n",
			fmtMs(res.Alone.Latency.P99ms, res.Alone.LatencyLowerBound), fmtMs(res.WithSlow.Latency.P99ms, res.WithSlow.LatencyLowerBound))
		fmt.Fprintf(b.out, "slow endpoint (answers after %s): %d requests reached it in %.0f s; backlog %d of %d deliveries not yet started\n",
			b.cfg.slowWait, res.SlowArrivals, res.WithSlow.Seconds+res.WithSlow.DrainSeconds, res.SlowBacklog, p.accepted.Load())
		c, _ := st.counters(ctx)
		b.printDeltas("webhooks_*_total deltas over the phase with the slow endpoint", deltas(o.counters, c, res.DeliveriesOwe), "delivery owed")
		b.finish(ctx, r, st, o, res.DeliveriesOwe)
		return nil
	})
	r.Seconds = time.Since(t0).Seconds()
	b.printRunFooter(r)
	return err
}

// logQueryResult holds the delivery-log read figures.
type logQueryResult struct {
	After      string  `json:"after"`
	Deliveries int64   `json:"deliveries"` // received by the receivers before the queries
	DataDirMB  float64 `json:"dataDirMB"`
	IDs        int     `json:"idsGathered"`
	FailedIDs  int     `json:"failedIdsGathered"`
	Walk       reads   `json:"walk"` // list pages of 100 read to gather ids
	Get        reads   `json:"get"`
	List       reads   `json:"list"`
	ListFailed reads   `json:"listFailed"`
	// ListFailedBad counts items of status=failed pages that are not
	// failed; ListFailedSize is their mean number per page.
	ListFailedBad  int     `json:"listFailedWrongStatus"`
	ListFailedSize float64 `json:"listFailedAvgItems"`
}

// reads is one kind of timed read: its latencies (answers of any status
// included), how many were not 200, and whether the bench gave up on it.
type reads struct {
	Latency  quantiles `json:"latency"`
	Non200   int       `json:"non200"`
	LastCode int       `json:"lastNon200Code,omitempty"`
	GaveUp   bool      `json:"gaveUp,omitempty"` // after maxFailedReads failures in a row
	h        histogram
	inARow   int
}

// maxFailedReads in a row end one kind of read: a route that times out
// would otherwise hold the run for hours.
const maxFailedReads = 10

// note records one answer; it reports whether to go on.
func (rd *reads) note(code int, d time.Duration) bool {
	rd.h.RecordDuration(d)
	rd.Latency = summarize(&rd.h)
	if code == http.StatusOK {
		rd.inARow = 0
		return true
	}
	rd.Non200++
	rd.LastCode = code
	rd.inARow++
	rd.GaveUp = rd.inARow >= maxFailedReads
	return !rd.GaveUp
}

func (rd *reads) row(w io.Writer, name string) {
	note := ""
	if rd.LastCode != 0 {
		note = fmt.Sprintf(" (last %d)", rd.LastCode)
	}
	if rd.GaveUp {
		note += fmt.Sprintf(", stopped after %d failures in a row", maxFailedReads)
	}
	fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d%s\t\n", name, rd.Latency.N, fmtMs(rd.Latency.P50ms, false),
		fmtMs(rd.Latency.P99ms, false), fmtMs(rd.Latency.Maxms, false), rd.Non200, note)
}

// logQueryAlone fills a webhookd with deliveries, some failing, and
// measures the delivery log's reads.
func (b *bench) logQueryAlone(ctx context.Context, ingest string) error {
	extra := b.logExtra()
	r := b.newRun("logquery", ingest, b.cfg.subs, extra)
	res := &logQueryResult{After: "its own delivery run"}
	r.LogQuery = res
	t0 := time.Now()
	err := b.withStack(ctx, ingest, extra, func(st *stack, in *ingester) error {
		if err := b.setup(ctx, st, in, b.cfg.subs); err != nil {
			return err
		}
		b.setFail(st, b.cfg.logFail)
		o := b.observe(ctx, st)
		rate, src := b.memRate(ingest, b.cfg.subs)
		n := (b.cfg.logDeliveries + int64(b.cfg.subs) - 1) / int64(b.cfg.subs)
		fmt.Fprintf(b.out, "delivering %d events x %d subscriptions at %.0f events/s (%s), %.1f%% answered 500\n", n, b.cfg.subs, rate, src, 100*b.cfg.logFail)
		drain := time.Duration(max(60, 2*float64(n)/rate) * float64(time.Second))
		s, _ := b.runStep(ctx, st, in, stepSpec{name: "fill", subs: st.subs(), rate: rate, total: n, drain: drain})
		r.Steps = []stepResult{s}
		b.printSteps(r.Steps)
		res.Deliveries = st.tr.unique.Load()
		b.finish(ctx, r, st, o, 0)
		return b.queries(ctx, st, res)
	})
	r.Seconds = time.Since(t0).Seconds()
	b.printRunFooter(r)
	return err
}

// deliveryPage is the part of a deliveries list page the bench reads.
type deliveryPage struct {
	Data []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"data"`
	NextCursor string `json:"nextCursor"`
}

// queries measures the delivery log's reads, one request at a time. An
// answer other than 200 is counted, timed, and not fatal.
func (b *bench) queries(ctx context.Context, st *stack, res *logQueryResult) error {
	if du, err := diskUsage(st.dataDir); err == nil {
		res.DataDirMB = float64(du) / (1 << 20)
	}
	fmt.Fprintf(b.stderr, "  logquery: walking up to %d list pages per subscription and status\n", b.cfg.logPages)
	var ids []string
	for _, sub := range st.subIDs {
		for _, status := range []string{"", "failed"} {
			cursor := ""
			for range b.cfg.logPages {
				q := url.Values{"limit": {"100"}}
				if status != "" {
					q.Set("status", status)
				}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				var page deliveryPage
				code, d, err := st.get(ctx, "/api/subscriptions/"+url.PathEscape(sub)+"/deliveries?"+q.Encode(), &page)
				if err != nil {
					return err
				}
				res.Walk.note(code, d)
				for _, it := range page.Data {
					ids = append(ids, it.ID)
					if status != "" {
						res.FailedIDs++
					}
				}
				if cursor = page.NextCursor; cursor == "" || code != http.StatusOK {
					break
				}
			}
		}
	}
	res.IDs = len(ids)
	fmt.Fprintf(b.stderr, "  logquery: %d ids; %d GET /api/deliveries/{id}\n", len(ids), b.cfg.logGets)
	rng := rand.New(rand.NewPCG(b.cfg.seed, b.cfg.seed^0x5eed))
	for i := 0; i < b.cfg.logGets && len(ids) > 0; i++ {
		code, d, err := st.get(ctx, "/api/deliveries/"+url.PathEscape(ids[rng.IntN(len(ids))]), nil)
		if err != nil {
			return err
		}
		if !res.Get.note(code, d) {
			break
		}
	}
	fmt.Fprintf(b.stderr, "  logquery: %d list pages of 50 with and without status=failed\n", b.cfg.logLists)
	var items, pages int
	for i := range b.cfg.logLists {
		if res.List.GaveUp && res.ListFailed.GaveUp {
			break
		}
		sub := url.PathEscape(st.subIDs[i%len(st.subIDs)])
		if !res.List.GaveUp {
			code, d, err := st.get(ctx, "/api/subscriptions/"+sub+"/deliveries?limit=50", nil)
			if err != nil {
				return err
			}
			res.List.note(code, d)
		}
		if !res.ListFailed.GaveUp {
			var page deliveryPage
			code, d, err := st.get(ctx, "/api/subscriptions/"+sub+"/deliveries?limit=50&status=failed", &page)
			if err != nil {
				return err
			}
			if res.ListFailed.note(code, d); code == http.StatusOK {
				pages++
				items += len(page.Data)
				for _, it := range page.Data {
					if it.Status != "failed" {
						res.ListFailedBad++
					}
				}
			}
		}
	}
	res.ListFailedSize = float64(items) / float64(max(1, pages))
	fmt.Fprintf(b.out, "delivery log after %d deliveries (%s); data dir %.0f MB; %d ids gathered from %d list pages of 100 (%d failed)\n",
		res.Deliveries, res.After, res.DataDirMB, res.IDs, res.Walk.Latency.N, res.FailedIDs)
	w := b.table()
	fmt.Fprintln(w, "request, one at a time\tn\tp50\tp99\tmax\tnon-200\t")
	res.Walk.row(w, "GET /api/subscriptions/{id}/deliveries?limit=100 (walk for ids)")
	res.Get.row(w, "GET /api/deliveries/{id}")
	res.List.row(w, "GET /api/subscriptions/{id}/deliveries?limit=50")
	res.ListFailed.row(w, "GET /api/subscriptions/{id}/deliveries?limit=50&status=failed")
	w.Flush()
	fmt.Fprintf(b.out, "status=failed pages held %.1f items on average, %d of them not failed; latencies include answers that were not 200\n", res.ListFailedSize, res.ListFailedBad)
	if len(ids) == 0 {
		fmt.Fprintln(b.out, "no delivery id could be gathered from the list pages, so GET /api/deliveries/{id} was not measured")
	}
	return nil
}

// get sends one tenant GET and times it to the end of the body; with out,
// the body is decoded after the timing.
func (s *stack) get(ctx context.Context, path string, out any) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	t := time.Now()
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t)
	if err != nil {
		return 0, 0, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			return 0, 0, fmt.Errorf("GET %s: %w", path, err)
		}
	}
	return resp.StatusCode, d, nil
}

// averages returns the means of consecutive groups of n values (the last
// group may be shorter).
func averages(vs []int64, n int) []int64 {
	var out []int64
	for i := 0; i < len(vs); i += n {
		g := vs[i:min(i+n, len(vs))]
		var sum int64
		for _, v := range g {
			sum += v
		}
		out = append(out, sum/int64(len(g)))
	}
	return out
}
