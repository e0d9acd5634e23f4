package wire

import (
	"math/big"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestHeaderMatchesTheP4Program reads xlane_t from the switch pipeline's
// header.p4 and decodes a packed header with its field widths: every
// field the switch parses holds what the endhost wrote.
func TestHeaderMatchesTheP4Program(t *testing.T) {
	src, err := os.ReadFile("../../p4/switch/include/header.p4")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)header xlane_t \{(.*?)\}`).FindSubmatch(src)
	if body == nil {
		t.Fatal("header.p4 has no xlane_t")
	}
	fields := regexp.MustCompile(`bit<(\d+)>\s+(\w+);`).FindAllSubmatch(body[1], -1)
	p, err := NewPacker(HD8, make([]byte, 100), 1)
	if err != nil {
		t.Fatal(err)
	}
	p.Reset(Header{Flags: 0x5, Tunnel: 0xa1b2c3d4, Sequence: 0x01020304, SenderTsNs: 0x1122334455667788})
	if err := p.Add(3, []byte("x")); err != nil {
		t.Fatal(err)
	}
	pkt := p.Packet()
	want := map[string]uint64{"version": Version, "flags": 0x5, "schema": uint64(HD8.ID), "chunk_count": 1,
		"tunnel_id": 0xa1b2c3d4, "sequence": 0x01020304, "sender_ts_ns": 0x1122334455667788}
	all := new(big.Int).SetBytes(pkt[:HeaderLen])
	bit := HeaderLen * 8
	for _, f := range fields {
		w, _ := strconv.Atoi(string(f[1]))
		name := string(f[2])
		bit -= w
		v := new(big.Int).Rsh(all, uint(bit))
		v.And(v, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(w)), big.NewInt(1)))
		exp, ok := want[name]
		if !ok {
			t.Errorf("header.p4 field %s is unknown to package wire", name)
			continue
		}
		if v.Uint64() != exp {
			t.Errorf("field %s (%d bits): the switch would read %#x, want %#x", name, w, v.Uint64(), exp)
		}
		delete(want, name)
	}
	if bit != 0 || len(want) != 0 {
		t.Errorf("header.p4's xlane_t is %d bits, package wire writes %d; fields missing from it: %v", HeaderLen*8-bit, HeaderLen*8, want)
	}
}
