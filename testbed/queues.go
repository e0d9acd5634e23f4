package testbed

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xlane/xlane/southbound"
)

// Egress queues of one port, as tc builds them (docs/testbed.md):
//
//	1:    htb root, unclassified traffic to 1:99
//	1:1   the port: rate = ceil = the link's bandwidth
//	1:1s  sub-lane s (0x10+s), prio s, a small assured rate, ceil = link
//	1:99  best effort, prio 7, a minimal assured rate, ceil = link
//	x:    under each leaf class: pfifo_head_drop (see add)
//
// HTB serves classes by prio when they borrow from 1:1, so express
// sub-lanes go strictly before best effort and before lower sub-lanes
// whenever the port is busy. Packets are classified by their DSCP (u32 on
// the IPv4 TOS byte), which the switches' flows write per sub-lane.
const (
	qdiscHandle  = 0x1
	portClass    = 0x1
	sublaneClass = 0x10
	bestEffort   = 0x99
	quantumBytes = 1600 // at least one full frame per round
	minRateBps   = 8000
)

// QueueClass is the tc class of a sub-lane, or of best effort for -1.
func QueueClass(sublane int) uint32 {
	if sublane < 0 {
		return netlink.MakeHandle(qdiscHandle, bestEffort)
	}
	return netlink.MakeHandle(qdiscHandle, uint16(sublaneClass+sublane))
}

// setQueues installs the priority queues on link (through nh, the
// namespace's netlink handle) for a port of rateBps with the given
// number of express sub-lanes. An existing root qdisc is replaced.
func setQueues(nh *netlink.Handle, link netlink.Link, rateBps int64, sublanes int, expressShare float64) error {
	if rateBps <= 0 {
		return fmt.Errorf("%s: link rate %d bit/s", link.Attrs().Name, rateBps)
	}
	if sublanes < 1 || sublanes > southbound.MaxSublanes {
		return fmt.Errorf("%s: %d sub-lanes (1 to %d)", link.Attrs().Name, sublanes, southbound.MaxSublanes)
	}
	idx := link.Attrs().Index
	root := netlink.MakeHandle(qdiscHandle, 0)
	q := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: idx, Handle: root, Parent: netlink.HANDLE_ROOT})
	q.Defcls = bestEffort
	if err := nh.QdiscReplace(q); err != nil {
		return fmt.Errorf("%s: htb qdisc: %w", link.Attrs().Name, err)
	}
	rate := uint64(rateBps)
	add := func(handle, parent uint32, rate, ceil uint64, prio uint32, leaf bool) error {
		c := netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: idx, Handle: handle, Parent: parent},
			netlink.HtbClassAttrs{Rate: rate, Ceil: ceil, Prio: prio, Quantum: quantumBytes})
		if err := nh.ClassReplace(c); err != nil {
			return fmt.Errorf("%s: htb class %s: %w", link.Attrs().Name, netlink.HandleStr(handle), err)
		}
		if !leaf {
			return nil
		}
		// A full queue drops its oldest packet and accepts the new one, and
		// the sender is not told (NET_XMIT_CN). A tail drop would fail the
		// switch's send, and Open vSwitch's userspace datapath then drops
		// the rest of its output batch — express packets included.
		_, minor := netlink.MajorMinor(handle)
		q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Parent: handle, Handle: netlink.MakeHandle(minor, 0)},
			QdiscType: "pfifo_head_drop"}
		if err := nh.QdiscReplace(q); err != nil {
			return fmt.Errorf("%s: pfifo_head_drop under %s: %w", link.Attrs().Name, netlink.HandleStr(handle), err)
		}
		return nil
	}
	port := netlink.MakeHandle(qdiscHandle, portClass)
	if err := add(port, root, rate, rate, 0, false); err != nil {
		return err
	}
	assured := max(uint64(float64(rate)*expressShare)/uint64(sublanes), minRateBps)
	for s := range sublanes {
		if err := add(QueueClass(s), port, assured, rate, uint32(s), true); err != nil {
			return err
		}
		dscp := uint32(southbound.DSCP(s, false))
		f := &netlink.U32{
			FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: root, Priority: uint16(1 + s), Protocol: unix.ETH_P_IP},
			ClassId:     QueueClass(s),
			Sel: &netlink.TcU32Sel{
				Flags: netlink.TC_U32_TERMINAL,
				// The TOS byte is the second byte of the IPv4 header.
				Keys: []netlink.TcU32Key{{Mask: 0x00fc0000, Val: dscp << 18, Off: 0}},
			},
		}
		if err := nh.FilterReplace(f); err != nil {
			return fmt.Errorf("%s: u32 filter for sub-lane %d: %w", link.Attrs().Name, s, err)
		}
	}
	return add(QueueClass(-1), port, minRateBps, rate, 7, true)
}
