package main

import (
	"math"
	"time"
)

// A plan is an open-loop schedule: batches of Batch events, the k-th due
// k*Batch/Rate seconds after the start, so that the offered rate is Rate
// whatever happens to the batches already sent. The last batch of a run
// may be smaller, so a run offers exactly the events it promises.
type plan struct {
	Rate  float64 // events per second
	Batch int     // events per batch
}

// newPlan returns the plan offering rate events/s in batches of at most
// maxBatch, sized so that a batch leaves at least every interval: slow
// rates get small batches (less burst), fast ones full batches.
func newPlan(rate float64, maxBatch int, interval time.Duration) plan {
	b := int(math.Ceil(rate * interval.Seconds()))
	return plan{Rate: rate, Batch: max(1, min(b, maxBatch))}
}

// Due returns when batch k (from 0) is due, from the start.
func (p plan) Due(k int64) time.Duration {
	return time.Duration(float64(k) * float64(p.Batch) / p.Rate * float64(time.Second))
}

// Events returns how many events the plan offers in d: floor(Rate*d).
func (p plan) Events(d time.Duration) int64 {
	return int64(math.Floor(p.Rate * d.Seconds()))
}

// BatchSize returns the size of batch k of a run of total events, 0 past
// its end.
func (p plan) BatchSize(k, total int64) int {
	left := total - k*int64(p.Batch)
	if left <= 0 {
		return 0
	}
	return int(min(left, int64(p.Batch)))
}

// Batches returns how many batches a run of total events takes.
func (p plan) Batches(total int64) int64 {
	return (total + int64(p.Batch) - 1) / int64(p.Batch)
}
