package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/oklog/ulid/v2"
	"github.com/onestack/webhooks/internal/jsretry"
	"golang.org/x/time/rate"

	"github.com/onestack/webhooks/internal/kvwatch"
)

// Bucket is the JetStream KV bucket of jobs.
const Bucket = "jobs"

// DefaultRate is Config.Rate's default: items a second one job sends.
const DefaultRate = 200

// Config tunes a Runner; the zero value of each field means its default.
type Config struct {
	// Rate is how many items per second one job sends at most (default
	// 200).
	Rate float64
	// Batch is how many items one batch sends at most (default 100).
	Batch int
	// MaxBacklog bounds what a job has sent that still waits to be worked
	// off (default 1,000): past it the job waits, so live traffic is never
	// queued behind a job's whole range.
	MaxBacklog int
	// Lease is how long a job stays with a runner that stopped renewing it
	// (a crashed process) before another takes it over (default 15 s).
	Lease time.Duration
	// Concurrency is how many jobs one runner runs at once (default 2).
	// Its slots are shared between tenants (see pick).
	Concurrency int
	// Yield is how long a job that cannot send (its backlog at
	// MaxBacklog) keeps its slot while another job waits for one
	// (default 5 s); it then gives the slot up and waits Yield before it
	// may take one again, twice as long each time in a row, at most 5
	// minutes (see deferral). With no other job waiting it keeps its slot.
	Yield time.Duration
	// Scan is how often a runner looks for jobs to take (default 1 s).
	Scan time.Duration
	// Retention is how long a finished job stays readable (default 7
	// days).
	Retention time.Duration
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// MaxBytes bounds the bucket (0: no bound; JetStream refuses a write
	// past it).
	MaxBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Watch is where the bucket's watch reports that it is down.
	Watch kvwatch.Config
	// Finished, if set, hears of each job's end (done or failed), once,
	// from the runner whose write recorded it under its lease. It must
	// not block.
	Finished func(Job)
}

func (c Config) withDefaults() Config {
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.MaxBacklog <= 0 {
		c.MaxBacklog = 1000
	}
	if c.Lease <= 0 {
		c.Lease = 15 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.Scan <= 0 {
		c.Scan = time.Second
	}
	if c.Yield <= 0 {
		c.Yield = 5 * time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Runner stores jobs and runs those it holds the lease of. It is safe for
// concurrent use.
type Runner struct {
	cfg    Config
	kv     jetstream.KeyValue
	worker Worker
	logger *slog.Logger
	id     string // this runner, as a job's owner

	mu      sync.Mutex
	running map[string]Job    // jobs the watch sees running (and those this runner created), by key
	watched uint64            // the last revision the watch applied
	mine    map[string]string // jobs this runner runs: their tenants, by key
	// creating serializes CreateIf, so that its admit sees the jobs this
	// runner created before.
	creating sync.Mutex
	kick     chan struct{}
	watch    *kvwatch.Watch // feeds running
	last     string         // the tenant of the job taken last; the loop's own

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open creates the bucket if needed and starts following it. Call Start
// to run jobs, and Stop to release them.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, worker Worker, logger *slog.Logger) (*Runner, error) {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kv, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      Bucket,
			Description: "Background jobs (replays, recoveries): status, counts, cursor and lease",
			History:     1,
			TTL:         cfg.Retention,
			MaxBytes:    cfg.MaxBytes,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", Bucket, err)
	}
	r := &Runner{cfg: cfg, kv: kv, worker: worker, logger: logger, id: "run_" + ulid.Make().String(),
		running: make(map[string]Job), mine: make(map[string]string), kick: make(chan struct{}, 1)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if r.watch, err = kvwatch.Start(ctx, kv, r.applyEntry, cfg.Watch, logger); err != nil {
		r.cancel()
		return nil, err
	}
	if err := r.watch.Loaded(ctx); err != nil {
		r.cancel()
		r.watch.Stop()
		return nil, fmt.Errorf("load jobs: %w", err)
	}
	return r, nil
}

// Bucket names the runner's KV bucket.
func (r *Runner) Bucket() string { return Bucket }

// applyEntry keeps the set of running jobs: a job leaves it when it ends,
// is deleted or does not decode.
func (r *Runner) applyEntry(e jetstream.KeyValueEntry) error {
	var j Job
	alive := e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &j) == nil && j.Status == StatusRunning
	r.mu.Lock()
	r.watched = max(r.watched, e.Revision())
	if alive {
		j.Revision = e.Revision()
		r.running[e.Key()] = j
	} else {
		delete(r.running, e.Key())
	}
	r.mu.Unlock()
	if alive && j.Owner == "" {
		r.wake()
	}
	return nil
}

func (r *Runner) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Create stores a new job, running: it fills in the id, status and times.
// A runner (this one, if it has room) takes it at once.
func (r *Runner) Create(ctx context.Context, j Job) (Job, error) { return r.CreateIf(ctx, j, nil) }

// CreateIf stores a new job as Create does if admit, given how many jobs
// of its tenant are running (TenantRunning), returns nil; else it returns
// admit's error and stores nothing. Creates through one runner take turns,
// so admit counts those made before it through this runner; jobs created
// at the same moment through other replicas are counted once this
// runner's watch has them, a few milliseconds later.
func (r *Runner) CreateIf(ctx context.Context, j Job, admit func(running int) error) (Job, error) {
	r.creating.Lock()
	defer r.creating.Unlock()
	if admit != nil {
		if err := admit(r.TenantRunning(j.TenantID)); err != nil {
			return Job{}, err
		}
	}
	if j.ID == "" {
		j.ID = NewID()
	}
	now := r.cfg.Now().UTC()
	j.Status, j.CreatedAt, j.UpdatedAt = StatusRunning, now, now
	j.Owner, j.LeaseUntil = "", time.Time{}
	b, _ := json.Marshal(j)
	rev, err := r.kv.Create(ctx, key(j.TenantID, j.ID), b)
	if err != nil {
		return Job{}, fmt.Errorf("create job: %w: %w", ErrUnavailable, err)
	}
	j.Revision = rev
	r.mu.Lock()
	if rev > r.watched {
		// Counted at once; the watch, not there yet, brings it and what
		// follows in order.
		r.running[key(j.TenantID, j.ID)] = j
	}
	r.mu.Unlock()
	r.wake()
	return j, nil
}

// TenantRunning counts tenant's jobs running (held by a runner or waiting
// for one) across the cluster, as this runner's watch and its own creates
// know them; it does no I/O.
func (r *Runner) TenantRunning(tenant string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, j := range r.running {
		if j.TenantID == tenant {
			n++
		}
	}
	return n
}

// Get reads one of tenant's jobs.
func (r *Runner) Get(ctx context.Context, tenant, id string) (Job, error) {
	if !ValidID(id) {
		return Job{}, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	e, err := r.kv.Get(ctx, key(tenant, id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted), errors.Is(err, jetstream.ErrInvalidKey):
		return Job{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	case err != nil:
		return Job{}, fmt.Errorf("read job %s: %w: %w", id, ErrUnavailable, err)
	}
	var j Job
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return Job{}, fmt.Errorf("decode job %s: %w", id, err)
	}
	j.Revision = e.Revision()
	return j, nil
}

// List reads tenant's jobs, newest first (ids sort by creation time):
// at most limit of those older than before ("" for the newest), and
// whether there are more.
func (r *Runner) List(ctx context.Context, tenant, before string, limit int) ([]Job, bool, error) {
	lister, err := r.kv.ListKeysFiltered(ctx, tenant+".>")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list jobs: %w: %w", ErrUnavailable, err)
	}
	var ids []string
	for k := range lister.Keys() {
		if id := strings.TrimPrefix(k, tenant+"."); before == "" || id < before {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	more := len(ids) > limit
	out := make([]Job, 0, min(limit, len(ids)))
	for _, id := range ids[:min(limit, len(ids))] {
		j, err := r.Get(ctx, tenant, id)
		if errors.Is(err, ErrNotFound) { // expired since it was listed
			continue
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, j)
	}
	return out, more, nil
}

// Start runs jobs until Stop.
func (r *Runner) Start() {
	r.wg.Add(1)
	go r.loop()
}

// Stop stops taking jobs and stops those running, releasing their leases
// so another runner (or this process restarted) resumes them at once; it
// returns when they have stopped or ctx ends.
func (r *Runner) Stop(ctx context.Context) {
	r.cancel()
	r.watch.Stop()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (r *Runner) loop() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.Scan)
	defer t.Stop()
	for {
		r.takeWaiting()
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}

// takeWaiting takes running jobs that no runner holds, while there is
// room, in the order pick chooses.
func (r *Runner) takeWaiting() {
	now := r.cfg.Now()
	r.mu.Lock()
	waiting := r.waitingLocked(now)
	l := load{slots: r.cfg.Concurrency, mine: make(map[string]int), running: make(map[string]int), last: r.last}
	for _, tenant := range r.mine {
		l.mine[tenant]++
	}
	for k, j := range r.running {
		if _, ok := r.mine[k]; ok || (j.Owner != "" && !now.After(j.LeaseUntil)) {
			l.running[j.TenantID]++
		}
	}
	r.mu.Unlock()
	for r.ctx.Err() == nil {
		j, ok := pick(waiting, now, l)
		if !ok {
			return
		}
		waiting = slices.DeleteFunc(waiting, func(w Job) bool { return w.TenantID == j.TenantID && w.ID == j.ID })
		if r.take(key(j.TenantID, j.ID), now) {
			l.mine[j.TenantID]++
			l.running[j.TenantID]++
			l.last, r.last = j.TenantID, j.TenantID
		}
	}
}

// waitingLocked lists the running jobs this runner could take: held by
// no runner, or by one whose lease passed. Call with r.mu held.
func (r *Runner) waitingLocked(now time.Time) []Job {
	var out []Job
	for k, j := range r.running {
		if _, ok := r.mine[k]; !ok && (j.Owner == "" || now.After(j.LeaseUntil)) {
			out = append(out, j)
		}
	}
	return out
}

// due counts the jobs waiting that are not deferred past now, and the
// slots this runner has free.
func (r *Runner) due(now time.Time) (due, free int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, j := range r.waitingLocked(now) {
		if !now.Before(j.NotBefore) {
			due++
		}
	}
	return due, r.cfg.Concurrency - len(r.mine)
}

// take claims a job with a compare-and-set of its record and runs it.
func (r *Runner) take(k string, now time.Time) bool {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	e, err := r.kv.Get(ctx, k)
	if err != nil {
		return false
	}
	var j Job
	if json.Unmarshal(e.Value(), &j) != nil || j.Status != StatusRunning || (j.Owner != "" && !now.After(j.LeaseUntil)) {
		return false
	}
	j.Revision = e.Revision()
	previous := j.Owner
	j.Owner, j.NotBefore = r.id, time.Time{}
	if err := r.save(ctx, &j); err != nil {
		return false // another runner was quicker
	}
	if previous != "" {
		r.logger.Info("jobs: took over a job whose runner stopped renewing it", "job", j.ID, "previous_owner", previous)
	}
	jctx, jcancel := context.WithCancel(r.ctx)
	r.mu.Lock()
	r.mine[k] = j.TenantID
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			jcancel()
			r.mu.Lock()
			delete(r.mine, k)
			r.mu.Unlock()
			r.wake()
		}()
		r.run(jctx, j)
	}()
	return true
}

// save writes j if it is still at the revision read, renewing the lease
// while it runs; errLost means another runner has it.
func (r *Runner) save(ctx context.Context, j *Job) error {
	now := r.cfg.Now().UTC()
	j.UpdatedAt = now
	if j.Status == StatusRunning && j.Owner != "" {
		j.LeaseUntil = now.Add(r.cfg.Lease)
	} else {
		j.Owner, j.LeaseUntil = "", time.Time{}
	}
	b, _ := json.Marshal(j)
	rev, err := r.kv.Update(ctx, key(j.TenantID, j.ID), b, j.Revision)
	if err != nil {
		if jsretry.RevisionMismatch(err) {
			return errLost
		}
		return fmt.Errorf("save job %s: %w: %w", j.ID, ErrUnavailable, err)
	}
	j.Revision = rev
	return nil
}

// run works a job to its end, or until ctx ends (it then releases the
// lease) or another runner takes it.
func (r *Runner) run(ctx context.Context, j Job) {
	lim := rate.NewLimiter(rate.Limit(r.cfg.Rate), r.cfg.Batch)
	wait := 100 * time.Millisecond
	for {
		err := r.step(ctx, &j, lim)
		if err == nil {
			if j.Status != StatusRunning {
				return
			}
			wait = 100 * time.Millisecond
			continue
		}
		switch {
		case errors.Is(err, errLost):
			r.logger.Warn("jobs: lost a job to another runner", "job", j.ID)
			return
		case errors.Is(err, errYield):
			r.yield(&j)
			return
		case ctx.Err() != nil:
			r.release(&j)
			return
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			j.Status, j.Error = StatusFailed, perm.Error()
			if serr := r.finish(&j); serr != nil {
				r.logger.Warn("jobs: record a failed job", "job", j.ID, "err", serr)
			}
			r.logger.Info("jobs: job failed", "job", j.ID, "kind", j.Kind, "err", err)
			return
		}
		r.logger.Warn("jobs: step failed; retrying", "job", j.ID, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			r.release(&j)
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
		// Renew the lease while retrying; losing it ends the run.
		if err := r.save(ctx, &j); errors.Is(err, errLost) {
			return
		}
	}
}

// step does one thing: count, wait for room, plan, or send the plan.
func (r *Runner) step(ctx context.Context, j *Job, lim *rate.Limiter) error {
	if !j.Counted {
		n, err := r.worker.Count(ctx, *j)
		if err != nil {
			return err
		}
		j.Total, j.Counted = n, true
		return r.save(ctx, j)
	}
	if j.Plan == nil {
		room, err := r.room(ctx, j)
		if err != nil || room == 0 {
			return err
		}
		b, err := r.worker.Plan(ctx, *j, min(r.cfg.Batch, room))
		if err != nil {
			return err
		}
		if b.PlannedAt.IsZero() {
			b.PlannedAt = r.cfg.Now().UTC()
		}
		j.Plan = &b
		if err := r.save(ctx, j); err != nil {
			return err
		}
	}
	b := *j.Plan
	if b.Count > 0 {
		if err := lim.WaitN(ctx, min(b.Count, r.cfg.Batch)); err != nil {
			return err
		}
		if err := r.worker.Send(ctx, *j, b); err != nil {
			return err
		}
	}
	j.Plan, j.Cursor = nil, b.Next
	j.Sent += int64(b.Count)
	j.Filtered += int64(b.Filtered)
	if b.Done {
		j.Status = StatusDone
		j.Total = j.Sent + j.Filtered
		return r.finish(j)
	}
	return r.save(ctx, j)
}

// room waits, renewing the lease, until what the job sent before is
// worked off below MaxBacklog, and returns how much more it may send. It
// returns errYield if the job should give its slot to another (see
// yields).
func (r *Runner) room(ctx context.Context, j *Job) (int, error) {
	start := r.cfg.Now()
	renewed := start
	for {
		n, err := r.worker.Backlog(ctx, *j)
		if err != nil {
			return 0, err
		}
		if n < r.cfg.MaxBacklog {
			j.Deferrals = 0
			return r.cfg.MaxBacklog - n, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(r.cfg.Scan):
		}
		now := r.cfg.Now()
		if due, free := r.due(now); yields(now.Sub(start), r.cfg.Yield, due, free) {
			return 0, errYield
		}
		if now.Sub(renewed) > r.cfg.Lease/3 {
			if err := r.save(ctx, j); err != nil {
				return 0, err
			}
			renewed = now
		}
	}
}

// yield gives up the slot of a job that cannot send while another job
// waits: it is released, deferred until a time that grows with each
// yield in a row.
func (r *Runner) yield(j *Job) {
	j.Owner = ""
	j.Deferrals++
	wait := deferral(r.cfg.Yield, j.Deferrals)
	j.NotBefore = r.cfg.Now().UTC().Add(wait)
	if err := r.finish(j); err != nil {
		if !errors.Is(err, errLost) {
			r.logger.Warn("jobs: give up the slot of a job that cannot send; it resumes once its lease passes", "job", j.ID, "err", err)
		}
		return
	}
	r.logger.Info("jobs: a job that cannot send gave its slot to another", "job", j.ID, "tenant", j.TenantID, "deferred", wait)
}

// finish records a job's end, even while the runner stops, or its
// release; an end recorded is told to Config.Finished.
func (r *Runner) finish(j *Job) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.save(ctx, j); err != nil {
		return err
	}
	if j.Status != StatusRunning && r.cfg.Finished != nil {
		r.cfg.Finished(*j)
	}
	return nil
}

// release gives a job back, unowned, for any runner to resume. A save
// the stop cut short may have been stored all the same, leaving this
// runner's revision behind its own write: if the job is still this
// runner's, it is released at its stored revision.
func (r *Runner) release(j *Job) {
	j.Owner = ""
	err := r.finish(j)
	if errors.Is(err, errLost) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cur, gerr := r.Get(ctx, j.TenantID, j.ID)
		cancel()
		if gerr != nil || cur.Owner != r.id || cur.Status != StatusRunning {
			return // another runner has it, or it ended
		}
		cur.Owner = ""
		err = r.finish(&cur)
	}
	if err != nil && !errors.Is(err, errLost) {
		r.logger.Warn("jobs: release a job at shutdown; it resumes once its lease passes", "job", j.ID, "err", err)
	}
}

// Running is how many jobs this runner is running.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.mine)
}
