// Command webhookbench measures webhookd from the outside, next to a
// baseline measured in the same run.
//
// It builds ./cmd/webhookd from the module it runs in, starts it as a child
// process on fresh temporary storage (--nats-listen on a free loopback port,
// --allow-private-destinations --allow-http, an admin token, --log-level
// warn, plus -webhookd-args), creates a tenant with rateLimit 1,000,000 over
// the operator API (the limiter stays on) and subscribes -subs loopback
// receivers of its own to ticket.updated. It then offers events at an
// open-loop rate, either as POST /api/events/batch with the tenant's key or
// through events.Publisher over NATS (-ingest), and reads what the
// receivers got: throughput, publish→receipt latency (the send time rides
// in each event's data), deliveries lost and duplicated, webhookd's CPU and
// RSS from /proc, its webhooks_*_total counters from /metrics and the
// messages its JetStream streams stored. It imports nothing of the engine:
// only events (to publish), signature and client.
//
// The baseline is a bare net/http client posting Standard Webhooks-signed
// bodies of the same size to the same kind of receiver, closed loop, from
// -baseline-goroutines goroutines, measured before the scenarios and again
// after them. Ratios under the tables are against the first; the closing
// summary gives them against both and against the larger, which is the
// machine least disturbed and so the one to quote.
//
// Scenarios (-run, comma-separated; "all" runs every one), each on a fresh
// webhookd per ingest path:
//
//	saturation  step the offered rate up from -start-rate by -step-factor, each step
//	            -step-duration plus up to -drain; stop when delivered/s < 0.9 x offered
//	            or p99 > 2 s, then bisect -refine times, each on a fresh webhookd,
//	            between the last rate kept up with and the first not; saturation
//	            is the highest delivered/s of any step
//	latency     -latency-rate events/s for -latency-duration: p50, p99, max
//	overload    twice the saturation (-saturation, or this run's, or measured first)
//	            for -overload-duration: per-second figures, longest gap, drain
//	memory      -memory-deliveries at -memory-rate: webhookd's RSS after -memory-mark
//	            and after all of them, each after -idle-pause; data directory size
//	slow        two subscriptions, one answering after -slow-delay: the fast one's
//	            latency without and with it, the slow one's backlog, counter deltas
//	logquery    delivery log reads (GET /api/deliveries/{id}, list pages with and
//	            without status=failed) after a memory run on the same webhookd, or
//	            after delivering -log-deliveries; either way -log-fail of the
//	            deliveries are answered 500 and webhookd makes one attempt each
//	            (--retry-schedule=, added before -webhookd-args)
//	neighbours  a quiet tenant B (1 subscription, -neighbours-rate events/s one by one over
//	            POST /api/events) alone for -neighbours-alone, then beside each noisy
//	            tenant A of -neighbours-variants for -neighbours-duration, each on a
//	            fresh webhookd: B's p50, p99, max and deliveries against alone, A's
//	            endpoints' connections, webhookd's attempts in flight (and with
//	            -profile-dir, a CPU profile and the goroutines of each); it always runs
//	            over HTTP, once, whatever -ingest says
//
// Other processes on the machine disturb every figure. Before each step and
// the baseline the bench waits (up to -quiet-wait) for a second in which
// they use less than -quiet-cores in user mode (kernel time also holds work
// done for webhookd, so it is not counted); a step during which they used
// more is marked disturbed ("!"), and a disturbed saturation step that
// fails is repeated (-disturbed-retries), every attempt printed.
//
// Tables go to stdout; with -json, stdout carries one JSON document of every
// figure instead and the tables go to stderr. The machine, Go version and
// the git commit measured are printed first. Figures on a shared machine
// are noisy: repeat runs before drawing conclusions.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "webhookbench:", err)
		}
		os.Exit(1)
	}
}

// The scenarios, in the order they run.
var scenarioNames = []string{"saturation", "latency", "overload", "memory", "slow", "logquery", "neighbours"}

// config holds the flags.
type config struct {
	run, ingest   []string
	subs          int
	baselineDur   time.Duration
	baselineConc  int
	baselineAfter bool

	startRate, stepFactor, maxRate float64
	stepDur, drain                 time.Duration
	maxSteps, refine               int

	latencyRate float64
	latencyDur  time.Duration

	saturation    float64
	overloadDur   time.Duration
	overloadDrain time.Duration

	memoryDeliveries, memoryMark int64
	memoryRate                   float64
	idlePause                    time.Duration

	slowRate                    float64
	slowDur, slowBase, slowWait time.Duration

	logDeliveries               int64
	logFail, logRate            float64
	logGets, logLists, logPages int

	neighboursRate                                  float64
	neighboursAlone, neighboursDur, neighboursDrain time.Duration
	neighboursVariants                              []string
	neighboursAfter                                 bool
	replayEvents                                    int
	replayPace                                      float64
	profileDir                                      string
	profileDur                                      time.Duration

	quietCores       float64
	quietWait        time.Duration
	disturbedRetries int

	batch         int
	eventIDs      bool
	batchInterval time.Duration
	workers       int
	verifySample  float64
	webhookdArgs  []string
	stopGrace     time.Duration
	keep, json    bool
	seed          uint64
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("webhookbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	runList := fs.String("run", "saturation", "scenarios, comma-separated: "+strings.Join(scenarioNames, ", ")+", or all")
	ingest := fs.String("ingest", "both", "ingest path: http (POST /api/events/batch), publisher (events.Publisher over NATS), or both, one after the other")
	fs.IntVar(&c.subs, "subs", 4, "subscriptions to ticket.updated, each with its own receiver (slow always uses 2)")
	fs.DurationVar(&c.baselineDur, "baseline-duration", 5*time.Second, "how long the bare net/http baseline runs (0 skips it and every ratio)")
	fs.IntVar(&c.baselineConc, "baseline-goroutines", 64, "goroutines of the closed-loop baseline client")
	fs.BoolVar(&c.baselineAfter, "baseline-after", true, "measure the baseline again at the end, to show how much the machine's capacity moved (ratios use the first)")

	fs.Float64Var(&c.startRate, "start-rate", 250, "saturation: first step's offered rate, events/s")
	fs.Float64Var(&c.stepFactor, "step-factor", 1.5, "saturation: each step offers this many times the previous one")
	fs.Float64Var(&c.maxRate, "max-rate", 100_000, "saturation: never offer more events/s than this")
	fs.DurationVar(&c.stepDur, "step-duration", 10*time.Second, "saturation: how long each step offers load")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "saturation, latency and slow: how long a step's deliveries may trail its load")
	fs.IntVar(&c.maxSteps, "max-steps", 15, "saturation: at most this many steps")
	fs.IntVar(&c.refine, "refine", 2, "saturation: after the first failing step, this many more steps bisect (geometrically) between it and the last passing one, each on a fresh webhookd")

	fs.Float64Var(&c.latencyRate, "latency-rate", 500, "latency: offered events/s (each goes to every subscription)")
	fs.DurationVar(&c.latencyDur, "latency-duration", 30*time.Second, "latency: how long")

	fs.Float64Var(&c.saturation, "saturation", 0, "overload: the saturation in deliveries/s (0: this run's, else measured first)")
	fs.DurationVar(&c.overloadDur, "overload-duration", time.Minute, "overload: how long twice the saturation is offered")
	fs.DurationVar(&c.overloadDrain, "overload-drain", 10*time.Minute, "overload: how long the backlog may take to drain")

	fs.Int64Var(&c.memoryDeliveries, "memory-deliveries", 2_000_000, "memory: deliveries in all")
	fs.Int64Var(&c.memoryMark, "memory-mark", 200_000, "memory: the first RSS reading, after this many deliveries")
	fs.Float64Var(&c.memoryRate, "memory-rate", 0, "memory and logquery: offered events/s (0: 60% of this run's saturation, else 1000)")
	fs.DurationVar(&c.idlePause, "idle-pause", 5*time.Second, "memory: idle time before each RSS reading")

	fs.Float64Var(&c.slowRate, "slow-rate", 500, "slow: offered events/s")
	fs.DurationVar(&c.slowDur, "slow-duration", 30*time.Second, "slow: how long, with the slow endpoint")
	fs.DurationVar(&c.slowBase, "slow-baseline-duration", 10*time.Second, "slow: how long the fast endpoint runs alone first")
	fs.DurationVar(&c.slowWait, "slow-delay", 5*time.Second, "slow: how long the slow endpoint takes to answer")

	fs.Int64Var(&c.logDeliveries, "log-deliveries", 2_000_000, "logquery on its own: deliveries made before querying")
	fs.Float64Var(&c.logFail, "log-fail", 0.05, "logquery: fraction of deliveries the receivers answer 500, also in a memory run that logquery follows on the same webhookd (webhookd then runs with --retry-schedule= : one attempt, so failures are final)")
	fs.IntVar(&c.logGets, "log-gets", 1000, "logquery: GET /api/deliveries/{id} requests, on random ids from list pages")
	fs.IntVar(&c.logLists, "log-lists", 200, "logquery: list requests of each kind")
	fs.IntVar(&c.logPages, "log-pages", 10, "logquery: list pages of 100 walked per subscription to gather ids")

	fs.Float64Var(&c.neighboursRate, "neighbours-rate", 10, "neighbours: tenant B's events/s, each its own POST /api/events")
	fs.DurationVar(&c.neighboursAlone, "neighbours-alone", 30*time.Second, "neighbours: how long B runs alone (before the variants and, with -neighbours-after, after them)")
	fs.DurationVar(&c.neighboursDur, "neighbours-duration", time.Minute, "neighbours: how long B runs beside each tenant A")
	fs.DurationVar(&c.neighboursDrain, "neighbours-drain", 30*time.Second, "neighbours: how long B's deliveries may trail its publishing")
	variants := fs.String("neighbours-variants", defaultNeighbourVariants, "neighbours: the tenants A, comma-separated, from "+strings.Join(variantNames(), ", "))
	fs.BoolVar(&c.neighboursAfter, "neighbours-after", false, "neighbours: measure B alone again at the end, on a fresh webhookd (how much the machine moved during the run)")
	fs.IntVar(&c.replayEvents, "replay-events", 100_000, "neighbours: events tenant A publishes before its replay")
	fs.Float64Var(&c.replayPace, "replay-pace", 1, "neighbours: rateLimit (deliveries/s) of the subscription tenant A replays to")
	fs.StringVar(&c.profileDir, "profile-dir", "", "neighbours: run webhookd with --debug-addr and save a CPU profile and the goroutines of each variant here (none when empty)")
	fs.DurationVar(&c.profileDur, "profile-duration", 10*time.Second, "neighbours: each profile's length (at most half the variant), from a third of the variant on")

	fs.Float64Var(&c.quietCores, "quiet-cores", 0.5, "a step is 'disturbed' when other processes of the machine use this many cores or more during it")
	fs.DurationVar(&c.quietWait, "quiet-wait", time.Minute, "before each step and the baseline, wait up to this long for a second in which other processes use less than -quiet-cores (0: never wait)")
	fs.IntVar(&c.disturbedRetries, "disturbed-retries", 2, "saturation: repeat a failing step this many times at most when it was disturbed (every attempt is printed)")
	fs.IntVar(&c.batch, "batch", 100, "events per ingest request at most")
	fs.BoolVar(&c.eventIDs, "ids", false, "http: each event posted carries an id of its own (bench-<phase>-<seq>), which webhookd deduplicates within its duplicate window; without it webhookd makes the ids")
	fs.DurationVar(&c.batchInterval, "batch-interval", 10*time.Millisecond, "batches are sized so one leaves at least this often")
	fs.IntVar(&c.workers, "ingest-workers", 64, "ingest requests in flight at most")
	fs.Float64Var(&c.verifySample, "verify-sample", 0.01, "fraction of webhooks whose signature the receivers verify (0: none)")
	wargs := fs.String("webhookd-args", "", "extra webhookd flags, space-separated (no quoting), e.g. '--workers 1024'")
	fs.DurationVar(&c.stopGrace, "stop-grace", 30*time.Second, "SIGKILL webhookd this long after SIGTERM")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (binary, data directories, logs)")
	fs.BoolVar(&c.json, "json", false, "print one JSON document of every figure to stdout, the tables to stderr")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random choices (logquery's ids)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, name := range strings.Split(*runList, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			c.run = append(c.run, scenarioNames...)
		case slices.Contains(scenarioNames, name):
			c.run = append(c.run, name)
		default:
			return c, fmt.Errorf("-run: unknown scenario %q (want %s or all)", name, strings.Join(scenarioNames, ", "))
		}
	}
	switch *ingest {
	case "both":
		c.ingest = []string{ingestHTTP, ingestPublisher}
	case ingestHTTP, ingestPublisher:
		c.ingest = []string{*ingest}
	default:
		return c, fmt.Errorf("-ingest %q: want http, publisher or both", *ingest)
	}
	c.webhookdArgs = strings.Fields(*wargs)
	for _, name := range strings.Split(*variants, ",") {
		name = strings.TrimSpace(name)
		if _, ok := findVariant(name); !ok {
			return c, fmt.Errorf("-neighbours-variants: unknown variant %q (want %s)", name, strings.Join(variantNames(), ", "))
		}
		c.neighboursVariants = append(c.neighboursVariants, name)
	}
	switch {
	case c.subs < 1 || c.subs > maxSubs:
		return c, fmt.Errorf("-subs must be 1..%d", maxSubs)
	case c.startRate <= 0 || c.stepFactor <= 1 || c.maxRate < c.startRate:
		return c, errors.New("-start-rate must be positive, -step-factor above 1, -max-rate at least -start-rate")
	case c.batch < 1 || c.batch > 100 || c.workers < 1 || c.batchInterval <= 0:
		return c, errors.New("-batch must be 1..100, -ingest-workers and -batch-interval positive")
	case c.memoryMark <= 0 || c.memoryDeliveries < c.memoryMark:
		return c, errors.New("-memory-mark must be positive and at most -memory-deliveries")
	case c.logFail < 0 || c.logFail >= 1 || c.verifySample < 0 || c.verifySample > 1:
		return c, errors.New("-log-fail must be in [0, 1), -verify-sample in [0, 1]")
	case c.latencyRate <= 0 || c.slowRate <= 0 || c.memoryRate < 0 || c.logRate < 0 || c.saturation < 0 || c.neighboursRate <= 0 || c.replayPace <= 0:
		return c, errors.New("rates must be positive")
	case c.neighboursAlone <= 0 || c.neighboursDur <= 0 || c.replayEvents < 1:
		return c, errors.New("-neighbours-alone and -neighbours-duration must be positive, -replay-events at least 1")
	}
	return c, nil
}

const usage = `webhookbench measures webhookd from the outside: it builds ./cmd/webhookd, runs it
as a child process on fresh temporary storage, offers events at an open-loop rate over
HTTP (POST /api/events/batch) or NATS (events.Publisher), receives the webhooks on
loopback receivers, and reports each figure next to a baseline of the same run (a bare
net/http client posting signed bodies of the same size to the same kind of receiver).

Usage: go run ./cmd/webhookbench [flags]

Scenarios (-run, comma-separated, or all):
  saturation  offered rate stepped up until delivered/s < 0.9 x offered or p99 > 2 s,
              then bisected (-refine); saturation = the highest delivered/s of a step
  latency     p50/p99/max publish→receipt at -latency-rate for -latency-duration
  overload    twice the saturation for -overload-duration, per second; then the drain
  memory      webhookd RSS after -memory-mark and -memory-deliveries deliveries
  slow        a fast endpoint's latency with and without a slow neighbour
  logquery    delivery log reads: one delivery by id, list pages with and without
              status=failed (after memory on the same webhookd, or on its own)
  neighbours  a quiet tenant's publish→receipt latency alone, then beside noisy tenants
              (endpoints that hang, answer late, refuse or reset; costly filters at the
              whole API budget; a replay to a paced subscription); over HTTP, 11-13 min

Examples:
  go run ./cmd/webhookbench -run saturation -subs 4 -ingest publisher
  go run ./cmd/webhookbench -run latency,slow
  go run ./cmd/webhookbench -run memory,logquery -memory-deliveries 500000 -ingest publisher
  go run ./cmd/webhookbench -run neighbours -neighbours-variants never-12,filters-500

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parse(args, stderr)
	if err != nil {
		return err
	}
	out := stdout
	if cfg.json {
		out = stderr
	}
	b := &bench{cfg: cfg, out: out, stderr: stderr, ticks: clockTicks(), sats: map[string]float64{}}
	b.root, err = moduleRoot(ctx)
	if err != nil {
		return err
	}
	b.tmp, err = os.MkdirTemp("", "webhookbench-")
	if err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			fmt.Fprintf(stderr, "kept %s\n", b.tmp)
			return
		}
		os.RemoveAll(b.tmp)
	}()
	b.rep = &report{Started: time.Now().UTC(), Args: args, Machine: machine(ctx), Commit: commit(ctx, b.root), ClockTicks: b.ticks}
	b.printHeader()
	if b.bin, err = buildWebhookd(ctx, b.root, b.tmp); err != nil {
		return err
	}
	if cfg.baselineDur > 0 {
		b.quiet(ctx, 0)
		bl, err := runBaseline(ctx, cfg.baselineConc, cfg.baselineDur, cfg.verifySample, b.ticks)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		b.rep.Baseline = &bl
		b.printBaseline(bl)
	}
	runErr := b.runAll(ctx)
	if runErr == nil && cfg.baselineDur > 0 && cfg.baselineAfter {
		b.quiet(ctx, 0)
		bl, err := runBaseline(ctx, cfg.baselineConc, cfg.baselineDur, cfg.verifySample, b.ticks)
		if err != nil {
			return fmt.Errorf("baseline after: %w", err)
		}
		b.rep.BaselineAfter = &bl
		fmt.Fprintf(b.out, "== baseline again, after the scenarios: %.0f req/s (%.0f%% of the first; the ratios above use the first)\n",
			bl.PerSecond, 100*bl.PerSecond/b.rep.Baseline.PerSecond)
	}
	b.printSummary()
	b.rep.Finished = time.Now().UTC()
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(b.rep); err != nil {
			return err
		}
	}
	return runErr
}

func (b *bench) runAll(ctx context.Context) error {
	for i, ingest := range b.cfg.ingest {
		for _, name := range scenarioNames {
			if !slices.Contains(b.cfg.run, name) {
				continue
			}
			if name == "logquery" && slices.Contains(b.cfg.run, "memory") {
				continue // it ran on the memory run's webhookd
			}
			if name == "neighbours" && i > 0 {
				continue // it runs once, over HTTP
			}
			if err := b.scenario(ctx, name, ingest); err != nil {
				return fmt.Errorf("%s (ingest %s): %w", name, ingest, err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// bench is one invocation: its configuration, the webhookd binary, the
// baseline and the report.
type bench struct {
	cfg         config
	out, stderr io.Writer
	root, tmp   string
	bin         string
	ticks       int64
	rep         *report
	sats        map[string]float64 // saturation in deliveries/s by ingest and subscriptions
	stacks      int
}

// withStack starts a fresh webhookd, runs fn on it with an ingester, and
// stops it; on failure it prints the tail of webhookd's log.
func (b *bench) withStack(ctx context.Context, ingest string, extra []string, fn func(*stack, *ingester) error) error {
	b.stacks++
	dir := filepath.Join(b.tmp, fmt.Sprintf("stack%d", b.stacks))
	args := append(append([]string(nil), extra...), b.cfg.webhookdArgs...)
	st, err := startStack(ctx, b.bin, dir, args, b.cfg.verifySample)
	if err != nil {
		if st == nil {
			tail, _ := os.ReadFile(filepath.Join(dir, "webhookd.log"))
			fmt.Fprintf(b.stderr, "webhookd log:\n%s\n", lastLines(string(tail), 40))
		}
		return err
	}
	fmt.Fprintf(b.out, "webhookd pid %d: %s\n", st.pid(), strings.Join(st.args, " "))
	in := newIngester(ctx, ingest, st, b.cfg.workers)
	in.ids = b.cfg.eventIDs
	err = fn(st, in)
	in.close()
	if err != nil {
		fmt.Fprintf(b.stderr, "webhookd log (last 40 lines):\n%s\n", st.logTail(40))
	}
	if stopErr := st.stop(b.cfg.stopGrace); stopErr != nil {
		fmt.Fprintf(b.out, "note: %v\n", stopErr)
	}
	if !b.cfg.keep {
		os.RemoveAll(st.dataDir)
	}
	return err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
