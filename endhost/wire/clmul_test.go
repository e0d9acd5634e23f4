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

// seal and verify on the 256-bit, 128-bit and table paths: seal writes
// what the table computes and touches nothing else, verify flags exactly
// the chunks with a flipped bit (in their bytes or their CRC), for every
// count up to 64.
func TestSealVerify(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range []*Schema{HD6, HD8} {
		n, k := s.ChunkLen-s.CRCLen(), s.CRCLen()
		paths := map[string]*CRC{}
		table := *s.CRC
		table.clmul = nil
		paths["table"] = &table
		if haveCLMUL {
			narrow := *s.CRC
			narrow.wide = false
			paths["128-bit"] = &narrow
			if haveVPCLMUL {
				paths["256-bit"] = s.CRC
			}
		}
		for name, c := range paths {
			for _, stride := range []int{s.ChunkLen, s.ChunkLen + 4} {
				for count := 1; count <= 64; count++ {
					buf := make([]byte, 1+count*stride)
					for i := range buf {
						buf[i] = byte(r.Uint32())
					}
					orig := append([]byte(nil), buf...)
					p := buf[1:]
					c.seal(p, stride, n, count)
					for i := range count {
						ch := p[i*stride:]
						crc := table.table16(ch[:n])
						for b := range k {
							if ch[n+b] != byte(crc>>(8*b)) {
								t.Fatalf("%s %s stride %d count %d: chunk %d CRC byte %d %#x, want %#x", s.Name, name, stride, count, i, b, ch[n+b], byte(crc>>(8*b)))
							}
						}
						for j := range stride {
							if (j < n || j >= n+k) && ch[j] != orig[1+i*stride+j] {
								t.Fatalf("%s %s stride %d: seal changed byte %d of chunk %d", s.Name, name, stride, j, i)
							}
						}
					}
					if bad := c.verify(p, stride, n, count); bad != 0 {
						t.Fatalf("%s %s stride %d count %d: sealed chunks verify as bad %#x", s.Name, name, stride, count, bad)
					}
					var want uint64
					for i := range count {
						if r.IntN(3) == 0 {
							want |= 1 << i
							p[i*stride+r.IntN(n+k)] ^= 1 << r.IntN(8)
						}
					}
					if bad := c.verify(p, stride, n, count); bad != want {
						t.Fatalf("%s %s stride %d count %d: verify %#x, want %#x", s.Name, name, stride, count, bad, want)
					}
				}
			}
		}
		if len(paths) < 3 {
			t.Logf("%s: checked only %d of the three paths on this CPU", s.Name, len(paths))
		}
	}
}
