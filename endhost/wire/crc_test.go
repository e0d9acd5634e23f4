package wire

import (
	"math/big"
	"math/bits"
	"slices"
	"testing"
)

var check = []byte("123456789")

// Published check values (reveng CRC catalogue) through the same engine:
// CRC-32/AUTOSAR is HD8's CRC itself; CRC-24/BLE is a reflected 24-bit
// CRC, which checks the engine at HD6's width.
func TestPublishedCheckValues(t *testing.T) {
	for _, c := range []struct {
		name string
		crc  *CRC
		want uint32
	}{
		{"CRC-32/AUTOSAR", CRC32, 0x1697d06a},
		{"CRC-24/BLE", newCRC(24, 0x00065b, 0x555555, 0), 0xc25a56},
		{"CRC-32/ISO-HDLC", newCRC(32, 0x04c11db7, 0xffffffff, 0xffffffff), 0xcbf43926},
	} {
		if got := c.crc.Checksum(check); got != c.want {
			t.Errorf("%s(123456789) = %#x, want %#x", c.name, got, c.want)
		}
	}
}

// bitwise is the textbook reflected CRC, one bit at a time.
func bitwise(width uint, poly, init, xorout uint32, b []byte) uint32 {
	rpoly := bits.Reverse32(poly) >> (32 - width)
	crc := bits.Reverse32(init) >> (32 - width) // the register holds it reflected
	for _, x := range b {
		crc ^= uint32(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ rpoly
			} else {
				crc >>= 1
			}
		}
	}
	return crc ^ xorout
}

// division computes the same CRC as polynomial arithmetic over GF(2): the
// message's bits (each byte least significant bit first, as a reflected
// CRC reads them) times x^width, plus the initial value times x^bits,
// modulo the generator; the remainder read back reflected.
func division(width uint, poly, init, xorout uint32, b []byte) uint32 {
	m := new(big.Int)
	for _, x := range b {
		m.Lsh(m, 8)
		m.Or(m, big.NewInt(int64(bits.Reverse8(x))))
	}
	// (I·x^n + M·x^w) mod G: the register starts at I, n message bits.
	n := uint(len(b) * 8)
	iv := new(big.Int).SetUint64(uint64(init))
	m.Lsh(m, width)
	m.Xor(m, iv.Lsh(iv, n))
	g := new(big.Int).SetUint64(uint64(poly) | 1<<width)
	for m.BitLen() > int(width) {
		m.Xor(m, new(big.Int).Lsh(g, uint(m.BitLen())-width-1))
	}
	r := uint32(m.Uint64())
	return bits.Reverse32(r)>>(32-width) ^ xorout
}

// crcCase is a CRC with the parameters the reference implementations
// take.
type crcCase struct {
	name               string
	crc                *CRC
	poly, init, xorout uint32
}

// crcCases: both chunk CRCs, and catalogue CRCs of both widths.
func crcCases() []crcCase {
	return []crcCase{
		{"HD6 CRC-24", CRC24, 0x7b01bd, 0xffffff, 0xffffff},
		{"HD8 CRC-32", CRC32, 0xf4acfb13, 0xffffffff, 0xffffffff},
		{"CRC-24/BLE", newCRC(24, 0x00065b, 0x555555, 0), 0x00065b, 0x555555, 0},
		{"CRC-32/ISO-HDLC", newCRC(32, 0x04c11db7, 0xffffffff, 0xffffffff), 0x04c11db7, 0xffffffff, 0xffffffff},
	}
}

func TestCRCAgainstIndependentImplementations(t *testing.T) {
	inputs := [][]byte{check, {}, {0}, {0xff}, make([]byte, 23), make([]byte, 32)}
	long := make([]byte, 100)
	for i := range long {
		long[i] = byte(i*37 + 11)
	}
	inputs = append(inputs, long, long[:23], long[:32], long[:9], long[3:20])
	for _, c := range crcCases() {
		for _, in := range inputs {
			got := c.crc.Checksum(in)
			if b := bitwise(c.crc.width, c.poly, c.init, c.xorout, in); got != b {
				t.Errorf("%s(%x) = %#x, bitwise %#x", c.name, in, got, b)
			}
			if d := division(c.crc.width, c.poly, c.init, c.xorout, in); got != d {
				t.Errorf("%s(%x) = %#x, polynomial division %#x", c.name, in, got, d)
			}
		}
	}
	if got := CRC24.Checksum(check); got != 0xb1a1e8 {
		t.Errorf("HD6 CRC-24 check value %#x, want 0xb1a1e8", got)
	}
}

// minUndetected returns the smallest number of flipped bits (up to 5) in
// an n-byte codeword (data and CRC) that the CRC misses. A CRC is linear:
// an error escapes when the syndromes of its flipped bits cancel, so
// weights 2–5 are found by matching sums of one, two and three syndromes.
func minUndetected(c *CRC, dataLen int) int {
	n := (dataLen + int(c.width/8)) * 8
	zero := make([]byte, dataLen)
	base := c.Checksum(zero)
	syn := make([]uint64, n) // syndrome of flipping bit i of data||crc
	for i := range n {
		if i < dataLen*8 {
			d := slices.Clone(zero)
			d[i/8] ^= 1 << (i % 8)
			syn[i] = uint64(c.Checksum(d) ^ base)
		} else {
			syn[i] = 1 << uint(i-dataLen*8) // a flipped CRC bit
		}
	}
	type pair struct{ i, j int }
	single := map[uint64]int{}
	for i, s := range syn {
		if _, dup := single[s]; dup || s == 0 {
			return 2 // or 1
		}
		single[s] = i
	}
	pairs := map[uint64][]pair{}
	for i := range n {
		for j := i + 1; j < n; j++ {
			s := syn[i] ^ syn[j]
			if k, ok := single[s]; ok && k != i && k != j {
				return 3
			}
			pairs[s] = append(pairs[s], pair{i, j})
		}
	}
	for _, ps := range pairs {
		for a := range ps {
			for b := a + 1; b < len(ps); b++ {
				p, q := ps[a], ps[b]
				if p.i != q.i && p.i != q.j && p.j != q.i && p.j != q.j {
					return 4
				}
			}
		}
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			for k := j + 1; k < n; k++ {
				for _, p := range pairs[syn[i]^syn[j]^syn[k]] {
					if p.i != i && p.i != j && p.i != k && p.j != i && p.j != j && p.j != k {
						return 5
					}
				}
			}
		}
	}
	return 6 // at least
}

// TestChunkCRCsDetectEveryErrorUpToFiveBits checks, exhaustively, that no
// error of 1 to 5 flipped bits anywhere in a chunk's protected bytes and
// CRC goes unnoticed: Hamming distance at least 6 for both schemata (the
// paper's HD6 claim, and the lower half of HD8's).
func TestChunkCRCsDetectEveryErrorUpToFiveBits(t *testing.T) {
	for _, s := range []*Schema{HD6, HD8} {
		if hd := minUndetected(s.CRC, s.ChunkLen-s.CRCLen()); hd < 6 {
			t.Errorf("schema %s: an error of %d bits goes undetected", s.Name, hd)
		}
	}
	// The test can fail: a poor 24-bit polynomial at the same length.
	if hd := minUndetected(newCRC(24, 0x800063, 0, 0), 23); hd >= 6 {
		t.Errorf("CRC-24/0x800063 reached HD %d; the search is not finding weak codes", hd)
	}
}
