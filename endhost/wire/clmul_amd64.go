package wire

import "golang.org/x/sys/cpu"

// haveCLMUL: PCLMULQDQ, PSHUFB (SSSE3) and PEXTRD (SSE4.1).
var haveCLMUL = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSSE3 && cpu.X86.HasSSE41

//go:noescape
func clmulChunks(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, out *uint32)

// chunkSumsCLMUL is chunkSums by carry-less multiplication; false when this
// CPU or this length takes the table.
func (c *CRC) chunkSumsCLMUL(p []byte, stride, n int, out []uint32) bool {
	if c.clmul == nil || n < clmulMin || n > clmulMax || stride < n || len(out) == 0 {
		return false
	}
	if need := (len(out)-1)*stride + n; len(p) < need {
		panic("wire: chunkSums beyond the buffer") // callers size p from out
	}
	clmulChunks(c.clmul, &p[0], stride, n, len(out), c.init, c.xorout, &out[0])
	return true
}
