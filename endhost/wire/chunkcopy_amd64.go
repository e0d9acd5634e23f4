package wire

//go:noescape
func gatherChunks(dst, src *byte, chunks, cl, d int)

func gatherAsm(dst, src []byte, chunks, cl, d int) {
	gatherChunks(&dst[0], &src[0], chunks, cl, d)
}
