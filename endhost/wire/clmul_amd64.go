package wire

import "golang.org/x/sys/cpu"

// haveCLMUL: PCLMULQDQ, PSHUFB (SSSE3) and PEXTRD (SSE4.1).
var haveCLMUL = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSSE3 && cpu.X86.HasSSE41

// haveVPCLMUL: the 256-bit VPCLMULQDQ (CPUID.7.0:ECX[10]) with AVX2 and
// the OS saving YMM registers (x/sys reports this bit only with AVX-512).
var haveVPCLMUL = haveCLMUL && cpu.X86.HasAVX2 && func() bool {
	_, _, c, _ := cpuid(7, 0)
	return c&(1<<10) != 0
}()

//go:noescape
func clmulSums(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool, out *uint32)

//go:noescape
func clmulSeal24(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool)

//go:noescape
func clmulSeal32(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool)

//go:noescape
func clmulVerify24(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool) (bad uint64)

//go:noescape
func clmulVerifySingles24(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool, most uint32) (bad, odd uint64)

//go:noescape
func clmulVerify32(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool) (bad uint64)

//go:noescape
func clmulVerifySingles32(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool, most uint32) (bad, odd uint64)

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// clmulFits: the carry-less path takes count chunks of n protected bytes
// (and crcLen CRC bytes behind them, if it seals or verifies) at stride.
func (c *CRC) clmulFits(p []byte, stride, n, crcLen, count int) bool {
	if c.clmul == nil || n < clmulMin || n > clmulMax || stride < n+crcLen || count <= 0 {
		return false
	}
	if need := (count-1)*stride + n + crcLen; len(p) < need {
		panic("wire: chunk CRCs beyond the buffer") // callers size p from count
	}
	return true
}

// chunkSumsCLMUL is chunkSums by carry-less multiplication; false when this
// CPU or this length takes the table.
func (c *CRC) chunkSumsCLMUL(p []byte, stride, n int, out []uint32) bool {
	if !c.clmulFits(p, stride, n, 0, len(out)) {
		return false
	}
	clmulSums(c.clmul, &p[0], stride, n, len(out), c.init, c.xorout, c.wide, &out[0])
	return true
}

// sealCLMUL is seal by carry-less multiplication; false when this CPU or
// this length takes the table.
func (c *CRC) sealCLMUL(p []byte, stride, n, count int) bool {
	switch k := int(c.width / 8); {
	case !c.clmulFits(p, stride, n, k, count):
		return false
	case k == 3:
		clmulSeal24(c.clmul, &p[0], stride, n, count, c.init, c.xorout, c.wide)
	case k == 4:
		clmulSeal32(c.clmul, &p[0], stride, n, count, c.init, c.xorout, c.wide)
	default:
		return false
	}
	return true
}

// verifyCLMUL is verify by carry-less multiplication; false when this CPU
// or this length takes the table.
func (c *CRC) verifyCLMUL(p []byte, stride, n, count int) (uint64, bool) {
	switch k := int(c.width / 8); {
	case count > 64 || !c.clmulFits(p, stride, n, k, count):
		return 0, false
	case k == 3:
		return clmulVerify24(c.clmul, &p[0], stride, n, count, c.init, c.xorout, c.wide), true
	case k == 4:
		return clmulVerify32(c.clmul, &p[0], stride, n, count, c.init, c.xorout, c.wide), true
	}
	return 0, false
}

// verifySinglesCLMUL is verifySingles by carry-less multiplication; false
// when this CPU or this length takes the table.
func (c *CRC) verifySinglesCLMUL(p []byte, stride, n, count int) (bad, odd uint64, ok bool) {
	most := uint32(n - 1 - channelLen) // a single's used bytes beyond its channel, at most
	switch k := int(c.width / 8); {
	case count > 64 || n < 1+channelLen || !c.clmulFits(p, stride, n, k, count):
		return 0, 0, false
	case k == 3:
		bad, odd = clmulVerifySingles24(c.clmul, &p[0], stride, n, count, c.init, c.xorout, c.wide, most)
		return bad, odd, true
	case k == 4:
		bad, odd = clmulVerifySingles32(c.clmul, &p[0], stride, n, count, c.init, c.xorout, c.wide, most)
		return bad, odd, true
	}
	return 0, 0, false
}
