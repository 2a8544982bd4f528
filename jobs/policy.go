package jobs

import "time"

// load is what a runner knows, when it picks a job, of who holds slots.
type load struct {
	slots   int            // this runner's slots (Config.Concurrency)
	mine    map[string]int // this runner's jobs, by tenant
	running map[string]int // jobs any runner holds (this one's too), by tenant
	last    string         // the tenant of the job this runner took last
}

// pick chooses the job a runner takes next among those waiting (running,
// and held by no runner or by one whose lease passed), or reports that it
// takes none: it has no slot free, or nothing waits. Jobs deferred past
// now are chosen only when no other waits.
//
// A tenant's share is this runner's slots divided among the tenants that
// hold one of them or wait, rounded up. Among the due jobs, those of
// tenants under their share come first; then those of the tenant with the
// fewest jobs running across the cluster; among equals, the first tenant
// after the last one this runner took a job of, in the order of their ids
// (round robin); within a tenant, the oldest job.
func pick(waiting []Job, now time.Time, l load) (Job, bool) {
	held := 0
	for _, n := range l.mine {
		held += n
	}
	if held >= l.slots {
		return Job{}, false
	}
	var due []Job
	for _, j := range waiting {
		if !now.Before(j.NotBefore) {
			due = append(due, j)
		}
	}
	if len(due) == 0 {
		due = waiting // a slot no due job wants: a deferred job may have it early
	}
	if len(due) == 0 {
		return Job{}, false
	}
	tenants := make(map[string]bool)
	for t, n := range l.mine {
		if n > 0 {
			tenants[t] = true
		}
	}
	for _, j := range due {
		tenants[j.TenantID] = true
	}
	share := (l.slots + len(tenants) - 1) / len(tenants)
	best := 0
	for i := 1; i < len(due); i++ {
		if l.before(due[i], due[best], share) {
			best = i
		}
	}
	return due[best], true
}

// before reports whether a goes before b, given a tenant's share.
func (l load) before(a, b Job, share int) bool {
	if at, bt := a.TenantID, b.TenantID; at != bt {
		if au, bu := l.mine[at] < share, l.mine[bt] < share; au != bu {
			return au
		}
		if ar, br := l.running[at], l.running[bt]; ar != br {
			return ar < br
		}
		// Round robin: the tenants after the last one, then the others.
		if aa, ba := at > l.last, bt > l.last; aa != ba {
			return aa
		}
		return at < bt
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// maxDeferral bounds how long a job that gave up its slot waits before it
// may take one again while others are due.
const maxDeferral = 5 * time.Minute

// deferral is how long a job waits after giving up its slot for the nth
// time in a row: base (Config.Yield), doubling with each, at most
// maxDeferral.
func deferral(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxDeferral; i++ {
		d *= 2
	}
	return min(d, maxDeferral)
}

// yields reports whether a job that has been unable to send for waited
// gives its slot up: only past yieldAfter, and only if another job is due
// and this runner has no slot free for it.
func yields(waited, yieldAfter time.Duration, due, free int) bool {
	return waited >= yieldAfter && due > 0 && free <= 0
}
