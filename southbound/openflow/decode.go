package openflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
)

// The decoders below read multipart replies by hand: netrack/openflow's
// readers of meter configs, meter stats and group descriptions drop
// their repeated parts (reflect.Append results are discarded), and the
// driver needs exactly those parts.

type rawXM struct {
	class       uint16
	field       uint8
	value, mask []byte
}

// decodeFlows parses the body of a flow stats reply.
func decodeFlows(b []byte) ([]flow, error) {
	var out []flow
	for len(b) > 0 {
		if len(b) < 56 {
			return nil, fmt.Errorf("flow stats: %w", errTruncated)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n < 56 || n > len(b) {
			return nil, fmt.Errorf("flow stats: entry length %d of %d bytes left", n, len(b))
		}
		e := b[:n]
		b = b[n:]
		f := flow{SetDSCP: -1}
		f.DSCP = -1 // the match's
		f.Priority = binary.BigEndian.Uint16(e[12:])
		f.Cookie = binary.BigEndian.Uint64(e[24:])
		f.Packets = binary.BigEndian.Uint64(e[32:])
		f.Bytes = binary.BigEndian.Uint64(e[40:])
		if e[2] != 0 {
			f.foreign = true // another table: not ours
		}
		rest, err := f.decodeMatch(e[48:])
		if err != nil {
			return nil, fmt.Errorf("flow stats, cookie %#x: %w", f.Cookie, err)
		}
		if err := f.decodeInstructions(rest); err != nil {
			return nil, fmt.Errorf("flow stats, cookie %#x: %w", f.Cookie, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// decodeMatch reads an ofp_match into f's key and returns what follows
// it (after the padding to 8 bytes).
func (f *flow) decodeMatch(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("match: %w", errTruncated)
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	padded := (n + 7) / 8 * 8
	if n < 4 || padded > len(b) {
		return nil, fmt.Errorf("match length %d of %d bytes", n, len(b))
	}
	if binary.BigEndian.Uint16(b) != 1 { // OFPMT_OXM
		return nil, fmt.Errorf("match type %d is not OXM", binary.BigEndian.Uint16(b))
	}
	oxms := b[4:n]
	var ethIP, udp bool
	for len(oxms) > 0 {
		if len(oxms) < 4 {
			return nil, fmt.Errorf("oxm: %w", errTruncated)
		}
		class := binary.BigEndian.Uint16(oxms)
		field, hasMask, l := oxms[2]>>1, oxms[2]&1 == 1, int(oxms[3])
		if 4+l > len(oxms) {
			return nil, fmt.Errorf("oxm length %d of %d bytes", l, len(oxms)-4)
		}
		val := oxms[4 : 4+l]
		oxms = oxms[4+l:]
		r := rawXM{class: class, field: field, value: val}
		if hasMask {
			if l%2 != 0 {
				return nil, fmt.Errorf("masked oxm of odd length %d", l)
			}
			r.value, r.mask = val[:l/2], val[l/2:]
		}
		f.raw = append(f.raw, r)
		if class != 0x8000 {
			f.foreign = true
			continue
		}
		switch {
		case field == oxmInPort && l == 4 && !hasMask:
			f.InPort = binary.BigEndian.Uint32(val)
		case field == oxmEthType && l == 2 && !hasMask && binary.BigEndian.Uint16(val) == 0x0800:
			ethIP = true
		case field == oxmIPDSCP && l == 1 && !hasMask:
			f.DSCP = int(val[0])
		case field == oxmIPProto && l == 1 && !hasMask && val[0] == 17:
			udp = true
		case field == oxmIPv4Src && l == 4 && !hasMask:
			f.Src = netip.AddrFrom4([4]byte(val))
		case field == oxmIPv4Dst && (l == 4 || l == 8):
			bits := 32
			if hasMask {
				ones, ok := prefixLen(binary.BigEndian.Uint32(r.mask))
				if !ok {
					f.foreign = true
				}
				bits = ones
			}
			f.Dst = netip.PrefixFrom(netip.AddrFrom4([4]byte(r.value)), bits)
		case field == oxmUDPDst && l == 2 && !hasMask:
			f.UDPDst = binary.BigEndian.Uint16(val)
		default:
			f.foreign = true
		}
	}
	if !ethIP || (f.UDPDst != 0) != udp {
		f.foreign = true
	}
	return b[padded:], nil
}

func prefixLen(mask uint32) (int, bool) {
	ones := 0
	for ones < 32 && mask&(1<<(31-ones)) != 0 {
		ones++
	}
	return ones, mask == ^uint32(0)<<(32-ones) || ones == 32
}

// decodeInstructions reads the instructions this driver writes: a meter
// and apply-actions with set-field ip_dscp and one output or group.
func (f *flow) decodeInstructions(b []byte) error {
	outs := 0
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("instruction: %w", errTruncated)
		}
		typ, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if n < 4 || n > len(b) {
			return fmt.Errorf("instruction length %d of %d bytes", n, len(b))
		}
		in := b[:n]
		b = b[n:]
		switch {
		case typ == 6 && n >= 8: // OFPIT_METER
			f.Meter = binary.BigEndian.Uint32(in[4:])
		case typ == 4 && n >= 8: // OFPIT_APPLY_ACTIONS
			acts := in[8:]
			for len(acts) > 0 {
				if len(acts) < 4 {
					return fmt.Errorf("action: %w", errTruncated)
				}
				at, al := binary.BigEndian.Uint16(acts), int(binary.BigEndian.Uint16(acts[2:]))
				if al < 4 || al > len(acts) {
					return fmt.Errorf("action length %d of %d bytes", al, len(acts))
				}
				a := acts[:al]
				acts = acts[al:]
				switch {
				case at == 0 && al >= 8: // OUTPUT
					f.Out = binary.BigEndian.Uint32(a[4:])
					outs++
				case at == 22 && al >= 8: // GROUP
					f.Group = binary.BigEndian.Uint32(a[4:])
					outs++
				case at == 25 && al >= 9 && binary.BigEndian.Uint16(a[4:]) == 0x8000 && a[6]>>1 == oxmIPDSCP && a[7] == 1:
					f.SetDSCP = int(a[8])
				default:
					f.foreign = true
				}
			}
		default:
			f.foreign = true
		}
	}
	if outs != 1 {
		f.foreign = true
	}
	return nil
}

// decodeMeters parses the body of a meter config reply.
func decodeMeters(b []byte) ([]meter, error) {
	var out []meter
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("meter config: %w", errTruncated)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n < 8 || n > len(b) {
			return nil, fmt.Errorf("meter config: entry length %d of %d bytes left", n, len(b))
		}
		e := b[:n]
		b = b[n:]
		flags := binary.BigEndian.Uint16(e[2:])
		m := meter{ID: binary.BigEndian.Uint32(e[4:])}
		bands := e[8:]
		if len(bands) != 16 || flags&0x5 != 0x5 { // one band; KBPS and BURST
			m.foreign = true
		}
		if len(bands) >= 16 {
			if binary.BigEndian.Uint16(bands) != 1 { // OFPMBT_DROP
				m.foreign = true
			}
			m.RateKbps = binary.BigEndian.Uint32(bands[4:])
			m.BurstKbit = binary.BigEndian.Uint32(bands[8:])
		}
		out = append(out, m)
	}
	return out, nil
}

// decodeGroups parses the body of a group description reply.
func decodeGroups(b []byte) ([]group, error) {
	var out []group
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("group desc: %w", errTruncated)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n < 8 || n > len(b) {
			return nil, fmt.Errorf("group desc: entry length %d of %d bytes left", n, len(b))
		}
		e := b[:n]
		b = b[n:]
		g := group{ID: binary.BigEndian.Uint32(e[4:]), foreign: e[2] != 0} // OFPGT_ALL
		buckets := e[8:]
		for len(buckets) > 0 {
			if len(buckets) < 16 {
				return nil, fmt.Errorf("group %d bucket: %w", g.ID, errTruncated)
			}
			bl := int(binary.BigEndian.Uint16(buckets))
			if bl < 16 || bl > len(buckets) {
				return nil, fmt.Errorf("group %d: bucket length %d of %d bytes", g.ID, bl, len(buckets))
			}
			acts := buckets[16:bl]
			buckets = buckets[bl:]
			outs := 0
			for len(acts) > 0 {
				if len(acts) < 4 {
					return nil, fmt.Errorf("group %d action: %w", g.ID, errTruncated)
				}
				at, al := binary.BigEndian.Uint16(acts), int(binary.BigEndian.Uint16(acts[2:]))
				if al < 4 || al > len(acts) {
					return nil, fmt.Errorf("group %d: action length %d of %d bytes", g.ID, al, len(acts))
				}
				if at == 0 && al >= 8 {
					g.Outs = append(g.Outs, binary.BigEndian.Uint32(acts[4:]))
					outs++
				} else {
					g.foreign = true
				}
				acts = acts[al:]
			}
			if outs != 1 {
				g.foreign = true
			}
		}
		slices.Sort(g.Outs)
		out = append(out, g)
	}
	return out, nil
}

// meterStat is the drop count of one meter.
type meterStat struct {
	ID      uint32
	Packets uint64 // packets that reached the meter
	Dropped uint64 // packets its drop band dropped
}

// decodeMeterStats parses the body of a meter stats reply.
func decodeMeterStats(b []byte) ([]meterStat, error) {
	var out []meterStat
	for len(b) > 0 {
		if len(b) < 40 {
			return nil, fmt.Errorf("meter stats: %w", errTruncated)
		}
		n := int(binary.BigEndian.Uint16(b[4:]))
		if n < 40 || n > len(b) {
			return nil, fmt.Errorf("meter stats: entry length %d of %d bytes left", n, len(b))
		}
		e := b[:n]
		b = b[n:]
		s := meterStat{ID: binary.BigEndian.Uint32(e), Packets: binary.BigEndian.Uint64(e[16:])}
		for bands := e[40:]; len(bands) >= 16; bands = bands[16:] {
			s.Dropped += binary.BigEndian.Uint64(bands)
		}
		out = append(out, s)
	}
	return out, nil
}
