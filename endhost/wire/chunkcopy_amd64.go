package wire

//go:noescape
func scatterChunks(dst, src *byte, chunks, cl, d int)

//go:noescape
func gatherChunks(dst, src *byte, chunks, cl, d int)

func scatterAsm(dst, src []byte, chunks, cl, d int) {
	scatterChunks(&dst[0], &src[0], chunks, cl, d)
}

func gatherAsm(dst, src []byte, chunks, cl, d int) {
	gatherChunks(&dst[0], &src[0], chunks, cl, d)
}

const haveChunkCopy = true
