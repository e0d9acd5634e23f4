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

// ONECHUNK(...labels): the CX (≤ DX = d − 2) bytes at BX as one chunk,
// the packet's AX-th: descriptor, channel, message, zeros.
#define ONECHUNK(l16, l8, l4, l2, copied) \
	MOVQ    Packer_buf(DI), SI; \
	IMULQ   Packer_cl(DI), AX; \
	LEAQ    const_HeaderLen(SI)(AX*1), SI; \
	PXOR    X0, X0; \
	MOVOU   X0, 1(SI); \
	MOVOU   X0, -13(SI)(DX*1); \
	COPYSHORT(3, l16, l8, l4, l2, copied); \
	MOVWLZX ch+8(FP), R8; \
	ROLW    $8, R8; \
	MOVW    R8, 1(SI); \
	LEAQ    const_descFirst+const_descLast+const_channelLen(CX), R8; \
	MOVB    R8, (SI); \
	INCQ    Packer_chunks(DI)

// MULTICHUNK(noroom, span, ...labels): the CX (> DX) bytes at BX from the
// packet's AX-th chunk on: a full first chunk (descriptor, channel, d − 2
// message bytes), full middle ones, a zero-padded last one. It goes to
// span for a data area under 18 bytes, to noroom (R10 d, R12 the bytes
// with the channel) when the free chunks do not hold it.
#define MULTICHUNK(noroom, span, mid, last, l16, l8, l4, l2, copied) \
	CMPQ  DX, $16; \
	JLT   span; \
	MOVQ  Packer_max(DI), R11; \
	SUBQ  AX, R11; \
	LEAQ  2(DX), R10; \
	IMULQ R10, R11; \
	LEAQ  const_channelLen(CX), R12; \
	CMPQ  R12, R11; \
	JGT   noroom; \
	MOVQ  Packer_cl(DI), R8; \
	MOVQ  Packer_buf(DI), SI; \
	IMULQ R8, AX; \
	LEAQ  const_HeaderLen(SI)(AX*1), SI; \
	PXOR  X0, X0; \
	MOVOU   (BX), X1; \
	MOVOU   -16(BX)(DX*1), X2; \
	MOVOU   X1, 3(SI); \
	MOVOU   X2, -13(SI)(DX*1); \
	MOVWLZX ch+8(FP), AX; \
	ROLW    $8, AX; \
	MOVW    AX, 1(SI); \
	LEAQ    const_descFirst(R10), AX; \
	MOVB    AX, (SI); \
	ADDQ    DX, BX; \
	SUBQ    DX, CX; \
	ADDQ    R8, SI; \
	MOVQ    $2, R9; \
mid: \
	CMPQ  CX, R10; \
	JLE   last; \
	MOVOU (BX), X1; \
	MOVOU -16(BX)(R10*1), X2; \
	MOVB  R10, (SI); \
	MOVOU X1, 1(SI); \
	MOVOU X2, -15(SI)(R10*1); \
	ADDQ  R10, BX; \
	SUBQ  R10, CX; \
	ADDQ  R8, SI; \
	INCQ  R9; \
	JMP   mid; \
last: \
	MOVOU X0, 1(SI); \
	MOVOU X0, -15(SI)(R10*1); \
	COPYSHORT(1, l16, l8, l4, l2, copied); \
	LEAQ  const_descLast(CX), AX; \
	MOVB  AX, (SI); \
	ADDQ  R9, Packer_chunks(DI)

// func addOne(p *Packer, ch uint16, msg []byte) error
//
// Packer.Add for every message that fits, in the layout addSpan writes
// (TestAddMatchesGeneralPath compares them byte for byte): ONECHUNK or
// MULTICHUNK; ErrFull when it does not fit what is left. Everything else
// — a message too large for any packet, a schema whose data area is
// outside 18–32 bytes — jumps to addSpan.
TEXT ·addOne(SB), NOSPLIT, $0-56
	MOVQ p+0(FP), DI
	MOVQ msg_len+24(FP), CX
	MOVQ msg_base+16(FP), BX
	MOVQ Packer_one(DI), DX // d - channel, or -1
	MOVQ Packer_chunks(DI), AX
	CMPQ CX, DX
	JGT  multi
	CMPQ AX, Packer_max(DI)
	JGE  full
	ONECHUNK(o16, o8, o4, o2, ocopied)
	JMP  ok

multi:
	MULTICHUNK(noroom, span, mid, last, m16, m8, m4, m2, mcopied)

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

// tailmask from byte s on is a PSHUFB mask that moves a block down by s
// bytes, zeros above.
DATA  tailmask<>+0(SB)/8, $0x0706050403020100
DATA  tailmask<>+8(SB)/8, $0x0f0e0d0c0b0a0908
DATA  tailmask<>+16(SB)/8, $0x8080808080808080
DATA  tailmask<>+24(SB)/8, $0x8080808080808080
GLOBL tailmask<>(SB), RODATA|NOPTR, $32

// func addRun(p *Packer, ch uint16, msgs [][]byte) (n int, full bool)
//
// addOne for each message of msgs in turn (R14 its slice header, R15 how
// many are left) until one does not fit what is left (full) or is not
// addOne's to write (too large for any packet, another schema: AddAll has
// Add take that one). A run of one-chunk messages stays in the loop at ones,
// its chunk (SI), index (AX) and limits in registers; one of 16 bytes or
// more is built in two registers and stored in two moves (the data area,
// d + 1 ≤ 32 bytes, as its first and its last 16: descriptor, channel and
// the message's start; the message's end moved down to its place, zeros
// behind it).
TEXT ·addRun(SB), NOSPLIT, $0-49
	MOVQ p+0(FP), DI
	MOVQ msgs_base+16(FP), R14
	MOVQ msgs_len+24(FP), R15
	MOVQ Packer_one(DI), DX

next:
	TESTQ R15, R15
	JZ    stop
	MOVQ  8(R14), CX
	MOVQ  Packer_chunks(DI), AX
	CMPQ  CX, DX
	JGT   multi
	CMPQ  AX, Packer_max(DI)
	JGE   full

	MOVQ    Packer_max(DI), R11
	MOVQ    Packer_cl(DI), R10
	MOVQ    Packer_buf(DI), SI
	MOVQ    AX, R9
	IMULQ   R10, R9
	LEAQ    const_HeaderLen(SI)(R9*1), SI
	MOVWLZX ch+8(FP), R8
	ROLW    $8, R8
	PXOR    X0, X0
ones: // as ONECHUNK; a message of 16 bytes or more in registers
	MOVQ   (R14), BX
	CMPQ   CX, $16
	JLT    oshort
	MOVOU  (BX), X1
	MOVOU  -16(BX)(CX*1), X2
	MOVQ   DX, R9
	SUBQ   CX, R9
	LEAQ   tailmask<>(SB), R12
	MOVOU  (R12)(R9*1), X3
	PSHUFB X3, X2
	PSLLDQ $3, X1
	MOVL   R8, R9
	SHLL   $8, R9
	LEAQ   const_descFirst+const_descLast+const_channelLen(R9)(CX*1), R9
	MOVQ   R9, X3
	POR    X3, X1
	MOVOU  X1, (SI)
	MOVOU  X2, -13(SI)(DX*1)
	JMP    obuilt
oshort:
	MOVOU X0, 1(SI)
	MOVOU X0, -13(SI)(DX*1)
	COPYSHORT(3, r16, r8, r4, r2, rcopied)
	MOVW  R8, 1(SI)
	LEAQ  const_descFirst+const_descLast+const_channelLen(CX), R9
	MOVB  R9, (SI)
obuilt:
	INCQ  AX
	ADDQ  R10, SI
	ADDQ  $24, R14
	DECQ  R15
	JZ    onesdone
	CMPQ  AX, R11
	JGE   onesdone
	MOVQ  8(R14), CX
	CMPQ  CX, DX
	JLE   ones
onesdone:
	MOVQ AX, Packer_chunks(DI)
	JMP  next

multi:
	MOVQ (R14), BX
	MULTICHUNK(rnoroom, stop, rmid, rlast, s16, s8, s4, s2, scopied)
	ADDQ $24, R14
	DECQ R15
	JMP  next

rnoroom: // full if an empty packet would hold it, else too large
	MOVQ  Packer_max(DI), R11
	IMULQ R10, R11
	CMPQ  R12, R11
	JGT   stop
full:
	MOVB $1, full+48(FP)
	JMP  count
stop:
	MOVB $0, full+48(FP)
count:
	MOVQ msgs_len+24(FP), AX
	SUBQ R15, AX
	MOVQ AX, n+40(FP)
	RET
