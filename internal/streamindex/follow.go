package streamindex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Follow starts applying cfg.Stream, which must exist, from the message
// after the last one applied (from the first one retained, if older ones
// have expired), and running retention. It rebuilds from scratch only if
// the stream is not the one the store was built from: recreated, or
// shorter than what was applied. Call it once; Close stops it.
func (s *Store) Follow(ctx context.Context, js jetstream.JetStream) error {
	if s.cfg.Apply == nil {
		return fmt.Errorf("%s: follow without Apply", s.cfg.Name)
	}
	stream, err := js.Stream(ctx, s.cfg.Stream)
	if err != nil {
		return fmt.Errorf("%s: stream %s: %w: %w", s.cfg.Name, s.cfg.Stream, s.cfg.ErrUnavailable, err)
	}
	s.stream = stream
	info := stream.CachedInfo()
	created := []byte(info.Created.UTC().Format(time.RFC3339Nano))
	was, err := s.Get(keyStream)
	if err != nil {
		return err
	}
	if string(was) != string(created) || s.applied.Load() > info.State.LastSeq {
		if was != nil {
			s.log.Warn(s.cfg.Name+": the stream is not the one the index was built from; rebuilding",
				"dir", s.cfg.Dir, "applied", s.applied.Load(), "stream_last_seq", info.State.LastSeq)
		}
		if err := s.reset(created); err != nil {
			return err
		}
	}
	ccfg := jetstream.OrderedConsumerConfig{FilterSubjects: s.cfg.FilterSubjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if a := s.applied.Load(); a > 0 {
		ccfg.DeliverPolicy, ccfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, a+1
	}
	cons, err := stream.OrderedConsumer(ctx, ccfg)
	if err != nil {
		return fmt.Errorf("%s: consumer: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
	}
	s.cc, err = cons.Consume(s.receive,
		jetstream.PullMaxMessagesWithBytesLimit(2*s.cfg.BatchMsgs, s.cfg.PullMaxBytes),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
				return // the process stops: nothing to resume
			}
			if !s.stalled.Swap(true) {
				s.log.Warn(s.cfg.Name+": following the stream stalled; reads may be stale until it resumes", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("%s: consume: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
	}
	s.wg.Add(2)
	go s.applyLoop()
	go s.retentionLoop()
	return nil
}

// reset empties the store, for the stream whose creation time is created.
func (s *Store) reset(created []byte) error {
	err := s.Update(func(b *pebble.Batch) error {
		_ = b.DeleteRange([]byte{0}, []byte{0xff}, nil)
		_ = b.Set(keyStream, created, nil)
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("reset %s: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
	}
	s.applied.Store(0)
	return nil
}

// receive hands a message from the consumer to applyLoop.
func (s *Store) receive(m jetstream.Msg) {
	if s.stalled.Load() && s.stalled.Swap(false) {
		s.log.Info(s.cfg.Name + ": following the stream again")
	}
	select {
	case s.msgs <- m:
	case <-s.done:
	}
}

// applyLoop applies the messages received, as many as are waiting (up to
// BatchMsgs) in one batch, retrying with a backoff while the store fails.
func (s *Store) applyLoop() {
	defer s.wg.Done()
	defer s.cfg.Health.Recover(s.cfg.Name+" follower", s.log)
	batch := make([]jetstream.Msg, 0, s.cfg.BatchMsgs)
	var fresh []Msg
	for {
		select {
		case m := <-s.msgs:
			batch = append(batch[:0], m)
		case <-s.done:
			return
		}
	more:
		for len(batch) < s.cfg.BatchMsgs {
			select {
			case m := <-s.msgs:
				batch = append(batch, m)
			default:
				break more
			}
		}
		fresh = s.unapplied(batch, fresh[:0])
		clear(batch)
		if len(fresh) == 0 {
			continue
		}
		last := fresh[len(fresh)-1].Seq
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			err := s.Commit(last, uint64(len(fresh)), func(b *pebble.Batch) error { return s.cfg.Apply(b, fresh) })
			if err == nil {
				break
			}
			s.log.Error(s.cfg.Name+": applying messages; retrying", "err", err)
			select {
			case <-time.After(wait):
			case <-s.done:
				return
			}
		}
		clear(fresh)
	}
}

// unapplied appends to dst the messages of batch past the last applied
// sequence, in order, each once. A message without metadata is logged and
// skipped.
func (s *Store) unapplied(batch []jetstream.Msg, dst []Msg) []Msg {
	last := s.applied.Load()
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			s.log.Warn(s.cfg.Name+": message without metadata skipped", "subject", m.Subject(), "err", err)
			continue
		}
		if md.Sequence.Stream <= last {
			continue
		}
		last = md.Sequence.Stream
		dst = append(dst, Msg{Seq: last, Stored: md.Timestamp, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	}
	return dst
}
