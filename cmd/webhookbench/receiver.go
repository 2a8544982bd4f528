package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onestack/webhooks/signature"
)

// Every event the bench publishes carries its marks in data:
//
//	{"ticketId":"T-<seq>","ph":<phase>,"seq":<seq>,"sentAtNs":<unix ns>}
//
// seq numbers the events of one stack from 0, ph names the phase of the run
// that sent it, and sentAtNs is when the bench handed it to the ingest call.
// Receivers find the three numbers with bytes.Index, without decoding JSON.

// appendData appends an event's data object with its marks.
func appendData(b []byte, ph int, seq, sentAtNs int64) []byte {
	b = append(b, `{"ticketId":"T-`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","ph":`...)
	b = strconv.AppendInt(b, int64(ph), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"sentAtNs":`...)
	b = strconv.AppendInt(b, sentAtNs, 10)
	return append(b, '}')
}

var (
	markPhase = []byte(`"ph":`)
	markSeq   = []byte(`"seq":`)
	markSent  = []byte(`"sentAtNs":`)
)

// parseMarks finds the marks in a webhook body; ok is false when one is
// missing.
func parseMarks(body []byte) (ph int, seq, sentAtNs int64, ok bool) {
	p, ok1 := intAfter(body, markPhase)
	seq, ok2 := intAfter(body, markSeq)
	sentAtNs, ok3 := intAfter(body, markSent)
	return int(p), seq, sentAtNs, ok1 && ok2 && ok3
}

// intAfter parses the non-negative decimal integer right after the first
// occurrence of key in b.
func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	var n int64
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
		digits++
	}
	return n, digits > 0
}

// seqCounts counts receipts per event sequence number without locks, in
// chunks allocated on first use.
type seqCounts struct {
	chunks [1 << 13]atomic.Pointer[[1 << seqChunkBits]atomic.Uint32]
}

const seqChunkBits = 16

// add counts one receipt of seq and returns its count so far (0 when seq is
// out of range and so not counted).
func (c *seqCounts) add(seq int64) uint32 {
	ci := seq >> seqChunkBits
	if seq < 0 || ci >= int64(len(c.chunks)) {
		return 0
	}
	p := c.chunks[ci].Load()
	if p == nil {
		fresh := new([1 << seqChunkBits]atomic.Uint32)
		if c.chunks[ci].CompareAndSwap(nil, fresh) {
			p = fresh
		} else {
			p = c.chunks[ci].Load()
		}
	}
	return p[seq&(1<<seqChunkBits-1)].Add(1)
}

// A phase is one stretch of a run with its own figures: what was offered
// and accepted, and what each subscription received of its events.
type phase struct {
	name string
	subs []int // the subscriptions that exist during the phase

	// Filled by receivers.
	unique [maxSubs]atomic.Int64 // first receipts of this phase's events
	lat    [maxSubs]*histogram   // publish → first receipt
	dups   atomic.Int64          // receipts after the first
	failed [maxSubs]atomic.Int64 // receipts answered 500 on purpose

	// Filled by the ingest workers.
	offered   atomic.Int64 // events handed to the ingest path
	accepted  atomic.Int64 // events answered 202 or acknowledged
	requests  atomic.Int64
	r429      atomic.Int64
	non202    atomic.Int64
	errs      atomic.Int64
	lastErr   atomic.Pointer[string]
	maxLagNs  atomic.Int64 // the pacer's worst delay in handing out a batch
	ingest    histogram    // scheduled send → answer
	ingestSec []*histogram // the same per second of the phase, when asked
	start     time.Time
	inflight  sync.WaitGroup
}

// maxSubs bounds the subscriptions of one stack.
const maxSubs = 64

func newPhase(name string, subs []int, perSecond int) *phase {
	p := &phase{name: name, subs: subs}
	for _, s := range subs {
		p.lat[s] = new(histogram)
	}
	for range perSecond {
		p.ingestSec = append(p.ingestSec, new(histogram))
	}
	return p
}

// received counts the first receipts of this phase's events over its
// subscriptions.
func (p *phase) received() int64 {
	var n int64
	for _, s := range p.subs {
		n += p.unique[s].Load()
	}
	return n
}

// expected is the deliveries owed for the accepted events.
func (p *phase) expected() int64 { return p.accepted.Load() * int64(len(p.subs)) }

// lost is the deliveries owed and not (yet) received.
func (p *phase) lost() int64 { return max(0, p.expected()-p.received()) }

// latency merges the publish→receipt latencies of the given subscriptions
// (all of the phase's when none are given).
func (p *phase) latency(subs ...int) *histogram {
	if len(subs) == 0 {
		subs = p.subs
	}
	h := new(histogram)
	for _, s := range subs {
		h.Merge(p.lat[s])
	}
	return h
}

// A tracker gathers what the receivers of one stack got.
type tracker struct {
	t0      time.Time
	nextSeq atomic.Int64
	seen    [maxSubs]seqCounts
	phases  atomic.Pointer[[]*phase]

	unique atomic.Int64 // first receipts, every subscription and phase
	dups   atomic.Int64
	stray  atomic.Int64          // bodies without marks or of unknown phases
	perSec [1 << 16]atomic.Int64 // first receipts per second since t0
	lastNs atomic.Int64          // the latest receipt
	maxGap atomic.Int64          // the longest wait between receipts since resetGap
}

func newTracker() *tracker {
	t := &tracker{t0: time.Now()}
	t.phases.Store(&[]*phase{})
	return t
}

// addPhase registers p and returns its number, which events carry.
func (t *tracker) addPhase(p *phase) int {
	for {
		old := t.phases.Load()
		next := append(append([]*phase(nil), *old...), p)
		if t.phases.CompareAndSwap(old, &next) {
			return len(next) - 1
		}
	}
}

func (t *tracker) phase(ph int) *phase {
	ps := *t.phases.Load()
	if ph < 0 || ph >= len(ps) {
		return nil
	}
	return ps[ph]
}

// seqs reserves n sequence numbers and returns the first.
func (t *tracker) seqs(n int) int64 { return t.nextSeq.Add(int64(n)) - int64(n) }

// second returns the index of the second of t0 that instant at falls in.
func (t *tracker) second(at time.Time) int { return int(at.Sub(t.t0) / time.Second) }

// delivered returns the first receipts in seconds [from, to).
func (t *tracker) delivered(from, to int) int64 {
	var n int64
	for i := max(0, from); i < min(to, len(t.perSec)); i++ {
		n += t.perSec[i].Load()
	}
	return n
}

// resetGap starts measuring the longest gap between receipts anew.
func (t *tracker) resetGap(now time.Time) {
	t.lastNs.Store(now.UnixNano())
	t.maxGap.Store(0)
}

// gap returns the longest gap between receipts since resetGap, counting
// the one still open at now.
func (t *tracker) gap(now time.Time) time.Duration {
	open := now.UnixNano() - t.lastNs.Load()
	return time.Duration(max(open, t.maxGap.Load()))
}

// record counts one receipt at now for subscription sub.
func (t *tracker) record(sub, ph int, seq, sentAtNs int64, now time.Time) {
	nowNs := now.UnixNano()
	if prev := t.lastNs.Swap(nowNs); nowNs-prev > t.maxGap.Load() {
		for {
			m := t.maxGap.Load()
			if nowNs-prev <= m || t.maxGap.CompareAndSwap(m, nowNs-prev) {
				break
			}
		}
	}
	p := t.phase(ph)
	if p == nil || p.lat[sub] == nil {
		t.stray.Add(1)
		return
	}
	if t.seen[sub].add(seq) != 1 {
		t.dups.Add(1)
		p.dups.Add(1)
		return
	}
	t.unique.Add(1)
	if s := t.second(now); s >= 0 && s < len(t.perSec) {
		t.perSec[s].Add(1)
	}
	p.unique[sub].Add(1)
	p.lat[sub].Record(nowNs - sentAtNs)
}

// A receiver is one subscription's endpoint: a net/http server on a
// loopback port of its own that counts what it gets and answers 204 (or,
// when told, late or 500 for a fraction of events).
type receiver struct {
	sub int
	tr  *tracker
	ln  net.Listener
	srv *http.Server

	delay    atomic.Int64 // ns to wait before answering
	failPPM  atomic.Int64 // answer 500 to this many events per million
	verifier atomic.Pointer[signature.Verifier]
	every    uint64 // verify one request in every
	n        atomic.Uint64

	verified, badSig, stray atomic.Int64
	bufs                    sync.Pool
}

func newReceiver(tr *tracker, sub int, verifySample float64) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{sub: sub, tr: tr, ln: ln}
	if verifySample > 0 {
		r.every = uint64(max(1, 1/verifySample+0.5))
	}
	r.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// URL is the endpoint's address; its path names the subscription.
func (r *receiver) URL() string {
	return "http://" + r.ln.Addr().String() + "/hook/" + strconv.Itoa(r.sub)
}

// setSecret lets the receiver verify a sample of signatures.
func (r *receiver) setSecret(s string) error {
	sec, err := signature.ParseSecret(s)
	if err != nil {
		return err
	}
	r.verifier.Store(&signature.Verifier{Secrets: []signature.Secret{sec}})
	return nil
}

// fails reports whether the receiver answers 500 to this event: a fixed
// choice per (event, subscription), so a retry fails again.
func (r *receiver) fails(seq int64) bool {
	ppm := r.failPPM.Load()
	if ppm == 0 {
		return false
	}
	h := uint64(seq)*0x9e3779b97f4a7c15 ^ uint64(r.sub)*0xbf58476d1ce4e5b9
	h ^= h >> 31
	return int64(h%1_000_000) < ppm
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	bp := r.bufs.Get().(*[]byte)
	body, err := readBody((*bp)[:0], req.Body)
	defer func() { *bp = body[:0]; r.bufs.Put(bp) }()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	ph, seq, sent, ok := parseMarks(body)
	if !ok {
		r.stray.Add(1)
		r.tr.stray.Add(1)
	} else {
		r.tr.record(r.sub, ph, seq, sent, now)
	}
	if r.every > 0 && r.n.Add(1)%r.every == 1%r.every {
		if v := r.verifier.Load(); v != nil {
			if v.VerifyHeaders(req.Header.Get, body) == nil {
				r.verified.Add(1)
			} else {
				r.badSig.Add(1)
			}
		}
	}
	status := http.StatusNoContent
	if ok && r.fails(seq) {
		status = http.StatusInternalServerError
		if p := r.tr.phase(ph); p != nil {
			p.failed[r.sub].Add(1)
		}
	}
	if d := r.delay.Load(); d > 0 {
		t := time.NewTimer(time.Duration(d))
		select {
		case <-t.C:
		case <-req.Context().Done():
		}
		t.Stop()
	}
	w.WriteHeader(status)
}

// readBody reads all of rd into b, growing it as needed.
func readBody(b []byte, rd io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// Close stops the server at once, cutting requests still waiting.
func (r *receiver) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if r.srv.Shutdown(ctx) != nil {
		r.srv.Close()
	}
}
