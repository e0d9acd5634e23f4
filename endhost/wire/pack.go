package wire

import (
	"encoding/binary"
	"fmt"
)

// channelLen is the channel id at the start of a message's first chunk.
const channelLen = 2

// Descriptor bits.
const (
	descFirst = 0x80
	descLast  = 0x40
	descUsed  = 0x3f
)

// Packer fills one packet with messages, chunk by chunk. It writes into
// the buffer it was given and allocates nothing.
type Packer struct {
	s      *Schema
	buf    []byte // at least HeaderLen + max·cl bytes (the one-chunk path relies on it)
	chunks int
	max    int
	h      Header
	// one is the longest message the one-chunk path takes (-1: none, the
	// schema's data area is outside 16–32 bytes), cl the chunk length;
	// that path (assembly on amd64) reads them here.
	one, cl int
}

// NewPacker packs with schema s into buf, at most maxChunks chunks per
// packet (s.MaxChunks(MTU) for a standard Ethernet link); buf must hold
// HeaderLen + maxChunks·s.ChunkLen bytes.
func NewPacker(s *Schema, buf []byte, maxChunks int) (*Packer, error) {
	if need := HeaderLen + maxChunks*s.ChunkLen; maxChunks <= 0 || len(buf) < need {
		return nil, fmt.Errorf("wire: a packer of %d %s chunks needs a buffer of %d bytes, got %d", maxChunks, s.Name, need, len(buf))
	}
	one := s.dataLen - channelLen
	if s.dataLen < 16 || s.dataLen > 32 {
		one = -1
	}
	return &Packer{s: s, buf: buf, max: maxChunks, one: one, cl: s.ChunkLen}, nil
}

// Reset starts a new packet with header h (its schema and chunk count
// are set by the packer).
func (p *Packer) Reset(h Header) {
	p.h = h
	p.h.Schema = p.s.ID
	p.chunks = 0
}

// Max is how many chunks a packet may hold.
func (p *Packer) Max() int { return p.max }

// SetMax changes how many chunks a packet may hold (the tunnel's load
// size changed); it takes effect at the next Reset.
func (p *Packer) SetMax(maxChunks int) error {
	if need := HeaderLen + maxChunks*p.s.ChunkLen; maxChunks <= 0 || len(p.buf) < need {
		return fmt.Errorf("wire: %d %s chunks need a buffer of %d bytes, the packer has %d", maxChunks, p.s.Name, need, len(p.buf))
	}
	p.max = maxChunks
	return nil
}

// Schema is the packer's chunk schema.
func (p *Packer) Schema() *Schema { return p.s }

// Free is how many chunks are left.
func (p *Packer) Free() int { return p.max - p.chunks }

// Fits reports whether a message of n bytes fits in what is left.
func (p *Packer) Fits(n int) bool { return p.s.MessageChunks(n) <= p.Free() }

// Add appends a message of channel ch. ErrFull (as is, never wrapped: a
// filler compares it): not enough chunks left in this packet (nothing was
// written); ErrTooLarge (wrapped): not in any packet.
// (Inlined into the caller: one call per message, to addOne.)
func (p *Packer) Add(ch uint16, msg []byte) error { return addOne(p, ch, msg) }

// addOneGo is addOne in Go for a message in one chunk (most coordination
// messages): descriptor, channel, message and zeros, in stores of fixed
// sizes; everything else goes to addSpan. It stands in for the assembly
// off amd64, which also writes multi-chunk messages itself.
func addOneGo(p *Packer, ch uint16, msg []byte) error {
	n := len(msg)
	if n > p.one || p.chunks >= p.max {
		return addSpan(p, ch, msg)
	}
	d := p.one + channelLen
	off := HeaderLen + p.chunks*p.cl
	c := p.buf[off : off+1+d]
	*(*[16]byte)(c[1:]) = [16]byte{}
	*(*[16]byte)(c[1+d-16:]) = [16]byte{}
	data := c[1+channelLen:]
	switch {
	case n >= 16:
		*(*[16]byte)(data) = *(*[16]byte)(msg)
		*(*[16]byte)(data[n-16:]) = *(*[16]byte)(msg[n-16:])
	case n >= 8:
		*(*[8]byte)(data) = *(*[8]byte)(msg)
		*(*[8]byte)(data[n-8:]) = *(*[8]byte)(msg[n-8:])
	case n >= 4:
		*(*[4]byte)(data) = *(*[4]byte)(msg)
		*(*[4]byte)(data[n-4:]) = *(*[4]byte)(msg[n-4:])
	default:
		for i := range n {
			data[i] = msg[i]
		}
	}
	c[1], c[2] = byte(ch>>8), byte(ch)
	c[0] = byte(n+channelLen) | descFirst | descLast
	p.chunks++
	return nil
}

// addSpan is Add for a message that spans chunks, a full packet, and
// schemata whose data areas are outside 16–32 bytes. (A function, not a
// method: the assembly jumps to it.)
func addSpan(p *Packer, ch uint16, msg []byte) error {
	d, cl := p.s.dataLen, p.s.ChunkLen
	need := p.s.MessageChunks(len(msg))
	if need > p.max {
		return fmt.Errorf("%w: %d bytes take %d %s chunks, a packet holds %d", ErrTooLarge, len(msg), need, p.s.Name, p.max)
	}
	if need > p.Free() {
		return ErrFull
	}
	off := HeaderLen + p.chunks*cl
	chunks := p.buf[off : off+need*cl]
	// First chunk: the channel, then as much of the message as fits; the
	// rest of a chunk is zero (no stale bytes of an earlier packet on the
	// wire).
	data := chunks[1 : 1+d]
	n := channelLen + min(len(msg), d-channelLen)
	fillChunk(data, msg[:n-channelLen])
	binary.BigEndian.PutUint16(data, ch)
	msg = msg[n-channelLen:]
	if need == 1 {
		chunks[0] = byte(n) | descFirst | descLast
		p.chunks++
		return nil
	}
	chunks[0] = byte(d) | descFirst // more follows: the chunk is full
	// Middle chunks: full, neither first nor last.
	last := need - 1
	scatter(chunks[cl:last*cl], msg, last-1, cl, d)
	msg = msg[(last-1)*d:]
	c := chunks[last*cl:]
	fillChunk(c[1:1+d], nil)
	copyShort(c[1:1+d], msg)
	c[0] = byte(len(msg)) | descLast
	// The CRCs follow in Packet, all chunks in one pass.
	p.chunks += need
	return nil
}

// Chunks is how many chunks the packet holds.
func (p *Packer) Chunks() int { return p.chunks }

// Packet writes the chunks' CRCs, finishes the header and returns the
// packet (a slice of the packer's buffer, valid until the next Reset).
func (p *Packer) Packet() []byte {
	cl := p.s.ChunkLen
	if p.chunks > 0 {
		p.s.CRC.seal(p.buf[HeaderLen:], cl, cl-p.s.CRCLen(), p.chunks)
	}
	p.h.Chunks = uint16(p.chunks)
	p.h.put(p.buf)
	return p.buf[:HeaderLen+p.chunks*cl]
}

// fillChunk zeroes a chunk's data area and copies a first chunk's message
// part behind the channel's two bytes, without calls into the runtime
// for the usual sizes (data areas of 16 to 32 bytes).
func fillChunk(data, part []byte) {
	if d := len(data); d >= 16 && d <= 32 {
		*(*[16]byte)(data) = [16]byte{}
		*(*[16]byte)(data[d-16:]) = [16]byte{}
	} else {
		clear(data)
	}
	if part != nil {
		copyShort(data[channelLen:], part)
	}
}

// copyShort is copy for at most 32 bytes: overlapping 16- or 8-byte moves
// instead of a call to memmove.
func copyShort(dst, src []byte) {
	switch n := len(src); {
	case n > 32 || n > len(dst):
		copy(dst, src)
	case n >= 16:
		*(*[16]byte)(dst) = *(*[16]byte)(src)
		*(*[16]byte)(dst[n-16:]) = *(*[16]byte)(src[n-16:])
	case n >= 8:
		binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src))
		binary.LittleEndian.PutUint64(dst[n-8:], binary.LittleEndian.Uint64(src[n-8:]))
	default:
		copy(dst, src)
	}
}

// AddAll adds msgs, all of channel ch, in order until one does not fit,
// and returns how many it added; when not all, the error is Add's for the
// next one (ErrFull unwrapped, or ErrTooLarge). One call for a batch: the
// messages go through one loop (assembly on amd64) instead of a call
// each, which was a third of packing a small message.
func (p *Packer) AddAll(ch uint16, msgs [][]byte) (int, error) { return addAll(p, ch, msgs, false) }

// addAll is AddAll; with goRun its runs go through addRunGo (the tests
// hold the assembly to it).
func addAll(p *Packer, ch uint16, msgs [][]byte, goRun bool) (int, error) {
	n := 0
	for {
		// A run stops at a message that does not fit, or is not its to
		// write: Add returns the error (too large), or writes it (another
		// schema).
		var k int
		var full bool
		if goRun {
			k, full = addRunGo(p, ch, msgs[n:])
		} else {
			k, full = addRun(p, ch, msgs[n:])
		}
		if n += k; n == len(msgs) {
			return n, nil
		}
		if full {
			return n, ErrFull
		}
		if err := p.Add(ch, msgs[n]); err != nil {
			return n, err
		}
		n++
	}
}

// addRunGo is addRun off amd64: addOneGo's one-chunk path while it
// applies (AddAll has Add take the rest).
func addRunGo(p *Packer, ch uint16, msgs [][]byte) (int, bool) {
	for i, m := range msgs {
		if len(m) > p.one {
			return i, false
		}
		if p.chunks >= p.max {
			return i, true
		}
		_ = addOneGo(p, ch, m) // one chunk and room: it cannot fail
	}
	return len(msgs), false
}
