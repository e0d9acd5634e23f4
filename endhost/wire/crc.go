package wire

import "math/bits"

// CRC is a reflected, table-driven CRC of up to 32 bits (slicing by 8:
// eight table lookups per 8 bytes).
type CRC struct {
	width        uint
	init, xorout uint32
	table        [8][256]uint32
}

// newCRC builds a reflected CRC from its parameters as CRC catalogues
// write them: the normal (MSB-first) polynomial without the x^width term,
// and the initial register value in normal form.
func newCRC(width uint, poly, init, xorout uint32) *CRC {
	c := &CRC{width: width, init: bits.Reverse32(init) >> (32 - width), xorout: xorout}
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
		for t := 1; t < 8; t++ {
			prev := c.table[t-1][i]
			c.table[t][i] = prev>>8 ^ c.table[0][prev&0xff]
		}
	}
	return c
}

// Width is the CRC's size in bits.
func (c *CRC) Width() uint { return c.width }

// Checksum returns the CRC of b.
func (c *CRC) Checksum(b []byte) uint32 {
	crc := c.init
	t := &c.table
	for len(b) >= 8 {
		// Reflected: the low bytes of the register meet the first bytes.
		lo := crc ^ (uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
		crc = t[7][lo&0xff] ^ t[6][lo>>8&0xff] ^ t[5][lo>>16&0xff] ^ t[4][lo>>24] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
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
