package openflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// flowStatsEntry builds one ofp_flow_stats entry around a match and
// instructions, as a switch would send it.
func flowStatsEntry(prio uint16, cookie uint64, match, ins []byte) []byte {
	e := make([]byte, 48)
	e[2] = 0 // table 0
	binary.BigEndian.PutUint16(e[12:], prio)
	binary.BigEndian.PutUint64(e[24:], cookie)
	binary.BigEndian.PutUint64(e[32:], 10)
	binary.BigEndian.PutUint64(e[40:], 1000)
	e = append(e, match...)
	e = append(e, ins...)
	binary.BigEndian.PutUint16(e, uint16(len(e)))
	return e
}

func TestDecodeFlowsOfWhatWeWrite(t *testing.T) {
	f := flow{flowKey: flowKey{Priority: priorityTunnel, InPort: 1, UDPDst: 5000, DSCP: 45}, Cookie: 7, Meter: 3, SetDSCP: 45, Out: 2}
	f.Src = mustAddr("10.0.0.1")
	f.Dst = mustPrefix("10.0.0.2/32")
	// Encode through the FlowMod writer and cut out match and
	// instructions: a flow stats entry carries the same bytes.
	var buf bytes.Buffer
	if _, err := flowAdd(f).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	mod := buf.Bytes()[40:] // after cookie..pad of ofp_flow_mod (minus the header)
	mlen := int(binary.BigEndian.Uint16(mod[2:]))
	padded := (mlen + 7) / 8 * 8
	got, err := decodeFlows(flowStatsEntry(priorityTunnel, 7, mod[:padded], mod[padded:]))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].sameAs(f) || got[0].Packets != 10 {
		t.Fatalf("decoded %+v, want %+v", got, f)
	}
}

func TestDecodeRejectsBadLengths(t *testing.T) {
	for name, b := range map[string][]byte{
		"short entry":      {0, 60, 0},
		"length too long":  append([]byte{0, 200}, make([]byte, 60)...),
		"length too short": append([]byte{0, 4}, make([]byte, 60)...),
	} {
		if _, err := decodeFlows(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := decodeMeterStats(make([]byte, 20)); !errors.Is(err, errTruncated) {
		t.Errorf("short meter stats: %v", err)
	}
}

// FuzzDecoders feeds arbitrary bytes to every reply decoder: they must
// return an error or a value, never panic.
func FuzzDecoders(f *testing.F) {
	f.Add(flowStatsEntry(1000, 7, []byte{0, 1, 0, 4, 0, 0, 0, 0}, nil))
	f.Add([]byte{0, 24, 0, 5, 0, 0, 0, 1, 0, 1, 0, 16, 0, 0, 4, 176, 0, 0, 0, 13, 0, 0, 0, 0})
	f.Add([]byte{0, 40, 0, 0, 0, 0, 0, 9, 0, 32, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 2, 255, 255, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeFlows(b)
		_, _ = decodeMeters(b)
		_, _ = decodeGroups(b)
		_, _ = decodeMeterStats(b)
		_, _, _, _ = multipartBody(b)
		_, _ = decodeError(b)
		_, _, _ = readMsg(bytes.NewReader(b))
	})
}

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
