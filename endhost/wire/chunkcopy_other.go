//go:build !amd64

package wire

func scatterAsm(dst, src []byte, chunks, cl, d int) { scatterGo(dst, src, chunks, cl, d) }

func gatherAsm(dst, src []byte, chunks, cl, d int) { gatherGo(dst, src, chunks, cl, d) }

const haveChunkCopy = false
