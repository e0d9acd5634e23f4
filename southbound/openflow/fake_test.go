package openflow

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xlane/xlane/southbound"
)

// fakeSwitch is a minimal OpenFlow 1.3 switch for the paths real Open
// vSwitch does not take: it refuses bundles, answers barriers and empty
// state reads, and records the modifications it receives.
type fakeSwitch struct {
	mu   sync.Mutex
	mods []uint8 // message types of flow, group and meter mods
}

func (f *fakeSwitch) run(t *testing.T, conn net.Conn, version uint8, dpid uint64) {
	defer conn.Close()
	write := func(typ uint8, xid uint32, body []byte) error {
		b := make([]byte, headerLen+len(body))
		b[0], b[1] = version, typ
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		binary.BigEndian.PutUint32(b[4:], xid)
		copy(b[headerLen:], body)
		_, err := conn.Write(b)
		return err
	}
	if err := write(typeHello, 0, nil); err != nil {
		return
	}
	for {
		m, _, err := readMsg(conn)
		if err != nil {
			return
		}
		switch m.Type {
		case typeFeaturesRequest:
			body := make([]byte, 24)
			binary.BigEndian.PutUint64(body, dpid)
			write(typeFeaturesReply, m.Xid, body)
		case typeBarrierRequest:
			write(typeBarrierReply, m.Xid, nil)
		case typeEchoRequest:
			write(typeEchoReply, m.Xid, m.Body)
		case typeExperimenter: // BAD_REQUEST / BAD_EXPERIMENTER
			write(typeError, m.Xid, append([]byte{0, 1, 0, 3}, m.Body[:min(len(m.Body), 64)]...))
		case typeMultipartRequest: // nothing installed
			write(typeMultipartReply, m.Xid, m.Body[:8])
		case typeFlowMod, typeGroupMod, typeMeterMod:
			f.mu.Lock()
			f.mods = append(f.mods, m.Type)
			f.mu.Unlock()
		}
	}
}

func fakeDriver(t *testing.T) (*Driver, string) {
	d := New(Config{Switches: map[uint64]string{7: "s1"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	return d, lis.Addr().String()
}

func TestSwitchWithoutBundlesGetsSequences(t *testing.T) {
	d, addr := fakeDriver(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sw := &fakeSwitch{}
	go sw.run(t, conn, version13, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.WaitConnected(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, "s1", southbound.Batch{}); err == nil {
		t.Fatal("apply before the first reconcile succeeded")
	}
	if err := d.Reconcile(ctx, "s1", southbound.SwitchState{}); err != nil {
		t.Fatal(err)
	}
	r := southbound.TunnelRule{Tunnel: 3, Out: []southbound.Port{2}, Meter: &southbound.Meter{RateBps: 1e6, BurstBytes: 100},
		Match: southbound.Match{InPort: 1, SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.0.0.2"), DstPort: 9, DSCP: 46}}
	if err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{r}}); err != nil {
		t.Fatal(err)
	}
	if d.UsesBundles("s1") {
		t.Error("bundles reported in use on a switch that refuses them")
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if len(sw.mods) != 2 || sw.mods[0] != typeMeterMod || sw.mods[1] != typeFlowMod {
		t.Errorf("switch received mods %v, want a meter mod then a flow mod", sw.mods)
	}
}

func TestHandshakeRefusesOldVersionsAndUnknownSwitches(t *testing.T) {
	for name, c := range map[string]struct {
		version uint8
		dpid    uint64
	}{"OpenFlow 1.0": {1, 7}, "unknown datapath id": {version13, 99}} {
		t.Run(name, func(t *testing.T) {
			d, addr := fakeDriver(t)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); (&fakeSwitch{}).run(t, conn, c.version, c.dpid) }()
			select {
			case <-done: // the driver hung up
			case <-time.After(5 * time.Second):
				t.Fatal("the driver kept the connection")
			}
			if got := d.Connected(); len(got) != 0 {
				t.Errorf("connected switches: %v", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := d.WaitConnected(ctx, "s1"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WaitConnected = %v", err)
			}
		})
	}
}
