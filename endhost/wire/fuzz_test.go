package wire

import (
	"bytes"
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
