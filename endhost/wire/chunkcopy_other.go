//go:build !amd64

package wire

func gatherAsm(dst, src []byte, chunks, cl, d int) { gatherGo(dst, src, chunks, cl, d) }
