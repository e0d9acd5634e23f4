//go:build !amd64

package wire

const (
	haveCLMUL   = false
	haveVPCLMUL = false
)

func (c *CRC) chunkSumsCLMUL([]byte, int, int, []uint32) bool { return false }

func (c *CRC) sealCLMUL([]byte, int, int, int) bool { return false }

func (c *CRC) verifyCLMUL([]byte, int, int, int) (uint64, bool) { return 0, false }

func (c *CRC) verifySinglesCLMUL([]byte, int, int, int) (uint64, uint64, bool) { return 0, 0, false }
