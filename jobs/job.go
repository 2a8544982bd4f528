// Package jobs runs long work in the background, batch by batch, so that
// it survives restarts: replays and recoveries that span more than a page.
//
// A job is a record in a JetStream KV bucket (status, counts, a cursor and
// the batch in progress). Any replica may run any job: it takes one by
// writing itself in as owner with a lease (a compare-and-set on the
// record's revision) and renews the lease with every write; a job whose
// owner stopped renewing is taken over by another replica (or the same
// one restarted) once the lease has passed, and one released at a clean
// shutdown at once. Before a batch is sent its plan is stored in the
// record, and after it the cursor moves past it: a job resumed after a
// crash sends the stored plan again, which the Worker makes harmless, and
// goes on from the cursor. Batches go out at a bounded rate and only while
// what the job sent before has been worked off, so a job never starves
// live traffic.
//
// A runner's slots are shared between tenants: it takes the waiting job of
// the tenant with the fewest jobs running across the cluster, and a tenant
// holding its share of the runner's slots waits while another's job waits
// (see pick). A job that cannot send, its backlog full behind a slowly
// paced subscription, gives its slot up when another job waits for one,
// and is deferred, longer each time in a row; with nothing else waiting it
// keeps its slot.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/problem"
)

// Kinds of job.
const (
	KindReplay  = "replay"
	KindRecover = "recover"
)

// Statuses of a job.
const (
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// IDPrefix starts every job id.
const IDPrefix = "job_"

// Errors of the package.
var (
	// ErrNotFound: no such job for this tenant (problem.ErrNotFound).
	ErrNotFound = problem.NotFound("job")
	// ErrUnavailable means the bucket could not be reached
	// (problem.ErrUnavailable).
	ErrUnavailable = problem.New(problem.ErrUnavailable, "jobs unavailable")
	// errLost means another runner took the job over.
	errLost = errors.New("job taken over by another runner")
	// errYield means a job that cannot send gives its slot to another.
	errYield = errors.New("job gives its slot to another")
)

// Job is one background job.
type Job struct {
	ID             string `json:"id"`
	TenantID       string `json:"tenantId"`
	Kind           string `json:"kind"`
	SubscriptionID string `json:"subscriptionId"`
	// Since and Until bound what the job works on: events by the time
	// they were stored (replay), deliveries by their creation (recover).
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// DeliveryStatus is the status whose deliveries a recovery resends.
	DeliveryStatus string `json:"deliveryStatus,omitempty"`
	Status         string `json:"status"`
	// Total is what the job has to send, counted when it starts (Counted
	// says it was), and set to Sent + Filtered when it is done.
	Total   int64 `json:"total"`
	Counted bool  `json:"counted,omitempty"`
	// Sent is how many items went out; Filtered how many of its range its
	// subscription's filter left out.
	Sent     int64  `json:"sent"`
	Filtered int64  `json:"filtered"`
	Error    string `json:"error,omitempty"`
	// Cursor is the Worker's position after the last batch sent; Plan the
	// batch being sent, if any.
	Cursor string `json:"cursor,omitempty"`
	Plan   *Batch `json:"plan,omitempty"`
	// Owner is the runner holding the job until LeaseUntil.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// NotBefore is set when the job gave up its slot, unable to send (its
	// backlog full, behind a paced subscription), while another job
	// waited: no runner takes it before then while another job is due.
	// Deferrals counts the times it did so in a row, without sending in
	// between; its wait grows with them.
	NotBefore time.Time `json:"notBefore,omitzero"`
	Deferrals int       `json:"deferrals,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Revision is the bucket revision the job was read at.
	Revision uint64 `json:"-"`
}

// Batch is a Worker's plan of what to send next.
type Batch struct {
	// Items are the Worker's own description of what to send.
	Items json.RawMessage `json:"items,omitempty"`
	// Count is how many items the batch sends; Filtered how many the
	// range held that a filter left out.
	Count    int `json:"count"`
	Filtered int `json:"filtered,omitempty"`
	// Next is the cursor after the batch; Done says nothing follows.
	Next string `json:"next,omitempty"`
	Done bool   `json:"done,omitempty"`
	// PlannedAt is when the batch was planned; a Worker may derive stable
	// identities (delivery ids) from it.
	PlannedAt time.Time `json:"plannedAt"`
}

// Worker does the work of jobs. Its methods may be called on any replica,
// and again for the same job after a crash.
type Worker interface {
	// Count returns how many items the job has to send.
	Count(ctx context.Context, j Job) (int64, error)
	// Plan reads the next batch of at most max items after j.Cursor.
	Plan(ctx context.Context, j Job, max int) (Batch, error)
	// Send sends a planned batch and returns once it is stored. It may be
	// given the same batch again (after a crash between the send and the
	// cursor's move) and must then not send again what it sent.
	Send(ctx context.Context, j Job, b Batch) error
	// Backlog is how many items the job sent that are still waiting to be
	// worked off; the runner sends more only while it is under its bound.
	Backlog(ctx context.Context, j Job) (int, error)
}

// Permanent wraps an error after which the job cannot go on (its
// subscription is gone); the job fails with its message. Other errors are
// retried.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// NewID returns a fresh job id.
func NewID() string { return IDPrefix + ulid.Make().String() }

// ValidID reports whether id has the form of a job id.
func ValidID(id string) bool {
	rest, ok := strings.CutPrefix(id, IDPrefix)
	if !ok || len(rest) != 26 {
		return false
	}
	_, err := ulid.ParseStrict(rest)
	return err == nil
}

// key is a job's key in the bucket: tenant first, so a job is read only
// by its own tenant.
func key(tenant, id string) string { return tenant + "." + id }
