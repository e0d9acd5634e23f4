package openflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// session is the OpenFlow channel to one switch after the handshake. Its
// reader goroutine answers echoes and routes replies and errors to the
// requests waiting for them by transaction id.
type session struct {
	name string
	dpid uint64
	conn net.Conn
	log  *slog.Logger

	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	xid     uint32
	waiters map[uint32]*waiter
	errs    map[uint32]*OFError // errors of fire-and-forget messages, by xid
	closed  bool
	err     error // why the session ended
	done    chan struct{}
	lastRx  time.Time

	// op serialises Apply, Reconcile and Stats (state below).
	op        sync.Mutex
	synced    bool // reconciled since it connected
	state     swState
	noBundles bool // the switch refused a bundle: plain sequences
	bundleID  uint32
}

// waiter collects the reply (all parts of a multipart reply) to one
// request.
type waiter struct {
	parts [][]byte
	ch    chan result
}

type result struct {
	body []byte
	err  error
}

func newSession(name string, dpid uint64, conn net.Conn, log *slog.Logger, slack time.Duration) *session {
	return &session{
		name: name, dpid: dpid, conn: conn, log: log,
		waiters: map[uint32]*waiter{}, errs: map[uint32]*OFError{},
		done: make(chan struct{}), lastRx: time.Now(),
		state: newSwState(slack),
	}
}

// nextXid reserves a transaction id; 0 is never used (the handshake's).
func (s *session) nextXid() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.xid++
	if s.xid == 0 {
		s.xid = 1
	}
	return s.xid
}

func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.conn.Write(b); err != nil {
		s.fail(fmt.Errorf("write: %w", err))
		return s.endErr()
	}
	return nil
}

// send writes a message that expects no reply; an error the switch
// returns for it is kept for takeErrs.
func (s *session) send(typ uint8, body io.WriterTo) (uint32, error) {
	xid := s.nextXid()
	b, err := encode(typ, xid, body)
	if err != nil {
		return 0, err
	}
	return xid, s.write(b)
}

// request sends a message and waits for its reply (all parts of a
// multipart reply, concatenated) or its error.
func (s *session) request(ctx context.Context, typ uint8, body io.WriterTo) ([]byte, error) {
	xid := s.nextXid()
	b, err := encode(typ, xid, body)
	if err != nil {
		return nil, err
	}
	w := &waiter{ch: make(chan result, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, s.endErr()
	}
	s.waiters[xid] = w
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, xid)
		s.mu.Unlock()
	}()
	if err := s.write(b); err != nil {
		return nil, err
	}
	select {
	case r := <-w.ch:
		return r.body, r.err
	case <-s.done:
		return nil, s.endErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// barrier waits until the switch has processed everything sent before,
// then returns the errors it reported for the given transactions.
func (s *session) barrier(ctx context.Context, xids map[uint32]string) error {
	failed, err := s.collect(ctx, xids)
	if err != nil {
		return err
	}
	var errs []error
	for xid, e := range failed {
		errs = append(errs, fmt.Errorf("%s: %w", xids[xid], e))
	}
	return errors.Join(errs...)
}

// collect waits for a barrier and returns the errors the switch reported
// for the given transactions, by transaction.
func (s *session) collect(ctx context.Context, xids map[uint32]string) (map[uint32]*OFError, error) {
	if _, err := s.request(ctx, typeBarrierRequest, nil); err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	failed := map[uint32]*OFError{}
	for xid := range xids {
		if e, ok := s.errs[xid]; ok {
			failed[xid] = e
			delete(s.errs, xid)
		}
	}
	return failed, nil
}

func (s *session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.err = err
	s.conn.Close()
	close(s.done)
}

func (s *session) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Errorf("switch %s disconnected: %w", s.name, s.err)
}

// readLoop runs until the connection ends.
func (s *session) readLoop() {
	for {
		m, _, err := readMsg(s.conn)
		if err != nil {
			s.fail(fmt.Errorf("read: %w", err))
			return
		}
		s.mu.Lock()
		s.lastRx = time.Now()
		s.mu.Unlock()
		switch m.Type {
		case typeEchoRequest:
			b, _ := encode(typeEchoReply, m.Xid, rawBody(m.Body))
			if s.write(b) != nil {
				return
			}
		case typeError:
			e, err := decodeError(m.Body)
			if err != nil {
				s.log.Warn("undecodable error message", "switch", s.name, "err", err)
				continue
			}
			s.deliver(m.Xid, nil, e, true)
		case typeMultipartReply:
			_, flags, body, err := multipartBody(m.Body)
			if err != nil {
				s.deliver(m.Xid, nil, err, true)
				continue
			}
			s.deliver(m.Xid, body, nil, flags&multipartReplyMore == 0)
		case typeBarrierReply, typeEchoReply, typeFeaturesReply, typeExperimenter:
			s.deliver(m.Xid, m.Body, nil, true)
		default:
			// packet-in, port status, flow removed: not used.
		}
	}
}

// deliver hands a reply part or an error to the waiter of xid; errors
// without a waiter are kept for the next barrier.
func (s *session) deliver(xid uint32, part []byte, err error, last bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.waiters[xid]
	if !ok {
		var ofe *OFError
		if errors.As(err, &ofe) {
			s.errs[xid] = ofe
		}
		return
	}
	if err != nil {
		w.ch <- result{err: err}
		delete(s.waiters, xid)
		return
	}
	w.parts = append(w.parts, part)
	if last {
		var all []byte
		for _, p := range w.parts {
			all = append(all, p...)
		}
		w.ch <- result{body: all}
		delete(s.waiters, xid)
	}
}

// keepalive sends echo requests and ends the session when the switch has
// been silent for three intervals.
func (s *session) keepalive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		silent := time.Since(s.lastRx)
		s.mu.Unlock()
		if silent > 3*interval {
			s.fail(fmt.Errorf("no message for %v", silent.Round(time.Millisecond)))
			return
		}
		if _, err := s.send(typeEchoRequest, nil); err != nil {
			return
		}
	}
}

type rawBody []byte

func (r rawBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r)
	return int64(n), err
}
