package wire

import (
	"strconv"
	"testing"
)

// The benchmarks fill one full packet with messages of each size and
// report message bytes per second of one core (wire-MB/s counts the
// chunks' bytes instead): pack (copy, descriptors, CRCs) is the sending
// lane's work per packet, unpack (CRC checks, reassembly, delivery) the
// receiving lane's, and PackUnpack both on one core.

// packFixture is a packer, a message of size bytes, and how many fit.
func packFixture(b *testing.B, s *Schema, size int) (p *Packer, msg []byte, per int) {
	p, err := NewPacker(s, make([]byte, 2048), s.MaxChunks(MTU))
	if err != nil {
		b.Fatal(err)
	}
	msg = make([]byte, size)
	for i := range msg {
		msg[i] = byte(i)
	}
	for p.Reset(Header{}); p.Fits(size); per++ {
		if err := p.Add(1, msg); err != nil {
			b.Fatal(err)
		}
	}
	return p, msg, per
}

func eachCase(b *testing.B, run func(b *testing.B, s *Schema, size int)) {
	for _, s := range []*Schema{HD6, HD8} {
		for _, size := range []int{16, 64, 512} {
			b.Run(s.Name+"/"+strconv.Itoa(size)+"B", func(b *testing.B) { run(b, s, size) })
		}
	}
}

func reportWire(b *testing.B, p *Packer) {
	wire := float64(p.Chunks()*p.Schema().ChunkLen) * float64(b.N)
	b.ReportMetric(wire/b.Elapsed().Seconds()/1e6, "wire-MB/s")
}

// batchOf is per references to msg.
func batchOf(msg []byte, per int) [][]byte {
	msgs := make([][]byte, per)
	for i := range msgs {
		msgs[i] = msg
	}
	return msgs
}

// packWith packs msgs into a packet through AddAll (all) or Add per
// message, as the benchmarks compare them.
func packWith(b *testing.B, p *Packer, msgs [][]byte, all bool) []byte {
	p.Reset(Header{Tunnel: 1})
	if !all {
		for _, m := range msgs {
			_ = p.Add(1, m)
		}
		return p.Packet()
	}
	if n, err := p.AddAll(1, msgs); n != len(msgs) {
		b.Fatalf("AddAll packed %d of %d: %v", n, len(msgs), err)
	}
	return p.Packet()
}

// BenchmarkPack is the sending side, a call per message.
func BenchmarkPack(b *testing.B) { benchPack(b, false) }

// BenchmarkPackAll is the sending side as the lane packs: a packet's
// messages in one AddAll.
func BenchmarkPackAll(b *testing.B) { benchPack(b, true) }

func benchPack(b *testing.B, all bool) {
	eachCase(b, func(b *testing.B, s *Schema, size int) {
		p, msg, per := packFixture(b, s, size)
		msgs := batchOf(msg, per)
		b.SetBytes(int64(per * size))
		b.ReportAllocs()
		for b.Loop() {
			packWith(b, p, msgs, all)
		}
		reportWire(b, p)
	})
}

// BenchmarkUnpack is the receiving side.
func BenchmarkUnpack(b *testing.B) {
	eachCase(b, func(b *testing.B, s *Schema, size int) {
		p, msg, per := packFixture(b, s, size)
		pkt := packWith(b, p, batchOf(msg, per), false)
		var u Unpacker
		got := 0
		b.SetBytes(int64(per * size))
		b.ReportAllocs()
		for b.Loop() {
			_, _ = u.Unpack(pkt, func(_ uint16, d []byte) { got += len(d) })
		}
		if got != b.N*per*size || u.Stats.CorruptChunks != 0 {
			b.Fatalf("delivered %d bytes (%d corrupt chunks), want %d", got, u.Stats.CorruptChunks, b.N*per*size)
		}
		reportWire(b, p)
	})
}

// BenchmarkPackUnpack is both on one core, a call per message packed.
func BenchmarkPackUnpack(b *testing.B) { benchPackUnpack(b, false) }

// BenchmarkPackAllUnpack is both on one core, packing as the lane does.
func BenchmarkPackAllUnpack(b *testing.B) { benchPackUnpack(b, true) }

func benchPackUnpack(b *testing.B, all bool) {
	eachCase(b, func(b *testing.B, s *Schema, size int) {
		p, msg, per := packFixture(b, s, size)
		msgs := batchOf(msg, per)
		var u Unpacker
		got := 0
		b.SetBytes(int64(per * size))
		b.ReportAllocs()
		for b.Loop() {
			_, _ = u.Unpack(packWith(b, p, msgs, all), func(_ uint16, d []byte) { got += len(d) })
		}
		if got != b.N*per*size {
			b.Fatalf("delivered %d bytes, want %d", got, b.N*per*size)
		}
		reportWire(b, p)
	})
}

// BenchmarkCRC is the checksum alone over one chunk's protected bytes
// (each result feeds the next: latency, not throughput).
func BenchmarkCRC(b *testing.B) {
	for _, s := range []*Schema{HD6, HD8} {
		buf := make([]byte, s.ChunkLen-s.CRCLen())
		b.Run(s.Name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				buf[0] = byte(s.CRC.Checksum(buf))
			}
		})
	}
}

// BenchmarkChunkSums is the CRCs of a full packet's chunks in one pass
// (throughput).
func BenchmarkChunkSums(b *testing.B) {
	for _, s := range []*Schema{HD6, HD8} {
		n := s.MaxChunks(MTU)
		buf := make([]byte, n*s.ChunkLen)
		sums := make([]uint32, n)
		b.Run(s.Name, func(b *testing.B) {
			b.SetBytes(int64(n * (s.ChunkLen - s.CRCLen())))
			for b.Loop() {
				s.CRC.chunkSums(buf, s.ChunkLen, s.ChunkLen-s.CRCLen(), sums)
			}
		})
	}
}
