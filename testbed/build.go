package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/testbed/ovs"
)

// build creates namespaces, cables, queues and bridges, saving the state
// after each resource so a failure or a kill leaves nothing untracked.
func (tb *Testbed) build(ctx context.Context, cfg Config) error {
	topo := cfg.Topology
	swIndex := map[te.NodeID]int{}
	for _, n := range topo.Nodes {
		switch n.Kind {
		case te.KindSwitch:
			swIndex[n.ID] = len(swIndex) + 1
		case te.KindHost:
			if !n.IPv4.IsValid() {
				return fmt.Errorf("host %s has no ipv4 address in the topology", n.Name)
			}
			ns := fmt.Sprintf("xl-%s-%s", tb.Name, n.Name)
			tb.Netns = append(tb.Netns, ns)
			if err := tb.save(); err != nil {
				return err
			}
			if err := createNetns(ns); err != nil {
				return err
			}
			tb.Hosts = append(tb.Hosts, Host{Name: n.Name, Netns: ns, IPv4: n.IPv4})
		}
	}
	hostNS := map[te.NodeID]string{}
	for _, h := range tb.Hosts {
		id, _ := topo.NodeByName(h.Name)
		hostNS[id] = h.Netns
	}
	portName := func(sw te.NodeID, port uint32) string {
		return fmt.Sprintf("xl%ss%dp%d", tb.Name, swIndex[sw], port)
	}
	// One veth pair per cable (a pair of opposite links).
	ports := map[te.NodeID][]portSpec{} // per switch
	for _, l := range topo.Links {
		back, ok := topo.LinkBetween(l.To, l.From)
		if !ok {
			return fmt.Errorf("link %s has no reverse link: the testbed needs cables in both directions", topo.LinkName(l.ID))
		}
		if back < l.ID {
			continue // the cable was made with the reverse link
		}
		a, b := l.From, l.To
		if topo.Nodes[a].Kind == te.KindHost {
			a, b = b, a // a is a switch
		}
		if topo.Nodes[a].Kind != te.KindSwitch {
			return fmt.Errorf("link %s joins two hosts", topo.LinkName(l.ID))
		}
		pa, _ := topo.Port(a, b)
		ab, _ := topo.LinkBetween(a, b)
		ba, _ := topo.LinkBetween(b, a)
		aName := portName(a, pa)
		var bName string
		if topo.Nodes[b].Kind == te.KindSwitch {
			pb, _ := topo.Port(b, a)
			bName = portName(b, pb)
			ports[b] = append(ports[b], portSpec{name: bName, port: pb, rate: topo.Links[ba].BandwidthBps})
		} else {
			bName = fmt.Sprintf("xl%sh%d", tb.Name, b) // renamed eth0 in the host
		}
		ports[a] = append(ports[a], portSpec{name: aName, port: pa, rate: topo.Links[ab].BandwidthBps})
		tb.Interfaces = append(tb.Interfaces, aName)
		if err := tb.save(); err != nil {
			return err
		}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName}); err != nil {
			return fmt.Errorf("veth %s–%s: %w", aName, bName, err)
		}
		if ns, ok := hostNS[b]; ok {
			if err := tb.plugHost(ns, bName, topo.Links[ba].BandwidthBps, topo, cfg); err != nil {
				return err
			}
		} else if err := upRoot(bName); err != nil {
			return err
		}
		if err := upRoot(aName); err != nil {
			return err
		}
	}
	if err := tb.addressHosts(ctx, topo); err != nil {
		return err
	}
	if !cfg.NoQueues {
		root, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer root.Close()
		for sw, ps := range ports {
			for _, p := range ps {
				link, err := netlink.LinkByName(p.name)
				if err != nil {
					return fmt.Errorf("port %s of %s: %w", p.name, topo.Nodes[sw].Name, err)
				}
				if err := setQueues(root, link, p.rate, topo.Sublanes, topo.MaxExpressShare); err != nil {
					return err
				}
			}
		}
	}
	inst, err := ovs.Start(ctx, filepath.Join(tb.Dir, "ovs"))
	if err != nil {
		return err
	}
	tb.ovs = inst
	ids := dpids(topo)
	for _, n := range topo.Nodes {
		if n.Kind != te.KindSwitch {
			continue
		}
		br := Bridge{Switch: n.Name, Name: fmt.Sprintf("xl%sb%d", tb.Name, swIndex[n.ID]), DPID: ids[n.Name]}
		args := []string{"add-br", br.Name, "--", "set", "bridge", br.Name, "datapath_type=netdev", "protocols=OpenFlow13",
			fmt.Sprintf("other-config:datapath-id=%016x", br.DPID), "other-config:disable-in-band=true", "fail_mode=secure",
			"--", "set-controller", br.Name, "tcp:" + cfg.Controller,
			"--", "set", "controller", br.Name, "connection-mode=out-of-band", "max_backoff=1000"}
		for _, p := range ports[n.ID] {
			args = append(args, "--", "add-port", br.Name, p.name, "--", "set", "interface", p.name, fmt.Sprintf("ofport_request=%d", p.port))
		}
		if _, err := inst.Vsctl(ctx, args...); err != nil {
			return fmt.Errorf("bridge of %s: %w", n.Name, err)
		}
		tb.Bridges = append(tb.Bridges, br)
		if err := tb.save(); err != nil {
			return err
		}
	}
	return nil
}

type portSpec struct {
	name string
	port uint32
	rate int64
}

// plugHost moves a veth end into a host's namespace as eth0 and sets its
// queues.
func (tb *Testbed) plugHost(ns, ifname string, rate int64, topo *te.Topology, cfg Config) error {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %w", ifname, err)
	}
	nh, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	fd, err := nsFd(ns)
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := netlink.LinkSetNsFd(link, int(fd.Fd())); err != nil {
		return fmt.Errorf("move %s into %s: %w", ifname, ns, err)
	}
	link, err = nh.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", ifname, ns, err)
	}
	if err := nh.LinkSetName(link, "eth0"); err != nil {
		return fmt.Errorf("rename %s in %s: %w", ifname, ns, err)
	}
	if link, err = nh.LinkByName("eth0"); err != nil {
		return err
	}
	if err := nh.LinkSetUp(link); err != nil {
		return fmt.Errorf("eth0 up in %s: %w", ns, err)
	}
	if lo, err := nh.LinkByName("lo"); err == nil {
		if err := nh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up in %s: %w", ns, err)
		}
	}
	if !cfg.NoQueues {
		if err := setQueues(nh, link, rate, topo.Sublanes, topo.MaxExpressShare); err != nil {
			return fmt.Errorf("in %s: %w", ns, err)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off").CombinedOutput(); err != nil {
		return fmt.Errorf("ethtool -K eth0 tx off in %s: %w: %s", ns, err, out)
	}
	for i := range tb.Hosts {
		if tb.Hosts[i].Netns == ns {
			tb.Hosts[i].MAC = link.Attrs().HardwareAddr.String()
		}
	}
	return nil
}

func upRoot(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	if out, err := exec.Command("ethtool", "-K", name, "tx", "off").CombinedOutput(); err != nil {
		return fmt.Errorf("ethtool -K %s tx off: %w: %s", name, err, out)
	}
	return nil
}

// addressHosts gives each host its address (a /32 with an on-link
// default route, and the multicast range on eth0) and a permanent
// neighbour entry for every other host: the switches forward on IP and
// never flood, so there is no ARP.
func (tb *Testbed) addressHosts(ctx context.Context, topo *te.Topology) error {
	for _, h := range tb.Hosts {
		nh, err := handleAt(h.Netns)
		if err != nil {
			return err
		}
		err = func() error {
			defer nh.Close()
			eth, err := nh.LinkByName("eth0")
			if err != nil {
				return fmt.Errorf("eth0 in %s: %w", h.Netns, err)
			}
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: h.IPv4.AsSlice(), Mask: net.CIDRMask(32, 32)}}
			if err := nh.AddrAdd(eth, addr); err != nil {
				return fmt.Errorf("address %s on %s: %w", h.IPv4, h.Name, err)
			}
			for _, dst := range []string{"0.0.0.0/0", "224.0.0.0/4"} {
				_, ipn, _ := net.ParseCIDR(dst)
				r := &netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ipn, Scope: netlink.SCOPE_LINK}
				if err := nh.RouteAdd(r); err != nil {
					return fmt.Errorf("route %s on %s: %w", dst, h.Name, err)
				}
			}
			for _, o := range tb.Hosts {
				if o.Name == h.Name {
					continue
				}
				mac, err := net.ParseMAC(o.MAC)
				if err != nil {
					return fmt.Errorf("mac of %s: %w", o.Name, err)
				}
				n := &netlink.Neigh{LinkIndex: eth.Attrs().Index, IP: o.IPv4.AsSlice(), HardwareAddr: mac, State: netlink.NUD_PERMANENT}
				if err := nh.NeighAdd(n); err != nil {
					return fmt.Errorf("neighbour %s on %s: %w", o.Name, h.Name, err)
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteLink removes a root-namespace interface (and its veth peer); a
// missing one is not an error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
