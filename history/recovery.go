package history

import (
	"context"
	"fmt"
	"time"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
)

// recoveryPage is what a replay or recovery does at once, in the request:
// up to this many events or deliveries. Past it, a job does the rest.
const recoveryPage = 100

// TenantLimits reads a tenant's limits (subscriptions.Store does).
type TenantLimits interface {
	Limits(ctx context.Context, tenant string) (limits.Limits, error)
}

// RecoveryConfig is what a Recovery is built from.
type RecoveryConfig struct {
	// Worker plans and sends pages; Runner runs what is left as jobs.
	Worker *dispatcher.Jobs
	Runner *jobs.Runner
	// Limits gives a tenant's jobs limit.
	Limits TenantLimits
	// EventRetention and DeliveryRetention are how far back a replay
	// and a recovery reach: what is older is gone.
	EventRetention, DeliveryRetention time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Recovery serves the API's replays and recoveries: one page at once,
// more as a job of the runner, both through the dispatcher's worker.
type Recovery struct {
	worker            *dispatcher.Jobs
	runner            *jobs.Runner
	store             TenantLimits // a tenant's jobs limit
	eventRetention    time.Duration
	deliveryRetention time.Duration
	now               func() time.Time
}

var _ api.Recovery = Recovery{}

// NewRecovery returns the replays and recoveries of cfg.
func NewRecovery(cfg RecoveryConfig) Recovery {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return Recovery{worker: cfg.Worker, runner: cfg.Runner, store: cfg.Limits, eventRetention: cfg.EventRetention,
		deliveryRetention: cfg.DeliveryRetention, now: now}
}

// bound refuses a range that starts past retention (what it would reach
// is gone) and ends a range in the future now.
func (r Recovery) bound(since, until time.Time, retention time.Duration, what string) (time.Time, error) {
	now := r.now().UTC()
	if until.IsZero() || until.After(now) {
		until = now
	}
	if oldest := now.Add(-retention); since.Before(oldest) {
		return time.Time{}, problem.Invalid("since", fmt.Sprintf("must be within the %s retention (%s): nothing older is kept; since %s at the earliest",
			what, retention, oldest.Format(time.RFC3339)))
	}
	return until, nil
}

// Replay sends sub the events of since to until again.
func (r Recovery) Replay(ctx context.Context, sub subscriptions.Subscription, since, until time.Time) (api.Started, error) {
	until, err := r.bound(since, until, r.eventRetention, "event")
	if err != nil {
		return api.Started{}, err
	}
	return r.start(ctx, jobs.Job{ID: jobs.NewID(), TenantID: sub.TenantID, Kind: jobs.KindReplay, SubscriptionID: sub.ID, Since: since.UTC(), Until: until})
}

// Recover sends sub again its deliveries of since to until whose status is
// status.
func (r Recovery) Recover(ctx context.Context, sub subscriptions.Subscription, status string, since, until time.Time) (api.Started, error) {
	until, err := r.bound(since, until, r.deliveryRetention, "delivery")
	if err != nil {
		return api.Started{}, err
	}
	return r.start(ctx, jobs.Job{ID: jobs.NewID(), TenantID: sub.TenantID, Kind: jobs.KindRecover, SubscriptionID: sub.ID,
		DeliveryStatus: status, Since: since.UTC(), Until: until})
}

// start plans the first page: when it is the whole range it is sent at
// once; else a job, holding that plan, does it all, unless the tenant has
// its limit of jobs running (a *limits.ExceededError).
func (r Recovery) start(ctx context.Context, j jobs.Job) (api.Started, error) {
	b, err := r.worker.Plan(ctx, j, recoveryPage)
	if err != nil {
		return api.Started{}, storeErr(err)
	}
	b.PlannedAt = r.now().UTC()
	if b.Done {
		if err := r.worker.Send(ctx, j, b); err != nil {
			return api.Started{}, storeErr(err)
		}
		return api.Started{Count: b.Count}, nil
	}
	j.Plan = &b
	lim, err := r.store.Limits(ctx, j.TenantID)
	if err != nil {
		return api.Started{}, err
	}
	created, err := r.runner.CreateIf(ctx, j, func(running int) error {
		return limits.Check(limits.Jobs, lim.Jobs, int64(running), int64(running)+1)
	})
	if err != nil {
		return api.Started{}, storeErr(err)
	}
	return api.Started{JobID: created.ID}, nil
}

// Running counts tenant's jobs running, as the runner knows them.
func (r Recovery) Running(tenant string) int { return r.runner.TenantRunning(tenant) }

// Job is one of tenant's jobs.
func (r Recovery) Job(ctx context.Context, tenant, id string) (api.Job, error) {
	j, err := r.runner.Get(ctx, tenant, id)
	if err != nil {
		return api.Job{}, storeErr(err)
	}
	return apiJob(j), nil
}

// Jobs lists tenant's jobs, newest first, before the cursor before.
func (r Recovery) Jobs(ctx context.Context, tenant, before string, limit int) ([]api.Job, bool, error) {
	list, more, err := r.runner.List(ctx, tenant, before, limit)
	if err != nil {
		return nil, false, storeErr(err)
	}
	return each(list, apiJob), more, nil
}

// apiJob is j in the API's type.
func apiJob(j jobs.Job) api.Job {
	return api.Job{ID: j.ID, Kind: j.Kind, SubscriptionID: j.SubscriptionID, Status: j.Status, Total: j.Total, Sent: j.Sent,
		Filtered: j.Filtered, Since: j.Since, Until: j.Until, Error: j.Error, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
}
