package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// report is every figure of one invocation, as -json prints it.
type report struct {
	Started    time.Time       `json:"started"`
	Finished   time.Time       `json:"finished"`
	Args       []string        `json:"args"`
	Machine    machineInfo     `json:"machine"`
	Commit     commitInfo      `json:"commit"`
	ClockTicks int64           `json:"clockTicks"`
	Baseline   *baselineResult `json:"baseline,omitempty"`
	// BaselineAfter is the baseline measured again after the scenarios.
	BaselineAfter *baselineResult `json:"baselineAfter,omitempty"`
	Runs          []*runResult    `json:"runs"`
}

type machineInfo struct {
	Cores      int    `json:"cores"`
	CPU        string `json:"cpu"`
	MemoryMB   int64  `json:"memoryMB"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"goVersion"`
	GoBuild    string `json:"goBuild"` // the go command that built webhookd
	LoadAvg    string `json:"loadAvg"` // at the start: other work on the machine
	GOMAXPROCS int    `json:"gomaxprocs"`
	Hostname   string `json:"hostname"`
}

type commitInfo struct {
	Head  string `json:"head"`
	Dirty bool   `json:"dirty"` // tracked changes or untracked .go files outside this command
	// BenchDirty: this command itself has uncommitted changes.
	BenchDirty bool `json:"benchDirty"`
	// Engine is the last commit touching anything but this command and
	// the saved results: the code actually measured.
	Engine  string `json:"engine"`
	Subject string `json:"engineSubject"`
}

// runResult is one scenario on one ingest path.
type runResult struct {
	Scenario     string   `json:"scenario"`
	Ingest       string   `json:"ingest"`
	Subs         int      `json:"subs"`
	WebhookdArgs []string `json:"webhookdArgs"`
	Seconds      float64  `json:"seconds"`

	Steps           []stepResult `json:"steps,omitempty"`
	Saturation      float64      `json:"saturationDeliveriesPerSec,omitempty"`
	SaturationRatio float64      `json:"saturationRatio,omitempty"`
	Saturated       bool         `json:"saturated,omitempty"` // false: stepping ended without reaching a limit
	// SaturationStepped and SaturationRefined split Saturation between the
	// steps on one webhookd and the refinement steps on fresh ones.
	SaturationStepped float64 `json:"saturationStepped,omitempty"`
	SaturationRefined float64 `json:"saturationRefined,omitempty"`

	Overload *overloadResult `json:"overload,omitempty"`
	Memory   *memoryResult   `json:"memory,omitempty"`
	Slow     *slowResult     `json:"slow,omitempty"`
	LogQuery *logQueryResult `json:"logQuery,omitempty"`
	// Neighbours is the noisy-neighbours scenario.
	Neighbours *neighboursResult `json:"neighbours,omitempty"`

	Counters []delta `json:"counters,omitempty"` // webhooks_*_total over the run
	Streams  []delta `json:"streams,omitempty"`  // JetStream messages stored over the run, by stream
	// StreamBytes is the change of the bytes each stream holds over the run
	// (what is retained, not what was written: a work queue gives its
	// acknowledged messages back).
	StreamBytes []delta `json:"streamBytes,omitempty"`

	Verified      int64 `json:"signaturesVerified"`
	BadSignatures int64 `json:"badSignatures"`
	Stray         int64 `json:"stray"` // receipts the bench could not attribute
}

func machine(ctx context.Context) machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemoryMB = kb / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		m.LoadAvg = strings.Join(f[:min(3, len(f))], " ")
	}
	if b, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.GoBuild = strings.TrimSpace(string(b))
	}
	return m
}

func commit(ctx context.Context, root string) commitInfo {
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	c := commitInfo{Head: git("rev-parse", "--short", "HEAD")}
	if c.Head == "" {
		c.Head = "unknown (not a git checkout)"
		return c
	}
	outside := []string{"--", ".", ":(exclude)cmd/webhookbench", ":(exclude)bench-results"}
	for _, line := range strings.Split(git(append([]string{"status", "--porcelain"}, outside...)...), "\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "??") || strings.HasSuffix(line, ".go") {
			c.Dirty = true
		}
	}
	c.BenchDirty = git("status", "--porcelain", "--", "cmd/webhookbench") != ""
	engine := git(append([]string{"log", "-1", "--format=%h %s"}, outside...)...)
	c.Engine, c.Subject, _ = strings.Cut(engine, " ")
	return c
}

// table returns a tabwriter over the bench's output; Flush it.
func (b *bench) table() *tabwriter.Writer {
	return tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func (b *bench) printHeader() {
	m, c := b.rep.Machine, b.rep.Commit
	dirty := "clean"
	if c.Dirty {
		dirty = "DIRTY (uncommitted changes outside cmd/webhookbench)"
	}
	if c.BenchDirty {
		dirty += "; cmd/webhookbench has uncommitted changes"
	}
	fmt.Fprintf(b.out, "webhookbench %s\n", b.rep.Started.Format(time.RFC3339))
	fmt.Fprintf(b.out, "machine   %d cores (GOMAXPROCS %d), %s, %d MB, Linux %s, load %s at start\n",
		m.Cores, m.GOMAXPROCS, m.CPU, m.MemoryMB, m.Kernel, m.LoadAvg)
	fmt.Fprintf(b.out, "go        %s (bench), %s (webhookd build)\n", m.GoVersion, m.GoBuild)
	fmt.Fprintf(b.out, "commit    HEAD %s, %s; engine last changed in %s %q\n", c.Head, dirty, c.Engine, c.Subject)
	fmt.Fprintf(b.out, "flags     %s\n", strings.Join(b.rep.Args, " "))
	fmt.Fprintf(b.out, "note      webhookd, NATS, the load generator and the receivers share this machine's cores; figures are noisy.\n")
	fmt.Fprintf(b.out, "          'other cores' is the user-mode CPU of every other process; a step marked ! had >= %.2f of it.\n\n", b.cfg.quietCores)
}

func (b *bench) printBaseline(bl baselineResult) {
	if bl.OtherCores >= b.cfg.quietCores {
		fmt.Fprintf(b.out, "!! the baseline was disturbed: other processes used %.2f cores in user mode; ratios against it flatter webhookd (see the summary)\n", bl.OtherCores)
	}
	fmt.Fprintf(b.out, "== baseline: bare net/http, %d goroutines, closed loop, %d-byte signed bodies, %.1f s\n", bl.Goroutines, bl.BodyBytes, bl.Seconds)
	fmt.Fprintf(b.out, "   %.0f req/s  (p50 %.2f ms, p99 %.2f ms, %d errors, bench process %.2f cores, other processes %.2f cores, %d signatures verified)\n\n",
		bl.PerSecond, bl.Latency.P50ms, bl.Latency.P99ms, bl.Errors, bl.BenchCores, bl.OtherCores, bl.Verified)
}

// ratio is x over the baseline, or 0 without one.
func (b *bench) ratio(x float64) float64 {
	if b.rep.Baseline == nil || b.rep.Baseline.PerSecond == 0 {
		return 0
	}
	return x / b.rep.Baseline.PerSecond
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

// fmtMs prints milliseconds readably; lower marks a figure that is only a
// lower bound.
func fmtMs(v float64, lower bool) string {
	s := ""
	switch {
	case v >= 1000:
		s = fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		s = fmt.Sprintf("%.0fms", v)
	default:
		s = fmt.Sprintf("%.1fms", v)
	}
	if lower {
		return ">=" + s
	}
	return s
}

const stepHeader = "step\toffered ev/s\toffered dlv/s\tdelivered/s\tvs offered\tp50\tp99\tlost\tdups\tcpu-s/1k dlv\twebhookd cores\tbench cores\tother cores\tRSS MB\tingest p99\tingest !202/429/err\t"

func stepRow(r stepResult) string {
	name := r.Name
	if r.Disturbed {
		name += " !"
	}
	return fmt.Sprintf("%s\t%.0f\t%.0f\t%.0f\t%.2f\t%s\t%s\t%d\t%d\t%.3f\t%.2f\t%.2f\t%.2f\t%.0f\t%s\t%d/%d/%d\t",
		name, r.OfferedEventsPS, r.OfferedPS, r.DeliveredPS, r.DeliveredPS/max(r.OfferedPS, 1e-9),
		fmtMs(r.Latency.P50ms, false), fmtMs(r.Latency.P99ms, r.LatencyLowerBound), r.Lost, r.Duplicates,
		r.CPUPer1k, r.WebhookdCores, r.BenchCores, r.OtherCores, r.RSSMB, fmtMs(r.Ingest.P99ms, false), r.Non202, r.R429, r.Errors)
}

func (b *bench) printSteps(steps []stepResult) {
	w := b.table()
	fmt.Fprintln(w, stepHeader)
	for _, s := range steps {
		fmt.Fprintln(w, stepRow(s))
	}
	w.Flush()
	for _, s := range steps {
		if s.Disturbed {
			fmt.Fprintf(b.out, "   ! disturbed: other processes used >= %.2f cores in user mode during the step, or never less for a second in the %s before it\n", b.cfg.quietCores, b.cfg.quietWait)
			break
		}
	}
	for _, s := range steps {
		if s.LastError != "" {
			fmt.Fprintf(b.out, "   %s: last ingest error: %s\n", s.Name, s.LastError)
		}
	}
}

func (b *bench) printDeltas(title string, ds []delta, perWhat string) {
	if len(ds) == 0 {
		fmt.Fprintf(b.out, "%s: none\n", title)
		return
	}
	fmt.Fprintf(b.out, "%s:\n", title)
	w := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "   series\tdelta\tper %s\t\n", perWhat)
	for _, d := range ds {
		fmt.Fprintf(w, "   %s\t%.0f\t%.3f\t\n", d.Name, d.Delta, d.PerDelivery)
	}
	w.Flush()
}

func (b *bench) printRunFooter(r *runResult) {
	if r.Verified+r.BadSignatures+r.Stray == 0 && len(r.Steps) == 0 {
		fmt.Fprintf(b.out, "scenario took %.0f s\n\n", r.Seconds)
		return
	}
	fmt.Fprintf(b.out, "signatures verified on a sample: %d good, %d bad; unattributed receipts: %d; scenario took %.0f s\n\n",
		r.Verified, r.BadSignatures, r.Stray, r.Seconds)
}

// printSummary lists the throughput figures against both baselines, so the
// reader sees how much the machine's capacity moved during the run.
func (b *bench) printSummary() {
	first, after := b.rep.Baseline, b.rep.BaselineAfter
	if first == nil {
		return
	}
	w := b.table()
	ref := first.PerSecond
	if after != nil {
		ref = max(ref, after.PerSecond)
	}
	fmt.Fprintln(w, "summary\tingest\tsubs\tdeliveries/s\tvs baseline before\tvs baseline after\tvs the larger\t")
	rows := 0
	for _, r := range b.rep.Runs {
		var what string
		var v float64
		switch {
		case r.Saturation > 0:
			what, v = "saturation", r.Saturation
		case r.Overload != nil:
			what, v = "overload (delivered)", r.Overload.DeliveredInWindowS
		default:
			continue
		}
		vsAfter := "-"
		if after != nil && after.PerSecond > 0 {
			vsAfter = fmtRatio(v / after.PerSecond)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t\n", what, r.Ingest, r.Subs, v, fmtRatio(v/first.PerSecond), vsAfter, fmtRatio(v/ref))
		rows++
	}
	if rows > 0 {
		fmt.Fprintln(b.out)
		w.Flush()
		fmt.Fprintf(b.out, "the larger baseline (%.0f req/s) is the machine's capacity least disturbed by other processes; its ratio is the one to quote\n", ref)
	}
}
