package dispatcher

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// fanning are the events this replica is fanning out, by stream sequence,
// from their fan-out until their last delivery is settled. JetStream
// delivers an event again when it did not get its acknowledgement in
// time, or lost it (a NATS server killed forgets up to 100 ms of its
// consumers' state); one that comes again while its deliveries are still
// being made here joins them (join) instead of being fanned out a second
// time, and is settled with the first (done).
type fanning struct {
	mu sync.Mutex
	m  map[uint64]*event // its again is guarded by mu
}

// add registers ev, fanned out from now until done.
func (f *fanning) add(ev *event) {
	f.mu.Lock()
	if f.m == nil {
		f.m = make(map[uint64]*event)
	}
	f.m[ev.seq] = ev
	f.mu.Unlock()
}

// join adds m, the message of stream sequence seq delivered again, to the
// event being fanned out under that sequence, and reports whether there
// was one: if not, m is the caller's to fan out.
func (f *fanning) join(seq uint64, m jetstream.Msg) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev, ok := f.m[seq]
	if ok {
		ev.again = append(ev.again, m)
	}
	return ok
}

// done ends ev's fan-out and returns the messages that joined it, to be
// settled as its own.
func (f *fanning) done(ev *event) []jetstream.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[ev.seq] != ev {
		return nil
	}
	delete(f.m, ev.seq)
	return ev.again
}
