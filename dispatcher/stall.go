package dispatcher

import (
	"fmt"
	"sync/atomic"
	"time"
)

// progress watches the dispatcher's own pipeline, so readiness can say it
// is stuck, not only that NATS is down: outcomes waiting to be stored with
// none stored for a while (acknowledgements that never come), or the
// fan-out's consumer failing (missed heartbeats, a consumer lost).
type progress struct {
	// pending counts commits (outcomes, parkings) not yet stored; stored
	// is when the last one was, in Unix nanoseconds.
	pending atomic.Int64
	stored  atomic.Int64
	// fanoutErr is the fan-out's last consumer error while no event came
	// after it, and since when (zero: none).
	fanoutErr      atomic.Pointer[string]
	fanoutErrSince atomic.Int64
}

func (p *progress) started() {
	if p.pending.Add(1) == 1 {
		p.stored.Store(time.Now().UnixNano()) // the wait starts now
	}
}

func (p *progress) finished() {
	p.stored.Store(time.Now().UnixNano())
	p.pending.Add(-1)
}

func (p *progress) fanoutFailed(err error) {
	msg := err.Error()
	if p.fanoutErr.Swap(&msg) == nil {
		p.fanoutErrSince.Store(time.Now().UnixNano())
	}
}

func (p *progress) fanoutRead() {
	if p.fanoutErr.Load() != nil {
		p.fanoutErr.Store(nil)
	}
}

// Stalled lists what keeps the dispatcher from making progress for longer
// than its StallAfter; empty means it is moving (or idle).
func (d *Dispatcher) Stalled() []string {
	var out []string
	now := time.Now()
	if n := d.progress.pending.Load(); n > 0 {
		if wait := now.Sub(time.Unix(0, d.progress.stored.Load())); wait > d.cfg.StallAfter {
			out = append(out, fmt.Sprintf("dispatcher: %d outcomes not stored for %s", n, wait.Round(time.Second)))
		}
	}
	if msg := d.progress.fanoutErr.Load(); msg != nil {
		if since := now.Sub(time.Unix(0, d.progress.fanoutErrSince.Load())); since > d.cfg.StallAfter {
			out = append(out, fmt.Sprintf("dispatcher: fan-out consumer failing for %s (%s)", since.Round(time.Second), *msg))
		}
	}
	return out
}
