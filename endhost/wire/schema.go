package wire

// Schema is a chunk layout: ChunkLen bytes of which the last CRCLen are
// the CRC over the rest (one descriptor byte and the data).
type Schema struct {
	ID       uint8 // on the wire, in the header's schema field
	Name     string
	ChunkLen int
	CRC      *CRC
	// Derived once: they sit on every message's path.
	crcLen, dataLen int
}

func newSchema(id uint8, name string, chunkLen int, crc *CRC) *Schema {
	s := &Schema{ID: id, Name: name, ChunkLen: chunkLen, CRC: crc, crcLen: int(crc.width / 8)}
	s.dataLen = chunkLen - s.crcLen - 1
	return s
}

// The two schemata of Appendix B.
var (
	// HD6: 23 protected bytes + CRC-24 = 26-byte chunks, 55 per packet.
	HD6 = newSchema(1, "HD6", 26, CRC24)
	// HD8: 32 protected bytes + CRC-32 = 36-byte chunks, 40 per packet.
	HD8 = newSchema(2, "HD8", 36, CRC32)
)

// SchemaByID returns the schema with the given wire id.
func SchemaByID(id uint8) (*Schema, bool) {
	switch id {
	case HD6.ID:
		return HD6, true
	case HD8.ID:
		return HD8, true
	}
	return nil, false
}

// sumBatch is how many chunk CRCs are computed in one pass (a full
// standard packet holds at most 55).
const sumBatch = 64

// CRCLen is the CRC's size in bytes.
func (s *Schema) CRCLen() int { return s.crcLen }

// DataLen is how many message bytes one chunk carries.
func (s *Schema) DataLen() int { return s.dataLen }

// MTU is the IPv4 MTU the chunk counts per packet are made for.
const MTU = 1500

// overhead is IPv4 + UDP + the X-Lane header.
const overhead = 20 + 8 + HeaderLen

// MaxChunks is how many chunks fit in one packet of mtu bytes (IPv4).
func (s *Schema) MaxChunks(mtu int) int {
	if mtu < overhead {
		return 0
	}
	return (mtu - overhead) / s.ChunkLen
}

// MessageChunks is how many chunks a message of n bytes takes (its
// channel included).
func (s *Schema) MessageChunks(n int) int {
	d := s.DataLen()
	if n+channelLen <= d {
		return 1 // most coordination messages: no division (tens of cycles)
	}
	return (n + channelLen + d - 1) / d
}
