#include "textflag.h"

// Chunk CRCs by carry-less multiplication (the method is in clmul.go).
// Each chunk (20 ≤ n ≤ 32 protected bytes) is two 16-byte blocks: its
// first n-16 bytes, moved up so that zeros lead (with the register already
// in the message they change nothing), and its last 16. Their four words
// are multiplied by x^224, x^160, x^96 and 1 (mod P), summed, and reduced
// by one Barrett step; when n ≤ 24 the first word is zero and skipped.
// Chunks do not depend on each other, so the CPU overlaps them; where it
// has VPCLMULQDQ, four go through the two 128-bit lanes of two YMM
// registers at a time.
//
// Every function has the arguments (k *clmulKeys, p *byte, stride, n,
// count int, crc, xorout uint32, wide bool, ...) and the registers
// DI keys, SI chunk, R8 stride, CX n, R9 chunks left, X11 the initial
// register, R10 xorout; what differs is what each CRC (in AX) becomes:
// OUT stores it to an array, SEAL behind the chunk's bytes, VERIFY compares
// it with what is stored there and rotates "differs" into R11 from the top.

#define ARGS \
	MOVQ k+0(FP), DI; \
	MOVQ p+8(FP), SI; \
	MOVQ stride+16(FP), R8; \
	MOVQ n+24(FP), CX; \
	MOVQ count+32(FP), R9; \
	MOVL crc+40(FP), X11; \
	MOVL xorout+44(FP), R10

// SHIFTAT: AX = the offset of PSHUFB mask shift[32-n] from the keys'.
#define SHIFTAT \
	MOVQ $32, AX; \
	SUBQ CX, AX; \
	SHLQ $4, AX; \
	ADDQ $48, AX

// KEYS128: x^224 and x^160 X6, x^96 and μ X7, P X8, PSHUFB mask
// shift[32-n] X10.
#define KEYS128 \
	MOVOU 0(DI), X6; \
	MOVOU 16(DI), X7; \
	MOVOU 32(DI), X8; \
	SHIFTAT; \
	MOVOU (DI)(AX*1), X10

// CRC1(B): AX = the CRC of the chunk at B. U, the sum of the words'
// products, ends in X1; the Barrett quotient q in X2.
#define CRC1(B) \
	MOVOU     (B), X1; \
	MOVOU     -16(B)(CX*1), X2; \
	PXOR      X11, X1; \
	PSHUFB    X10, X1; \
	MOVOA     X1, X3; \
	PCLMULQDQ $0x11, X6, X3; \
	CMPQ      CX, $24; \
	JLE       short1; \
	PCLMULQDQ $0x00, X6, X1; \
	PXOR      X1, X3; \
short1: \
	MOVOA     X2, X4; \
	PCLMULQDQ $0x00, X7, X4; \
	PSRLDQ    $8, X2; \
	PXOR      X4, X3; \
	PXOR      X2, X3; \
	MOVOA     X3, X1; \
	PCLMULQDQ $0x10, X7, X3; \
	PSLLQ     $1, X3; \
	PXOR      X1, X3; \
	PCLMULQDQ $0x00, X8, X3; \
	PXOR      X1, X3; \
	PEXTRD    $2, X3, AX; \
	XORL      R10, AX

// KEYS256: KEYS128 in both lanes of Y6–Y8, Y10, Y11; xorout in every
// doubleword of Y9; R13 two strides.
#define KEYS256 \
	VINSERTI128    $1, X11, Y11, Y11; \
	VBROADCASTI128 0(DI), Y6; \
	VBROADCASTI128 16(DI), Y7; \
	VBROADCASTI128 32(DI), Y8; \
	VMOVD          R10, X9; \
	VPBROADCASTD   X9, Y9; \
	SHIFTAT; \
	VBROADCASTI128 (DI)(AX*1), Y10; \
	LEAQ           (R8)(R8*1), R13

// CRC4: the CRCs of the chunks at SI, SI+R8 (lanes of Y1), R14 = SI+2·R8
// and R12 = R14+R8 (lanes of Y12), each in the lane's third doubleword,
// before xorout. The two pairs' multiplications overlap.
#define CRC4 \
	LEAQ        (SI)(R8*1), R12; \
	VMOVDQU     (SI), X1; \
	VINSERTI128 $1, (R12), Y1, Y1; \
	VMOVDQU     -16(SI)(CX*1), X2; \
	VINSERTI128 $1, -16(R12)(CX*1), Y2, Y2; \
	LEAQ        (SI)(R13*1), R14; \
	LEAQ        (R14)(R8*1), R12; \
	VMOVDQU     (R14), X12; \
	VINSERTI128 $1, (R12), Y12, Y12; \
	VMOVDQU     -16(R14)(CX*1), X13; \
	VINSERTI128 $1, -16(R12)(CX*1), Y13, Y13; \
	VPXOR       Y11, Y1, Y1; \
	VPXOR       Y11, Y12, Y12; \
	VPSHUFB     Y10, Y1, Y1; \
	VPSHUFB     Y10, Y12, Y12; \
	VPCLMULQDQ  $0x11, Y6, Y1, Y3; \
	VPCLMULQDQ  $0x11, Y6, Y12, Y14; \
	CMPQ        CX, $24; \
	JLE         short4; \
	VPCLMULQDQ  $0x00, Y6, Y1, Y1; \
	VPCLMULQDQ  $0x00, Y6, Y12, Y12; \
	VPXOR       Y1, Y3, Y3; \
	VPXOR       Y12, Y14, Y14; \
short4: \
	VPCLMULQDQ  $0x00, Y7, Y2, Y4; \
	VPCLMULQDQ  $0x00, Y7, Y13, Y15; \
	VPSRLDQ     $8, Y2, Y2; \
	VPSRLDQ     $8, Y13, Y13; \
	VPXOR       Y4, Y3, Y3; \
	VPXOR       Y15, Y14, Y14; \
	VPXOR       Y2, Y3, Y1; \
	VPXOR       Y13, Y14, Y12; \
	VPCLMULQDQ  $0x10, Y7, Y1, Y2; \
	VPCLMULQDQ  $0x10, Y7, Y12, Y13; \
	VPSLLQ      $1, Y2, Y2; \
	VPSLLQ      $1, Y13, Y13; \
	VPXOR       Y1, Y2, Y2; \
	VPXOR       Y12, Y13, Y13; \
	VPCLMULQDQ  $0x00, Y8, Y2, Y2; \
	VPCLMULQDQ  $0x00, Y8, Y13, Y13; \
	VPXOR       Y2, Y1, Y1; \
	VPXOR       Y13, Y12, Y12

// LOW(X) and HIGH(Y): AX = the CRC in a register's low or high lane.
#define LOW(X) VPEXTRD $2, X, AX; XORL R10, AX
#define HIGH(Y) VEXTRACTI128 $1, Y, X3; VPEXTRD $2, X3, AX; XORL R10, AX

// What becomes of the CRC in AX of the chunk at B.
#define OUT(B) MOVL AX, (R11); ADDQ $4, R11
#define SEAL24(B) MOVW AX, (B)(CX*1); SHRL $16, AX; MOVB AX, 2(B)(CX*1)
#define SEAL32(B) MOVL AX, (B)(CX*1)
#define VERIFY24(B) MOVL -1(B)(CX*1), DX; SHRL $8, DX; XORL AX, DX; NEGL DX; RCRQ $1, R11
#define VERIFY32(B) MOVL (B)(CX*1), DX; XORL AX, DX; NEGL DX; RCRQ $1, R11
#define VERIFYS24(B) VERIFY24(B); SINGLE(B)
#define VERIFYS32(B) VERIFY32(B); SINGLE(B)

// SINGLE(B) counts in R15 whether the chunk at B is not a message of its
// own: its descriptor is not first|last with 2 ≤ used ≤ n-1 bytes, i.e.
// descriptor−0xc2 > most (unsigned). The unpacker's check, on the
// integer ports the carry-less loop leaves idle.
#define SINGLE(B) MOVBLZX (B), AX; SUBL $0xc2, AX; CMPL most+52(FP), AX; ADCQ $0, R15

// EACH4(OP): OP for CRC4's chunks one by one.
#define EACH4(OP) \
	LOW(X1); \
	OP(SI); \
	LEAQ    (SI)(R8*1), BX; \
	HIGH(Y1); \
	OP(BX); \
	LOW(X12); \
	OP(R14); \
	HIGH(Y12); \
	OP(R12)

// SEAL4_24: SEAL24 for CRC4's chunks, stored from the vector registers
// (no CRC taken out into AX and shifted).
#define SEAL4_24 \
	VPXOR        Y9, Y1, Y1; \
	VPXOR        Y9, Y12, Y12; \
	LEAQ         (SI)(R8*1), BX; \
	VPEXTRW      $4, X1, (SI)(CX*1); \
	VPEXTRB      $10, X1, 2(SI)(CX*1); \
	VPEXTRW      $4, X12, (R14)(CX*1); \
	VPEXTRB      $10, X12, 2(R14)(CX*1); \
	VEXTRACTI128 $1, Y1, X1; \
	VEXTRACTI128 $1, Y12, X12; \
	VPEXTRW      $4, X1, (BX)(CX*1); \
	VPEXTRB      $10, X1, 2(BX)(CX*1); \
	VPEXTRW      $4, X12, (R12)(CX*1); \
	VPEXTRB      $10, X12, 2(R12)(CX*1)

// SEAL4_32: SEAL32 for CRC4's chunks, from the vector registers.
#define SEAL4_32 \
	VPXOR        Y9, Y1, Y1; \
	VPXOR        Y9, Y12, Y12; \
	LEAQ         (SI)(R8*1), BX; \
	VPEXTRD      $2, X1, (SI)(CX*1); \
	VPEXTRD      $2, X12, (R14)(CX*1); \
	VEXTRACTI128 $1, Y1, X1; \
	VEXTRACTI128 $1, Y12, X12; \
	VPEXTRD      $2, X1, (BX)(CX*1); \
	VPEXTRD      $2, X12, (R12)(CX*1)

// CHUNKS(OP, OP4): OP for every chunk, four at a time (OP4) while wide and
// four are left, then one at a time (the 128-bit registers keep the keys).
#define CHUNKS(OP, OP4) \
	MOVBLZX wide+48(FP), AX; \
	TESTL   AX, AX; \
	JZ      one; \
	KEYS256; \
	CMPQ    R9, $4; \
	JLT     wided; \
four: \
	CRC4; \
	OP4; \
	LEAQ    (SI)(R13*2), SI; \
	SUBQ    $4, R9; \
	CMPQ    R9, $4; \
	JGE     four; \
wided: \
	VZEROUPPER; \
one: \
	KEYS128; \
	TESTQ   R9, R9; \
	JLE     done; \
loop: \
	CRC1(SI); \
	OP(SI); \
	ADDQ    R8, SI; \
	DECQ    R9; \
	JNZ     loop; \
done:

// BADMASK returns the VERIFY bits, which came in from the top of R11.
#define BADMASK \
	MOVQ count+32(FP), CX; \
	NEGQ CX; \
	ADDQ $64, CX; \
	SHRQ CX, R11; \
	MOVQ R11, bad+56(FP)

// VERIFYSINGLES(OP): the body of a clmulVerifySingles function.
#define VERIFYSINGLES(OP) \
	ARGS; \
	XORL R11, R11; \
	XORL R15, R15; \
	CHUNKS(OP, EACH4(OP)); \
	BADMASK; \
	MOVQ R15, odd+64(FP); \
	RET

// func clmulSums(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool, out *uint32)
//
// out[i] = the CRC of the n bytes at p + i·stride, for i < count.
TEXT ·clmulSums(SB), NOSPLIT, $0-64
	ARGS
	MOVQ out+56(FP), R11
	CHUNKS(OUT, EACH4(OUT))
	RET

// func clmulSeal24(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool)
//
// Writes each chunk's CRC (three bytes, little endian) behind its n bytes.
TEXT ·clmulSeal24(SB), NOSPLIT, $0-49
	ARGS
	CHUNKS(SEAL24, SEAL4_24)
	RET

// func clmulSeal32(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool)
TEXT ·clmulSeal32(SB), NOSPLIT, $0-49
	ARGS
	CHUNKS(SEAL32, SEAL4_32)
	RET

// func clmulVerify24(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool) (bad uint64)
//
// Bit i of bad: chunk i's stored CRC (three bytes behind its n) is not
// its CRC (count ≤ 64).
TEXT ·clmulVerify24(SB), NOSPLIT, $0-64
	ARGS
	XORL R11, R11
	CHUNKS(VERIFY24, EACH4(VERIFY24))
	BADMASK
	RET

// func clmulVerify32(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool) (bad uint64)
TEXT ·clmulVerify32(SB), NOSPLIT, $0-64
	ARGS
	XORL R11, R11
	CHUNKS(VERIFY32, EACH4(VERIFY32))
	BADMASK
	RET

// func clmulVerifySingles24(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool, most uint32) (bad, odd uint64)
//
// clmulVerify24, and odd: how many chunks are not a message of their own
// with at most most bytes (see SINGLE).
TEXT ·clmulVerifySingles24(SB), NOSPLIT, $0-72
	VERIFYSINGLES(VERIFYS24)

// func clmulVerifySingles32(k *clmulKeys, p *byte, stride, n, count int, crc, xorout uint32, wide bool, most uint32) (bad, odd uint64)
TEXT ·clmulVerifySingles32(SB), NOSPLIT, $0-72
	VERIFYSINGLES(VERIFYS32)

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, a+8(FP)
	MOVL BX, b+12(FP)
	MOVL CX, c+16(FP)
	MOVL DX, d+20(FP)
	RET
