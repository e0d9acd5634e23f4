package wire

import "testing"

// BenchmarkPackUnpack packs a full packet of messages, CRCs included, and
// unpacks it; bytes are message bytes (throughput per core), wire-MB/s
// counts the chunks' bytes instead.
func BenchmarkPackUnpack(b *testing.B) {
	for _, s := range []*Schema{HD6, HD8} {
		for _, size := range []int{16, 64, 512} {
			b.Run(s.Name+"/"+itoa(size)+"B", func(b *testing.B) {
				p, _ := NewPacker(s, make([]byte, 2048), s.MaxChunks(MTU))
				var u Unpacker
				m := make([]byte, size)
				per := 0
				for p.Reset(Header{}); p.Fits(size); per++ {
					_ = p.Add(1, m)
				}
				got := 0
				b.SetBytes(int64(per * size))
				b.ReportAllocs()
				for b.Loop() {
					p.Reset(Header{Tunnel: 1})
					for range per {
						_ = p.Add(1, m)
					}
					_, _ = u.Unpack(p.Packet(), func(_ uint16, d []byte) { got += len(d) })
				}
				if got == 0 {
					b.Fatal("nothing delivered")
				}
				wire := float64(p.Chunks()*s.ChunkLen) * float64(b.N)
				b.ReportMetric(wire/b.Elapsed().Seconds()/1e6, "wire-MB/s")
			})
		}
	}
}

// BenchmarkCRC is the checksum alone over one chunk's protected bytes.
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

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}
