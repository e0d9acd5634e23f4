package wire

import "math/bits"

// clmulKeys are the constants of a carry-less-multiply CRC for one
// polynomial, bit-reflected as Go's hash/crc32 does for IEEE (Intel, "Fast
// CRC Computation for Generic Polynomials Using PCLMULQDQ"). A CRC
// narrower than 32 bits runs as the 32-bit CRC of P·x^(32-w): its
// remainder is the narrow one times x^(32-w), which in the reflected
// register is the same value in the same low bits.
//
// A chunk of at most 32 bytes is four 64-bit words, the last one ending
// with the chunk. Word i stands for its bits times x^(224-64i) (the CRC
// is the message times x^32, mod P): the first three are multiplied by
// those powers mod P (up to 96 bits each), the last is already below
// x^96, and their sum U (96 bits) is reduced with one Barrett step that
// takes off 64 bits at once: four or five multiplications a chunk.
// The assembly reads the fields by offset: keep the layout.
type clmulKeys struct {
	fold  [2]uint64    // x^224, x^160 mod P: words 0 and 1
	tail  [2]uint64    // x^96 mod P: word 2; μ, ⌊x^96 / P⌋ without its x^64
	poly  [2]uint64    // P, reflected in 33 bits; 0
	shift [17][16]byte // PSHUFB masks: move a block up by s bytes, zeros below
}

func newCLMULKeys(width uint, poly uint32) *clmulKeys {
	p := (uint64(poly) | 1<<width) << (32 - width) // 33 bits
	// xmod is x^k mod P, normal form.
	xmod := func(k int) uint64 {
		r := uint64(1)
		for range k {
			if r <<= 1; r>>32&1 != 0 {
				r ^= p
			}
		}
		return r
	}
	// key is x^k mod P as the paper writes it: reflected, shifted left
	// one bit (a reflected carry-less product comes out one bit low).
	key := func(k int) uint64 { return uint64(bits.Reverse32(uint32(xmod(k)))) << 1 }
	k := &clmulKeys{
		fold: [2]uint64{key(224), key(160)},
		tail: [2]uint64{key(96), bits.Reverse64(xdiv96(p))},
		poly: [2]uint64{bits.Reverse64(p) >> 31, 0},
	}
	for s := range k.shift {
		for i := range 16 {
			if i < s {
				k.shift[s][i] = 0x80 // PSHUFB writes zero
			} else {
				k.shift[s][i] = byte(i - s)
			}
		}
	}
	return k
}

// xdiv96 is ⌊x^96 / p⌋ for a p of degree 32, without its x^64 term (the
// Barrett step adds that part as the dividend itself).
func xdiv96(p uint64) uint64 {
	hi, lo := uint64(1)<<32, uint64(0) // x^96 as two words
	var q uint64
	for s := 64; s >= 0; s-- {
		// Bit 32+s of the remainder decides quotient bit s.
		var bit uint64
		if b := 32 + s; b >= 64 {
			bit = hi >> (b - 64) & 1
		} else {
			bit = lo >> b & 1
		}
		if bit == 0 {
			continue
		}
		if s < 64 {
			q |= 1 << s
		}
		lo ^= p << s
		if s > 31 { // p<<s spills into the high word
			hi ^= p >> (64 - s)
		}
	}
	return q
}
