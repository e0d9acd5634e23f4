package tunnels

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/southbound/memory"
)

// gateStore holds every Save until the test opens the gate, so an
// admission can be caught waiting for its store write.
type gateStore struct {
	mu      sync.Mutex
	saved   []Writes
	entered chan struct{}
	gate    chan struct{}
}

func (s *gateStore) Save(w Writes) error {
	s.entered <- struct{}{}
	<-s.gate
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append(s.saved, w)
	return nil
}

func (s *gateStore) Load() (Snapshot, error) { return Snapshot{}, nil }

// TestCloseWaitsForAdmissionInFlight closes the controller while an
// admission waits for its store write: Close returns only after the
// admission finished, so the tunnel is either committed and on the
// switches or gone everywhere, and later operations are refused.
func TestCloseWaitsForAdmissionInFlight(t *testing.T) {
	st := &gateStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	drv := memory.New("s1", "s2")
	c, err := New(context.Background(), Config{Topology: tetest.TwoSwitch(t), Driver: drv, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		res Resources
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Request(context.Background(), "svc", Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 9000), LoadsizeBytes: 100, PeriodUs: 1000})
		done <- result{res, err}
	}()
	<-st.entered // the admission now waits for its write
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while an admission was waiting for its store write")
	case <-time.After(50 * time.Millisecond):
	}
	close(st.gate)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the write finished")
	}
	// What Close waited for is visible when it returns: the admission's
	// tunnel committed and on the switches (the admission's goroutine may
	// not have handed its result over yet).
	got := c.Tunnels("")
	if len(got) != 1 {
		t.Fatalf("when Close returned the controller held %v, want the one admitted tunnel", got)
	}
	if len(drv.Rules("s1")) == 0 {
		t.Fatal("when Close returned the admitted tunnel was not on s1")
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the admission never returned")
	}
	if r.err != nil {
		t.Fatalf("admission failed: %v", r.err)
	}
	if got[0].TunnelID != r.res.TunnelID {
		t.Fatalf("the controller holds tunnel %d, the admission returned %d", got[0].TunnelID, r.res.TunnelID)
	}
	if err := c.Release(context.Background(), "svc", r.res.TunnelID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("release after Close: got %v, want ErrUnavailable", err)
	}
	if _, err := c.Request(context.Background(), "svc", Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 9000), LoadsizeBytes: 100, PeriodUs: 1000}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request after Close: got %v, want ErrUnavailable", err)
	}
}
