package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/onestack/webhooks/client"
)

// jobPoll is how often a job is read while the command waits for it: each
// read is one request of the tenant's budget.
const jobPoll = time.Second

// showStarted prints what a replay or recovery did: {"<count>": n} when
// it ran within the request, or, for more than a page, its background job
// followed to its end (showJob).
func (e *env) showStarted(ctx context.Context, c *client.Client, s client.Started, count, unit string) error {
	if s.JobID != "" {
		return e.showJob(ctx, c, s.JobID, count)
	}
	n := s.Count
	return e.show(map[string]int{count: n}, func(w *table) { w.kv(count, strconv.Itoa(n)+" "+unit) })
}

// showJob follows a replay or recovery job to its end (or until the
// command is interrupted) and prints what it did: {"<count>": sent,
// "jobId", "status"} with --json.
func (e *env) showJob(ctx context.Context, c *client.Client, id, count string) error {
	t := time.NewTicker(jobPoll)
	defer t.Stop()
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return err
		}
		if j.Status != "running" {
			out := map[string]any{count: j.Sent, "jobId": j.ID, "status": j.Status}
			if j.Error != nil {
				out["error"] = *j.Error
			}
			err := e.show(out, func(w *table) {
				w.kv(count, strconv.FormatInt(j.Sent, 10)+" of "+strconv.FormatInt(j.Total, 10))
				w.kv("job", j.ID+" ("+j.Status+")")
				if j.Error != nil {
					w.kv("error", *j.Error)
				}
			})
			if err == nil && j.Status == "failed" {
				return fmt.Errorf("job %s failed", j.ID)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("job %s still running (GET /api/jobs/%s): %w", id, id, ctx.Err())
		case <-t.C:
		}
	}
}
