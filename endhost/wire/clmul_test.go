package wire

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// The keys derived for the IEEE polynomial are the ones Go's hash/crc32
// and Linux's crc32-pclmul carry as literals.
func TestCLMULKeysMatchPublishedIEEEKeys(t *testing.T) {
	k := newCLMULKeys(32, 0x04c11db7)
	want := clmulKeys{
		fold:   [2]uint64{0x1751997d0, 0x0ccaa009e},
		r5:     [2]uint64{0x163cd6124, 0},
		rupoly: [2]uint64{0x1db710641, 0x1f7011641},
	}
	if k.fold != want.fold || k.r5 != want.r5 || k.rupoly != want.rupoly {
		t.Fatalf("IEEE keys: fold %#x r5 %#x rupoly %#x; want %#x %#x %#x",
			k.fold, k.r5, k.rupoly, want.fold, want.r5, want.rupoly)
	}
}

// Every length the carry-less path takes, against the table and the
// bitwise CRC, for both chunk CRCs and two catalogue CRCs.
func TestCLMULAgreesWithTable(t *testing.T) {
	if !haveCLMUL {
		t.Skip("no PCLMULQDQ/SSSE3/SSE4.1 on this CPU: the table path is the only one")
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 64)
	for _, c := range crcCases() {
		for n := clmulMin; n <= clmulMax; n++ {
			for range 200 {
				for i := range buf {
					buf[i] = byte(r.Uint32())
				}
				off := r.IntN(len(buf) - n + 1) // unaligned too
				b := buf[off : off+n]
				var out [1]uint32
				if !c.crc.chunkSumsCLMUL(b, n, n, out[:]) {
					t.Fatalf("%s: %d bytes did not take the carry-less path", c.name, n)
				}
				fast := out[0]
				if slow := c.crc.table16(b); fast != slow {
					t.Fatalf("%s(%x): carry-less %#x, table %#x", c.name, b, fast, slow)
				}
				if bw := bitwise(c.crc.width, c.poly, c.init, c.xorout, b); fast != bw {
					t.Fatalf("%s(%x): carry-less %#x, bitwise %#x", c.name, b, fast, bw)
				}
			}
		}
	}
	b := buf[:32]
	ieee := newCRC(32, 0x04c11db7, 0xffffffff, 0xffffffff) // CRC-32/ISO-HDLC, hash/crc32's IEEE
	if got, want := ieee.Checksum(b), crc32.ChecksumIEEE(b); got != want {
		t.Fatalf("ISO-HDLC over 32 bytes %#x, hash/crc32 %#x", got, want)
	}
}

// chunkSums over whole packets (odd and even counts, strides beyond the
// protected bytes), on the 256-bit path where the CPU has it and on the
// 128-bit one, against the table.
func TestChunkSumsAgreeWithTable(t *testing.T) {
	if !haveCLMUL {
		t.Skip("no PCLMULQDQ/SSSE3/SSE4.1 on this CPU: the table path is the only one")
	}
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 60*40)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, s := range []*Schema{HD6, HD8} {
		wide := s.CRC.wide
		t.Cleanup(func() { s.CRC.wide = wide })
		for _, w := range []bool{false, wide} {
			s.CRC.wide = w
			n := s.ChunkLen - s.CRCLen()
			for _, stride := range []int{s.ChunkLen, s.ChunkLen + 4} {
				for count := 1; count <= 9; count++ {
					out := make([]uint32, count)
					s.CRC.chunkSums(buf[1:], stride, n, out)
					for i, got := range out {
						b := buf[1+i*stride : 1+i*stride+n]
						if want := s.CRC.table16(b); got != want {
							t.Fatalf("%s wide=%v stride %d count %d chunk %d: %#x, table %#x", s.Name, w, stride, count, i, got, want)
						}
					}
				}
			}
		}
	}
	t.Logf("256-bit path on this CPU: %v", haveVPCLMUL)
}
