// Package history answers the API's questions about what happened and
// what to send again: an event and its deliveries (the event index, the
// events stream and the attempt log joined), a delivery and its attempts,
// a test or a manual retry, and replays and recoveries (retention bounds,
// the first page at once and the rest as a job). It speaks the API's types
// and errors (api.EventLog, api.Deliveries, api.Recovery), so api knows
// neither the dispatcher nor NATS; server only builds it.
package history
