package wire

// Schema is a chunk layout: ChunkLen bytes of which the last CRCLen are
// the CRC over the rest (one descriptor byte and the data).
type Schema struct {
	ID       uint8 // on the wire, in the header's schema field
	Name     string
	ChunkLen int
	CRC      *CRC
}

// The two schemata of Appendix B.
var (
	// HD6: 23 protected bytes + CRC-24 = 26-byte chunks, 55 per packet.
	HD6 = &Schema{ID: 1, Name: "HD6", ChunkLen: 26, CRC: CRC24}
	// HD8: 32 protected bytes + CRC-32 = 36-byte chunks, 40 per packet.
	HD8 = &Schema{ID: 2, Name: "HD8", ChunkLen: 36, CRC: CRC32}
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
func (s *Schema) CRCLen() int { return int(s.CRC.width / 8) }

// DataLen is how many message bytes one chunk carries.
func (s *Schema) DataLen() int { return s.ChunkLen - s.CRCLen() - 1 }

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
	return (n + channelLen + d - 1) / d
}
