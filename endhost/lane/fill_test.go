package lane

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
)

func rings(t *testing.T, n int) []Source {
	t.Helper()
	var out []Source
	for i := range n {
		r, err := bridge.Create(filepath.Join(t.TempDir(), fmt.Sprint("app", i)), 64, 400)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		out = append(out, Source{Ring: r, Channel: uint16(10 + i)})
	}
	return out
}

// TestFillSharesPacketsFairly: two applications with many small messages
// each get their turn in every packet; a message that does not fit waits
// whole for the next packet; one too large for any packet is dropped.
func TestFillSharesPacketsFairly(t *testing.T) {
	srcs := rings(t, 2)
	params := Params{PeriodNs: 1000, Loadsize: wire.HeaderLen + 6*wire.HD6.ChunkLen} // 6 chunks
	p, err := wire.NewPacker(wire.HD6, make([]byte, 2048), params.Chunks(wire.HD6))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		srcs[0].Ring.Push([]byte(fmt.Sprint("a", i)), bridge.Meta{})
		srcs[1].Ring.Push([]byte(fmt.Sprint("b", i)), bridge.Meta{})
	}
	var f Filler
	var u wire.Unpacker
	got := map[uint16][]string{}
	for range 4 {
		p.Reset(wire.Header{})
		f.Fill(p, srcs)
		per := map[uint16]int{}
		if _, err := u.Unpack(p.Packet(), func(ch uint16, m []byte) { got[ch] = append(got[ch], string(m)); per[ch]++ }); err != nil {
			t.Fatal(err)
		}
		if d := per[10] - per[11]; d > 1 || d < -1 {
			t.Fatalf("one packet carried %d of app a and %d of app b", per[10], per[11])
		}
	}
	if len(got[10]) != 10 || len(got[11]) != 10 || got[10][9] != "a9" || got[11][0] != "b0" {
		t.Fatalf("delivered %v", got)
	}
	// A message of 3 chunks when 2 are left waits; one of 7 chunks never fits.
	srcs[0].Ring.Push(bytes.Repeat([]byte("x"), 300), bridge.Meta{}) // 14 chunks: too large
	srcs[0].Ring.Push(bytes.Repeat([]byte("y"), 60), bridge.Meta{})  // 3 chunks
	srcs[1].Ring.Push(bytes.Repeat([]byte("z"), 80), bridge.Meta{})  // 4 chunks
	p.Reset(wire.Header{})
	if n := f.Fill(p, srcs); n != 1 || f.Stats.TooLarge != 1 || p.Chunks() != 4 && p.Chunks() != 3 {
		t.Fatalf("first packet: %d messages, %d chunks, stats %+v", n, p.Chunks(), f.Stats)
	}
	p.Reset(wire.Header{})
	if n := f.Fill(p, srcs); n != 1 {
		t.Fatalf("second packet: %d messages", n)
	}
	if srcs[0].Ring.Len()+srcs[1].Ring.Len() != 0 {
		t.Fatal("messages left behind")
	}
}

// TestFillSharesFullPackets: backlogged applications, with messages of
// one or of three chunks, get about the same room in every full packet:
// their chunks differ by at most one message's.
func TestFillSharesFullPackets(t *testing.T) {
	srcs := rings(t, 4)
	sizes := []int{16, 64, 16, 5} // 1, 3, 1 and 1 HD6 chunks
	for i, s := range srcs {
		for range 60 {
			if !s.Ring.Push(bytes.Repeat([]byte{byte(i)}, sizes[i]), bridge.Meta{}) {
				t.Fatal("ring full")
			}
		}
	}
	max := wire.HD6.MaxChunks(wire.MTU)
	p, err := wire.NewPacker(wire.HD6, make([]byte, 2048), max)
	if err != nil {
		t.Fatal(err)
	}
	var f Filler
	var u wire.Unpacker
	for pkt := range 3 {
		p.Reset(wire.Header{})
		f.Fill(p, srcs)
		if p.Chunks() < max-2 {
			t.Fatalf("packet %d: %d of %d chunks filled", pkt, p.Chunks(), max)
		}
		chunks := map[uint16]int{}
		if _, err := u.Unpack(p.Packet(), func(ch uint16, m []byte) { chunks[ch] += wire.HD6.MessageChunks(len(m)) }); err != nil {
			t.Fatal(err)
		}
		lo, hi := max, 0
		for _, s := range srcs {
			lo, hi = min(lo, chunks[s.Channel]), maxInt(hi, chunks[s.Channel])
		}
		if hi-lo > 3 {
			t.Fatalf("packet %d: chunks per application %v", pkt, chunks)
		}
	}
}

func maxInt(a, b int) int { return max(a, b) }
