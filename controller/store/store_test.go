package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound"
	"github.com/xlane/xlane/southbound/memory"
)

// TestRestartRestoresEverything runs a controller on a store, closes it,
// opens a new one on the same directory with switches that lost their
// state, and checks tunnels, groups and switch rules come back.
func TestRestartRestoresEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	topo, err := te.NewTopology(tetest.TwoSwitchSpec())
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetTopology(tetest.TwoSwitchSpec()); err != nil {
		t.Fatal(err)
	}
	drv := memory.New("s1", "s2")
	c, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: drv, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h1, h2, h3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	group := netip.AddrPortFrom(netip.MustParseAddr("239.0.0.9"), 9000)
	for _, m := range []netip.Addr{h2, h3} {
		if err := c.JoinGroup(ctx, group, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	rel, err := c.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "raft", tunnels.Request{Sender: h1, Receiver: group, LoadsizeBytes: 200, PeriodUs: 500, Sublane: 1}); err != nil {
		t.Fatal(err)
	}
	last, err := c.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7005), LoadsizeBytes: 10, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{rel.TunnelID, last.TunnelID} { // the highest id goes too
		if err := c.Release(ctx, "fd", id); err != nil {
			t.Fatal(err)
		}
	}
	// A service that only watches, and one whose only tunnel is gone: both
	// stay registered.
	sub := c.Watch("observer")
	sub.Close()
	gone, err := c.Request(ctx, "gone", tunnels.Request{Sender: h2, Receiver: netip.AddrPortFrom(h3, 7100), LoadsizeBytes: 10, PeriodUs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, "gone", gone.TunnelID); err != nil {
		t.Fatal(err)
	}
	regs := map[string]tunnels.ServiceInfo{}
	for _, name := range []string{"fd", "raft", "observer", "gone"} {
		if regs[name], err = c.ServiceInfo(name); err != nil {
			t.Fatal(err)
		}
	}
	if regs["observer"].LastSubscribed.IsZero() || !regs["fd"].LastSubscribed.IsZero() || regs["fd"].Tunnels != 1 || regs["gone"].Tunnels != 0 {
		t.Fatalf("registrations before the restart: %+v", regs)
	}
	before := c.Tunnels("")
	rules1, rules2 := drv.Rules("s1"), drv.Rules("s2")
	c.Close()
	st.Close()

	st2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	spec, err := st2.Topology()
	if err != nil || spec == nil {
		t.Fatalf("stored topology: %v, %v", spec, err)
	}
	fresh := memory.New("s1", "s2") // the switches lost everything
	c2, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: fresh, Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if after := c2.Tunnels(""); !slices.Equal(after, before) {
		t.Fatalf("tunnels after restart:\n%+v\nwant\n%+v", after, before)
	}
	if !slices.EqualFunc(fresh.Rules("s1"), rules1, southbound.TunnelRule.Equal) || !slices.EqualFunc(fresh.Rules("s2"), rules2, southbound.TunnelRule.Equal) {
		t.Fatalf("switches not reconciled:\n%+v\n%+v", fresh.Rules("s1"), fresh.Rules("s2"))
	}
	if ms := c2.Members(group); !slices.Equal(ms, []netip.Addr{h2, h3}) {
		t.Fatalf("members = %v", ms)
	}
	for name, want := range regs {
		got, err := c2.ServiceInfo(name)
		if err != nil {
			t.Fatalf("service %s after the restart: %v", name, err)
		}
		if !got.Registered.Equal(want.Registered) || !got.LastSubscribed.Equal(want.LastSubscribed) || got.Tunnels != want.Tunnels || got.RateBps != want.RateBps {
			t.Errorf("service %s after the restart: %+v, want %+v", name, got, want)
		}
	}
	if _, err := c2.ServiceInfo("stranger"); !errors.Is(err, tunnels.ErrNotFound) {
		t.Errorf("an unknown service: %v, want ErrNotFound", err)
	}
	// New ids continue after the stored ones: nothing is duplicated.
	res, err := c2.Request(ctx, "fd", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h3, 7001), LoadsizeBytes: 10, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.TunnelID <= last.TunnelID {
		t.Fatalf("new id %d reuses an id handed out before the restart (up to %d)", res.TunnelID, last.TunnelID)
	}
	// A different topology is refused while tunnels exist.
	other := tetest.TwoSwitchSpec()
	other.Links[0].BandwidthBps = 2e9
	if err := st2.SetTopology(other); err == nil {
		t.Fatal("changed topology accepted over stored tunnels")
	}
}

// TestOwnersOfOlderStoresAreRegistered opens a store written before
// registrations were kept (tunnels only): their owners are registered at
// start, and stored.
func TestOwnersOfOlderStoresAreRegistered(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	topo, err := te.NewTopology(tetest.TwoSwitchSpec())
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: memory.New("s1", "s2"), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if _, err := c.Request(ctx, "old", tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := st.Load(); err != nil { // the logged writes into the database
		t.Fatal(err)
	}
	// What an older controller left: no registrations.
	if err := st.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketServices); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketServices)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if snap, err := st.Load(); err != nil || len(snap.Services) != 0 {
		t.Fatalf("registrations before: %+v, %v", snap.Services, err)
	}
	c2, err := tunnels.New(ctx, tunnels.Config{Topology: topo, Driver: memory.New("s1", "s2"), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c2.ServiceInfo("old")
	c2.Close()
	if err != nil || info.Tunnels != 1 {
		t.Fatalf("service old after the start: %+v, %v", info, err)
	}
	snap, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Services) != 1 || snap.Services[0].Name != "old" || snap.Services[0].Registered.IsZero() {
		t.Fatalf("stored registrations: %+v", snap.Services)
	}
}

// TestNextIDMovesOutOfMeta opens a store written when the id counter sat
// beside the topology in the meta bucket: the counter moves to its own
// bucket and keeps counting from where it was.
func TestNextIDMovesOutOfMeta(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(dir+"/xlane.db", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
			return err
		}
		return meta.Put(keyNextID, idKey(42))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, err := s.Load()
	if err != nil || snap.NextID != 42 {
		t.Fatalf("next id %d, %v; want 42", snap.NextID, err)
	}
	// Writes without tunnels leave it; a tunnel below it too; one above raises it.
	for _, w := range []tunnels.Writes{{Services: []tunnels.Service{{Name: "fd"}}}, {Put: []tunnels.StoredTunnel{{Owner: "fd", Tunnel: te.Tunnel{ID: 7}}}}} {
		if err := s.Save(w); err != nil {
			t.Fatal(err)
		}
	}
	if snap, _ := s.Load(); snap.NextID != 42 {
		t.Fatalf("next id %d after writes below it, want 42", snap.NextID)
	}
	if err := s.Save(tunnels.Writes{Put: []tunnels.StoredTunnel{{Owner: "fd", Tunnel: te.Tunnel{ID: 50}}}}); err != nil {
		t.Fatal(err)
	}
	if snap, _ := s.Load(); snap.NextID != 51 {
		t.Fatalf("next id %d after tunnel 50, want 51", snap.NextID)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyNextID) != nil {
			return errors.New("next_id still in meta")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
