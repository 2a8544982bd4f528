package api

import (
	"context"
	"net/http"
	"time"

	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
)

// Recovery is what the API asks of replays, recoveries and the jobs that
// run them past a page. Implementations return errors of package
// problem: ErrJobNotFound,
// *problem.ValidationError (a range past retention),
// *limits.ExceededError (a job past the tenant's jobs limit) and
// ErrUnavailable, wrapped as they like.
type Recovery interface {
	// Replay delivers again every retained event of sub's types (and
	// filter) stored from since to until (zero: now).
	Replay(ctx context.Context, sub subscriptions.Subscription, since, until time.Time) (Started, error)
	// Recover resends sub's deliveries created from since to until (zero:
	// now) whose status is status.
	Recover(ctx context.Context, sub subscriptions.Subscription, status string, since, until time.Time) (Started, error)
	// Job reads one of tenant's jobs.
	Job(ctx context.Context, tenant, id string) (Job, error)
	// Jobs reads tenant's jobs newest first: at most limit of those
	// older than before ("" for the newest), and whether there are more.
	Jobs(ctx context.Context, tenant, before string, limit int) ([]Job, bool, error)
	// Running counts tenant's jobs running, across the cluster as far as
	// this replica knows, without I/O.
	Running(tenant string) int
}

// Started is what a replay or recovery came to: done at once (Count items
// sent) when it fit in one page, else a job (JobID) running in the
// background.
type Started struct {
	Count int
	JobID string
}

// Job is a background replay or recovery.
type Job struct {
	ID             string
	Kind           string
	SubscriptionID string
	Status         string
	Total          int64
	Sent           int64
	Filtered       int64
	Since, Until   time.Time
	Error          string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// ErrJobNotFound: no such job for this tenant.
var ErrJobNotFound error = problem.NotFound("job")

type jobView struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	SubscriptionID string    `json:"subscriptionId"`
	Status         string    `json:"status"`
	Total          int64     `json:"total"`
	Sent           int64     `json:"sent"`
	Filtered       int64     `json:"filtered"`
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
	Error          *string   `json:"error"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

func (a *API) recovery() (Recovery, error) {
	if a.cfg.Recovery == nil {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "recovery is not enabled on this server"}
	}
	return a.cfg.Recovery, nil
}

// started answers a replay or recovery: the count when it is done, or the
// job that runs it.
func started(w http.ResponseWriter, countField string, s Started) {
	if s.JobID != "" {
		w.Header().Set("Location", "/api/jobs/"+s.JobID)
		writeJSON(w, http.StatusAccepted, map[string]string{"jobId": s.JobID})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int{countField: s.Count})
}

func (a *API) startReplay(w http.ResponseWriter, r *http.Request, s subscriptions.Subscription, since, until time.Time) error {
	if a.cfg.Recovery == nil {
		return errNotFound("path")
	}
	st, err := a.cfg.Recovery.Replay(r.Context(), s, since, until)
	if err != nil {
		return err
	}
	started(w, "replayed", st)
	return nil
}

func (a *API) recoverDeliveries(w http.ResponseWriter, r *http.Request, c *caller) error {
	rec, err := a.recovery()
	if err != nil {
		return err
	}
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	var in struct {
		timeRange
		Status *string `json:"status"`
	}
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	fields := in.check()
	status := StatusFailed
	if in.Status != nil {
		status = *in.Status
	}
	if status != StatusFailed && status != StatusSkipped {
		fields = append(fields, problem.FieldError{Field: "status", Reason: "must be failed or skipped"})
	}
	if !s.Active {
		fields = append(fields, problem.FieldError{Field: "subscription", Reason: "is disabled: enable it (PATCH active: true) before recovering its deliveries"})
	}
	if len(fields) > 0 {
		return &problem.ValidationError{Fields: fields}
	}
	st, err := rec.Recover(r.Context(), s, status, *in.Since, in.until())
	if err != nil {
		return err
	}
	started(w, "recovered", st)
	a.noticeUsage(c)
	return nil
}

func (a *API) getJob(w http.ResponseWriter, r *http.Request, c *caller) error {
	rec, err := a.recovery()
	if err != nil {
		return err
	}
	j, err := rec.Job(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewJob(j))
	return nil
}

func viewJob(j Job) jobView {
	v := jobView{ID: j.ID, Kind: j.Kind, SubscriptionID: j.SubscriptionID, Status: j.Status, Total: j.Total, Sent: j.Sent,
		Filtered: j.Filtered, Since: j.Since.UTC(), Until: j.Until.UTC(), CreatedAt: j.CreatedAt.UTC(), UpdatedAt: j.UpdatedAt.UTC()}
	if j.Error != "" {
		msg := j.Error
		v.Error = &msg
	}
	return v
}

// listJobs lists the tenant's background jobs (replays and recoveries
// past a page), newest first, a page at a time.
func (a *API) listJobs(w http.ResponseWriter, r *http.Request, c *caller) error {
	rec, err := a.recovery()
	if err != nil {
		return err
	}
	limit, before, err := page(r)
	if err != nil {
		return err
	}
	list, more, err := rec.Jobs(r.Context(), c.tenant, before, limit)
	if err != nil {
		return err
	}
	out := listPage[jobView]{Data: make([]jobView, len(list))}
	for i, j := range list {
		out.Data[i] = viewJob(j)
	}
	if more && len(list) > 0 {
		out.NextCursor = encodeCursor(list[len(list)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
