#include "textflag.h"
#include "go_asm.h"

// COPYSHORT(off, ...) copies the CX bytes (0–32) at BX to off(SI) in two
// overlapping moves of their size class (labels: the macro is used twice).
#define COPYSHORT(off, l16, l8, l4, l2, done) \
	CMPQ  CX, $16; \
	JLT   l16; \
	MOVOU (BX), X1; \
	MOVOU -16(BX)(CX*1), X2; \
	MOVOU X1, off(SI); \
	MOVOU X2, off-16(SI)(CX*1); \
	JMP   done; \
l16: \
	CMPQ CX, $8; \
	JLT  l8; \
	MOVQ (BX), R12; \
	MOVQ -8(BX)(CX*1), R13; \
	MOVQ R12, off(SI); \
	MOVQ R13, off-8(SI)(CX*1); \
	JMP  done; \
l8: \
	CMPQ CX, $4; \
	JLT  l4; \
	MOVL (BX), R12; \
	MOVL -4(BX)(CX*1), R13; \
	MOVL R12, off(SI); \
	MOVL R13, off-4(SI)(CX*1); \
	JMP  done; \
l4: \
	CMPQ CX, $2; \
	JLT  l2; \
	MOVW (BX), R12; \
	MOVW -2(BX)(CX*1), R13; \
	MOVW R12, off(SI); \
	MOVW R13, off-2(SI)(CX*1); \
	JMP  done; \
l2: \
	TESTQ CX, CX; \
	JZ    done; \
	MOVB  (BX), R12; \
	MOVB  R12, off(SI); \
done:

// func addOne(p *Packer, ch uint16, msg []byte) error
//
// Packer.Add for every message that fits, in the layout addSpan writes
// (TestAddMatchesGeneralPath compares them byte for byte): one chunk
// (descriptor, channel, message, zeros), or a full first chunk, full
// middle ones and a zero-padded last one; ErrFull when it does not fit
// what is left. Everything else — a message too large for any packet, a
// schema whose data area is outside 18–32 bytes — jumps to addSpan.
TEXT ·addOne(SB), NOSPLIT, $0-56
	MOVQ  p+0(FP), DI
	MOVQ  msg_len+24(FP), CX
	MOVQ  Packer_one(DI), DX // d - channel, or -1
	MOVQ  Packer_chunks(DI), AX
	CMPQ  CX, DX
	JGT   multi
	CMPQ  AX, Packer_max(DI)
	JGE   full

	// One chunk.
	MOVQ  Packer_buf(DI), SI
	IMULQ Packer_cl(DI), AX
	LEAQ  const_HeaderLen(SI)(AX*1), SI // the chunk
	MOVQ  msg_base+16(FP), BX
	PXOR  X0, X0
	MOVOU X0, 1(SI)
	MOVOU X0, -13(SI)(DX*1) // to the data area's end, 1 + d
	COPYSHORT(3, o16, o8, o4, o2, ocopied)
	MOVWLZX ch+8(FP), R8
	ROLW    $8, R8 // big endian
	MOVW    R8, 1(SI)
	LEAQ    const_descFirst+const_descLast+const_channelLen(CX), R8 // (n + 2 < 64: the adds are ors)
	MOVB    R8, (SI)
	INCQ    Packer_chunks(DI)
	JMP     ok

multi:
	CMPQ  DX, $16 // the first chunk's part takes two 16-byte moves (and one ≥ 0)
	JLT   span
	MOVQ  Packer_max(DI), R11
	SUBQ  AX, R11    // chunks free
	LEAQ  2(DX), R10 // d
	IMULQ R10, R11   // what they hold
	LEAQ  const_channelLen(CX), R12
	CMPQ  R12, R11
	JGT   noroom
	MOVQ  Packer_cl(DI), R8
	MOVQ  Packer_buf(DI), SI
	IMULQ R8, AX
	LEAQ  const_HeaderLen(SI)(AX*1), SI
	MOVQ  msg_base+16(FP), BX
	PXOR  X0, X0

	// The first chunk is full: descriptor, channel, d - 2 message bytes.
	MOVOU   (BX), X1
	MOVOU   -16(BX)(DX*1), X2
	MOVOU   X1, 3(SI)
	MOVOU   X2, -13(SI)(DX*1)
	MOVWLZX ch+8(FP), AX
	ROLW    $8, AX
	MOVW    AX, 1(SI)
	LEAQ    const_descFirst(R10), AX
	MOVB    AX, (SI)
	ADDQ    DX, BX
	SUBQ    DX, CX // left: at least one byte
	ADDQ    R8, SI
	MOVQ    $2, R9 // chunks: the first and the last, so far

mid: // full middle chunks while more than one chunk's worth is left
	CMPQ  CX, R10
	JLE   last
	MOVOU (BX), X1
	MOVOU -16(BX)(R10*1), X2
	MOVB  R10, (SI)
	MOVOU X1, 1(SI)
	MOVOU X2, -15(SI)(R10*1)
	ADDQ  R10, BX
	SUBQ  R10, CX
	ADDQ  R8, SI
	INCQ  R9
	JMP   mid

last: // 1–d bytes, zeros behind them
	MOVOU X0, 1(SI)
	MOVOU X0, -15(SI)(R10*1)
	COPYSHORT(1, m16, m8, m4, m2, mcopied)
	LEAQ  const_descLast(CX), AX
	MOVB  AX, (SI)
	ADDQ  R9, Packer_chunks(DI)

ok:
	MOVQ $0, ret_itable+40(FP)
	MOVQ $0, ret_data+48(FP)
	RET

noroom: // ErrFull if an empty packet would hold it, else addSpan's ErrTooLarge
	MOVQ  Packer_max(DI), R11
	IMULQ R10, R11
	CMPQ  R12, R11
	JGT   span
full: // a filler meets this once per source and packet: no call
	MOVQ ·ErrFull(SB), AX
	MOVQ ·ErrFull+8(SB), BX
	MOVQ AX, ret_itable+40(FP)
	MOVQ BX, ret_data+48(FP)
	RET
span:
	JMP ·addSpan(SB)
