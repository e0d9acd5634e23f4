package testbed

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
)

// rebufferProgram is an XDP program that passes every packet. Attached
// to a wire end, it makes the veth driver copy each arriving packet into
// a fresh buffer (an AF_PACKET skb lacks XDP headroom) and free the
// original, which ends the charge of the packet to the sending socket.
// Without it, packets Open vSwitch sent stay charged to its one AF_PACKET
// socket while they wait in the wire's queues, and a congested port
// starves every other port of send buffer.
func rebufferProgram() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xlane_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("load the XDP pass program: %w", err)
	}
	return p, nil
}

// attachXDP attaches prog to the named interface of namespace ns.
func attachXDP(ns, ifname string, prog *ebpf.Program) error {
	return inNetns(ns, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ifname, ns, err)
		}
		if err := netlink.LinkSetXdpFd(link, prog.FD()); err != nil {
			return fmt.Errorf("attach XDP to %s in %s: %w", ifname, ns, err)
		}
		return nil
	})
}
