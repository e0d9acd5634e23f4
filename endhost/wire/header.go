package wire

import (
	"encoding/binary"
	"fmt"
)

// HeaderLen is the X-Lane header's size.
const HeaderLen = 20

// Version is the header version this package writes and reads.
const Version = 1

// Header is the X-Lane header (p4/switch/include/header.p4: xlane_t).
type Header struct {
	Flags      uint8 // 4 bits
	Schema     uint8
	Chunks     uint16
	Tunnel     uint32
	Sequence   uint32
	SenderTsNs uint64
}

// put writes h into b[:HeaderLen].
func (h *Header) put(b []byte) {
	b[0] = Version<<4 | h.Flags&0x0f
	b[1] = h.Schema
	binary.BigEndian.PutUint16(b[2:], h.Chunks)
	binary.BigEndian.PutUint32(b[4:], h.Tunnel)
	binary.BigEndian.PutUint32(b[8:], h.Sequence)
	binary.BigEndian.PutUint64(b[12:], h.SenderTsNs)
}

// ParseHeader reads the header of packet p and checks that the chunks it
// announces are there.
func ParseHeader(p []byte) (Header, *Schema, error) {
	if len(p) < HeaderLen {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrTruncated, len(p), HeaderLen)
	}
	if v := p[0] >> 4; v != Version {
		return Header{}, nil, fmt.Errorf("%w: version %d, want %d", ErrForeign, v, Version)
	}
	h := Header{Flags: p[0] & 0x0f, Schema: p[1], Chunks: binary.BigEndian.Uint16(p[2:]), Tunnel: binary.BigEndian.Uint32(p[4:]),
		Sequence: binary.BigEndian.Uint32(p[8:]), SenderTsNs: binary.BigEndian.Uint64(p[12:])}
	s, ok := SchemaByID(h.Schema)
	if !ok {
		return h, nil, fmt.Errorf("%w: unknown chunk schema %d", ErrForeign, h.Schema)
	}
	if need := HeaderLen + int(h.Chunks)*s.ChunkLen; len(p) < need {
		return h, s, fmt.Errorf("%w: %d chunks of %s need %d bytes, the packet has %d", ErrTruncated, h.Chunks, s.Name, need, len(p))
	}
	return h, s, nil
}
