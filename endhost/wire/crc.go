package wire

import (
	"encoding/binary"
	"math/bits"
)

// CRC is a reflected, table-driven CRC of up to 32 bits, slicing by 16:
// the lookups of a 16-byte block are independent of each other, so the
// CPU runs them in parallel; only the register's four bytes chain blocks.
type CRC struct {
	width        uint
	init, xorout uint32
	// table[k][v] is the register after byte v followed by k zero bytes,
	// starting from zero (a CRC is linear, so blocks XOR these together).
	table [16][256]uint32
	// clmul holds the carry-less-multiply keys where the CPU has the
	// instruction; chunk-sized inputs then skip the table.
	clmul *clmulKeys
	// wide: two chunks at a time in 256-bit registers (tests turn it off
	// to check the 128-bit path on the same CPU).
	wide bool
}

// The lengths the carry-less path takes: two 16-byte blocks, the register
// inside the first one.
const (
	clmulMin = 20
	clmulMax = 32
)

// newCRC builds a reflected CRC from its parameters as CRC catalogues
// write them: the normal (MSB-first) polynomial without the x^width term,
// and the initial register value in normal form.
func newCRC(width uint, poly, init, xorout uint32) *CRC {
	c := &CRC{width: width, init: bits.Reverse32(init) >> (32 - width), xorout: xorout}
	if haveCLMUL && width >= 8 {
		c.clmul = newCLMULKeys(width, poly)
		c.wide = haveVPCLMUL
	}
	rpoly := bits.Reverse32(poly) >> (32 - width)
	for i := range 256 {
		crc := uint32(i)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ rpoly
			} else {
				crc >>= 1
			}
		}
		c.table[0][i] = crc
	}
	for i := range 256 {
		for k := 1; k < len(c.table); k++ {
			prev := c.table[k-1][i]
			c.table[k][i] = prev>>8 ^ c.table[0][prev&0xff]
		}
	}
	return c
}

// Width is the CRC's size in bits.
func (c *CRC) Width() uint { return c.width }

// Checksum returns the CRC of b.
func (c *CRC) Checksum(b []byte) uint32 {
	if len(b) >= clmulMin && len(b) <= clmulMax {
		var out [1]uint32
		if c.chunkSumsCLMUL(b, len(b), len(b), out[:]) {
			return out[0]
		}
	}
	return c.table16(b)
}

// chunkSums sets out[i] to the CRC of the n bytes at p[i·stride:], for
// every i < len(out): all the chunks of a packet in one call, so that the
// carry-less path overlaps them. p must hold (len(out)-1)·stride+n bytes.
func (c *CRC) chunkSums(p []byte, stride, n int, out []uint32) {
	if c.chunkSumsCLMUL(p, stride, n, out) {
		return
	}
	for i := range out {
		out[i] = c.table16(p[i*stride : i*stride+n])
	}
}

// seal writes the CRC of each of count chunks at p[i·stride:] behind
// its n protected bytes, little endian (a reflected CRC's natural order),
// in the CRC's whole bytes.
func (c *CRC) seal(p []byte, stride, n, count int) {
	if c.sealCLMUL(p, stride, n, count) {
		return
	}
	var sums [sumBatch]uint32
	for g := 0; g < count; g += sumBatch {
		m := min(sumBatch, count-g)
		c.chunkSums(p[g*stride:], stride, n, sums[:m])
		for i, crc := range sums[:m] {
			at := p[(g+i)*stride+n:]
			for b := range int(c.width / 8) {
				at[b] = byte(crc >> (8 * b))
			}
		}
	}
}

// verify returns which of count ≤ 64 chunks at p[i·stride:] do not carry
// the CRC of their n protected bytes behind them (bit i: chunk i).
func (c *CRC) verify(p []byte, stride, n, count int) uint64 {
	if bad, ok := c.verifyCLMUL(p, stride, n, count); ok {
		return bad
	}
	var sums [sumBatch]uint32
	c.chunkSums(p, stride, n, sums[:count])
	var bad uint64
	for i, crc := range sums[:count] {
		at := p[i*stride+n:]
		var got uint32
		for b := range int(c.width / 8) {
			got |= uint32(at[b]) << (8 * b)
		}
		if got != crc {
			bad |= 1 << i
		}
	}
	return bad
}

// verifySingles is verify, and also counts in odd the chunks that are not
// a message of their own (descriptor first|last, its channel and at most
// n-1-channelLen bytes more): the unpacker's test, in the same pass where
// the carry-less path runs (its integer ports are idle there).
func (c *CRC) verifySingles(p []byte, stride, n, count int) (bad, odd uint64) {
	if bad, odd, ok := c.verifySinglesCLMUL(p, stride, n, count); ok {
		return bad, odd
	}
	for i := range count {
		if !single(p[i*stride], n-1) {
			odd++
		}
	}
	return c.verify(p, stride, n, count), odd
}

// single reports whether a chunk with descriptor desc and d data bytes
// holds a message of its own.
func single(desc byte, d int) bool {
	used := int(desc & descUsed)
	return desc&(descFirst|descLast) == descFirst|descLast && used >= channelLen && used <= d
}

// table16 is the CRC of b by table lookups.
func (c *CRC) table16(b []byte) uint32 {
	crc := c.init
	t := &c.table
	for len(b) >= 16 {
		// Reflected: the register's low bytes meet the block's first bytes.
		lo := binary.LittleEndian.Uint64(b) ^ uint64(crc)
		hi := binary.LittleEndian.Uint64(b[8:16])
		// Four independent sums: the XORs form a tree, not a chain.
		s0 := t[15][byte(lo)] ^ t[14][byte(lo>>8)] ^ t[13][byte(lo>>16)] ^ t[12][byte(lo>>24)]
		s1 := t[11][byte(lo>>32)] ^ t[10][byte(lo>>40)] ^ t[9][byte(lo>>48)] ^ t[8][byte(lo>>56)]
		s2 := t[7][byte(hi)] ^ t[6][byte(hi>>8)] ^ t[5][byte(hi>>16)] ^ t[4][byte(hi>>24)]
		s3 := t[3][byte(hi>>32)] ^ t[2][byte(hi>>40)] ^ t[1][byte(hi>>48)] ^ t[0][byte(hi>>56)]
		crc = (s0 ^ s1) ^ (s2 ^ s3)
		b = b[16:]
	}
	if n := len(b); n >= 8 {
		// 8 to 15 bytes: one 8-byte word (it holds the register's bytes)
		// and the rest, each byte looked up by its distance from the end.
		w := binary.LittleEndian.Uint64(b) ^ uint64(crc)
		crc = 0
		for i, k := 0, n-1; i < 8; i, k = i+1, k-1 {
			crc ^= t[k&15][byte(w>>(8*i))]
		}
		for i, k := 8, n-9; i < n; i, k = i+1, k-1 {
			crc ^= t[k&15][b[i]]
		}
		return crc ^ c.xorout
	}
	for _, x := range b {
		crc = crc>>8 ^ t[0][byte(crc)^x]
	}
	return crc ^ c.xorout
}

// The two X-Lane CRCs. Koopman's notation drops the +1 term:
// 0xbd80de is x^24 + ... + 1 = 0x17b01bd, 0xfa567d89 is 0x1f4acfb13.
var (
	// CRC24 is HD6's CRC: polynomial 0x7b01bd (Koopman 0xbd80de),
	// reflected, initial value and final xor 0xffffff. It is in no
	// catalogue; its check value (of "123456789") is 0xb1a1e8, confirmed
	// by a bitwise and a polynomial-division implementation in the tests.
	CRC24 = newCRC(24, 0x7b01bd, 0xffffff, 0xffffff)
	// CRC32 is HD8's CRC: CRC-32/AUTOSAR (polynomial 0xf4acfb13, Koopman
	// 0xfa567d89), check value 0x1697d06a.
	CRC32 = newCRC(32, 0xf4acfb13, 0xffffffff, 0xffffffff)
)
