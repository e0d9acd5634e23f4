package wire

import "math/bits"

// clmulKeys are the constants of a carry-less-multiply CRC for one
// polynomial (Intel, "Fast CRC Computation for Generic Polynomials Using
// PCLMULQDQ", the bit-reflected variant that Go's hash/crc32 uses for
// IEEE). A CRC narrower than 32 bits runs as the 32-bit CRC of P·x^(32-w):
// its remainder is the narrow one times x^(32-w), which in the reflected
// register is the same value in the same low bits.
// The assembly reads the fields by offset: keep the layout.
type clmulKeys struct {
	fold   [2]uint64    // x^(128+32), x^(128-32) mod P: one 16-byte block onto the next
	r5     [2]uint64    // x^64 mod P
	rupoly [2]uint64    // P and ⌊x^64 / P⌋, both reflected in 33 bits
	shift  [17][16]byte // PSHUFB masks: move a block up by s bytes, zeros below
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
	var q uint64                    // ⌊x^64 / P⌋
	for num := [2]uint64{0, 1}; ; { // x^64 as 128 bits: low, high
		hi := 64 + bits.Len64(num[1])
		if num[1] == 0 {
			hi = bits.Len64(num[0])
		}
		if hi < 33 {
			break
		}
		s := uint(hi - 33)
		q |= 1 << s
		if s >= 64 {
			num[1] ^= p << (s - 64)
		} else {
			num[0] ^= p << s
			if s > 31 { // p<<s spills into the high word
				num[1] ^= p >> (64 - s)
			}
		}
	}
	rev33 := func(v uint64) uint64 { return bits.Reverse64(v) >> 31 }
	k := &clmulKeys{
		fold:   [2]uint64{key(128 + 32), key(128 - 32)},
		r5:     [2]uint64{key(64), 0},
		rupoly: [2]uint64{rev33(p), rev33(q)},
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
