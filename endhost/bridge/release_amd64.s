//go:build amd64 && !race

#include "textflag.h"

// func publish(stamp *uint32, sv uint32, head *uint64, hv uint64, next unsafe.Pointer, lines int)
TEXT ·publish(SB), NOSPLIT, $0-48
	MOVQ stamp+0(FP), AX
	MOVL sv+8(FP), BX
	MOVQ head+16(FP), CX
	MOVQ hv+24(FP), DX
	MOVL BX, (AX)
	MOVQ DX, (CX)
	MOVQ next+32(FP), AX
	MOVQ lines+40(FP), CX
	TESTQ CX, CX
	JZ done
loop:
	BYTE $0x0f; BYTE $0x0d; BYTE $0x08 // PREFETCHW (AX)
	ADDQ $64, AX
	DECQ CX
	JNZ loop
done:
	RET
