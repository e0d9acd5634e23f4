package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/testbed/ovs"
)

// build creates namespaces, cables, queues and bridges, saving the state
// after each resource so a failure or a kill leaves nothing untracked.
//
// A cable is not one veth pair but two, joined in the testbed's wire
// namespace, where each direction has its egress queues:
//
//	switch X port ══ cNa ─(tc redirect)─ cNb ══ switch Y port, or host eth0
//	                  └ queues Y→X         └ queues X→Y
//
// Queues on the switches' own ports would hold packets charged to the one
// AF_PACKET socket through which Open vSwitch's userspace datapath sends
// on every port: any congested port would then fill its send buffer and
// make every other port drop, express lane included. An XDP program on
// the wire ends re-buffers each packet that enters the wire, which ends
// that charge (see rebufferProgram).
func (tb *Testbed) build(ctx context.Context, cfg Config) error {
	topo := cfg.Topology
	swIndex := map[te.NodeID]int{}
	hostNS := map[te.NodeID]string{}
	for _, n := range topo.Nodes {
		switch n.Kind {
		case te.KindSwitch:
			swIndex[n.ID] = len(swIndex) + 1
		case te.KindHost:
			if !n.IPv4.IsValid() {
				return fmt.Errorf("host %s has no ipv4 address in the topology", n.Name)
			}
			ns := fmt.Sprintf("xl-%s-%s", tb.Name, n.Name)
			if err := tb.newNetns(ns); err != nil {
				return err
			}
			tb.Hosts = append(tb.Hosts, Host{Name: n.Name, Netns: ns, IPv4: n.IPv4})
			hostNS[n.ID] = ns
		}
	}
	wire := fmt.Sprintf("xl-%s-wire", tb.Name)
	if err := tb.newNetns(wire); err != nil {
		return err
	}
	wh, err := handleAt(wire)
	if err != nil {
		return err
	}
	defer wh.Close()
	xdp, err := rebufferProgram()
	if err != nil {
		return err
	}
	defer xdp.Close() // the attachments keep it loaded
	portName := func(sw te.NodeID, port uint32) string {
		return fmt.Sprintf("xl%ss%dp%d", tb.Name, swIndex[sw], port)
	}
	ports := map[te.NodeID][]portSpec{} // per switch
	cable := 0
	for _, l := range topo.Links {
		back, ok := topo.LinkBetween(l.To, l.From)
		if !ok {
			return fmt.Errorf("link %s has no reverse link: the testbed needs cables in both directions", topo.LinkName(l.ID))
		}
		if back < l.ID {
			continue // the cable was made with the reverse link
		}
		x, y := l.From, l.To
		if topo.Nodes[x].Kind == te.KindHost {
			x, y = y, x // x is a switch
		}
		if topo.Nodes[x].Kind != te.KindSwitch {
			return fmt.Errorf("link %s joins two hosts", topo.LinkName(l.ID))
		}
		cable++
		px, _ := topo.Port(x, y)
		xy, _ := topo.LinkBetween(x, y)
		yx, _ := topo.LinkBetween(y, x)
		xName := portName(x, px)
		ports[x] = append(ports[x], portSpec{name: xName, port: px})
		yName := fmt.Sprintf("xl%sh%d", tb.Name, y) // renamed eth0 in the host
		if topo.Nodes[y].Kind == te.KindSwitch {
			py, _ := topo.Port(y, x)
			yName = portName(y, py)
			ports[y] = append(ports[y], portSpec{name: yName, port: py})
		}
		ca, cb := fmt.Sprintf("c%da", cable), fmt.Sprintf("c%db", cable)
		if err := tb.veth(xName, ca, wire); err != nil {
			return err
		}
		if err := tb.veth(yName, cb, wire); err != nil {
			return err
		}
		if ns, ok := hostNS[y]; ok {
			if err := tb.plugHost(ns, yName); err != nil {
				return err
			}
		} else if err := upRoot(yName); err != nil {
			return err
		}
		if err := upRoot(xName); err != nil {
			return err
		}
		if err := joinWire(wh, wire, ca, cb); err != nil {
			return err
		}
		for _, w := range []string{ca, cb} {
			if err := attachXDP(wire, w, xdp); err != nil {
				return err
			}
		}
		if !cfg.NoQueues {
			for _, q := range []struct {
				dev  string
				link te.LinkID
			}{{cb, xy}, {ca, yx}} {
				dev, err := wh.LinkByName(q.dev)
				if err != nil {
					return fmt.Errorf("%s in %s: %w", q.dev, wire, err)
				}
				if err := setQueues(wh, dev, topo.Links[q.link].BandwidthBps, topo.Sublanes, topo.MaxExpressShare); err != nil {
					return fmt.Errorf("queues of %s: %w", topo.LinkName(q.link), err)
				}
			}
		}
	}
	if err := tb.addressHosts(ctx); err != nil {
		return err
	}
	if cfg.Switch == SwitchBMv2 {
		return tb.buildBMv2(ctx, topo, swIndex, ports)
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

// buildBMv2 starts one BMv2 switch per topology switch; device ids are
// the OpenFlow datapath ids, so a switch has the same number either way.
func (tb *Testbed) buildBMv2(ctx context.Context, topo *te.Topology, swIndex map[te.NodeID]int, ports map[te.NodeID][]portSpec) error {
	ids := dpids(topo)
	for _, n := range topo.Nodes {
		if n.Kind != te.KindSwitch {
			continue
		}
		br := Bridge{Switch: n.Name, Name: fmt.Sprintf("bmv2-%d", swIndex[n.ID]), DPID: ids[n.Name], DeviceID: ids[n.Name]}
		if err := tb.startBMv2(ctx, br, ports[n.ID]); err != nil {
			return err
		}
	}
	return nil
}

// newNetns records and creates a namespace.
func (tb *Testbed) newNetns(ns string) error {
	tb.Netns = append(tb.Netns, ns)
	if err := tb.save(); err != nil {
		return err
	}
	return createNetns(ns)
}

// veth creates a pair: name stays in the root namespace, peer moves into
// the wire namespace.
func (tb *Testbed) veth(name, peer, wire string) error {
	tmp := fmt.Sprintf("xl%sw%s", tb.Name, peer)
	tb.Interfaces = append(tb.Interfaces, name)
	if err := tb.save(); err != nil {
		return err
	}
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: tmp}); err != nil {
		return fmt.Errorf("veth %s: %w", name, err)
	}
	return moveInto(tmp, wire, peer)
}

// joinWire brings both wire ends up and redirects what arrives on each
// to the other's egress (where the queues are).
func joinWire(wh *netlink.Handle, wire, a, b string) error {
	la, err := wh.LinkByName(a)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", a, wire, err)
	}
	lb, err := wh.LinkByName(b)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", b, wire, err)
	}
	for _, p := range [][2]netlink.Link{{la, lb}, {lb, la}} {
		from, to := p[0], p[1]
		if err := wh.LinkSetUp(from); err != nil {
			return fmt.Errorf("%s up: %w", from.Attrs().Name, err)
		}
		ing := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: from.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
		if err := wh.QdiscAdd(ing); err != nil {
			return fmt.Errorf("ingress qdisc on %s: %w", from.Attrs().Name, err)
		}
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: from.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0), Priority: 1, Protocol: unix.ETH_P_ALL},
			Sel:         &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Keys: []netlink.TcU32Key{{}}},
			Actions:     []netlink.Action{netlink.NewMirredAction(to.Attrs().Index)},
		}
		if err := wh.FilterAdd(f); err != nil {
			return fmt.Errorf("redirect %s → %s: %w", from.Attrs().Name, to.Attrs().Name, err)
		}
		if out, err := exec.Command("ip", "netns", "exec", wire, "ethtool", "-K", from.Attrs().Name, "tx", "off").CombinedOutput(); err != nil {
			return fmt.Errorf("ethtool -K %s tx off in %s: %w: %s", from.Attrs().Name, wire, err, out)
		}
	}
	return nil
}

// moveInto moves root-namespace interface name into namespace ns as
// newName.
func moveInto(name, ns, newName string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
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
		return fmt.Errorf("move %s into %s: %w", name, ns, err)
	}
	if link, err = nh.LinkByName(name); err != nil {
		return fmt.Errorf("%s in %s: %w", name, ns, err)
	}
	if err := nh.LinkSetName(link, newName); err != nil {
		return fmt.Errorf("rename %s to %s in %s: %w", name, newName, ns, err)
	}
	return nil
}

type portSpec struct {
	name string
	port uint32
}

// plugHost moves a veth end into a host's namespace as eth0.
func (tb *Testbed) plugHost(ns, ifname string) error {
	if err := moveInto(ifname, ns, "eth0"); err != nil {
		return err
	}
	nh, err := handleAt(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	link, err := nh.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0 in %s: %w", ns, err)
	}
	if err := nh.LinkSetUp(link); err != nil {
		return fmt.Errorf("eth0 up in %s: %w", ns, err)
	}
	if lo, err := nh.LinkByName("lo"); err == nil {
		if err := nh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up in %s: %w", ns, err)
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
func (tb *Testbed) addressHosts(ctx context.Context) error {
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
