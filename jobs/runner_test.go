package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

// fakeWorker sends items 0..n-1 of every job, remembering what it sent, so
// that a plan sent again sends nothing twice.
type fakeWorker struct {
	n       int
	mu      sync.Mutex
	sent    map[string]int // job/item → times really sent
	resent  int            // items of a plan given again, skipped
	backlog atomic.Int64
	fail    error
	slow    chan struct{} // when set, each Send waits for a token
	stuck   string        // a tenant whose jobs' backlog never drains
	gone    string        // a subscription whose jobs fail for good
}

func newFake(n int) *fakeWorker { return &fakeWorker{n: n, sent: map[string]int{}} }

func (w *fakeWorker) Count(context.Context, Job) (int64, error) { return int64(w.n), nil }

func (w *fakeWorker) Plan(_ context.Context, j Job, max int) (Batch, error) {
	if w.fail != nil {
		return Batch{}, w.fail
	}
	if w.gone != "" && j.SubscriptionID == w.gone {
		return Batch{}, Permanent(errors.New("subscription deleted"))
	}
	from := 0
	if j.Cursor != "" {
		from, _ = strconv.Atoi(j.Cursor)
	}
	to := min(from+max, w.n)
	items := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		items = append(items, i)
	}
	b, _ := json.Marshal(items)
	return Batch{Items: b, Count: len(items), Next: strconv.Itoa(to), Done: to == w.n}, nil
}

func (w *fakeWorker) Send(ctx context.Context, j Job, b Batch) error {
	if w.slow != nil {
		select {
		case <-w.slow:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var items []int
	json.Unmarshal(b.Items, &items)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, i := range items {
		k := fmt.Sprintf("%s/%d", j.ID, i)
		if w.sent[k] > 0 {
			w.resent++
			continue
		}
		w.sent[k]++
	}
	return nil
}

func (w *fakeWorker) Backlog(_ context.Context, j Job) (int, error) {
	if w.stuck != "" && j.TenantID == w.stuck {
		return 1 << 30, nil
	}
	return int(w.backlog.Load()), nil
}

func (w *fakeWorker) count(job string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for i := range w.n {
		n += w.sent[fmt.Sprintf("%s/%d", job, i)]
	}
	return n
}

var fast = Config{Rate: 100_000, Batch: 100, Lease: 2 * time.Second, Scan: 20 * time.Millisecond}

func open(t *testing.T, js jetstream.JetStream, cfg Config, w Worker) *Runner {
	t.Helper()
	r, err := Open(context.Background(), js, cfg, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	return r
}

func waitStatus(t *testing.T, r *Runner, j Job, status string) Job {
	t.Helper()
	var got Job
	poll.Until(t, 30*time.Second, "job "+j.ID+" "+status, func() bool {
		var err error
		got, err = r.Get(context.Background(), j.TenantID, j.ID)
		return err == nil && got.Status == status
	})
	return got
}

func TestRunsToTheEnd(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	w := newFake(250)
	r := open(t, js, fast, w)
	r.Start()
	j, err := r.Create(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay, SubscriptionID: "sub_1"})
	if err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, r, j, StatusDone)
	if got.Sent != 250 || got.Total != 250 || got.Owner != "" || got.Plan != nil || w.count(j.ID) != 250 {
		t.Errorf("done job = %+v, worker sent %d; want 250 of 250 sent once, no owner, no plan", got, w.count(j.ID))
	}
	if _, err := r.Get(context.Background(), "ten_2", j.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("another tenant's Get = %v, want ErrNotFound", err)
	}
	if _, err := r.Get(context.Background(), "ten_1", "job_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a malformed id = %v, want ErrNotFound", err)
	}
}

// TestResumesAfterStop: a runner stopped midway releases its job, and a
// new runner on the same bucket finishes it; every item is sent once.
func TestResumesAfterStop(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	w := newFake(1000)
	w.slow = make(chan struct{})
	cfg := fast
	cfg.Batch = 50
	a := open(t, js, cfg, w)
	a.Start()
	j, err := a.Create(context.Background(), Job{TenantID: "ten_1", Kind: KindRecover, SubscriptionID: "sub_1"})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		w.slow <- struct{}{}
	}
	poll.Until(t, 30*time.Second, "five batches", func() bool { return w.count(j.ID) == 250 })
	a.Stop(context.Background())
	mid, _ := a.Get(context.Background(), j.TenantID, j.ID)
	if mid.Status != StatusRunning || mid.Owner != "" {
		t.Fatalf("after Stop: %+v, want running and released", mid)
	}
	close(w.slow)
	b := open(t, js, cfg, w)
	b.Start()
	got := waitStatus(t, b, j, StatusDone)
	if got.Sent != 1000 || w.count(j.ID) != 1000 {
		t.Errorf("resumed job = %d sent, worker sent %d distinct; want 1000 and 1000", got.Sent, w.count(j.ID))
	}
}

// TestTakesOverAfterLease: a job whose runner died (its lease not renewed)
// is taken over once the lease passes, and not before.
func TestTakesOverAfterLease(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	w := newFake(10)
	r := open(t, js, fast, w)
	j, err := r.Create(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay, SubscriptionID: "sub_1"})
	if err != nil {
		t.Fatal(err)
	}
	// A dead runner's claim, expiring in a second.
	j.Owner = "run_dead"
	leaseEnd := time.Now().Add(time.Second)
	j.LeaseUntil = leaseEnd
	b, _ := json.Marshal(j)
	if _, err := r.kv.Update(context.Background(), key(j.TenantID, j.ID), b, j.Revision); err != nil {
		t.Fatal(err)
	}
	r.Start()
	got := waitStatus(t, r, j, StatusDone)
	if got.UpdatedAt.Before(leaseEnd) {
		t.Errorf("job finished at %v, before the dead runner's lease ended at %v", got.UpdatedAt, leaseEnd)
	}
	if w.count(j.ID) != 10 {
		t.Errorf("worker sent %d of 10", w.count(j.ID))
	}
}

func TestPermanentFailure(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	w := newFake(10)
	w.fail = Permanent(errors.New("subscription deleted"))
	r := open(t, js, fast, w)
	r.Start()
	j, err := r.Create(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay, SubscriptionID: "sub_1"})
	if err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, r, j, StatusFailed)
	if got.Error != "subscription deleted" || got.Sent != 0 {
		t.Errorf("failed job = %+v, want the worker's error and nothing sent", got)
	}
}

// TestWaitsForBacklog: while what the job sent is not worked off, it
// sends nothing more.
func TestWaitsForBacklog(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	w := newFake(300)
	w.backlog.Store(5000)
	cfg := fast
	cfg.MaxBacklog = 1000
	r := open(t, js, cfg, w)
	r.Start()
	j, err := r.Create(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay, SubscriptionID: "sub_1"})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the job counted", func() bool {
		got, _ := r.Get(context.Background(), j.TenantID, j.ID)
		return got.Counted
	})
	if poll.Within(300*time.Millisecond, func() bool { return w.count(j.ID) > 0 }) {
		t.Fatal("the job sent while its backlog was over the bound")
	}
	w.backlog.Store(950) // room for 50 at a time
	got := waitStatus(t, r, j, StatusDone)
	if got.Sent != 300 {
		t.Errorf("sent %d, want 300", got.Sent)
	}
}

// TestStuckJobGivesWay: with one slot, a job that cannot send (its
// backlog never drains, as behind a subscription paced to a crawl) gives
// its slot to another tenant's job, which runs to its end; the stuck job
// stays running, and takes a slot again once nothing else waits.
func TestStuckJobGivesWay(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	w := newFake(300)
	w.stuck = "ten_a"
	cfg := fast
	cfg.Concurrency = 1
	cfg.Yield = 200 * time.Millisecond
	r := open(t, js, cfg, w)
	r.Start()
	ctx := context.Background()
	a, err := r.Create(ctx, Job{TenantID: "ten_a", Kind: KindReplay, SubscriptionID: "sub_a"})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "tenant A's job counted and held", func() bool {
		got, err := r.Get(ctx, a.TenantID, a.ID)
		return err == nil && got.Counted && got.Owner != ""
	})
	b, err := r.Create(ctx, Job{TenantID: "ten_b", Kind: KindReplay, SubscriptionID: "sub_b"})
	if err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, r, b, StatusDone)
	if got.Sent != 300 || w.count(b.ID) != 300 {
		t.Errorf("tenant B's job sent %d, worker sent %d; want 300 and 300", got.Sent, w.count(b.ID))
	}
	var held Job
	poll.Until(t, 30*time.Second, "tenant A's job held again", func() bool {
		var err error
		held, err = r.Get(ctx, a.TenantID, a.ID)
		return err == nil && held.Status == StatusRunning && held.Owner != ""
	})
	if held.Deferrals == 0 || !held.NotBefore.IsZero() {
		t.Errorf("tenant A's job held again = %+v, want deferred at least once and its not-before cleared", held)
	}
	if n := w.count(a.ID); n != 0 {
		t.Errorf("tenant A's stuck job sent %d items, want 0", n)
	}
}

// TestCreateIf: a tenant's running jobs are counted from their creation
// on, concurrent creates through one runner take turns so none passes the
// admission together, and an ended job is no longer counted.
func TestCreateIf(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	w := newFake(10)
	w.slow = make(chan struct{})
	r := open(t, js, fast, w)
	other := open(t, js, fast, w) // another replica's view
	errFull := errors.New("full")
	atMost := func(n int) func(int) error {
		return func(running int) error {
			if running >= n {
				return errFull
			}
			return nil
		}
	}
	var wg sync.WaitGroup
	var created atomic.Int64
	for range 8 {
		wg.Go(func() {
			_, err := r.CreateIf(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay, SubscriptionID: "sub_1"}, atMost(3))
			switch {
			case err == nil:
				created.Add(1)
			case !errors.Is(err, errFull):
				t.Errorf("CreateIf: %v", err)
			}
		})
	}
	wg.Wait()
	if created.Load() != 3 || r.TenantRunning("ten_1") != 3 {
		t.Errorf("8 creates at once, at most 3: %d created, %d running", created.Load(), r.TenantRunning("ten_1"))
	}
	poll.Until(t, 30*time.Second, "the jobs on another runner's watch", func() bool { return other.TenantRunning("ten_1") == 3 })
	if _, err := other.CreateIf(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay}, atMost(3)); !errors.Is(err, errFull) {
		t.Errorf("CreateIf through another runner = %v, want refused", err)
	}
	// The jobs run to their end and are no longer counted.
	r.Start()
	close(w.slow)
	poll.Until(t, 30*time.Second, "jobs done", func() bool { return r.TenantRunning("ten_1") == 0 })
	if _, err := r.CreateIf(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay}, atMost(3)); err != nil {
		t.Errorf("CreateIf once the jobs ended = %v", err)
	}
}

// TestListsATenantsJobsNewestFirst: List pages through one tenant's jobs
// by id, newest first, and never shows another tenant's.
func TestListsATenantsJobsNewestFirst(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	r := open(t, js, fast, newFake(1)) // not started: the jobs stay as created
	ctx := context.Background()
	if list, more, err := r.List(ctx, "ten_1", "", 10); err != nil || len(list) != 0 || more {
		t.Fatalf("List before any job = %v, %v, %v; want nothing", list, more, err)
	}
	var ids []string
	for range 5 {
		j, err := r.Create(ctx, Job{TenantID: "ten_1", Kind: KindReplay, SubscriptionID: "sub_1"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	if _, err := r.Create(ctx, Job{TenantID: "ten_2", Kind: KindReplay, SubscriptionID: "sub_2"}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	want := slices.Clone(ids)
	slices.Reverse(want)
	var got []string
	before := ""
	for page := 0; ; page++ {
		list, more, err := r.List(ctx, "ten_1", before, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range list {
			if j.TenantID != "ten_1" {
				t.Errorf("List(ten_1) holds %+v", j)
			}
			got = append(got, j.ID)
		}
		if !more {
			break
		}
		if page > 5 {
			t.Fatalf("List does not end: %v", got)
		}
		before = list[len(list)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("List pages = %v, want %v", got, want)
	}
}

// TestFinishedOnce: with two runners on one bucket, each job's end, done
// or failed, is told to Finished once, with its final counts.
func TestFinishedOnce(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	var (
		mu       sync.Mutex
		finished = map[string][]Job{}
	)
	cfg := fast
	cfg.Finished = func(j Job) {
		mu.Lock()
		finished[j.ID] = append(finished[j.ID], j)
		mu.Unlock()
	}
	w := newFake(150)
	w.gone = "sub_gone"
	a, b := open(t, js, cfg, w), open(t, js, cfg, w)
	a.Start()
	b.Start()
	var jobs []Job
	for _, sub := range []string{"sub_1", "sub_gone"} {
		j, err := a.Create(context.Background(), Job{TenantID: "ten_1", Kind: KindReplay, SubscriptionID: sub})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	waitStatus(t, reader(t, js, cfg), jobs[0], StatusDone)
	poll.Until(t, 30*time.Second, "both ends told", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(finished[jobs[0].ID]) > 0 && len(finished[jobs[1].ID]) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if got := finished[jobs[0].ID]; len(got) != 1 || got[0].Status != StatusDone || got[0].Sent != 150 {
		t.Errorf("the done job was told %d times: %+v; want once, done with 150 sent", len(got), got)
	}
	if got := finished[jobs[1].ID]; len(got) != 1 || got[0].Status != StatusFailed || got[0].Error != "subscription deleted" {
		t.Errorf("the failed job was told %d times: %+v; want once, failed with the worker's error", len(got), got)
	}
}

// reader is a runner that only reads (never started).
func reader(t *testing.T, js jetstream.JetStream, cfg Config) *Runner {
	cfg.Finished = nil
	return open(t, js, cfg, newFake(0))
}
