package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onestack/webhooks/client"
)

// The neighbours scenario: a quiet tenant B, one subscription to a fast
// receiver, publishing -neighbours-rate events/s one by one over
// POST /api/events, measured alone and then beside each noisy tenant A of
// -neighbours-variants, every ratio against that B alone of the same run.
// B is each stack's bench tenant (rateLimit 1,000,000 from the operator,
// the limiter on, as in every scenario): 10 events/s is 600 requests a
// minute, past the default budget of 100.
//
// Each variant runs on a fresh webhookd: what a tenant A leaves behind
// (retries scheduled minutes ahead, breakers, parked deliveries) would
// otherwise land in the next variant's figures. B alone is measured on the
// first one, after its tenant A is made and before A publishes; with
// -neighbours-after, again on a fresh webhookd at the end, which shows how
// much the machine moved during the run.

// A neighbourLoad is what a tenant A does beside B.
type neighbourLoad int

const (
	// loadBatches: a batch of 100 events every 20 s (3 requests a minute).
	loadBatches neighbourLoad = iota
	// loadBudget: 100 batches of 100 a minute with its rate limit at 100:
	// its whole API budget.
	loadBudget
	// loadReplay: one replay of -replay-events events, published before,
	// to a subscription paced at -replay-pace.
	loadReplay
)

// A neighbourVariant is one tenant A: its endpoints and what it publishes.
type neighbourVariant struct {
	name  string
	what  string
	kinds []fakeKind // the kind of each port, in turn
	subs  int        // subscription i goes to port i mod ports
	ports int
	load  neighbourLoad
}

// slowWait bounds the wait of a slow endpoint.
var slowWait = [2]time.Duration{5 * time.Second, 30 * time.Second}

var neighbourVariants = []neighbourVariant{
	{"never-12", "12 subscriptions to 1 port that accepts and never answers", []fakeKind{fakeNever}, 12, 1, loadBatches},
	{"never-200", "200 subscriptions to 200 ports that accept and never answer", []fakeKind{fakeNever}, 200, 200, loadBatches},
	{"slow-12", "12 subscriptions to 1 port answering in 5-30 s", []fakeKind{fakeSlow}, 12, 1, loadBatches},
	{"slow-200", "200 subscriptions to 200 ports answering in 5-30 s", []fakeKind{fakeSlow}, 200, 200, loadBatches},
	{"broken-12", "12 subscriptions: 6 to a closed port, 6 to a port resetting connections", []fakeKind{fakeRefuse, fakeReset}, 12, 2, loadBatches},
	{"broken-200", "200 subscriptions to 200 ports: 100 closed, 100 resetting connections", []fakeKind{fakeRefuse, fakeReset}, 200, 200, loadBatches},
	{"refuse-12", "12 subscriptions to 1 closed port", []fakeKind{fakeRefuse}, 12, 1, loadBatches},
	{"refuse-200", "200 subscriptions to 200 closed ports", []fakeKind{fakeRefuse}, 200, 200, loadBatches},
	{"reset-12", "12 subscriptions to 1 port resetting connections", []fakeKind{fakeReset}, 12, 1, loadBatches},
	{"reset-200", "200 subscriptions to 200 ports resetting connections", []fakeKind{fakeReset}, 200, 200, loadBatches},
	{"filters-500", "500 subscriptions with a filter near the cost limit, matching nothing; 100 batches of 100 a minute", []fakeKind{fakeOK}, 500, 1, loadBudget},
	{"replay", "a replay to 1 subscription paced at -replay-pace", []fakeKind{fakeOK}, 1, 1, loadReplay},
}

// defaultNeighbourVariants run unless -neighbours-variants says otherwise:
// refusing and resetting endpoints share a variant (broken-*), to keep
// the scenario within about 12 minutes. The tenant publishing at its whole
// budget goes first: its rate-limit window, spent on making its 500
// subscriptions, turns while B runs alone.
const defaultNeighbourVariants = "filters-500,never-12,never-200,slow-12,slow-200,broken-12,broken-200,replay"

func variantNames() []string {
	var out []string
	for _, v := range neighbourVariants {
		out = append(out, v.name)
	}
	return out
}

func findVariant(name string) (neighbourVariant, bool) {
	for _, v := range neighbourVariants {
		if v.name == name {
			return v, true
		}
	}
	return neighbourVariant{}, false
}

// costlyFilter is a payload filter over the bench's events that matches
// none of them after comprehensions of outer x inner steps: 31 x 28 costs
// 9,676 of filter.CostLimit's 10,000 CEL units (34 x 28 is past it).
func costlyFilter(outer, inner int) string {
	list := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = strconv.Itoa(i)
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	return fmt.Sprintf(`%s.all(i, %s.all(j, data.ticketId.size() + i + j > 0)) && data.ticketId == "none"`, list(outer), list(inner))
}

// neighbourFilter is the filter of loadBudget's subscriptions.
var neighbourFilter = costlyFilter(31, 28)

// neighboursResult holds B alone and B beside each A.
type neighboursResult struct {
	RateEventsPS float64           `json:"bRateEventsPerSec"`
	Alone        stepResult        `json:"bAlone"`
	AloneAfter   *stepResult       `json:"bAloneAfter,omitempty"`
	Filter       string            `json:"filter"`
	ReplayPace   float64           `json:"replayPace"`
	Variants     []neighbourResult `json:"variants"`
}

// neighbourResult is B beside one A.
type neighbourResult struct {
	Name  string `json:"name"`
	What  string `json:"what"`
	Subs  int    `json:"subs"`
	Ports int    `json:"ports"`
	// Error is why the variant could not be measured.
	Error string `json:"error,omitempty"`

	B          stepResult `json:"b"`
	P99Ratio   float64    `json:"bP99Ratio"`   // B's p99 beside A over alone
	ExtraMaxMs float64    `json:"bExtraMaxMs"` // B's max beside A less alone
	Met        bool       `json:"targetMet"`   // ratio <= 2, extra <= 1 s, nothing missing

	ARequests int64  `json:"aRequests"`
	AAccepted int64  `json:"aEventsAccepted"`
	A429      int64  `json:"aStatus429"`
	ANon202   int64  `json:"aNon202"`
	AErrors   int64  `json:"aErrors"`
	ALastErr  string `json:"aLastError,omitempty"`

	// What A's endpoints saw, from the window's start to the end of B's
	// drain: connections accepted, the most open at once, HTTP requests.
	// ConnsMaxOpenPort is the most open at once at any one port, exactly;
	// ConnsMaxOpen at all ports together (sampled every second, and at
	// least ConnsMaxOpenPort).
	ConnsAccepted    int64 `json:"connectionsAccepted"`
	ConnsMaxOpenPort int64 `json:"connectionsMaxOpenOnePort"`
	ConnsMaxOpen     int64 `json:"connectionsMaxOpen"`
	EndpointRequests int64 `json:"endpointRequests"`

	Gauges   map[string]gaugeStats `json:"gauges"`   // webhookd's, scraped every second
	Counters []delta               `json:"counters"` // webhooks_*_total over the window and drain
	Job      *client.Job           `json:"job,omitempty"`
	Replayed int                   `json:"replayedAtOnce,omitempty"`
	Profile  string                `json:"profile,omitempty"`
}

// A neighbour is one tenant A on the stack with its endpoints.
type neighbour struct {
	*tenant
	v       neighbourVariant
	fakes   []*fake
	subIDs  []string
	lowered bool      // its rate limit was set to 100 after its setup
	turns   time.Time // when lowered, the end of its setup's rate-limit window
	since   time.Time // loadReplay: before its first event
}

// neighbours runs the scenario, each variant on a fresh webhookd.
func (b *bench) neighbours(ctx context.Context) error {
	var extra []string
	debug := ""
	if b.cfg.profileDir != "" {
		var err error
		if debug, err = freePort(); err != nil {
			return err
		}
		if err := os.MkdirAll(b.cfg.profileDir, 0o755); err != nil {
			return err
		}
		extra = []string{"--debug-addr", debug}
	}
	r := b.newRun("neighbours", ingestHTTP, 1, extra)
	res := &neighboursResult{RateEventsPS: b.cfg.neighboursRate, Filter: neighbourFilter, ReplayPace: b.cfg.replayPace}
	r.Neighbours = res
	t0 := time.Now()
	var err error
	for i, name := range b.cfg.neighboursVariants {
		if ctx.Err() != nil {
			break
		}
		v, _ := findVariant(name)
		err = b.withStack(ctx, ingestHTTP, extra, func(st *stack, in *ingester) error {
			defer b.countReceipts(r, st)
			qb, err := b.quietTenant(ctx, st, in)
			if err != nil {
				return err
			}
			nr := neighbourResult{Name: v.name, What: v.what, Subs: v.subs, Ports: v.ports}
			if v.load == loadReplay {
				nr.What = fmt.Sprintf("a replay of %d events to 1 subscription paced at %g/s", b.cfg.replayEvents, b.cfg.replayPace)
			}
			fmt.Fprintf(b.stderr, "  neighbours %s: %s\n", v.name, nr.What)
			n, prepErr := b.prepareNeighbour(ctx, st, v)
			if n != nil {
				defer n.close()
			}
			if i == 0 {
				fmt.Fprintf(b.stderr, "  neighbours: B alone for %s\n", b.cfg.neighboursAlone)
				res.Alone = qb.step(ctx, "B alone", b.cfg.neighboursAlone, time.Time{})
				b.printNeighbourLine(res.Alone, nil)
			}
			if prepErr != nil {
				nr.Error = prepErr.Error()
				fmt.Fprintf(b.out, "%s: not measured: %v\n", v.name, prepErr)
			} else {
				b.neighbourVariant(ctx, qb, n, &nr, debug, res.Alone)
				b.printNeighbourLine(nr.B, &nr)
			}
			res.Variants = append(res.Variants, nr)
			return nil
		})
		if err != nil {
			break
		}
	}
	if err == nil && b.cfg.neighboursAfter && ctx.Err() == nil {
		err = b.withStack(ctx, ingestHTTP, extra, func(st *stack, in *ingester) error {
			defer b.countReceipts(r, st)
			qb, err := b.quietTenant(ctx, st, in)
			if err != nil {
				return err
			}
			fmt.Fprintf(b.stderr, "  neighbours: B alone again for %s\n", b.cfg.neighboursAlone)
			s := qb.step(ctx, "B alone again", b.cfg.neighboursAlone, time.Time{})
			res.AloneAfter = &s
			b.printNeighbourLine(s, nil)
			return nil
		})
	}
	b.printNeighbours(res)
	r.Seconds = time.Since(t0).Seconds()
	b.printRunFooter(r)
	return err
}

// countReceipts adds what st's receivers verified and could not
// attribute to r.
func (b *bench) countReceipts(r *runResult, st *stack) {
	for _, rc := range st.recv {
		r.Verified += rc.verified.Load()
		r.BadSignatures += rc.badSig.Load()
	}
	r.Stray += st.tr.stray.Load()
}

// quietTenant is tenant B: the stack's bench tenant, its one receiver, and
// the phases it has published.
type quietTenant struct {
	b  *bench
	st *stack
	in *ingester
}

// quietTenant subscribes B's receiver and warms it up.
func (b *bench) quietTenant(ctx context.Context, st *stack, in *ingester) (*quietTenant, error) {
	in.single = true
	if err := b.setup(ctx, st, in, 1); err != nil {
		return nil, err
	}
	return &quietTenant{b: b, st: st, in: in}, nil
}

// step publishes B's events for d from start (zero: now, after waiting
// for a quiet machine) and waits up to -neighbours-drain for them.
func (q *quietTenant) step(ctx context.Context, name string, d time.Duration, start time.Time) stepResult {
	s, _ := q.b.runStep(ctx, q.st, q.in, stepSpec{name: name, subs: []int{0}, rate: q.b.cfg.neighboursRate, d: d,
		drain: q.b.cfg.neighboursDrain, batch: 1, start: start})
	return s
}

// neighbourVariant measures B beside tenant A, n, into nr.
func (b *bench) neighbourVariant(ctx context.Context, qb *quietTenant, n *neighbour, nr *neighbourResult, debug string, alone stepResult) {
	st, v := qb.st, n.v
	inA := newIngester(ctx, ingestHTTP, st, 8)
	inA.key = n.key
	pA := newPhase("A "+v.name, nil, 0)
	phA := st.tr.addPhase(pA)

	if wait := time.Until(n.turns); n.lowered && wait > 0 {
		fmt.Fprintf(b.stderr, "  neighbours %s: waiting %.0f s for tenant A's rate-limit window to turn\n", v.name, wait.Seconds())
		sleepUntil(ctx, n.turns.Add(time.Second))
	}
	waited, quiet := b.quiet(ctx, st.pid())
	c0, _ := st.counters(ctx)
	start := time.Now().Add(100 * time.Millisecond)
	watchCtx, stopWatch := context.WithCancel(ctx)
	gauges := watchGauges(watchCtx, st, neighbourGauges, time.Second, func() map[string]float64 {
		var open int64
		for _, f := range n.fakes {
			open += f.open.Load()
		}
		return map[string]float64{endpointsOpen: float64(open)}
	})
	var wg sync.WaitGroup
	var replayErr error
	wg.Go(func() {
		switch v.load {
		case loadBatches:
			inA.offer(ctx, pA, phA, plan{Rate: 5, Batch: 100}, start, b.cfg.neighboursDur, 0)
		case loadBudget:
			inA.offer(ctx, pA, phA, plan{Rate: 100 * 100 / 60.0, Batch: 100}, start, b.cfg.neighboursDur, 0)
		case loadReplay:
			sleepUntil(ctx, start)
			s, err := n.api.StartReplay(ctx, n.subIDs[0], n.since, time.Time{})
			if err != nil {
				replayErr = err
				return
			}
			nr.Replayed = s.Count
			if s.JobID != "" {
				nr.Job = &client.Job{ID: s.JobID}
			}
		}
	})
	if debug != "" {
		d := min(b.cfg.profileDur, b.cfg.neighboursDur/2)
		nr.Profile = filepath.Join(b.cfg.profileDir, "neighbours-"+v.name+".pprof")
		wg.Go(func() {
			sleepUntil(ctx, start.Add(b.cfg.neighboursDur/3))
			if err := saveProfile(ctx, st.hc, debug, d, nr.Profile); err != nil {
				fmt.Fprintf(b.stderr, "  neighbours %s: profile: %v\n", v.name, err)
				nr.Profile = ""
			}
		})
	}
	nr.B = qb.step(ctx, "B beside "+v.name, b.cfg.neighboursDur, start)
	nr.B.QuietWaitS = waited.Seconds()
	nr.B.Disturbed = nr.B.Disturbed || !quiet
	wg.Wait()
	pA.inflight.Wait()
	inA.close()
	stopWatch()
	nr.Gauges = gauges()
	c1, _ := st.counters(ctx)
	nr.Counters = deltas(c0, c1, 0)
	a := measure(pA, nil)
	nr.ARequests, nr.AAccepted, nr.A429, nr.ANon202, nr.AErrors, nr.ALastErr = a.Requests, a.Accepted, a.R429, a.Non202, a.Errors, a.LastError
	if replayErr != nil {
		nr.ALastErr = "replay: " + replayErr.Error()
	}
	if nr.Job != nil {
		if j, err := n.api.Job(ctx, nr.Job.ID); err == nil {
			nr.Job = &j
		}
	}
	for _, f := range n.fakes {
		nr.ConnsAccepted += f.accepted.Load()
		nr.ConnsMaxOpenPort = max(nr.ConnsMaxOpenPort, f.maxOpen.Load())
		nr.EndpointRequests += f.requests.Load()
	}
	nr.ConnsMaxOpen = max(nr.ConnsMaxOpenPort, int64(nr.Gauges[endpointsOpen].Max))
	b.neighbourRatios(nr, alone)
}

// endpointsOpen names, among the gauges, the connections open at A's
// endpoints together, as the bench samples them.
const endpointsOpen = "bench_endpoint_connections_open"

// neighbourRatios fills B's figures against alone.
func (b *bench) neighbourRatios(nr *neighbourResult, alone stepResult) {
	if alone.Latency.P99ms > 0 {
		nr.P99Ratio = nr.B.Latency.P99ms / alone.Latency.P99ms
	}
	nr.ExtraMaxMs = nr.B.Latency.Maxms - alone.Latency.Maxms
	nr.Met = nr.P99Ratio <= 2 && nr.ExtraMaxMs <= 1000 && nr.B.Lost == 0
}

// neighbourGauges are the webhookd gauges a variant watches.
var neighbourGauges = []string{
	"webhooks_attempts_in_flight", "webhooks_destinations_open", "webhooks_consumer_pending",
	"webhooks_jobs_running", "process_open_fds", "go_goroutines",
}

// prepareNeighbour makes tenant A of v: its endpoints and subscriptions
// (and for a replay, its events first). On failure it returns what it
// made, to be closed.
func (b *bench) prepareNeighbour(ctx context.Context, st *stack, v neighbourVariant) (*neighbour, error) {
	t, err := st.createTenant(ctx, "neighbour "+v.name, 1_000_000)
	if err != nil {
		return nil, err
	}
	n := &neighbour{tenant: t, v: v, subIDs: make([]string, v.subs)}
	for p := range v.ports {
		f, err := newFake(v.kinds[p%len(v.kinds)], slowWait[0], slowWait[1])
		if err != nil {
			return n, err
		}
		n.fakes = append(n.fakes, f)
	}
	if v.load == loadReplay {
		if err := b.publishHistory(ctx, st, n); err != nil {
			return n, err
		}
	}
	err = forEach(v.subs, 8, func(i int) error {
		s := client.NewSubscription{
			URL: n.fakes[i%v.ports].URL("/a/" + strconv.Itoa(i)), EventTypes: []string{"ticket.updated"},
			Description: "webhookbench neighbour " + v.name,
		}
		switch v.load {
		case loadBudget:
			s.Filter = neighbourFilter
		case loadReplay:
			pace := b.cfg.replayPace
			s.RateLimit = &pace
		}
		sub, err := n.api.CreateSubscription(ctx, s)
		if err != nil {
			return fmt.Errorf("create subscription %d: %w", i, err)
		}
		n.subIDs[i] = sub.ID
		return nil
	})
	if err != nil {
		return n, err
	}
	if v.load == loadBudget {
		if err := st.setRateLimit(ctx, n.id, 100); err != nil {
			return n, err
		}
		n.lowered, n.turns = true, n.api.Budget().Reset
	}
	return n, nil
}

// publishHistory publishes -replay-events events as tenant A, before it
// has any subscription, and waits until the fan-out has read them.
func (b *bench) publishHistory(ctx context.Context, st *stack, n *neighbour) error {
	c0, _ := st.counters(ctx)
	n.since = time.Now().Add(-time.Second).UTC()
	in := newIngester(ctx, ingestHTTP, st, 8)
	in.key = n.key
	p := newPhase("A history", nil, 0)
	ph := st.tr.addPhase(p)
	total := int64(b.cfg.replayEvents)
	fmt.Fprintf(b.stderr, "  neighbours replay: publishing %d events as tenant A\n", total)
	in.offer(ctx, p, ph, plan{Rate: 10_000, Batch: 100}, time.Now(), 0, total)
	p.inflight.Wait()
	in.close()
	if got := p.accepted.Load(); got != total {
		msg := ""
		if e := p.lastErr.Load(); e != nil {
			msg = ": " + *e
		}
		return fmt.Errorf("%d of %d events of its history accepted%s", got, total, msg)
	}
	const fanned = "webhooks_fanout_events_total"
	ok := waitFor(ctx, 2*time.Minute, func() bool {
		c, err := st.counters(ctx)
		return err == nil && c[fanned]-c0[fanned] >= float64(total)
	})
	if !ok {
		return fmt.Errorf("the fan-out did not read its %d events within 2 minutes", total)
	}
	return nil
}

// close closes A's endpoints, cutting the attempts they hold, so that
// webhookd stops at once.
func (n *neighbour) close() {
	for _, f := range n.fakes {
		f.Close()
	}
}

// forEach runs fn(i) for every i in [0, n) on up to workers goroutines
// and returns the first error; after one, the rest is not started.
func forEach(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// gaugeStats is one gauge over a stretch: its largest and last value.
type gaugeStats struct {
	Max  float64 `json:"max"`
	Last float64 `json:"last"`
}

// watchGauges scrapes webhookd's named gauges, and reads the bench's own
// (extra), every interval until ctx ends; the returned func waits for that
// and gives each gauge's figures.
func watchGauges(ctx context.Context, st *stack, names []string, every time.Duration, extra func() map[string]float64) func() map[string]gaugeStats {
	out := map[string]gaugeStats{}
	done := make(chan struct{})
	note := func(vs map[string]float64) {
		for k, v := range vs {
			g := out[k]
			g.Max, g.Last = max(g.Max, v), v
			out[k] = g
		}
	}
	go func() {
		defer close(done)
		for {
			if page, err := st.metrics(ctx); err == nil {
				note(parseSeries(page, func(s string) bool { return slices.Contains(names, s) }))
			}
			note(extra())
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	return func() map[string]gaugeStats {
		<-done
		return out
	}
}

// saveProfile writes a CPU profile of d from webhookd's --debug-addr to
// path, and then its goroutines, grouped by stack, to path.goroutines.txt
// (what waits, and where).
func saveProfile(ctx context.Context, hc *http.Client, debug string, d time.Duration, path string) error {
	secs := max(1, int(d.Seconds()))
	if err := saveURL(ctx, hc, "http://"+debug+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), path); err != nil {
		return err
	}
	return saveURL(ctx, hc, "http://"+debug+"/debug/pprof/goroutine?debug=1", path+".goroutines.txt")
}

// saveURL writes the body of a GET of u to path.
func saveURL(ctx context.Context, hc *http.Client, u, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printNeighbourLine prints one of B's stretches as it ends, with A's
// figures when nr is set.
func (b *bench) printNeighbourLine(s stepResult, nr *neighbourResult) {
	dist := ""
	if s.Disturbed {
		dist = " (disturbed: other processes " + strconv.FormatFloat(s.OtherCores, 'f', 2, 64) + " cores)"
	}
	fmt.Fprintf(b.out, "%s: p50 %s p99 %s max %s; %d of %d received within %s of the end; POST /api/events answered in p50 %s p99 %s max %s (%d not 202, %d errors)%s\n", s.Name,
		fmtMs(s.Latency.P50ms, false), fmtMs(s.Latency.P99ms, s.LatencyLowerBound), fmtMs(s.Latency.Maxms, false),
		s.Received, s.Expected, b.cfg.neighboursDrain, fmtMs(s.Ingest.P50ms, false), fmtMs(s.Ingest.P99ms, false), fmtMs(s.Ingest.Maxms, false),
		s.Non202+s.R429, s.Errors, dist)
	if s.LastError != "" {
		fmt.Fprintf(b.out, "   B's last publish error: %s\n", s.LastError)
	}
	if nr == nil {
		return
	}
	fmt.Fprintf(b.out, "   p99 %.2fx alone, max %+.0f ms", nr.P99Ratio, nr.ExtraMaxMs)
	if nr.ARequests > 0 {
		fmt.Fprintf(b.out, "; A: %d events accepted in %d requests (%d answered 429, %d other refusals, %d errors)",
			nr.AAccepted, nr.ARequests, nr.A429, nr.ANon202, nr.AErrors)
	}
	fmt.Fprintln(b.out)
	if nr.ALastErr != "" {
		fmt.Fprintf(b.out, "   A's last error: %s\n", nr.ALastErr)
	}
	g := nr.Gauges
	fmt.Fprintf(b.out, "   A's endpoints: %d connections accepted, at most %d open at once (%d at one port), %d requests; webhookd at most: %.0f attempts in flight, %.0f open fds, %.0f destinations open, %.0f consumer pending\n",
		nr.ConnsAccepted, nr.ConnsMaxOpen, nr.ConnsMaxOpenPort, nr.EndpointRequests, g["webhooks_attempts_in_flight"].Max, g["process_open_fds"].Max,
		g["webhooks_destinations_open"].Max, g["webhooks_consumer_pending"].Max)
	var cs []string
	for _, d := range nr.Counters {
		if strings.HasPrefix(d.Name, "webhooks_attempts_") || strings.HasPrefix(d.Name, "webhooks_filter_") ||
			d.Name == "webhooks_fanout_events_total" || d.Name == "webhooks_deliveries_parked_total" {
			cs = append(cs, fmt.Sprintf("%s %.0f", strings.TrimPrefix(d.Name, "webhooks_"), d.Delta))
		}
	}
	fmt.Fprintf(b.out, "   counters over the window and drain: %s\n", strings.Join(cs, ", "))
	if nr.Job != nil {
		fmt.Fprintf(b.out, "   replay job %s: %s, %d of %d sent at the end of the drain\n", nr.Job.ID, nr.Job.Status, nr.Job.Sent, nr.Job.Total)
	}
	if nr.Profile != "" {
		fmt.Fprintf(b.out, "   CPU profile: %s\n", nr.Profile)
	}
}

// printNeighbours prints the scenario's table.
func (b *bench) printNeighbours(res *neighboursResult) {
	fmt.Fprintf(b.out, "\ntenant B: 1 subscription to a fast receiver, %g events/s one by one over POST /api/events; beside each tenant A in turn, each on a fresh webhookd\n", res.RateEventsPS)
	w := b.table()
	fmt.Fprintln(w, "tenant A beside B\tB p50\tB p99\tB max\tp99 vs alone\tmax - alone\tB received\tB publish p99\tA events\tconns accepted\tmost open\tin flight (max)\tother cores\ttarget\t")
	row := func(name string, s stepResult) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t-\t-\t%d/%d\t%s\t-\t-\t-\t-\t%.2f\t\t\n", name, fmtMs(s.Latency.P50ms, false), fmtMs(s.Latency.P99ms, s.LatencyLowerBound),
			fmtMs(s.Latency.Maxms, false), s.Received, s.Expected, fmtMs(s.Ingest.P99ms, false), s.OtherCores)
	}
	row("none (B alone)", res.Alone)
	for _, nr := range res.Variants {
		if nr.Error != "" {
			fmt.Fprintf(w, "%s\tnot measured: %s\t\t\t\t\t\t\t\t\t\t\t\t\n", nr.Name, nr.Error)
			continue
		}
		s := nr.B
		met := "met"
		if !nr.Met {
			met = "MISSED"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.2fx\t%+.0f ms\t%d/%d\t%s\t%d\t%d\t%d\t%.0f\t%.2f\t%s\t\n", nr.Name, fmtMs(s.Latency.P50ms, false),
			fmtMs(s.Latency.P99ms, s.LatencyLowerBound), fmtMs(s.Latency.Maxms, false), nr.P99Ratio, nr.ExtraMaxMs, s.Received, s.Expected,
			fmtMs(s.Ingest.P99ms, false), nr.AAccepted, nr.ConnsAccepted, nr.ConnsMaxOpen, nr.Gauges["webhooks_attempts_in_flight"].Max, s.OtherCores, met)
	}
	if res.AloneAfter != nil {
		row("none (B alone again)", *res.AloneAfter)
	}
	w.Flush()
	fmt.Fprintf(b.out, "target: B's p99 beside A <= 2x alone, max <= alone + 1 s, every delivery received (within %s of the end)\n", b.cfg.neighboursDrain)
	fmt.Fprintf(b.out, "B's latency runs from the bench's POST /api/events to the receipt, so it holds the publish's answer time (B publish p99); 'most open' is A's endpoints' connections open at once\n")
}
