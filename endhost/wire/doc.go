// Package wire is the X-Lane packet format the endhost sends in the UDP
// payload of an express packet (and that p4/switch parses): a 20-byte
// header, then chunks of one of two schemata (paper Appendix B), each with
// its own CRC so that one corrupted chunk is dropped alone.
//
//	header: version:4 flags:4 | schema:8 | chunk_count:16 | tunnel_id:32 |
//	        sequence:32 | sender_ts_ns:64            (big endian, 20 bytes)
//	chunk:  desc:8 | data | crc                      (HD6: 1+22+3 = 26 B,
//	                                                  HD8: 1+31+4 = 36 B)
//	desc:   first:1 last:1 used:6  (used = data bytes that carry the message)
//
// The CRC covers desc and data: 23 bytes under CRC-24 (Koopman 0xbd80de,
// HD 6 for this length) or 32 bytes under CRC-32 (Koopman 0xfa567d89, the
// CRC-32/AUTOSAR polynomial, HD 8). A message spans consecutive chunks
// from one marked first to one marked last; its first two bytes are the
// channel (the application stream within the tunnel) it belongs to. A
// message with a corrupted chunk is dropped; the others of the packet are
// delivered.
package wire
