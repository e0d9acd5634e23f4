package wire

import (
	"encoding/binary"
	"slices"
	"unsafe"
)

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
	// What the chunk being read belongs to.
	const (
		idle       = iota // no message
		collecting        // a message, intact so far
		broken            // a message that lost a chunk: skipped to its end
	)
	st := idle
	var dropped, msgs uint64 // messages lost, delivered
	// lose marks the message the current chunk belongs to as lost (once).
	lose := func(st int) int {
		if st != broken {
			dropped++
		}
		return broken
	}
	u.buf = u.buf[:0]
	n := int(h.Chunks)
	chunks := p[HeaderLen : HeaderLen+n*cl] // ParseHeader checked the length
	for g := 0; g < n; g += sumBatch {
		// The CRCs of up to 64 chunks in one pass: which failed.
		m := min(sumBatch, n-g)
		grp := chunks[g*cl : (g+m)*cl]
		var bad uint64
		if st == idle && single(grp[0], d) {
			// Starts with a message of its own: check the rest are too in the
			// same pass (a run of longer ones does not pay for that).
			var odd uint64
			bad, odd = s.CRC.verifySingles(grp, cl, cl-k, m)
			if bad|odd == 0 {
				// Every chunk intact and a message of its own (most
				// coordination traffic): deliver them all.
				deliver(grp, m, cl, fn)
				msgs += uint64(m)
				continue
			}
		} else {
			bad = s.CRC.verify(grp, cl, cl-k, m)
		}
		for i, off := 0, 0; i < m; i, off = i+1, off+cl {
			c := grp[off : off+cl]
			if desc := c[0]; st == idle && bad>>i&1 == 0 {
				if desc&(descFirst|descLast) == descFirst|descLast {
					// Whole messages in intact chunks between messages (most
					// coordination messages): deliver the run of them.
					if j := singles(grp[off:], bad>>i, d, cl, m-i, fn); j > 0 {
						msgs += uint64(j)
						i, off = i+j-1, off+(j-1)*cl
						continue
					}
				} else if desc == descFirst|byte(d) {
					// Messages over intact chunks of this group: full first and
					// middle chunks, then a last one. Each gathered in one pass.
					if j, k := u.spans(grp, bad, i, m, cl, d, fn); k > 0 {
						msgs += uint64(k)
						i, off = j-1, (j-1)*cl
						continue
					}
				}
			}
			if bad>>i&1 != 0 {
				// Its message is lost; the chunks after it that are not marked
				// first belong to it and are skipped.
				u.Stats.CorruptChunks++
				st = lose(st)
				continue
			}
			desc := c[0]
			used := int(desc & descUsed)
			first, last := desc&descFirst != 0, desc&descLast != 0
			if used > d || (first && used < channelLen) || (!first && st == idle) {
				// Passes the CRC but breaks the layout, or continues no
				// message: a sender's bug, not noise. Treat it as a lost chunk.
				u.Stats.CorruptChunks++
				st = lose(st)
				continue
			}
			data := c[1 : 1+used]
			if first {
				if st == collecting {
					dropped++ // the previous one never ended
				}
				st = collecting
				u.buf = u.buf[:0]
				if last {
					msgs++
					fn(binary.BigEndian.Uint16(data), data[channelLen:])
					st = idle
					continue
				}
				// The full middle chunks of an intact message (descriptor:
				// neither first nor last, every byte used) need none of the
				// checks below: copy them in a tight loop.
				u.buf = append(u.buf, data...)
				j := i + 1
				for j < m && bad>>j&1 == 0 && grp[j*cl] == byte(d) {
					j++
				}
				if mid := j - i - 1; mid > 0 {
					w := len(u.buf)
					u.buf = slices.Grow(u.buf, mid*d)[:w+mid*d]
					gather(u.buf[w:], grp[(i+1)*cl:j*cl], mid, cl, d)
					i, off = j-1, (j-1)*cl
				}
				continue
			} else if st == broken {
				if last {
					st = idle
				}
				continue
			}
			u.buf = appendChunk(u.buf, data)
			if last {
				msgs++
				fn(binary.BigEndian.Uint16(u.buf), u.buf[channelLen:])
				st = idle
			}
		}
	}
	if st == collecting {
		dropped++ // no last chunk
	}
	u.Stats.DroppedMessages += dropped
	u.Stats.Messages += msgs
	return h, nil
}

// appendChunk is append(buf, data...) for a chunk's data: two overlapping
// 16-byte moves instead of a call to memmove (most of a packet's cost).
func appendChunk(buf, data []byte) []byte {
	n := len(data)
	if n < 16 || cap(buf)-len(buf) < n {
		return append(buf, data...)
	}
	w := len(buf)
	buf = buf[:w+n]
	*(*[16]byte)(buf[w:]) = *(*[16]byte)(data)
	*(*[16]byte)(buf[w+n-16:]) = *(*[16]byte)(data[n-16:])
	return buf
}

// singles delivers the messages in one intact chunk each at the start of
// chunks (bit i of bad: chunk i failed its CRC), at most n of them, and
// returns how many. It checks the run first, so that the loop around fn
// is the least a call needs: calls cost most here, and every value live
// across one is reloaded after it.
func singles(chunks []byte, bad uint64, d, cl, n int, fn func(ch uint16, msg []byte)) int {
	n = min(n, len(chunks)/cl)
	k := 0
	for off := 0; k < n && bad&1 == 0 && single(chunks[off], d); k, off, bad = k+1, off+cl, bad>>1 {
	}
	if k > 0 {
		deliver(chunks, k, cl, fn)
	}
	return k
}

// deliver calls fn with the messages of the first k chunks, each of which
// the caller found to hold one of its own (single): the loop relies on
// that for the bounds it does not check.
func deliver(chunks []byte, k, cl int, fn func(ch uint16, msg []byte)) {
	_ = chunks[k*cl-1] // every chunk whole, its used bytes within its data (1+d ≤ cl)
	p := unsafe.Pointer(unsafe.SliceData(chunks))
	for end := unsafe.Add(p, k*cl); p != end; p = unsafe.Add(p, cl) {
		c := (*[1 + channelLen]byte)(p)
		fn(uint16(c[1])<<8|uint16(c[2]), unsafe.Slice((*byte)(unsafe.Add(p, 1+channelLen)), int(c[0]&descUsed)-channelLen))
	}
}

// spans delivers the run of intact multi-chunk messages of a group from
// chunk i on and returns the chunk after the last it took and how many
// it delivered. A message here is a full first chunk, full middle ones
// and a last one, all intact and in this group (what else the general
// path takes). Like singles it finds the run first (each message's last
// chunk; the CRC bits and chunks walked, not indexed) and then only
// copies and calls: a message's chunks, its last one whole (the buffer
// has room for its data area), and fn.
func (u *Unpacker) spans(grp []byte, bad uint64, i, m, cl, d int, fn func(ch uint16, msg []byte)) (int, int) {
	var ends [sumBatch / 2]uint8 // a message here takes two chunks or more
	from, k, longest := i, 0, 0
	off, r := i*cl, bad>>i // chunk i, and its CRC bit at the bottom of r
	for i < m && r&1 == 0 && grp[off] == descFirst|byte(d) {
		j, o, rj := i+1, off+cl, r>>1
		for j < m && rj&1 == 0 && grp[o] == byte(d) {
			j, o, rj = j+1, o+cl, rj>>1
		}
		if j == m || rj&1 != 0 {
			break
		}
		if last := grp[o]; last&(descFirst|descLast) != descLast || int(last&descUsed) > d {
			break
		}
		longest = max(longest, j-i+1)
		ends[k] = uint8(j)
		i, off, r, k = j+1, o+cl, rj>>1, k+1
	}
	if k == 0 {
		return i, 0
	}
	if cap(u.buf) < longest*d {
		u.buf = make([]byte, 0, max(longest*d, 2*cap(u.buf)))
	}
	buf := u.buf[:longest*d]
	for _, e := range ends[:k] {
		last := int(e)
		n := last - from + 1
		src := grp[from*cl : (last+1)*cl]
		if d >= 16 {
			gatherAsm(buf, src, n, cl, d)
		} else {
			gatherGo(buf, src, n, cl, d)
		}
		fn(uint16(buf[0])<<8|uint16(buf[1]), buf[channelLen:(n-1)*d+int(src[(n-1)*cl]&descUsed)])
		from = last + 1
	}
	return i, k
}
