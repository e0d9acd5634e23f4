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
func clmulChunks(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, out *uint32)

//go:noescape
func clmulChunks2(k *clmulKeys, p *byte, stride, n, pairs int, crc, xorout uint32, out *uint32)

func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// chunkSumsCLMUL is chunkSums by carry-less multiplication; false when this
// CPU or this length takes the table.
func (c *CRC) chunkSumsCLMUL(p []byte, stride, n int, out []uint32) bool {
	if c.clmul == nil || n < clmulMin || n > clmulMax || stride < n || len(out) == 0 {
		return false
	}
	if need := (len(out)-1)*stride + n; len(p) < need {
		panic("wire: chunkSums beyond the buffer") // callers size p from out
	}
	done := 0
	if quads := len(out) / 4; quads > 0 && c.wide {
		// Four chunks per iteration; the rest (at most three) take the
		// 128-bit loop.
		clmulChunks2(c.clmul, &p[0], stride, n, 2*quads, c.init, c.xorout, &out[0])
		done = 4 * quads
	}
	if done < len(out) {
		clmulChunks(c.clmul, &p[done*stride], stride, n, len(out)-done, c.init, c.xorout, &out[done])
	}
	return true
}
