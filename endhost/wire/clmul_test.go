package wire

import (
	"encoding/binary"
	"hash/crc32"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// The keys derived for the IEEE polynomial are the ones Go's hash/crc32
// and Linux's crc32-pclmul carry as literals (x^160, x^96, P); the others
// are checked by what they must satisfy.
func TestCLMULKeysMatchPublishedIEEEKeys(t *testing.T) {
	k := newCLMULKeys(32, 0x04c11db7)
	if k.fold[1] != 0x1751997d0 || k.tail[0] != 0x0ccaa009e || k.poly[0] != 0x1db710641 {
		t.Fatalf("IEEE keys: x^160 %#x x^96 %#x P %#x; want 0x1751997d0 0xccaa009e 0x1db710641",
			k.fold[1], k.tail[0], k.poly[0])
	}
}

// μ is ⌊x^96/P⌋: x^96 minus μ·P (with μ's x^64) leaves less than x^32.
func TestCLMULBarrettQuotient(t *testing.T) {
	for _, c := range crcCases() {
		p := (uint64(c.poly) | 1<<c.crc.width) << (32 - c.crc.width)
		mu := bits.Reverse64(c.crc.clmul.tail[1])
		lo, hi := clmulSoft(mu, p)
		hi ^= p // the x^64 term of μ
		hi ^= 1 << 32
		if hi != 0 || lo>>32 != 0 {
			t.Fatalf("%s: x^96 - μ·P = %#x:%016x, want below x^32", c.name, hi, lo)
		}
	}
}

// clmulSoft is the carry-less product of a and b: low and high words.
func clmulSoft(a, b uint64) (lo, hi uint64) {
	for i := range 64 {
		if b>>i&1 != 0 {
			lo ^= a << i
			if i > 0 {
				hi ^= a >> (64 - i)
			}
		}
	}
	return lo, hi
}

// clmulModel is what the assembly computes for one chunk of n bytes,
// with the instruction done in software: the keys' meaning, checked
// apart from the registers.
func clmulModel(k *clmulKeys, m []byte, init, xorout uint32) uint32 {
	var blk [32]byte
	n := len(m)
	copy(blk[32-n:], m)
	binary.LittleEndian.PutUint32(blk[32-n:], binary.LittleEndian.Uint32(blk[32-n:])^init)
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(blk[8*i:]) }
	l0, h0 := clmulSoft(w(0), k.fold[0])
	l1, h1 := clmulSoft(w(1), k.fold[1])
	l2, h2 := clmulSoft(w(2), k.tail[0])
	ulo, uhi := l0^l1^l2^w(3), h0^h1^h2
	ql, _ := clmulSoft(ulo, k.tail[1])
	_, rh := clmulSoft(ulo^ql<<1, k.poly[0])
	return uint32(uhi^rh) ^ xorout
}

func TestCLMULModelAgreesWithTable(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, clmulMax)
	for _, c := range crcCases() {
		k := newCLMULKeys(c.crc.width, c.poly)
		for n := clmulMin; n <= clmulMax; n++ {
			for range 50 {
				for i := range buf {
					buf[i] = byte(r.Uint32())
				}
				if got, want := clmulModel(k, buf[:n], c.crc.init, c.crc.xorout), c.crc.table16(buf[:n]); got != want {
					t.Fatalf("%s over %d bytes: model %#x, table %#x", c.name, n, got, want)
				}
			}
		}
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
// protected bytes, every length the carry-less path takes), on the 256-bit
// path where the CPU has it and on the 128-bit one, against the table.
func TestChunkSumsAgreeWithTable(t *testing.T) {
	if !haveCLMUL {
		t.Skip("no PCLMULQDQ/SSSE3/SSE4.1 on this CPU: the table path is the only one")
	}
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 60*40)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, c := range crcCases() {
		for _, w := range []bool{false, c.crc.wide} {
			crc := *c.crc
			crc.wide = w
			for n := clmulMin; n <= clmulMax; n++ {
				for _, stride := range []int{n, n + 4} {
					for count := 1; count <= 9; count++ {
						out := make([]uint32, count)
						crc.chunkSums(buf[1:], stride, n, out)
						for i, got := range out {
							b := buf[1+i*stride : 1+i*stride+n]
							if want := crc.table16(b); got != want {
								t.Fatalf("%s wide=%v n %d stride %d count %d chunk %d: %#x, table %#x", c.name, w, n, stride, count, i, got, want)
							}
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
					p := buf[1:]
					// Descriptors at and around what a message of its own may
					// say, for verifySingles.
					descs := []byte{0xc2, 0xc0 | byte(n-1), 0xc1, 0xc0 | byte(n), 0x80 | byte(n-1), 0x42, 0xc0, 0xff}
					for i := range count {
						if r.IntN(4) != 0 {
							p[i*stride] = descs[r.IntN(len(descs))]
						}
					}
					orig := append([]byte(nil), buf...)
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
					checkSingles(t, c, p, stride, n, count, 0)
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
					checkSingles(t, c, p, stride, n, count, want)
				}
			}
		}
		if len(paths) < 3 {
			t.Logf("%s: checked only %d of the three paths on this CPU", s.Name, len(paths))
		}
	}
}

// checkSingles holds verifySingles to verify (bad) and to single (odd).
func checkSingles(t *testing.T, c *CRC, p []byte, stride, n, count int, wantBad uint64) {
	t.Helper()
	var wantOdd uint64
	for i := range count {
		if !single(p[i*stride], n-1) {
			wantOdd++
		}
	}
	if bad, odd := c.verifySingles(p, stride, n, count); bad != wantBad || odd != wantOdd {
		t.Fatalf("stride %d count %d: verifySingles bad %#x odd %d, want %#x and %d", stride, count, bad, odd, wantBad, wantOdd)
	}
}
