package store

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// A checkpoint's bbolt commit (about a thousand puts and two syncs: 5–8 ms
// on the test VM) runs beside the Saves that follow it: done inside the
// Save that crossed the threshold, it held up every admission behind that
// Save, which then came as one burst. Meanwhile Saves go on appending to
// the log; once the commit is done, the log is cut to what was appended
// since (checkpointed below).

// bgCheckpoint is a checkpoint under way: it commits the first n pending
// ops, which the log holds before byte end.
type bgCheckpoint struct {
	n    int
	end  int64
	done chan struct{}
}

// startCheckpoint commits the pending ops in the background; s.mu is held.
func (s *Store) startCheckpoint() {
	ck := &bgCheckpoint{n: len(s.pending), end: s.wal.size, done: make(chan struct{})}
	// Saves append past n only: these ops are not written meanwhile.
	ops := s.pending[:ck.n:ck.n]
	s.ck = ck
	hook := s.ckHook
	if hook == nil {
		hook = func(string) {}
	}
	go func() {
		defer close(ck.done)
		hook("commit")
		err := s.commit(ops)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.ck = nil
		if err == nil {
			hook("cut")
			err = s.checkpointed(ck)
		}
		if err != nil {
			// Not again at every Save: after as many ops or bytes more.
			// Close checkpoints once more and reports a failure.
			s.ckAt, s.ckSize = len(s.pending)+checkpointOps, s.wal.size+checkpointBytes
			return
		}
		s.ckAt, s.ckSize = checkpointOps, checkpointBytes
	}()
}

// settle waits until no checkpoint is under way; s.mu is held, and
// released while it waits.
func (s *Store) settle() {
	for s.ck != nil {
		done := s.ck.done
		s.mu.Unlock()
		<-done
		s.mu.Lock()
	}
}

// checkpointed drops what ck committed: the ops from pending, their
// records from the log. The log keeps what was appended since: a new
// file holding it replaces the log. Until that rename the old log is
// whole, and replaying what the database has changes nothing (Open), so
// a failure or a crash anywhere here loses nothing; on a failure the log
// stays longer. s.mu is held.
func (s *Store) checkpointed(ck *bgCheckpoint) error {
	rest := copy(s.pending, s.pending[ck.n:])
	clear(s.pending[rest:]) // let the collector have the values
	s.pending = s.pending[:rest]
	w := s.wal
	if ck.end == w.size {
		return s.resetLog()
	}
	tail := make([]byte, w.size-ck.end)
	if _, err := w.f.ReadAt(tail, ck.end); err != nil && err != io.EOF {
		return fmt.Errorf("checkpoint: read %s: %w", w.path, err)
	}
	tmp := w.path + ".next"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("checkpoint: %w", err)
	}
	if _, err := f.Write(append([]byte(walMagic), tail...)); err != nil {
		return fail(err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fail(fmt.Errorf("sync %s: %w", tmp, err))
	}
	if err := os.Rename(tmp, w.path); err != nil {
		return fail(err)
	}
	// Either file is a whole log now; the directory's sync makes it the
	// new one after a crash too.
	old := w.f
	w.f, w.size = f, int64(len(walMagic)+len(tail))
	old.Close()
	dir := filepath.Dir(w.path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("checkpoint: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Fsync(int(d.Fd())); err != nil {
		return fmt.Errorf("checkpoint: sync %s: %w", dir, err)
	}
	return nil
}

// checkpoint writes every pending op into the database in one transaction
// and empties the log; s.mu is held and no checkpoint is under way.
func (s *Store) checkpoint() error {
	if len(s.pending) > 0 {
		if err := s.commit(s.pending); err != nil {
			return err
		}
		clear(s.pending) // let the collector have the values
		s.pending = s.pending[:0]
	}
	s.ckAt, s.ckSize = checkpointOps, checkpointBytes
	if s.wal.size == int64(len(walMagic)) {
		return nil
	}
	return s.resetLog()
}

// resetLog empties the log, whose records are all in the database.
func (s *Store) resetLog() error {
	if err := s.wal.reset(); err != nil {
		s.broken = err // the log may still hold what the database has: safe to replay, but not to append to blindly
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// commit applies ops to the database in one transaction.
func (s *Store) commit(ops []op) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		tb, counters, sb, gb := tx.Bucket(bucketTunnels), tx.Bucket(bucketCounters), tx.Bucket(bucketServices), tx.Bucket(bucketGroups)
		tb.FillPercent = 0.9 // ids only grow: keep pages full instead of half-split
		for _, o := range ops {
			var err error
			switch o.kind {
			case opPutTunnel:
				err = tb.Put(o.key, o.val)
			case opDeleteTunnel:
				err = tb.Delete(o.key)
			case opPutService:
				err = sb.Put(o.key, o.val)
			case opPutGroup:
				err = gb.Put(o.key, o.val)
			case opDeleteGroup:
				err = gb.Delete(o.key)
			case opNextID:
				if v := counters.Get(keyNextID); len(v) != 8 || binary.BigEndian.Uint64(v) < binary.BigEndian.Uint64(o.val) {
					err = counters.Put(keyNextID, o.val)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
