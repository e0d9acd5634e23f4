#include "textflag.h"
#include "go_asm.h"

// func addOne(p *Packer, ch uint16, msg []byte) error
//
// addOneGo, instruction for instruction: zero the chunk's data area, copy
// the message behind the channel in two overlapping moves of its size
// class, then channel and descriptor.
TEXT ·addOne(SB), NOSPLIT, $0-56
	MOVQ p+0(FP), DI
	MOVQ msg_len+24(FP), CX
	CMPQ CX, Packer_one(DI)
	JGT  span
	MOVQ Packer_chunks(DI), AX
	CMPQ AX, Packer_max(DI)
	JGE  span
	MOVQ  Packer_one(DI), DX // d - channel
	MOVQ  Packer_buf(DI), SI
	IMULQ Packer_cl(DI), AX
	LEAQ  const_HeaderLen(SI)(AX*1), SI // the chunk
	MOVQ  msg_base+16(FP), BX
	PXOR  X0, X0
	MOVOU X0, 1(SI)
	MOVOU X0, -13(SI)(DX*1) // to the data area's end, 1 + d
	CMPQ  CX, $16
	JLT   lt16
	MOVOU (BX), X1
	MOVOU -16(BX)(CX*1), X2
	MOVOU X1, 3(SI)
	MOVOU X2, -13(SI)(CX*1) // ends at 3 + n
	JMP   head
lt16:
	CMPQ CX, $8
	JLT  lt8
	MOVQ (BX), R8
	MOVQ -8(BX)(CX*1), R9
	MOVQ R8, 3(SI)
	MOVQ R9, -5(SI)(CX*1)
	JMP  head
lt8:
	CMPQ CX, $4
	JLT  lt4
	MOVL (BX), R8
	MOVL -4(BX)(CX*1), R9
	MOVL R8, 3(SI)
	MOVL R9, -1(SI)(CX*1)
	JMP  head
lt4:
	CMPQ CX, $2
	JLT  lt2
	MOVW (BX), R8
	MOVW -2(BX)(CX*1), R9
	MOVW R8, 3(SI)
	MOVW R9, 1(SI)(CX*1)
	JMP  head
lt2:
	TESTQ CX, CX
	JZ    head
	MOVB  (BX), R8
	MOVB  R8, 3(SI)
head:
	MOVWLZX ch+8(FP), R8
	ROLW    $8, R8 // big endian
	MOVW    R8, 1(SI)
	LEAQ    const_descFirst+const_descLast+const_channelLen(CX), R8 // (n + 2 < 64: the adds are ors)
	MOVB    R8, (SI)
	INCQ    Packer_chunks(DI)
	MOVQ    $0, ret_itable+40(FP)
	MOVQ    $0, ret_data+48(FP)
	RET
span:
	JMP ·addSpan(SB)
