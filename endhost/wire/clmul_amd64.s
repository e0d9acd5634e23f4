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

// func clmulChunks2(k *clmulKeys, p *byte, stride, n, pairs int, crc, xorout uint32, out *uint32)
//
// clmulChunks for 2·pairs chunks (pairs even), four at a time: the same
// steps on the two 128-bit lanes of YMM registers (VPCLMULQDQ, AVX2), one
// chunk each, for two pairs in separate registers, so that their
// multiplications overlap.
TEXT ·clmulChunks2(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ stride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ pairs+32(FP), R9
	MOVL crc+40(FP), X11
	MOVL xorout+44(FP), R10
	MOVQ out+48(FP), R11

	VINSERTI128    $1, X11, Y11, Y11 // the register in both lanes
	VBROADCASTI128 0(DI), Y6         // fold keys
	VBROADCASTI128 16(DI), Y7        // r5
	VBROADCASTI128 32(DI), Y8        // P, u
	VPCMPEQB       Y9, Y9, Y9
	VPSRLQ         $32, Y9, Y9       // low 32 bits of each quadword
	MOVQ           $32, AX
	SUBQ           CX, AX
	SHLQ           $4, AX
	VBROADCASTI128 48(DI)(AX*1), Y10 // shift[32-n]
	LEAQ           (R8)(R8*1), R13   // two chunks

	CMPQ R9, $2
	JLT  done2

loop4: // pairs A (Y0–Y5) and B (Y4, Y12–Y15), chunks i..i+3
	LEAQ        (SI)(R8*1), R12
	VMOVDQU     (SI), X1
	VINSERTI128 $1, (R12), Y1, Y1
	VMOVDQU     -16(SI)(CX*1), X2
	VINSERTI128 $1, -16(R12)(CX*1), Y2, Y2
	LEAQ        (SI)(R13*1), R14
	LEAQ        (R14)(R8*1), R12
	VMOVDQU     (R14), X12
	VINSERTI128 $1, (R12), Y12, Y12
	VMOVDQU     -16(R14)(CX*1), X13
	VINSERTI128 $1, -16(R12)(CX*1), Y13, Y13
	VPXOR       Y11, Y1, Y1
	VPXOR       Y11, Y12, Y12
	VPSHUFB     Y10, Y1, Y1
	VPSHUFB     Y10, Y12, Y12

	VPCLMULQDQ $0x00, Y6, Y1, Y3
	VPCLMULQDQ $0x00, Y6, Y12, Y14
	VPCLMULQDQ $0x11, Y6, Y1, Y5
	VPCLMULQDQ $0x11, Y6, Y12, Y15
	VPXOR      Y5, Y3, Y1
	VPXOR      Y15, Y14, Y12
	VPXOR      Y2, Y1, Y1
	VPXOR      Y13, Y12, Y12

	VPCLMULQDQ $0x01, Y1, Y6, Y0
	VPCLMULQDQ $0x01, Y12, Y6, Y4
	VPSRLDQ    $8, Y1, Y1
	VPSRLDQ    $8, Y12, Y12
	VPXOR      Y0, Y1, Y1
	VPXOR      Y4, Y12, Y12

	VPSRLDQ    $4, Y1, Y2
	VPSRLDQ    $4, Y12, Y13
	VPAND      Y9, Y1, Y1
	VPAND      Y9, Y12, Y12
	VPCLMULQDQ $0x00, Y7, Y1, Y1
	VPCLMULQDQ $0x00, Y7, Y12, Y12
	VPXOR      Y2, Y1, Y1
	VPXOR      Y13, Y12, Y12

	VMOVDQU    Y1, Y2
	VMOVDQU    Y12, Y13
	VPAND      Y9, Y1, Y1
	VPAND      Y9, Y12, Y12
	VPCLMULQDQ $0x10, Y8, Y1, Y1
	VPCLMULQDQ $0x10, Y8, Y12, Y12
	VPAND      Y9, Y1, Y1
	VPAND      Y9, Y12, Y12
	VPCLMULQDQ $0x00, Y8, Y1, Y1
	VPCLMULQDQ $0x00, Y8, Y12, Y12
	VPXOR      Y2, Y1, Y1
	VPXOR      Y13, Y12, Y12

	VPEXTRD      $1, X1, AX
	XORL         R10, AX
	MOVL         AX, (R11)
	VEXTRACTI128 $1, Y1, X3
	VPEXTRD      $1, X3, AX
	XORL         R10, AX
	MOVL         AX, 4(R11)
	VPEXTRD      $1, X12, AX
	XORL         R10, AX
	MOVL         AX, 8(R11)
	VEXTRACTI128 $1, Y12, X3
	VPEXTRD      $1, X3, AX
	XORL         R10, AX
	MOVL         AX, 12(R11)

	LEAQ (SI)(R13*2), SI
	ADDQ $16, R11
	SUBQ $2, R9
	CMPQ R9, $2
	JGE  loop4

done2:
	VZEROUPPER
	RET

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
