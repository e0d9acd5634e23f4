package wire

import "errors"

var (
	// ErrTruncated: a packet shorter than its header says.
	ErrTruncated = errors.New("truncated X-Lane packet")
	// ErrForeign: not an X-Lane packet of a version and schema known here.
	ErrForeign = errors.New("not an X-Lane packet")
	// ErrFull: the message does not fit in what is left of the packet.
	ErrFull = errors.New("packet full")
	// ErrTooLarge: the message cannot fit in any packet.
	ErrTooLarge = errors.New("message larger than a packet")
)
