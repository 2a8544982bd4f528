package server

import "github.com/onestack/webhooks/limits"

// withLimitDefaults fills in the limits the operator left unset: a
// tenant's attempts in flight default to the dispatcher's share
// (--tenant-concurrency) when that is set, the others to
// limits.Defaults().
func withLimitDefaults(l limits.Limits, tenantInFlight int) limits.Limits {
	if l.AttemptsInFlight <= 0 && tenantInFlight > 0 {
		l.AttemptsInFlight = int64(tenantInFlight)
	}
	return l.Over(limits.Defaults())
}

// attemptsInFlight is a tenant's share of delivery attempts in flight
// (dispatcher.Config.TenantLimit): its own attemptsInFlight or the
// default, read from the subscription store's index, with no I/O on the
// dispatcher's path.
func (s *Server) attemptsInFlight(tenant string) int {
	return int(s.store.IndexedLimits(tenant).AttemptsInFlight)
}
