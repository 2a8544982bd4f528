package deliverylog

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// WriterConfig tunes a [Writer]; the zero value of each field means its
// default.
type WriterConfig struct {
	// FlushInterval is the longest a record waits in the writer's buffer
	// before its batch is published (default 2 ms).
	FlushInterval time.Duration
	// MaxBatchRecords and MaxBatchBytes end a tenant's batch early
	// (defaults 512 records, 256 KiB; a batch may pass MaxBatchBytes by one
	// record, and must stay under NATS's maximum payload).
	MaxBatchRecords int
	MaxBatchBytes   int
	// MaxPendingRecords and MaxPendingBytes bound what the writer holds,
	// buffered or published but not yet stored; past them Append blocks
	// (defaults 200,000 records, 64 MiB).
	MaxPendingRecords int
	MaxPendingBytes   int
	// AckTimeout is how long a published batch waits for the stream's
	// acknowledgement before it is published again (default 5 s).
	AckTimeout time.Duration
	// RetryWait is the first pause before publishing a failed batch again;
	// it doubles up to MaxRetryWait (defaults 50 ms and 2 s).
	RetryWait    time.Duration
	MaxRetryWait time.Duration
}

func (c WriterConfig) withDefaults() WriterConfig {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defDur(&c.FlushInterval, 2*time.Millisecond)
	def(&c.MaxBatchRecords, 512)
	def(&c.MaxBatchBytes, 256<<10)
	def(&c.MaxPendingRecords, 200_000)
	def(&c.MaxPendingBytes, 64<<20)
	defDur(&c.AckTimeout, 5*time.Second)
	defDur(&c.RetryWait, 50*time.Millisecond)
	defDur(&c.MaxRetryWait, 2*time.Second)
	return c
}

// maxPayload keeps a batch, with its largest possible last record, under
// NATS's default 1 MiB maximum payload.
const maxPayload = 1<<20 - 64<<10

// Validate reports a negative setting, or a batch size NATS would refuse.
func (c WriterConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.FlushInterval < 0, c.AckTimeout < 0, c.RetryWait < 0, c.MaxRetryWait < c.RetryWait:
		return fmt.Errorf("writer durations %+v: %w", c, ErrInvalid)
	case c.MaxBatchRecords < 0, c.MaxPendingRecords < 0, c.MaxPendingBytes < 0:
		return fmt.Errorf("writer limits %+v: %w", c, ErrInvalid)
	case c.MaxBatchBytes < 0 || c.MaxBatchBytes > maxPayload:
		return fmt.Errorf("writer batch of %d bytes, over %d: %w", c.MaxBatchBytes, maxPayload, ErrInvalid)
	}
	return nil
}

// Writer appends records to the stream in batches: one message per tenant
// per flush, published asynchronously, acknowledgements awaited together.
// It is safe for concurrent use.
type Writer struct {
	js  jetstream.JetStream
	cfg WriterConfig
	log *slog.Logger
	id  string // this instance's part of every message id: 64 random bits

	scratch sync.Pool // *[]byte for encoding outside the lock

	mu       sync.Mutex
	open     map[string]*batch // tenant → batch being filled
	ready    []*batch          // full batches for the flusher
	buffered bool              // open or ready holds a record
	records  int               // appended and neither stored nor given up
	bytes    int
	room     chan struct{} // closed when records or bytes go down; nil without waiters
	closing  bool
	free     []*batch // batches to reuse

	kick     chan struct{} // a record was buffered into an empty writer
	full     chan struct{} // a batch is ready
	stop     chan struct{} // Close: flush everything, then finish
	abort    chan struct{} // Close's ctx ended: give up on what is not stored
	inflight chan *batch   // published, awaiting acknowledgement
	finished chan struct{} // both goroutines returned

	seq uint64 // last batch number, the flusher's
}

// batch is the records of one tenant in one message.
type batch struct {
	tenant string
	data   []byte // batchV1, records
	dones  []func(error)
	msg    nats.Msg
	fut    jetstream.PubAckFuture
	err    error // of the last publish, nil while it may succeed
	// abandoned: a publish of this batch was given up on while nats.go may
	// still hold its data, so the batch must not be reused.
	abandoned bool
}

// NewWriter starts a writer publishing to js, which must reach a stream
// made by [EnsureStream]. It panics if cfg does not validate. Close it to
// flush what it holds and stop it.
func NewWriter(js jetstream.JetStream, cfg WriterConfig, logger *slog.Logger) *Writer {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("deliverylog.NewWriter: %v", err))
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		js:       js,
		cfg:      cfg.withDefaults(),
		log:      logger,
		id:       strconv.FormatUint(rand.Uint64(), 36),
		open:     make(map[string]*batch),
		kick:     make(chan struct{}, 1),
		full:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		abort:    make(chan struct{}),
		inflight: make(chan *batch, 1024),
		finished: make(chan struct{}),
	}
	w.scratch.New = func() any { b := make([]byte, 0, 512); return &b }
	go w.flushLoop()
	go w.ackLoop()
	return w
}

// Append buffers r for the next flush of its tenant's batch. It returns an
// error, and never calls done, if r is malformed (ErrInvalid), if the
// writer is closed (ErrClosed), or if ctx ends while the writer is full:
// Append blocks while MaxPendingRecords or MaxPendingBytes are reached.
//
// Otherwise done, if not nil, is called exactly once: with nil once the
// message holding r is stored in the stream (however often the writer had
// to publish it again), or with an error wrapping ErrClosed if Close gave
// up before then. done is called from the writer's acknowledging
// goroutine, in append order for one tenant, and must be cheap: it holds up
// every record acknowledged after it. It must not call Append.
func (w *Writer) Append(ctx context.Context, r Record, done func(error)) error {
	k, err := prepare(&r)
	if err != nil {
		return err
	}
	sp := w.scratch.Get().(*[]byte)
	rec := appendRecord((*sp)[:0], k, &r)
	*sp = rec
	defer w.scratch.Put(sp)

	w.mu.Lock()
	for w.records > 0 && (w.records >= w.cfg.MaxPendingRecords || w.bytes+len(rec) > w.cfg.MaxPendingBytes) && !w.closing {
		if w.room == nil {
			w.room = make(chan struct{})
		}
		room := w.room
		w.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return fmt.Errorf("append %s: writer full: %w", r.DeliveryID, ctx.Err())
		}
		w.mu.Lock()
	}
	if w.closing {
		w.mu.Unlock()
		return fmt.Errorf("append %s: %w", r.DeliveryID, ErrClosed)
	}
	b := w.open[r.TenantID]
	if b == nil {
		b = w.newBatchLocked(r.TenantID)
		w.open[r.TenantID] = b
	}
	b.data = append(b.data, rec...)
	b.dones = append(b.dones, done)
	w.records++
	w.bytes += len(rec)
	first := !w.buffered
	w.buffered = true
	full := len(b.dones) >= w.cfg.MaxBatchRecords || len(b.data) >= w.cfg.MaxBatchBytes
	if full {
		delete(w.open, r.TenantID)
		w.ready = append(w.ready, b)
	}
	w.mu.Unlock()

	switch {
	case full:
		signal(w.full)
	case first:
		signal(w.kick)
	}
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (w *Writer) newBatchLocked(tenant string) *batch {
	var b *batch
	if n := len(w.free); n > 0 {
		b, w.free = w.free[n-1], w.free[:n-1]
	} else {
		b = &batch{data: make([]byte, 0, 4<<10), msg: nats.Msg{Header: nats.Header{}}}
	}
	b.tenant = tenant
	b.data = append(b.data[:0], batchV1)
	return b
}

// Close stops taking records, flushes what the writer holds and waits
// until it is stored. If ctx ends first, the records not yet stored get
// done(err) with err wrapping ErrClosed, and Close returns ctx's error.
// Records given to Append after Close began are refused with ErrClosed.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	first := !w.closing
	w.closing = true
	if w.room != nil {
		close(w.room) // blocked Appends see closing
		w.room = nil
	}
	w.mu.Unlock()
	if first {
		close(w.stop)
	}
	select {
	case <-w.finished:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	select {
	case <-w.abort:
	default:
		close(w.abort)
	}
	w.mu.Unlock()
	<-w.finished
	return fmt.Errorf("close delivery log writer: %w", ctx.Err())
}

// flushLoop publishes the batches: a full one at once, the others
// FlushInterval after the first record buffered into an empty writer, and
// everything when Close begins.
func (w *Writer) flushLoop() {
	defer close(w.inflight)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	var batches []*batch
	for {
		all, last := false, false
		select {
		case <-w.kick:
			if !armed {
				timer.Reset(w.cfg.FlushInterval)
				armed = true
			}
			continue
		case <-w.full:
		case <-timer.C:
			armed, all = false, true
		case <-w.stop:
			// Close forbids new records before stop: one take gets all.
			all, last = true, true
		}
		batches = w.take(batches[:0], all)
		for _, b := range batches {
			w.publish(b)
			select {
			case w.inflight <- b:
			case <-w.abort:
				w.finish(b, w.closedErr())
			}
		}
		clear(batches)
		if last {
			return
		}
	}
}

// take removes the full batches, and with all the others too.
func (w *Writer) take(dst []*batch, all bool) []*batch {
	w.mu.Lock()
	defer w.mu.Unlock()
	dst = append(dst, w.ready...)
	clear(w.ready)
	w.ready = w.ready[:0]
	if all {
		for _, b := range w.open {
			dst = append(dst, b)
		}
		clear(w.open)
	}
	w.buffered = len(w.open) > 0
	return dst
}

// publish sends b without waiting for its acknowledgement. The message id
// is the same every time b is sent, so the stream stores it once.
func (w *Writer) publish(b *batch) {
	if b.msg.Subject == "" { // first publish, from the flusher
		w.seq++
		b.msg.Subject = subjectPrefix + b.tenant
		b.msg.Header.Set(jetstream.MsgIDHeader, w.id+"-"+strconv.FormatUint(w.seq, 36))
	}
	b.msg.Data = b.data
	b.fut, b.err = w.js.PublishMsgAsync(&b.msg)
}

// ackLoop waits for each published batch to be stored, in publishing
// order, and then calls its records' done.
func (w *Writer) ackLoop() {
	defer close(w.finished)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	failing := false
	for b := range w.inflight {
		w.finish(b, w.store(b, timer, &failing))
	}
}

// store returns nil once b is stored, publishing it again with backoff
// after each failure, or an error wrapping ErrClosed once Close gives up.
func (w *Writer) store(b *batch, timer *time.Timer, failing *bool) error {
	wait := w.cfg.RetryWait
	for {
		if b.err == nil && w.await(b, timer) {
			if *failing {
				*failing = false
				w.log.Info("delivery log: publishing recovered")
			}
			return nil
		}
		if w.aborted() {
			return w.closedErr()
		}
		if !*failing {
			*failing = true
			w.log.Warn("delivery log: publishing a batch failed; retrying until stored", "subject", b.msg.Subject, "err", b.err)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-w.abort:
			timer.Stop()
			return w.closedErr()
		}
		wait = min(2*wait, w.cfg.MaxRetryWait)
		w.publish(b)
	}
}

// await waits for b's acknowledgement and reports whether b is stored;
// if not, b.err says why, or the writer is aborted.
func (w *Writer) await(b *batch, timer *time.Timer) bool {
	timer.Reset(w.cfg.AckTimeout)
	defer timer.Stop()
	select {
	case <-b.fut.Ok():
		return true
	case err := <-b.fut.Err():
		b.err = err
	case <-timer.C:
		// nats.go may still publish this data again on its own: never
		// reuse the buffer.
		b.abandoned = true
		b.err = fmt.Errorf("no acknowledgement in %v", w.cfg.AckTimeout)
	case <-w.abort:
		if storedNow(b) {
			return true
		}
		b.abandoned = true
	}
	return false
}

func storedNow(b *batch) bool {
	select {
	case <-b.fut.Ok():
		return true
	default:
		return false
	}
}

func (w *Writer) aborted() bool {
	select {
	case <-w.abort:
		return true
	default:
		return false
	}
}

func (w *Writer) closedErr() error {
	return fmt.Errorf("delivery log batch not stored before close: %w", ErrClosed)
}

// finish reports b's outcome to its records, frees its room and keeps it
// for reuse.
func (w *Writer) finish(b *batch, err error) {
	for _, done := range b.dones {
		if done != nil {
			done(err)
		}
	}
	w.mu.Lock()
	w.records -= len(b.dones)
	w.bytes -= len(b.data) - 1
	if w.room != nil {
		close(w.room)
		w.room = nil
	}
	if err == nil && !b.abandoned && cap(b.data) <= 2*w.cfg.MaxBatchBytes && len(w.free) < 64 {
		clear(b.dones)
		b.dones = b.dones[:0]
		b.msg.Subject, b.msg.Data, b.fut, b.err = "", nil, nil, nil
		w.free = append(w.free, b)
	}
	w.mu.Unlock()
}
