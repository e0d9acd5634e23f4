#include "textflag.h"

// func clmulChunks(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, out *uint32)
//
// out[i] = the CRC of the n bytes (20 ≤ n ≤ 32) at p + i·stride, for
// i < count. Each chunk is two 16-byte blocks: its first n-16 bytes,
// moved up so that zeros lead (with the register already in the message
// they change nothing), and its last 16. One fold, then the reduction to
// 32 bits of Go's hash/crc32 ieeeCLMUL with this polynomial's keys. The
// chunks do not depend on each other, so the CPU overlaps them.
TEXT ·clmulChunks(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ stride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ count+32(FP), R9
	MOVL crc+40(FP), X11
	MOVL xorout+44(FP), R10
	MOVQ out+48(FP), R11

	MOVOU 0(DI), X6          // fold keys
	MOVQ  16(DI), X7         // r5
	MOVOU 32(DI), X8         // P, u
	PCMPEQB X9, X9
	PSRLQ $32, X9            // low 32 bits of each half
	MOVQ  $32, AX
	SUBQ  CX, AX
	SHLQ  $4, AX
	MOVOU 48(DI)(AX*1), X10  // shift[32-n]

	TESTQ R9, R9
	JLE   done

loop:
	MOVOU (SI), X1
	MOVOU -16(SI)(CX*1), X2
	PXOR  X11, X1            // the register meets the first bytes
	PSHUFB X10, X1

	MOVOA     X1, X5
	PCLMULQDQ $0, X6, X1
	PCLMULQDQ $0x11, X6, X5
	PXOR      X5, X1
	PXOR      X2, X1

	// 128 bits to 64.
	MOVOA     X6, X0
	PCLMULQDQ $1, X1, X0
	PSRLDQ    $8, X1
	PXOR      X0, X1

	MOVOA     X1, X2
	PSRLDQ    $4, X2
	PAND      X9, X1
	PCLMULQDQ $0, X7, X1
	PXOR      X2, X1

	// Barrett reduction to 32 bits.
	MOVOA     X1, X2
	PAND      X9, X1
	PCLMULQDQ $0x10, X8, X1
	PAND      X9, X1
	PCLMULQDQ $0, X8, X1
	PXOR      X2, X1

	PEXTRD $1, X1, AX
	XORL   R10, AX
	MOVL   AX, (R11)

	ADDQ R8, SI
	ADDQ $4, R11
	DECQ R9
	JNZ  loop
done:
	RET
