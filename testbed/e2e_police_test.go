package testbed_test

import (
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
)

// TestE2EMeterDropsAndDemotion: a sender well above its allocation
// loses the excess at its first switch's meter, the meter's drop count
// and the receiver's count add up to what was sent, and the controller
// demotes the tunnel (BW_EXCEEDED) within two monitoring intervals.
func TestE2EMeterDropsAndDemotion(t *testing.T) {
	const interval = 300 * time.Millisecond
	h := newHarness(t, "t2", &tunnels.MonitorConfig{Interval: interval, ViolationIntervals: 1000})
	o := h.overdrive(interval)
	id, sent, took, received, after := o.id, o.sent, o.took, len(o.packets), o.after
	ms := h.ofctl("leaf0", "meter-stats")
	m := regexp.MustCompile(`packet_in_count:(\d+).*\n.*0: packet_count:(\d+)`).FindStringSubmatch(ms)
	if m == nil {
		t.Fatalf("no meter stats on leaf0:\n%s", ms)
	}
	in, _ := strconv.Atoi(m[1])
	drops, _ := strconv.Atoi(m[2])
	// What the meter may pass: its rate counts the topology's wire size
	// (loadsize + frame overhead) per period, Open vSwitch counts Ethernet
	// frames (payload + 42 B), so 1090/1042 datagrams per period; plus the
	// burst (one packet and the driver's slack).
	wire, frame := float64(h.topo.WireBytes(1000)), float64(1000+42)
	allowed := int(float64(took)/float64(time.Millisecond)*wire/frame) + 4
	t.Logf("sent %d in %v (%.1fx the approved rate), received %d (allowed %d), meter saw %d and dropped %d; demoted %v after the excess began (interval %v)",
		sent, took.Round(time.Millisecond), float64(sent)/(took.Seconds()*1000), received, allowed, in, drops, after.Round(time.Millisecond), interval)
	if in != sent || received+drops != sent {
		t.Errorf("meter counts do not add up: sent %d, meter saw %d, dropped %d, received %d", sent, in, drops, received)
	}
	if received > allowed || drops == 0 {
		t.Errorf("meter passed %d datagrams (dropped %d); at most %d fit the approved rate", received, drops, allowed)
	}
	if after > 2*interval {
		t.Errorf("demoted %v after the excess began, more than two intervals (%v)", after, 2*interval)
	}
	if f := h.flows("leaf0", id); len(f) != 1 || !regexp.MustCompile(`set_field:0->ip_dscp`).MatchString(f[0]) {
		t.Errorf("demoted tunnel's flow does not mark best effort: %q", f)
	}
}

// TestE2EVswitchdRestart: after ovs-vswitchd is killed and restarted,
// the controller reinstalls everything and express traffic flows again
// within 2 s.
func TestE2EVswitchdRestart(t *testing.T) {
	h := newHarness(t, "t3", nil)
	res, err := h.cli.RequestBandwidth(h.ctx, tunnels.Request{
		Sender: h.ip("h2"), Receiver: netip.AddrPortFrom(h.ip("h3"), 7100), LoadsizeBytes: 100, PeriodUs: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	rx, err := h.tb.ListenUDP("h3", 7100)
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := h.tb.OVS().StopVswitchd(h.ctx); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	if err := h.tb.OVS().StartVswitchd(h.ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := h.tb.DialUDP("h2", netip.AddrPortFrom(h.ip("h3"), 7100), southbound.DSCP(0, false))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	// Probe every millisecond until a datagram arrives through the
	// reinstalled tunnel flow.
	arrived := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 2048)
		rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := rx.Read(buf); err == nil {
			arrived <- time.Now()
		}
		close(arrived)
	}()
	b := make([]byte, 100)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		tx.Write(b)
		select {
		case at, ok := <-arrived:
			if !ok {
				t.Fatal("no datagram within 5 s of the restart")
			}
			took := at.Sub(restart)
			t.Logf("express traffic resumed %v after ovs-vswitchd restarted", took.Round(time.Millisecond))
			if took > 2*time.Second {
				t.Errorf("resumed after %v, want within 2 s", took)
			}
			if f := h.flows("leaf0", res.TunnelID); len(f) != 1 {
				t.Errorf("leaf0 flows of the tunnel after the restart: %q", f)
			}
			return
		default:
		}
	}
	t.Fatal("no datagram within 5 s of the restart")
}
