package lane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/endhost/wire"
)

// SendStats counts what a Sender did.
type SendStats struct {
	Packets    uint64
	Messages   uint64
	SendErrors uint64
	Fill       FillStats
}

// Update is what the controller said about the tunnel, handed to a
// running Sender.
type Update struct {
	Params Params
	At     int64 // monotonic ns from which Params hold (the grace deadline)
	Stop   bool  // BandwidthTerminated or released
}

// Sender sends one tunnel's packets: when its Schedule allows, it packs
// what waits in the applications' rings into one packet and writes it.
type Sender struct {
	Stats   SendStats
	conn    *net.UDPConn
	sched   *Schedule
	packer  *wire.Packer
	filler  Filler
	srcs    []Source
	tunnel  uint32
	seq     uint32
	busy    bool
	updates chan Update
	start   time.Time // the monotonic clock's origin
	core    *Core
	onSend  func(scheduled, actual int64)
	pubMu   sync.Mutex
	pub     SendStats // Stats as of the last packet, for other goroutines
}

// Snapshot returns the sender's statistics as of its last packet; safe to
// call from any goroutine while the sender runs.
func (s *Sender) Snapshot() SendStats {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	return s.pub
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	Conn      *net.UDPConn // connected to the receiver (address or group), DSCP set
	Tunnel    uint32
	Schema    *wire.Schema
	Params    Params
	NotBefore time.Time
	Sources   []Source
	// BusyPoll spins between packets (the lane's dedicated core) instead
	// of sleeping.
	BusyPoll bool
	// Core, when set, pins the goroutine that calls Run (see Core.Pin).
	Core *Core
	// OnSend, when set, is told each packet's scheduled and actual send
	// time (monotonic ns): the schedule's error, for measurements.
	OnSend func(scheduled, actual int64)
}

// NewSender checks cfg and prepares a sender.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Conn == nil || cfg.Schema == nil {
		return nil, errors.New("lane: a sender needs a socket and a chunk schema")
	}
	if err := cfg.Params.Check(cfg.Schema); err != nil {
		return nil, err
	}
	p, err := wire.NewPacker(cfg.Schema, make([]byte, wire.HeaderLen+cfg.Schema.MaxChunks(wire.MTU)*cfg.Schema.ChunkLen), cfg.Params.Chunks(cfg.Schema))
	if err != nil {
		return nil, err
	}
	s := &Sender{conn: cfg.Conn, packer: p, srcs: cfg.Sources, tunnel: cfg.Tunnel, busy: cfg.BusyPoll,
		updates: make(chan Update, 16), start: time.Now(), core: cfg.Core, onSend: cfg.OnSend}
	s.sched = NewSchedule(cfg.Params, s.mono(cfg.NotBefore))
	return s, nil
}

// mono converts a time to the sender's monotonic nanoseconds.
func (s *Sender) mono(t time.Time) int64 { return int64(t.Sub(s.start)) }

// Mono converts a wall-clock deadline (a grace_until) to the clock
// Update.At uses.
func (s *Sender) Mono(t time.Time) int64 { return s.mono(t) }

// Update hands a controller decision to the running sender. It blocks
// only if 16 updates wait unread.
func (s *Sender) Update(ctx context.Context, u Update) error {
	if !u.Stop {
		if err := u.Params.Check(s.packer.Schema()); err != nil {
			return err
		}
	}
	select {
	case s.updates <- u:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idlePoll is how often a sleeping sender looks for new messages.
const idlePoll = 20 * time.Microsecond

// Run sends until ctx ends or the tunnel is stopped.
func (s *Sender) Run(ctx context.Context) error {
	if s.core != nil {
		if err := s.core.Pin(); err != nil {
			return err
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for spins := 0; ; spins++ {
		if spins&1023 == 0 && ctx.Err() != nil {
			return nil
		}
		stopped, err := s.Poll()
		if stopped || err != nil {
			return err
		}
		if s.busy {
			continue
		}
		wait := idlePoll
		if next := time.Duration(s.sched.Next() - s.mono(time.Now())); next > wait {
			wait = next
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// Poll does one round of the sender's work without waiting: it takes the
// controller's updates and sends a packet if one is due and messages
// wait. stopped reports that the tunnel ended. Run calls it in a loop; a
// lane core serving several tunnels calls it for each.
func (s *Sender) Poll() (stopped bool, err error) {
	select {
	case u := <-s.updates:
		if u.Stop {
			s.sched.Stop()
			return true, nil
		}
		s.sched.Change(u.Params, u.At)
	default:
	}
	scheduled := s.sched.Next()
	now := s.mono(time.Now())
	if params, due := s.sched.Due(now); due {
		return false, s.trySend(now, scheduled, params)
	}
	return s.sched.Stopped(), nil
}

// trySend packs and sends one packet if any message waits.
func (s *Sender) trySend(now, scheduled int64, p Params) error {
	if want := p.Chunks(s.packer.Schema()); want != s.packer.Max() {
		if err := s.packer.SetMax(want); err != nil {
			return err
		}
	}
	s.packer.Reset(wire.Header{Tunnel: s.tunnel, Sequence: s.seq, SenderTsNs: uint64(time.Now().UnixNano())})
	n := s.filler.Fill(s.packer, s.srcs)
	s.Stats.Fill = s.filler.Stats
	if n == 0 {
		return nil // nothing to send: the next message may go at once
	}
	if _, err := s.conn.Write(s.packer.Packet()); err != nil {
		// A full socket buffer or an ICMP error from the receiver loses
		// this packet, not the lane.
		if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EAGAIN) {
			s.Stats.SendErrors++
		} else {
			return fmt.Errorf("lane: send: %w", err)
		}
	}
	s.sched.Sent(now)
	if s.onSend != nil {
		s.onSend(scheduled, now)
	}
	s.seq++
	s.Stats.Packets++
	s.Stats.Messages += uint64(n)
	s.pubMu.Lock()
	s.pub = s.Stats
	s.pubMu.Unlock()
	return nil
}
