package wire

import "encoding/binary"

// Stats counts what an Unpacker saw.
type Stats struct {
	Packets         uint64 // X-Lane packets unpacked
	Bad             uint64 // packets refused whole: truncated or foreign
	Messages        uint64 // messages delivered
	CorruptChunks   uint64 // chunks whose CRC failed
	DroppedMessages uint64 // messages lost to corrupt or missing chunks
}

// Unpacker takes packets apart. A message in one chunk is delivered as a
// slice of the packet; a longer one is reassembled in a buffer the
// unpacker keeps, so steady state allocates nothing.
type Unpacker struct {
	Stats Stats
	buf   []byte
}

// Unpack delivers every intact message of packet p to fn (channel,
// message; valid only during the call) and returns the header. A packet
// whose header is bad is counted and refused with an error wrapping
// ErrTruncated or ErrForeign; bytes after the announced chunks are
// ignored.
func (u *Unpacker) Unpack(p []byte, fn func(ch uint16, msg []byte)) (Header, error) {
	h, s, err := ParseHeader(p)
	if err != nil {
		u.Stats.Bad++
		return h, err
	}
	u.Stats.Packets++
	cl, k, d := s.ChunkLen, s.CRCLen(), s.DataLen()
	in := false     // inside a message
	broken := false // the message being collected lost a chunk
	u.buf = u.buf[:0]
	// lose marks the message the current chunk belongs to as lost (once).
	lose := func() {
		if !in || !broken {
			u.Stats.DroppedMessages++
		}
		in, broken = true, true
	}
	for off := HeaderLen; off < HeaderLen+int(h.Chunks)*cl; off += cl {
		c := p[off : off+cl]
		var crc uint32
		for i := range k {
			crc |= uint32(c[cl-k+i]) << (8 * i)
		}
		if s.CRC.Checksum(c[:cl-k]) != crc {
			// Its message is lost; the chunks after it that are not marked
			// first belong to it and are skipped.
			u.Stats.CorruptChunks++
			lose()
			continue
		}
		desc := c[0]
		used := int(desc & descUsed)
		first, last := desc&descFirst != 0, desc&descLast != 0
		if used > d || (first && used < channelLen) {
			// Passes the CRC but breaks the layout: a sender's bug, not
			// noise. Treat it as a lost chunk.
			u.Stats.CorruptChunks++
			lose()
			continue
		}
		data := c[1 : 1+used]
		switch {
		case first:
			if in && !broken {
				u.Stats.DroppedMessages++ // the previous one never ended
			}
			in, broken = true, false
			u.buf = u.buf[:0]
		case !in:
			// A continuation with no message open: a sender's bug.
			u.Stats.CorruptChunks++
			lose()
			continue
		}
		if broken {
			if last {
				in, broken = false, false
			}
			continue
		}
		if first && last {
			u.Stats.Messages++
			fn(binary.BigEndian.Uint16(data), data[channelLen:])
			in = false
			continue
		}
		u.buf = append(u.buf, data...)
		if last {
			u.Stats.Messages++
			fn(binary.BigEndian.Uint16(u.buf), u.buf[channelLen:])
			in = false
			u.buf = u.buf[:0]
		}
	}
	if in && !broken {
		u.Stats.DroppedMessages++ // no last chunk
	}
	return h, nil
}
