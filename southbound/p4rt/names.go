package p4rt

import (
	"fmt"

	p4config "github.com/p4lang/p4runtime/go/p4/config/v1"
)

// The P4 objects of p4/switch/xlane.p4 the driver uses, by their P4Info
// names, with the bit widths it encodes values for. resolve checks every
// one against a P4Info; a test checks them against the committed one.
const (
	tblClassifier   = "XlaneIngress.classifier.classifier"
	actExpress      = "XlaneIngress.classifier.express"
	actExpressMeter = "XlaneIngress.classifier.express_metered"
	tblTunnels      = "XlaneIngress.tunnel.tunnels"
	actOutput       = "XlaneIngress.tunnel.output"
	actMulticast    = "XlaneIngress.tunnel.multicast"
	mtrTunnel       = "XlaneIngress.tunnel.tunnel_meter"
	ctrMeterDrops   = "XlaneIngress.tunnel.meter_drops"
	dctrTunnel      = "XlaneIngress.tunnel.tunnel_counter"
	tblRoutes       = "XlaneIngress.forwarding.routes"
	actRoute        = "XlaneIngress.forwarding.route"
)

// want lists, per table, its match fields (name → width) and, per
// action, its parameters (name → width), in the order the driver encodes
// them.
var wantTables = map[string][]field{
	tblClassifier: {{"ingress_port", 9}, {"src_addr", 32}, {"dst_addr", 32}, {"dst_port", 16}, {"dscp", 6}},
	tblTunnels:    {{"tunnel_id", 32}},
	tblRoutes:     {{"dst_addr", 32}},
}

var wantActions = map[string][]field{
	actExpress:      {{"tunnel_id", 32}, {"priority", 3}, {"dscp", 6}},
	actExpressMeter: {{"tunnel_id", 32}, {"priority", 3}, {"dscp", 6}, {"meter_idx", 16}},
	actOutput:       {{"port", 9}},
	actMulticast:    {{"group", 16}},
	actRoute:        {{"port", 9}},
}

type field struct {
	name  string
	width int
}

// ids are the P4Info ids of what the driver uses.
type ids struct {
	classifier, tunnels, routes      uint32
	express, expressMetered          uint32
	output, multicast, route         uint32
	meter, meterDrops, tunnelCounter uint32
	meterSize                        int64
	fields                           map[string][]uint32 // table → field ids in wantTables order
	params                           map[string][]uint32 // action → param ids in wantActions order
}

// resolve finds every object the driver uses in info and checks widths.
func resolve(info *p4config.P4Info) (*ids, error) {
	r := &ids{fields: map[string][]uint32{}, params: map[string][]uint32{}}
	tables := map[string]*p4config.Table{}
	for _, t := range info.GetTables() {
		tables[t.GetPreamble().GetName()] = t
	}
	for name, want := range wantTables {
		t, ok := tables[name]
		if !ok {
			return nil, fmt.Errorf("p4info: no table %s", name)
		}
		byName := map[string]*p4config.MatchField{}
		for _, f := range t.GetMatchFields() {
			byName[f.GetName()] = f
		}
		for _, w := range want {
			f, ok := byName[w.name]
			if !ok {
				return nil, fmt.Errorf("p4info: table %s has no match field %s", name, w.name)
			}
			if int(f.GetBitwidth()) != w.width {
				return nil, fmt.Errorf("p4info: %s.%s is %d bits, the driver encodes %d", name, w.name, f.GetBitwidth(), w.width)
			}
			r.fields[name] = append(r.fields[name], f.GetId())
		}
	}
	r.classifier, r.tunnels, r.routes = tables[tblClassifier].GetPreamble().GetId(), tables[tblTunnels].GetPreamble().GetId(), tables[tblRoutes].GetPreamble().GetId()
	actions := map[string]*p4config.Action{}
	for _, a := range info.GetActions() {
		actions[a.GetPreamble().GetName()] = a
	}
	for name, want := range wantActions {
		a, ok := actions[name]
		if !ok {
			return nil, fmt.Errorf("p4info: no action %s", name)
		}
		byName := map[string]*p4config.Action_Param{}
		for _, p := range a.GetParams() {
			byName[p.GetName()] = p
		}
		if len(byName) != len(want) {
			return nil, fmt.Errorf("p4info: action %s has %d parameters, the driver passes %d", name, len(byName), len(want))
		}
		for _, w := range want {
			p, ok := byName[w.name]
			if !ok {
				return nil, fmt.Errorf("p4info: action %s has no parameter %s", name, w.name)
			}
			if int(p.GetBitwidth()) != w.width {
				return nil, fmt.Errorf("p4info: %s(%s) is %d bits, the driver encodes %d", name, w.name, p.GetBitwidth(), w.width)
			}
			r.params[name] = append(r.params[name], p.GetId())
		}
	}
	r.express, r.expressMetered = actions[actExpress].GetPreamble().GetId(), actions[actExpressMeter].GetPreamble().GetId()
	r.output, r.multicast, r.route = actions[actOutput].GetPreamble().GetId(), actions[actMulticast].GetPreamble().GetId(), actions[actRoute].GetPreamble().GetId()
	for _, m := range info.GetMeters() {
		if m.GetPreamble().GetName() == mtrTunnel {
			if m.GetSpec().GetUnit() != p4config.MeterSpec_BYTES {
				return nil, fmt.Errorf("p4info: meter %s counts %v, the driver configures bytes", mtrTunnel, m.GetSpec().GetUnit())
			}
			r.meter, r.meterSize = m.GetPreamble().GetId(), m.GetSize()
		}
	}
	for _, c := range info.GetCounters() {
		if c.GetPreamble().GetName() == ctrMeterDrops {
			r.meterDrops = c.GetPreamble().GetId()
		}
	}
	for _, c := range info.GetDirectCounters() {
		if c.GetPreamble().GetName() == dctrTunnel && c.GetDirectTableId() == r.tunnels {
			r.tunnelCounter = c.GetPreamble().GetId()
		}
	}
	switch {
	case r.meter == 0:
		return nil, fmt.Errorf("p4info: no meter %s", mtrTunnel)
	case r.meterDrops == 0:
		return nil, fmt.Errorf("p4info: no counter %s", ctrMeterDrops)
	case r.tunnelCounter == 0:
		return nil, fmt.Errorf("p4info: no direct counter %s on %s", dctrTunnel, tblTunnels)
	}
	return r, nil
}
