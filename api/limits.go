package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/onestack/webhooks/limits"
)

// limitsView is every limit of a tenant, as in effect.
type limitsView struct {
	RequestsPerMinute int64 `json:"requestsPerMinute"`
	Subscriptions     int64 `json:"subscriptions"`
	EventTypes        int64 `json:"eventTypes"`
	EventBytes        int64 `json:"eventBytes"`
	StoredBytes       int64 `json:"storedBytes"`
	AttemptsInFlight  int64 `json:"attemptsInFlight"`
	Jobs              int64 `json:"jobs"`
}

func viewLimits(l limits.Limits) limitsView { return limitsView(l) }

// usageView is what a tenant uses of the limits that can be counted;
// attempts in flight are not counted here.
type usageView struct {
	// RequestsPerMinute is the requests its window has counted, this one
	// included (its limit less X-RateLimit-Remaining).
	RequestsPerMinute *int64 `json:"requestsPerMinute,omitempty"`
	Subscriptions     int64  `json:"subscriptions"`
	EventTypes        int64  `json:"eventTypes"`
	StoredBytes       *int64 `json:"storedBytes,omitempty"`
	Jobs              *int64 `json:"jobs,omitempty"`
}

func (a *API) getLimits(w http.ResponseWriter, r *http.Request, c *caller) error {
	u := a.cfg.Store.Index().Usage(c.tenant)
	usage := usageView{Subscriptions: int64(u.Subscriptions), EventTypes: int64(u.EventTypes)}
	if a.cfg.Stored != nil {
		n, err := a.cfg.Stored.StoredBytes(r.Context(), c.tenant)
		if err != nil {
			return err
		}
		usage.StoredBytes = &n
	}
	if a.cfg.Recovery != nil {
		n := int64(a.cfg.Recovery.Running(c.tenant))
		usage.Jobs = &n
	}
	if n, ok := requestsCounted(w); ok {
		usage.RequestsPerMinute = &n
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Limits limitsView `json:"limits"`
		Usage  usageView  `json:"usage"`
	}{viewLimits(c.limits), usage})
	return nil
}

// requestsCounted reads, from the rate limiter's writer under w, how many
// requests the tenant's window has counted; false without a limiter.
func requestsCounted(w http.ResponseWriter) (int64, bool) {
	for {
		switch v := w.(type) {
		case interface{ RequestsCounted() int }:
			return int64(v.RequestsCounted()), true
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return 0, false
		}
	}
}

// checkEventBytes refuses an event whose data, as sent, is over the
// tenant's eventBytes: 413 PAYLOAD_TOO_LARGE naming the field, "data" for
// item -1 (POST /api/events), "events[3].data" for item 3 of a batch.
func checkEventBytes(c *caller, data json.RawMessage, item int) error {
	err := limits.CheckEventBytes(c.limits.EventBytes, int64(len(bytes.TrimSpace(data))))
	if qe, ok := err.(*limits.ExceededError); ok {
		e := errExceeded(qe)
		e.Message = itemPrefix(item) + "data: " + e.Message
		return e
	}
	return nil
}

// checkStoredBytes refuses events of size bytes in all that would take
// the tenant past its storedBytes: 403 QUOTA_EXCEEDED, nothing of the
// request stored.
func (a *API) checkStoredBytes(ctx context.Context, c *caller, size int64) error {
	if a.cfg.Stored == nil || size <= 0 {
		return nil
	}
	used, err := a.cfg.Stored.StoredBytes(ctx, c.tenant)
	if err != nil {
		return err
	}
	if qe, ok := limits.Check(limits.StoredBytes, c.limits.StoredBytes, used, used+size).(*limits.ExceededError); ok {
		return errExceeded(qe)
	}
	return nil
}

// itemPrefix names the i-th event of a batch in field errors, and the
// event of POST /api/events (i < 0) by nothing. It is called only for an
// error: the string is made for nothing otherwise.
func itemPrefix(i int) string {
	if i < 0 {
		return ""
	}
	return "events[" + strconv.Itoa(i) + "]."
}
