package wire

// scatter writes the middle chunks of a message: chunk i of dst (cl
// bytes apart) gets descriptor d (full, neither first nor last) and the
// next d bytes of src. dst must hold chunks·cl bytes and src chunks·d.
// (On amd64 Add writes middle chunks itself; this serves addSpan, Add's
// model and its path elsewhere.)
func scatter(dst, src []byte, chunks, cl, d int) {
	for i := range chunks {
		c := dst[i*cl : (i+1)*cl]
		c[0] = byte(d)
		copy(c[1:1+d], src[i*d:])
	}
}

// gather is the reverse: the data bytes of chunks full chunks of src, in
// a row into dst (chunks·d bytes).
func gather(dst, src []byte, chunks, cl, d int) {
	if chunks <= 0 {
		return
	}
	if len(src) < chunks*cl || len(dst) < chunks*d || d >= cl {
		panic("wire: gather beyond its buffers")
	}
	if d >= 16 {
		gatherAsm(dst, src, chunks, cl, d)
		return
	}
	gatherGo(dst, src, chunks, cl, d)
}

func gatherGo(dst, src []byte, chunks, cl, d int) {
	for i := range chunks {
		copy(dst[i*d:(i+1)*d], src[i*cl+1:])
	}
}
