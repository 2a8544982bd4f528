package streamindex

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ExpireChunk is how many keys one batch of ExpireRange deletes.
const ExpireChunk = 1024

// retentionLoop runs Expire when following starts and every
// RetentionEvery.
func (s *Store) retentionLoop() {
	defer s.wg.Done()
	defer s.cfg.Health.Recover(s.cfg.Name+" retention", s.log)
	t := time.NewTicker(s.cfg.RetentionEvery)
	defer t.Stop()
	for {
		if _, err := s.Expire(); err != nil {
			s.log.Error(s.cfg.Name+": retention", "err", err)
		}
		select {
		case <-t.C:
		case <-s.done:
			return
		}
	}
}

// Expire runs retention once: Config.Expire with the cutoff now -
// Retention. It returns what Config.Expire returns (0 without one).
func (s *Store) Expire() (int, error) {
	if s.cfg.Expire == nil {
		return 0, nil
	}
	return s.cfg.Expire(s.cfg.Now().Add(-s.cfg.Retention))
}

// ExpireRange deletes every key in [lower, upper), in batches of
// ExpireChunk keys, each under the write lock; fn deletes, in the same
// batch, what the index keeps alongside a key, given its value (an error of
// fn drops the batch and is returned as it is). It returns
// how many keys of the range it deleted, stopping early (without an error)
// once Close starts. Its cost follows what expires, not what is kept, when
// the range holds what expires in the order it does (such as keys that
// start with a creation time).
func (s *Store) ExpireRange(lower, upper []byte, fn func(b *pebble.Batch, key, value []byte) error) (int, error) {
	lower = append([]byte(nil), lower...)
	n := 0
	for {
		select {
		case <-s.done:
			return n, nil
		default:
		}
		deleted, last, err := s.expireChunk(lower, upper, fn)
		n += deleted
		if err != nil || deleted < ExpireChunk {
			return n, err
		}
		lower = append(last, 0) // the next key after the last
	}
}

// expireChunk deletes up to ExpireChunk keys from lower on, and returns how
// many and the last one.
func (s *Store) expireChunk(lower, upper []byte, fn func(b *pebble.Batch, key, value []byte) error) (int, []byte, error) {
	n := 0
	var last []byte
	err := s.Update(func(b *pebble.Batch) error {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return fmt.Errorf("%s retention: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
		}
		for valid := it.First(); valid && n < ExpireChunk; valid = it.Next() {
			val, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return fmt.Errorf("%s retention: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
			}
			_ = b.Delete(it.Key(), nil)
			if err := fn(b, it.Key(), val); err != nil {
				it.Close()
				return err
			}
			last = append(last[:0], it.Key()...)
			n++
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("%s retention: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return n, last, nil
}
