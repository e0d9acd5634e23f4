//go:build !amd64

package wire

const (
	haveCLMUL   = false
	haveVPCLMUL = false
)

func (c *CRC) chunkSumsCLMUL([]byte, int, int, []uint32) bool { return false }
