#include "textflag.h"

// func gatherChunks(dst, src *byte, chunks, cl, d int)
//
// The data of full chunks: the d bytes after the descriptor of each chunk at
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
