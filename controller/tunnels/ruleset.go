package tunnels

import (
	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/southbound"
)

// ruleSet is the rules one tunnel needs, one per switch on its tree. They
// are kept packed (southbound.PackedRule, by switch id): the controller
// holds a set per tunnel, and as maps of TunnelRules by switch name they
// were a quarter of the heap its collector scanned at 10,000 tunnels
// (BenchmarkCollect10k). Rules that do not pack — a switch replicating to
// ports above southbound.MaxPackedPort — are kept as they are.
type ruleSet struct {
	packed []packedAt
	wide   []wideAt
}

type packedAt struct {
	sw te.NodeID
	r  southbound.PackedRule
}

type wideAt struct {
	sw te.NodeID
	r  southbound.TunnelRule
}

func (s *ruleSet) add(sw te.NodeID, r southbound.TunnelRule) {
	if p, ok := southbound.Pack(r); ok {
		s.packed = append(s.packed, packedAt{sw, p})
		return
	}
	s.wide = append(s.wide, wideAt{sw, r.Clone()})
}

func (s ruleSet) len() int { return len(s.packed) + len(s.wide) }

// at returns the rule at switch sw (a copy the caller may keep).
func (s ruleSet) at(sw te.NodeID) (southbound.TunnelRule, bool) {
	for _, p := range s.packed {
		if p.sw == sw {
			return p.r.Unpack(), true
		}
	}
	for _, w := range s.wide {
		if w.sw == sw {
			return w.r.Clone(), true
		}
	}
	return southbound.TunnelRule{}, false
}

// same reports whether s holds at sw exactly the rule o holds there.
func (s ruleSet) same(sw te.NodeID, o ruleSet) bool {
	for _, p := range s.packed {
		if p.sw == sw {
			for _, q := range o.packed {
				if q.sw == sw {
					return p.r == q.r
				}
			}
			return false // a rule that packs never equals one that does not
		}
	}
	for _, w := range s.wide {
		if w.sw == sw {
			for _, v := range o.wide {
				if v.sw == sw {
					return w.r.Equal(v.r)
				}
			}
			return false
		}
	}
	return false
}

// has reports whether s holds a rule at sw.
func (s ruleSet) has(sw te.NodeID) bool {
	for _, p := range s.packed {
		if p.sw == sw {
			return true
		}
	}
	for _, w := range s.wide {
		if w.sw == sw {
			return true
		}
	}
	return false
}

// switches yields the switches s has rules at.
func (s ruleSet) switches(yield func(te.NodeID) bool) {
	for _, p := range s.packed {
		if !yield(p.sw) {
			return
		}
	}
	for _, w := range s.wide {
		if !yield(w.sw) {
			return
		}
	}
}

// equal reports whether s and o hold the same rules.
func (s ruleSet) equal(o ruleSet) bool {
	if s.len() != o.len() {
		return false
	}
	for sw := range s.switches {
		if !s.same(sw, o) {
			return false
		}
	}
	return true
}

// meter is the switch that meters the tunnel and the meter's rate; ok is
// false if no rule has a meter.
func (s ruleSet) meter() (sw te.NodeID, rate uint64, ok bool) {
	for _, p := range s.packed {
		if m, has := p.r.Meter(); has {
			return p.sw, m.RateBps, true
		}
	}
	for _, w := range s.wide {
		if w.r.Meter != nil {
			return w.sw, w.r.Meter.RateBps, true
		}
	}
	return 0, 0, false
}

// setRate sets the meter's rate to rate in place and reports whether s
// has a meter. Only a record's own rules are changed this way, at commit,
// under the controller's lock.
func (s ruleSet) setRate(rate uint64) bool {
	for i := range s.packed {
		if _, has := s.packed[i].r.Meter(); has {
			s.packed[i].r = s.packed[i].r.WithRate(rate)
			return true
		}
	}
	for i := range s.wide {
		if m := s.wide[i].r.Meter; m != nil {
			s.wide[i].r.Meter = &southbound.Meter{RateBps: rate, BurstBytes: m.BurstBytes} // the old one may be in a batch
			return true
		}
	}
	return false
}
