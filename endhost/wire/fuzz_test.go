package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// FuzzUnpack feeds arbitrary packets: never a panic, never more messages
// than chunks, every chunk accounted for.
func FuzzUnpack(f *testing.F) {
	pkt, _ := packAll(f, HD6, randomMessages(rand.New(rand.NewPCG(1, 2)), 10, 40))
	f.Add(pkt)
	pkt8, _ := packAll(f, HD8, randomMessages(rand.New(rand.NewPCG(3, 4)), 10, 70))
	f.Add(pkt8)
	f.Add([]byte{0x10, 1, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		var u Unpacker
		n := 0
		h, err := u.Unpack(p, func(_ uint16, m []byte) { n++ })
		if err != nil {
			if n != 0 || u.Stats.Bad != 1 {
				t.Fatalf("refused packet delivered %d messages, stats %+v", n, u.Stats)
			}
			return
		}
		if n > int(h.Chunks) || uint64(n) != u.Stats.Messages {
			t.Fatalf("%d messages from %d chunks, stats %+v", n, h.Chunks, u.Stats)
		}
	})
}

// FuzzCorruption packs messages derived from the input, corrupts bytes
// the input picks, and checks that what is delivered is exactly the
// packed messages minus some, in order: a corrupted message is dropped,
// never delivered.
func FuzzCorruption(f *testing.F) {
	f.Add(uint64(1), uint8(30), uint16(100), byte(1), uint16(200), byte(0x80), false)
	f.Add(uint64(7), uint8(1), uint16(25), byte(0xff), uint16(26), byte(0xff), true)
	f.Fuzz(func(t *testing.T, seed uint64, maxLen uint8, pos1 uint16, x1 byte, pos2 uint16, x2 byte, hd8 bool) {
		s := HD6
		if hd8 {
			s = HD8
		}
		msgs := randomMessages(rand.New(rand.NewPCG(seed, 5)), 60, int(maxLen))
		pkt, n := packAll(t, s, msgs)
		msgs = msgs[:n]
		body := len(pkt) - HeaderLen
		if body == 0 {
			return
		}
		pkt[HeaderLen+int(pos1)%body] ^= x1
		pkt[HeaderLen+int(pos2)%body] ^= x2
		var u Unpacker
		got, _, err := unpackAll(t, &u, pkt)
		if err != nil {
			t.Fatal(err)
		}
		// got must be a subsequence of msgs.
		i := 0
		for _, g := range got {
			for i < len(msgs) && (msgs[i].ch != g.ch || !bytes.Equal(msgs[i].data, g.data)) {
				i++
			}
			if i == len(msgs) {
				t.Fatalf("delivered a message that was not sent: %d %x", g.ch, g.data)
			}
			i++
		}
		if len(got)+int(u.Stats.DroppedMessages) < n-2 || len(got) < n-2 {
			t.Fatalf("two corrupted bytes cost %d of %d messages (dropped %d)", n-len(got), n, u.Stats.DroppedMessages)
		}
	})
}

// FuzzUnpackMatchesModel packs messages into a jumbo packet (groups of 64
// chunks and messages across them), rewrites descriptors the input picks
// and seals the chunks again (valid CRCs over a broken layout: a sender's
// bug), breaks some CRCs, and checks that Unpack, with its fast paths,
// delivers and counts exactly what a plain chunk-by-chunk model does.
func FuzzUnpackMatchesModel(f *testing.F) {
	f.Add(uint64(1), uint8(40), []byte{3, 0x81, 9, 0x41}, []byte{5}, false)
	f.Add(uint64(2), uint8(200), []byte{70, 0x16, 64, 0xc0}, []byte{}, true)
	// Packets of messages in one chunk each, one descriptor just outside
	// what a message of its own may say (the fused check of verifySingles).
	f.Add(uint64(3), uint8(16), []byte{5, 0xc0 | 23}, []byte{}, false) // HD6: used = d+1
	f.Add(uint64(4), uint8(16), []byte{7, 0xc1}, []byte{}, false)      // used < channelLen
	f.Add(uint64(5), uint8(16), []byte{9, 0x80 | 12}, []byte{}, false) // first, not last
	f.Add(uint64(6), uint8(16), []byte{4, 0xc0 | 32}, []byte{}, true)  // HD8: used = d+1
	f.Add(uint64(7), uint8(16), []byte{0, 0xc0 | 31}, []byte{}, true)  // used = d: fine
	f.Fuzz(func(t *testing.T, seed uint64, maxLen uint8, descs, flips []byte, hd8 bool) {
		s := HD6
		if hd8 {
			s = HD8
		}
		const maxChunks = 150
		p, err := NewPacker(s, make([]byte, HeaderLen+maxChunks*s.ChunkLen), maxChunks)
		if err != nil {
			t.Fatal(err)
		}
		p.Reset(Header{Tunnel: 1})
		for _, m := range randomMessages(rand.New(rand.NewPCG(seed, 9)), 200, int(maxLen)) {
			if p.Add(m.ch, m.data) != nil {
				break
			}
		}
		pkt := bytes.Clone(p.Packet())
		n, cl := p.Chunks(), s.ChunkLen
		if n == 0 {
			return
		}
		for i := 0; i+1 < len(descs); i += 2 { // (chunk, descriptor) pairs
			pkt[HeaderLen+int(descs[i])%n*cl] = descs[i+1]
		}
		s.CRC.seal(pkt[HeaderLen:], cl, cl-s.CRCLen(), n)
		for _, b := range flips {
			pkt[HeaderLen+int(b)%n*cl+1] ^= 0x5a // that chunk's CRC fails
		}
		var u Unpacker
		got, _, err := unpackAll(t, &u, pkt)
		if err != nil {
			t.Fatal(err)
		}
		want, stats := unpackModel(s, pkt[HeaderLen:], n)
		if len(got) != len(want) {
			t.Fatalf("delivered %d messages, the model %d", len(got), len(want))
		}
		for i := range got {
			if got[i].ch != want[i].ch || !bytes.Equal(got[i].data, want[i].data) {
				t.Fatalf("message %d: %d %x, the model %d %x", i, got[i].ch, got[i].data, want[i].ch, want[i].data)
			}
		}
		if u.Stats != stats {
			t.Fatalf("stats %+v, the model %+v", u.Stats, stats)
		}
	})
}

// unpackModel is Unpack's contract, one chunk at a time: a chunk whose CRC
// fails or whose descriptor breaks the layout loses the message it belongs
// to (once); chunks that continue a lost message are skipped up to its
// last one; a first chunk ends any message still open (lost).
func unpackModel(s *Schema, body []byte, n int) ([]msg, Stats) {
	st := Stats{Packets: 1}
	cl, k, d := s.ChunkLen, s.CRCLen(), s.DataLen()
	var out []msg
	var buf []byte
	const idle, collecting, broken = 0, 1, 2
	state := idle
	lose := func() {
		st.CorruptChunks++
		if state != broken {
			st.DroppedMessages++
		}
		state = broken
	}
	for i := range n {
		c := body[i*cl : (i+1)*cl]
		crc := s.CRC.table16(c[:cl-k])
		var stored uint32
		for b := range k {
			stored |= uint32(c[cl-k+b]) << (8 * b)
		}
		used, first, last := int(c[0]&descUsed), c[0]&descFirst != 0, c[0]&descLast != 0
		switch {
		case crc != stored, used > d, first && used < channelLen, !first && state == idle:
			lose()
			continue
		case first:
			if state == collecting {
				st.DroppedMessages++
			}
			state, buf = collecting, append([]byte(nil), c[1:1+used]...)
		case state == broken:
			if last {
				state = idle
			}
			continue
		default:
			buf = append(buf, c[1:1+used]...)
		}
		if last {
			st.Messages++
			out = append(out, msg{uint16(buf[0])<<8 | uint16(buf[1]), buf[channelLen:]})
			state = idle
		}
	}
	if state == collecting {
		st.DroppedMessages++
	}
	return out, st
}

// FuzzAddMatchesGeneralPath packs a sequence of messages whose lengths
// the input picks (0 to past a whole packet) into packets of a size it
// picks, through Add and through the general path: every call returns the
// same error (or none) and the packets are the same byte for byte.
func FuzzAddMatchesGeneralPath(f *testing.F) {
	f.Add([]byte{16, 64, 200, 3, 0, 255}, uint8(7), false)
	f.Add([]byte{21, 22, 23, 44, 45}, uint8(3), true)
	f.Fuzz(func(t *testing.T, lens []byte, maxChunks uint8, hd8 bool) {
		s := HD6
		if hd8 {
			s = HD8
		}
		max := 1 + int(maxChunks)%s.MaxChunks(MTU)
		ps := [2]*Packer{stalePacker(t, s, max), stalePacker(t, s, max)}
		for i, l := range lens {
			n := int(l) * 5 // up to 1,275 bytes: past a whole packet
			msg := make([]byte, n)
			for j := range msg {
				msg[j] = byte(i + j)
			}
			e0, e1 := ps[0].Add(uint16(i), msg), addSpan(ps[1], uint16(i), msg)
			if errors.Is(e0, ErrFull) != errors.Is(e1, ErrFull) || errors.Is(e0, ErrTooLarge) != errors.Is(e1, ErrTooLarge) || (e0 == nil) != (e1 == nil) {
				t.Fatalf("message %d of %d bytes: Add %v, general path %v", i, n, e0, e1)
			}
			if ps[0].Chunks() != ps[1].Chunks() {
				t.Fatalf("message %d of %d bytes: Add at %d chunks, general path at %d", i, n, ps[0].Chunks(), ps[1].Chunks())
			}
		}
		if a, b := ps[0].Packet(), ps[1].Packet(); !bytes.Equal(a, b) {
			t.Fatalf("Add\n%x\ngeneral path\n%x", a, b)
		}
	})
}

// FuzzAddAllMatchesAdd holds AddAll (the assembly run and its Go model)
// to Add called per message: the same count and error at each stop, the
// same packet. A stop is skipped over, as a filler drops a message too
// large for any packet.
func FuzzAddAllMatchesAdd(f *testing.F) {
	f.Add([]byte{3, 3, 3, 13, 3, 255, 3}, uint8(9), false)
	f.Add([]byte{0, 4, 5, 6, 7, 8}, uint8(2), true)
	f.Fuzz(func(t *testing.T, lens []byte, maxChunks uint8, hd8 bool) {
		s := HD6
		if hd8 {
			s = HD8
		}
		checkAddAll(t, s, 1+int(maxChunks)%s.MaxChunks(MTU), lens)
	})
}

// checkAddAll packs messages of the given lengths (×5 bytes: up to 1,275,
// past a whole packet) into packets of max chunks through Add, AddAll and
// AddAll with addRunGo, and fails where they differ.
func checkAddAll(t *testing.T, s *Schema, max int, lens []byte) {
	t.Helper()
	msgs := make([][]byte, len(lens))
	for i, l := range lens {
		msgs[i] = make([]byte, int(l)*5)
		for j := range msgs[i] {
			msgs[i][j] = byte(i + j)
		}
	}
	type stop struct {
		at  int
		err error
	}
	ps := [3]*Packer{stalePacker(t, s, max), stalePacker(t, s, max), stalePacker(t, s, max)}
	var stops [3][]stop
	for i, m := range msgs { // Add, one by one
		if err := ps[0].Add(7, m); err != nil {
			stops[0] = append(stops[0], stop{i, err})
		}
	}
	for k, goRun := range []bool{false, true} {
		for from := 0; from < len(msgs); {
			n, err := addAll(ps[k+1], 7, msgs[from:], goRun)
			if from += n; err != nil {
				stops[k+1] = append(stops[k+1], stop{from, err})
				from++
			} else if from != len(msgs) {
				t.Fatalf("AddAll stopped at message %d of %d without an error", from, len(msgs))
			}
		}
	}
	for k := 1; k < 3; k++ {
		if len(stops[k]) != len(stops[0]) {
			t.Fatalf("path %d stopped %v, Add %v", k, stops[k], stops[0])
		}
		for j, st := range stops[k] {
			want := stops[0][j]
			if st.at != want.at || errors.Is(st.err, ErrFull) != errors.Is(want.err, ErrFull) || (st.err == ErrFull) != (want.err == ErrFull) ||
				errors.Is(st.err, ErrTooLarge) != errors.Is(want.err, ErrTooLarge) {
				t.Fatalf("path %d stop %d: message %d (%v), Add: message %d (%v)", k, j, st.at, st.err, want.at, want.err)
			}
		}
		if ps[k].Chunks() != ps[0].Chunks() {
			t.Fatalf("path %d at %d chunks, Add at %d", k, ps[k].Chunks(), ps[0].Chunks())
		}
	}
	a := ps[0].Packet()
	for k := 1; k < 3; k++ {
		if b := ps[k].Packet(); !bytes.Equal(a, b) {
			t.Fatalf("Add\n%x\npath %d\n%x", a, k, b)
		}
	}
}

// stalePacker is a packer of max chunks over a buffer of stale bytes (a
// path that leaves some unwritten differs from one that does not).
func stalePacker(t *testing.T, s *Schema, max int) *Packer {
	t.Helper()
	p, err := NewPacker(s, bytes.Repeat([]byte{0xee}, HeaderLen+max*s.ChunkLen), max)
	if err != nil {
		t.Fatal(err)
	}
	p.Reset(Header{Tunnel: 5})
	return p
}
