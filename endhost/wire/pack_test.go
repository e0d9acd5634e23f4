package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

type msg struct {
	ch   uint16
	data []byte
}

func packAll(t testing.TB, s *Schema, msgs []msg) ([]byte, int) {
	t.Helper()
	p, err := NewPacker(s, make([]byte, 2048), s.MaxChunks(MTU))
	if err != nil {
		t.Fatal(err)
	}
	p.Reset(Header{Tunnel: 7, Sequence: 9, SenderTsNs: 123456789, Flags: 3})
	n := 0
	for _, m := range msgs {
		if err := p.Add(m.ch, m.data); errors.Is(err, ErrFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return bytes.Clone(p.Packet()), n
}

func unpackAll(t testing.TB, u *Unpacker, pkt []byte) ([]msg, Header, error) {
	var got []msg
	h, err := u.Unpack(pkt, func(ch uint16, data []byte) { got = append(got, msg{ch, bytes.Clone(data)}) })
	return got, h, err
}

func randomMessages(rng *rand.Rand, n, maxLen int) []msg {
	out := make([]msg, n)
	for i := range out {
		d := make([]byte, rng.IntN(maxLen+1))
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		out[i] = msg{uint16(rng.IntN(4)), d}
	}
	return out
}

func TestSchemataFitTheMTU(t *testing.T) {
	for _, c := range []struct {
		s               *Schema
		chunk, max, dat int
	}{{HD6, 26, 55, 22}, {HD8, 36, 40, 31}} {
		if c.s.ChunkLen != c.chunk || c.s.MaxChunks(MTU) != c.max || c.s.DataLen() != c.dat || c.s.ChunkLen-c.s.CRCLen() != c.dat+1 {
			t.Errorf("%s: chunk %d, %d per MTU, %d data bytes; want %d, %d, %d", c.s.Name, c.s.ChunkLen, c.s.MaxChunks(MTU), c.s.DataLen(), c.chunk, c.max, c.dat)
		}
		pkt, _ := packAll(t, c.s, randomMessages(rand.New(rand.NewPCG(1, 1)), 200, 5))
		if 20+8+len(pkt) > MTU {
			t.Errorf("%s: a full packet makes an IPv4 packet of %d bytes", c.s.Name, 20+8+len(pkt))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []*Schema{HD6, HD8} {
		for _, maxLen := range []int{0, 1, 20, 21, 30, 64, 300, 1200} {
			rng := rand.New(rand.NewPCG(uint64(maxLen), 3))
			msgs := randomMessages(rng, 100, maxLen)
			pkt, n := packAll(t, s, msgs)
			var u Unpacker
			got, h, err := unpackAll(t, &u, pkt)
			if err != nil {
				t.Fatal(err)
			}
			if h.Tunnel != 7 || h.Sequence != 9 || h.SenderTsNs != 123456789 || h.Flags != 3 || h.Schema != s.ID {
				t.Fatalf("%s: header %+v", s.Name, h)
			}
			if len(got) != n || n == 0 {
				t.Fatalf("%s, messages up to %d B: %d packed, %d delivered", s.Name, maxLen, n, len(got))
			}
			for i := range got {
				if got[i].ch != msgs[i].ch || !bytes.Equal(got[i].data, msgs[i].data) {
					t.Fatalf("%s: message %d: got %d %x, want %d %x", s.Name, i, got[i].ch, got[i].data, msgs[i].ch, msgs[i].data)
				}
			}
			if u.Stats != (Stats{Packets: 1, Messages: uint64(n)}) {
				t.Errorf("%s: stats %+v", s.Name, u.Stats)
			}
		}
	}
}

// TestCorruptChunkDropsOnlyItsMessage flips one bit in every position of
// a packet in turn: exactly the message owning that chunk is lost, and
// every other message arrives intact.
func TestCorruptChunkDropsOnlyItsMessage(t *testing.T) {
	for _, s := range []*Schema{HD6, HD8} {
		msgs := []msg{{1, []byte("a")}, {2, bytes.Repeat([]byte("b"), 70)}, {3, nil}, {1, bytes.Repeat([]byte("c"), 25)}}
		pkt, n := packAll(t, s, msgs)
		if n != len(msgs) {
			t.Fatal("not all packed")
		}
		owner := []int{} // message of each chunk
		for i, m := range msgs {
			for range s.MessageChunks(len(m.data)) {
				owner = append(owner, i)
			}
		}
		for bit := HeaderLen * 8; bit < len(pkt)*8; bit += 3 {
			bad := bytes.Clone(pkt)
			bad[bit/8] ^= 1 << (bit % 8)
			var u Unpacker
			got, _, err := unpackAll(t, &u, bad)
			if err != nil {
				t.Fatal(err)
			}
			lost := owner[(bit/8-HeaderLen)/s.ChunkLen]
			var want []msg
			for i, m := range msgs {
				if i != lost {
					want = append(want, m)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s, bit %d flipped (message %d): delivered %v", s.Name, bit, lost, got)
			}
			if u.Stats.CorruptChunks != 1 || u.Stats.DroppedMessages != 1 || u.Stats.Messages != uint64(len(msgs)-1) {
				t.Fatalf("%s, bit %d: stats %+v", s.Name, bit, u.Stats)
			}
		}
	}
}

func TestBadPacketsAreRefused(t *testing.T) {
	pkt, _ := packAll(t, HD6, []msg{{1, []byte("hello")}})
	foreign := bytes.Clone(pkt)
	foreign[0] = 2 << 4
	schema := bytes.Clone(pkt)
	schema[1] = 9
	for name, c := range map[string]struct {
		p    []byte
		want error
	}{
		"empty": {nil, ErrTruncated}, "short header": {pkt[:10], ErrTruncated}, "missing chunk": {pkt[:len(pkt)-1], ErrTruncated},
		"version 2": {foreign, ErrForeign}, "schema 9": {schema, ErrForeign},
	} {
		var u Unpacker
		got, _, err := unpackAll(t, &u, c.p)
		if !errors.Is(err, c.want) || len(got) != 0 || u.Stats.Bad != 1 {
			t.Errorf("%s: %v, %d delivered, stats %+v; want %v", name, err, len(got), u.Stats, c.want)
		}
	}
}

func TestPackerLimits(t *testing.T) {
	if _, err := NewPacker(HD6, make([]byte, 100), 55); err == nil {
		t.Error("a buffer too small was accepted")
	}
	p, err := NewPacker(HD8, make([]byte, 2048), HD8.MaxChunks(MTU))
	if err != nil {
		t.Fatal(err)
	}
	p.Reset(Header{})
	if err := p.Add(0, make([]byte, 40*31)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a message over the packet: %v", err)
	}
	if err := p.Add(0, make([]byte, 40*31-2)); err != nil {
		t.Errorf("a message filling the packet: %v", err)
	}
	if err := p.Add(0, nil); !errors.Is(err, ErrFull) || p.Chunks() != 40 {
		t.Errorf("a message after a full packet: %v (%d chunks)", err, p.Chunks())
	}
}

func TestPackUnpackAllocateNothing(t *testing.T) {
	p, _ := NewPacker(HD6, make([]byte, 2048), HD6.MaxChunks(MTU))
	var u Unpacker
	small, big := make([]byte, 16), make([]byte, 100)
	sink := 0
	run := func() {
		p.Reset(Header{Tunnel: 1})
		for p.Fits(len(small)) {
			_ = p.Add(1, small)
			if p.Fits(len(big)) {
				_ = p.Add(2, big)
			}
		}
		_, _ = u.Unpack(p.Packet(), func(_ uint16, m []byte) { sink += len(m) })
	}
	run() // the reassembly buffer grows once
	if a := testing.AllocsPerRun(100, run); a != 0 {
		t.Errorf("pack and unpack allocate %.1f times per packet", a)
	}
}

// TestJumboPacketAcrossCRCGroups: a packet of 300 chunks (a jumbo frame)
// holds messages that straddle the 64-chunk groups in which CRCs are
// computed and checked; every message arrives, and a corrupt chunk in the
// second group costs only its message.
func TestJumboPacketAcrossCRCGroups(t *testing.T) {
	for _, s := range []*Schema{HD6, HD8} {
		const chunks = 300
		p, err := NewPacker(s, make([]byte, HeaderLen+chunks*s.ChunkLen), chunks)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, 7))
		p.Reset(Header{Tunnel: 1})
		var want []msg
		for _, m := range randomMessages(rng, 1000, 700) {
			if err := p.Add(m.ch, m.data); errors.Is(err, ErrFull) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			want = append(want, m)
		}
		pkt := bytes.Clone(p.Packet())
		if p.Chunks() < 2*sumBatch+1 {
			t.Fatalf("%s: only %d chunks packed", s.Name, p.Chunks())
		}
		var u Unpacker
		got, _, err := unpackAll(t, &u, pkt)
		if err != nil || len(got) != len(want) {
			t.Fatalf("%s: %d of %d messages, %v", s.Name, len(got), len(want), err)
		}
		for i := range got {
			if got[i].ch != want[i].ch || !bytes.Equal(got[i].data, want[i].data) {
				t.Fatalf("%s: message %d differs", s.Name, i)
			}
		}
		// One flipped bit in chunk 100 (the second group) loses one message.
		pkt[HeaderLen+100*s.ChunkLen+5] ^= 0x10
		var u2 Unpacker
		got, _, _ = unpackAll(t, &u2, pkt)
		if len(got) != len(want)-1 || u2.Stats.CorruptChunks != 1 || u2.Stats.DroppedMessages != 1 {
			t.Fatalf("%s: after one corrupt chunk %d of %d messages, stats %+v", s.Name, len(got), len(want), u2.Stats)
		}
	}
}

// TestAddMatchesGeneralPath packs every length up to six chunks' worth
// into a seven-chunk packet over stale bytes, until it is full, through
// Add (the assembly on amd64), the Go model of its one-chunk path and the
// general path: the packets are the same, the packet fills up at the same
// message, and nothing stale is left in a one-chunk message's chunk.
func TestAddMatchesGeneralPath(t *testing.T) {
	for _, s := range []*Schema{HD6, HD8} {
		for n := 0; n+channelLen <= 6*s.DataLen(); n++ {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(0xa0 + i)
			}
			var pkts [3][]byte
			var added [3]int
			for k, add := range []func(*Packer, uint16, []byte) error{(*Packer).Add, addOneGo, addSpan} {
				buf := bytes.Repeat([]byte{0xee}, HeaderLen+7*s.ChunkLen)
				p, err := NewPacker(s, buf, 7)
				if err != nil {
					t.Fatal(err)
				}
				p.Reset(Header{Tunnel: 1})
				for {
					err := add(p, 0x1234, msg)
					if errors.Is(err, ErrFull) {
						break
					}
					if err != nil {
						t.Fatalf("%s, %d bytes: %v", s.Name, n, err)
					}
					added[k]++
				}
				pkts[k] = p.Packet()
			}
			if !bytes.Equal(pkts[0], pkts[2]) || !bytes.Equal(pkts[1], pkts[2]) || added[0] != added[2] || added[1] != added[2] {
				t.Fatalf("%s, %d bytes: Add (%d messages)\n%x\nGo model (%d)\n%x\ngeneral path (%d)\n%x", s.Name, n, added[0], pkts[0], added[1], pkts[1], added[2], pkts[2])
			}
			if n+channelLen > s.DataLen() {
				continue
			}
			c := pkts[0][HeaderLen : HeaderLen+s.ChunkLen]
			if want := byte(n+channelLen) | descFirst | descLast; c[0] != want || c[1] != 0x12 || c[2] != 0x34 || !bytes.Equal(c[3:3+n], msg) {
				t.Fatalf("%s, %d bytes: chunk %x", s.Name, n, c)
			}
			if pad := c[3+n : 1+s.DataLen()]; !bytes.Equal(pad, make([]byte, len(pad))) {
				t.Fatalf("%s, %d bytes: stale bytes after the message: %x", s.Name, n, pad)
			}
		}
		p, err := NewPacker(s, make([]byte, HeaderLen+7*s.ChunkLen), 7)
		if err != nil {
			t.Fatal(err)
		}
		p.Reset(Header{})
		if err := p.Add(1, make([]byte, 7*s.DataLen())); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: a message of eight chunks into seven: %v", s.Name, err)
		}
	}
}

// AddAll against Add on runs that mix one-chunk messages (every length a
// chunk holds) with longer ones, messages too large for a packet, and
// packets that fill up mid-run.
func TestAddAllMatchesAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range []*Schema{HD6, HD8} {
		for _, max := range []int{1, 2, 7, s.MaxChunks(MTU), s.MaxChunks(9000)} {
			for range 200 {
				lens := make([]byte, rng.IntN(80))
				for i := range lens {
					switch rng.IntN(8) {
					case 0:
						lens[i] = byte(rng.IntN(256)) // any, up to past a packet
					case 1:
						lens[i] = byte(rng.IntN(4*s.DataLen()/5 + 1)) // a few chunks
					default:
						lens[i] = byte(rng.IntN((s.DataLen()-channelLen)/5 + 1)) // one chunk
					}
				}
				checkAddAll(t, s, max, lens)
			}
		}
	}
}
