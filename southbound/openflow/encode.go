package openflow

import (
	"encoding/binary"
	"io"

	"github.com/netrack/openflow/ofp"
)

// OXM fields (class OPENFLOW_BASIC) this driver matches and sets.
const (
	oxmInPort  = 0
	oxmEthType = 5
	oxmIPDSCP  = 8
	oxmIPProto = 10
	oxmIPv4Src = 11
	oxmIPv4Dst = 12
	oxmUDPDst  = 16
)

func u16(v uint16) ofp.XMValue { return ofp.XMValue{byte(v >> 8), byte(v)} }

func u32(v uint32) ofp.XMValue {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b[:]
}

func xm(t ofp.XMType, v ofp.XMValue) ofp.XM {
	return ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: t, Value: v}
}

// match builds the OXM match of a flow key, with the prerequisites
// OpenFlow requires (eth_type before IPv4 fields, ip_proto before UDP).
func (k flowKey) match() ofp.Match {
	m := ofp.Match{Type: ofp.MatchTypeXM}
	if k.InPort != 0 {
		m.Fields = append(m.Fields, xm(oxmInPort, u32(k.InPort)))
	}
	m.Fields = append(m.Fields, xm(oxmEthType, u16(0x0800)))
	if k.DSCP >= 0 {
		m.Fields = append(m.Fields, xm(oxmIPDSCP, ofp.XMValue{byte(k.DSCP)}))
	}
	if k.UDPDst != 0 {
		m.Fields = append(m.Fields, xm(oxmIPProto, ofp.XMValue{17}))
	}
	if k.Src.IsValid() {
		m.Fields = append(m.Fields, xm(oxmIPv4Src, k.Src.AsSlice()))
	}
	if k.Dst.IsValid() && k.Dst.Bits() > 0 {
		f := xm(oxmIPv4Dst, k.Dst.Addr().AsSlice())
		if k.Dst.Bits() < 32 {
			f.Mask = u32(^uint32(0) << (32 - k.Dst.Bits()))
		}
		m.Fields = append(m.Fields, f)
	}
	if k.UDPDst != 0 {
		m.Fields = append(m.Fields, xm(oxmUDPDst, u16(k.UDPDst)))
	}
	return m
}

// rawMatch rebuilds a match read back from a switch, for a strict delete
// of a flow this driver did not write.
func rawMatch(raw []rawXM) ofp.Match {
	m := ofp.Match{Type: ofp.MatchTypeXM}
	for _, r := range raw {
		m.Fields = append(m.Fields, ofp.XM{Class: ofp.XMClass(r.class), Type: ofp.XMType(r.field), Value: r.value, Mask: r.mask})
	}
	return m
}

func flowAdd(f flow) io.WriterTo {
	var actions ofp.Actions
	if f.SetDSCP >= 0 {
		actions = append(actions, &ofp.ActionSetField{Field: xm(oxmIPDSCP, ofp.XMValue{byte(f.SetDSCP)})})
	}
	if f.Group != 0 {
		actions = append(actions, &ofp.ActionGroup{Group: ofp.Group(f.Group)})
	} else {
		actions = append(actions, &ofp.ActionOutput{Port: ofp.PortNo(f.Out)})
	}
	var ins ofp.Instructions
	if f.Meter != 0 {
		ins = append(ins, &ofp.InstructionMeter{Meter: ofp.Meter(f.Meter)})
	}
	ins = append(ins, &ofp.InstructionApplyActions{Actions: actions})
	return &ofp.FlowMod{
		Cookie: f.Cookie, Table: 0, Command: ofp.FlowAdd, Priority: f.Priority,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: f.match(), Instructions: ins,
	}
}

func flowDelete(f flow) io.WriterTo {
	m := f.match()
	if f.foreign {
		m = rawMatch(f.raw)
	}
	return &ofp.FlowMod{
		Table: 0, Command: ofp.FlowDeleteStrict, Priority: f.Priority,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: m,
	}
}

func meterMod(cmd ofp.MeterCommand, m meter) io.WriterTo {
	mm := &ofp.MeterMod{Command: cmd, Meter: ofp.Meter(m.ID)}
	if cmd != ofp.MeterDelete {
		mm.Flags = ofp.MeterFlagKBitPerSec | ofp.MeterFlagBurst | ofp.MeterFlagStats
		mm.Bands = ofp.MeterBands{&ofp.MeterBandDrop{Rate: m.RateKbps, BurstSize: m.BurstKbit}}
	}
	return mm
}

func groupMod(cmd ofp.GroupCommand, g group) io.WriterTo {
	gm := &ofp.GroupMod{Command: cmd, Type: ofp.GroupTypeAll, Group: ofp.Group(g.ID)}
	if cmd != ofp.GroupDelete {
		for _, p := range g.Outs {
			gm.Buckets = append(gm.Buckets, ofp.Bucket{
				WatchPort: ofp.PortAny, WatchGroup: ofp.GroupAny,
				Actions: ofp.Actions{&ofp.ActionOutput{Port: ofp.PortNo(p)}},
			})
		}
	}
	return gm
}

func multipartRequest(typ ofp.MultipartType, body io.WriterTo) io.WriterTo {
	return ofp.NewMultipartRequest(typ, body)
}

func flowStatsRequest() io.WriterTo {
	return multipartRequest(ofp.MultipartTypeFlow, &ofp.FlowStatsRequest{
		Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM},
	})
}

func meterRequest(typ ofp.MultipartType) io.WriterTo {
	return multipartRequest(typ, &ofp.MeterStatsRequest{Meter: ofp.MeterAll})
}

func groupDescRequest() io.WriterTo { return multipartRequest(ofp.MultipartTypeGroupDescription, nil) }
