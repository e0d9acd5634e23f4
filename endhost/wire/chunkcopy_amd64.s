#include "textflag.h"

// func scatterChunks(dst, src *byte, chunks, cl, d int)
//
// Middle chunks of a message: chunk i (at dst + i·cl) gets descriptor d
// and the d bytes at src + i·d; two overlapping 16-byte moves each
// (16 ≤ d ≤ cl-1).
TEXT ·scatterChunks(SB), NOSPLIT, $0-40
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  chunks+16(FP), CX
	MOVQ  cl+24(FP), R8
	MOVQ  d+32(FP), R9
	TESTQ CX, CX
	JLE   sdone
sloop:
	MOVOU (SI), X0
	MOVOU -16(SI)(R9*1), X1
	MOVB  R9, (DI)
	MOVOU X0, 1(DI)
	MOVOU X1, -15(DI)(R9*1)
	ADDQ  R9, SI
	ADDQ  R8, DI
	DECQ  CX
	JNZ   sloop
sdone:
	RET

// func gatherChunks(dst, src *byte, chunks, cl, d int)
//
// The reverse: the d data bytes after the descriptor of each chunk at
// src + i·cl, to dst + i·d.
TEXT ·gatherChunks(SB), NOSPLIT, $0-40
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  chunks+16(FP), CX
	MOVQ  cl+24(FP), R8
	MOVQ  d+32(FP), R9
	TESTQ CX, CX
	JLE   gdone
gloop:
	MOVOU 1(SI), X0
	MOVOU -15(SI)(R9*1), X1
	MOVOU X0, (DI)
	MOVOU X1, -16(DI)(R9*1)
	ADDQ  R8, SI
	ADDQ  R9, DI
	DECQ  CX
	JNZ   gloop
gdone:
	RET
