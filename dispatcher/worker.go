package dispatcher

import (
	"context"
	"sync/atomic"
	"time"
)

// worker is what one worker goroutine reuses from attempt to attempt: the
// timer of the time it is lent for, the context its attempts run in with
// the timer of their timeout, and the scratch space of their requests.
// Each attempt so arms two timers made once, where a timer, a context and
// a map of its children were made for each.
type worker struct {
	d *Dispatcher

	// lend fires when the attempt of lent runs past Config.LendFor (see
	// overrun); its verdict, whether that attempt was demoted, is sent on
	// demoted.
	lend    *time.Timer
	lent    atomic.Pointer[delivery]
	demoted chan bool

	// ctx is the attempts' context, a child of the dispatcher's run
	// context, until an attempt runs past Config.Timeout: timeout then
	// cancels it, and the next attempt gets a new one (nil until then).
	ctx     *attemptCtx
	cancel  context.CancelCauseFunc
	timeout *time.Timer

	// hook is the scratch space of its requests (see webhook).
	hook *webhook
}

func (d *Dispatcher) newWorker() *worker {
	w := &worker{d: d, demoted: make(chan bool, 1), hook: newWebhook()}
	w.lend = time.AfterFunc(time.Hour, w.overrun)
	w.lend.Stop()
	return w
}

// lendFor starts the time dl's attempt holds the worker.
func (w *worker) lendFor(dl *delivery) {
	w.lent.Store(dl)
	w.lend.Reset(w.d.cfg.LendFor)
}

// overrun runs when an attempt ran past the time a worker is lent for:
// the queue is told, and if it counts the attempt out of the pool another
// worker takes this one's place.
func (w *worker) overrun() {
	d := w.d
	demoted := d.queue.demote(w.lent.Load())
	if demoted {
		d.m.demoted.Inc()
		d.workers.Add(1)
		go d.runWorker()
	}
	w.demoted <- demoted
}

// returned ends the time the attempt held the worker and reports whether
// it was demoted, its worker replaced in the pool.
func (w *worker) returned() bool {
	if w.lend.Stop() {
		return false
	}
	return <-w.demoted // overrun has started: wait for its verdict
}

// start returns the context of an attempt about to be made, its timeout
// running; finish ends it.
func (w *worker) start() context.Context {
	if w.ctx == nil || w.ctx.Err() != nil {
		ctx, cancel := context.WithCancelCause(w.d.runCtx)
		w.ctx, w.cancel = &attemptCtx{ctx}, cancel
		w.timeout = time.AfterFunc(w.d.cfg.Timeout, func() { cancel(context.DeadlineExceeded) })
		return w.ctx
	}
	w.timeout.Reset(w.d.cfg.Timeout)
	return w.ctx
}

// finish stops the attempt's timeout; if it fired, the context is done
// (or about to be), and the next attempt gets a new one.
func (w *worker) finish() {
	if !w.timeout.Stop() {
		w.ctx = nil
	}
}

// close releases the worker's timers and context as its goroutine ends.
func (w *worker) close() {
	w.lend.Stop()
	if w.ctx != nil {
		w.timeout.Stop()
		w.cancel(context.Canceled)
	}
}

// attemptCtx is a worker's context for its attempts. Cancelled by an
// attempt's timeout, with context.DeadlineExceeded as its cause, its Err
// is that cause, as a context.WithTimeout's would be: the transport,
// which reads the cause, and describe see a timeout as before. It has no
// deadline: the timer is the bound.
type attemptCtx struct{ context.Context }

// Err is the cause of the context's end: context.DeadlineExceeded for an
// attempt's timeout, context.Canceled for the dispatcher's run ending.
func (c *attemptCtx) Err() error {
	if c.Context.Err() == nil {
		return nil
	}
	return context.Cause(c.Context)
}
