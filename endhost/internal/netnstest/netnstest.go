// Package netnstest gives endhost tests a network namespace of their own
// whose loopback is up (and, on request, multicast-capable), so that XDP
// programs, packet rings and multicast groups never touch the host's.
package netnstest

import (
	"net"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
)

// New creates the namespace (removed when the test ends) with lo up;
// with multicast, lo also carries 224.0.0.0/4. It needs root.
func New(t testing.TB, multicast bool) ns.NetNS {
	t.Helper()
	netns, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Close(); testutils.UnmountNS(netns) })
	if err := netns.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		if !multicast {
			return nil
		}
		if err := netlink.LinkSetMulticastOn(lo); err != nil {
			return err
		}
		_, mc, _ := net.ParseCIDR("224.0.0.0/4")
		return netlink.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: mc})
	}); err != nil {
		t.Fatal(err)
	}
	return netns
}
