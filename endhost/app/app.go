// Package app is what an application links to talk to its host's lane:
// it opens the rings the xlane-endhost agent created for it in shared
// memory, sends messages into the lane (R-X) and receives, with their
// timestamps, what the lane took off the wire (X-R). No system call and
// no allocation per message.
package app

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/xlane/xlane/endhost/bridge"
)

// TxPath is the R-X ring of app on lane (the agent creates it).
func TxPath(dir, service, lane, app string) string {
	return filepath.Join(dir, service, "tx-"+lane+"-"+app)
}

// RxPath is the X-R ring of app for the tunnel packets arriving on port.
func RxPath(dir, service string, port uint16, app string) string {
	return filepath.Join(dir, service, "rx-"+strconv.Itoa(int(port))+"-"+app)
}

// Sender puts an application's messages into its lane.
type Sender struct{ r *bridge.Ring }

// OpenSender attaches to the R-X ring of app on lane.
func OpenSender(dir, service, lane, app string) (*Sender, error) {
	r, err := bridge.Open(TxPath(dir, service, lane, app))
	if err != nil {
		return nil, fmt.Errorf("app %s on lane %s: %w (is xlane-endhost running with this lane?)", app, lane, err)
	}
	return &Sender{r: r}, nil
}

// Send queues msg; false when the ring is full (the lane is behind, or
// the tunnel was terminated) or msg is larger than the lane's messages.
func (s *Sender) Send(msg []byte) bool { return s.r.Push(msg, bridge.Meta{}) }

// MaxMessage is the largest message the lane takes.
func (s *Sender) MaxMessage() int { return s.r.DataLen() }

// Close detaches.
func (s *Sender) Close() error { return s.r.Close() }

// Receiver takes an application's messages off its host's lane.
type Receiver struct{ r *bridge.Ring }

// OpenReceiver attaches to the X-R ring of app for port.
func OpenReceiver(dir, service string, port uint16, app string) (*Receiver, error) {
	r, err := bridge.Open(RxPath(dir, service, port, app))
	if err != nil {
		return nil, fmt.Errorf("app %s on port %d: %w (is xlane-endhost running with this receiver?)", app, port, err)
	}
	r.SetBusyPoll(true) // applications poll their receive ring in a loop
	return &Receiver{r: r}, nil
}

// Recv copies the oldest message into buf; m carries the sender's, the
// kernel's and the lane's timestamps (ns) and the packet's sequence. A
// Recv within a moment (about a microsecond) of one that found nothing
// may report nothing without looking: a loop calling it does not keep
// taking from the lane the slot it writes next (bridge.Ring.SetBusyPoll).
func (r *Receiver) Recv(buf []byte) (n int, m bridge.Meta, ok bool) { return r.r.Pop(buf) }

// Close detaches.
func (r *Receiver) Close() error { return r.r.Close() }
