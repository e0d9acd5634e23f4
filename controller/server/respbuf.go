package server

import (
	"slices"
	"sync"
)

// Watch responses go out from buffers that gRPC gives back once it has
// written them (mem.NewBuffer with a pool): a response per service per
// commit, each a fresh buffer and two boxed slices before — some twenty
// allocations an admission at saturation, memory the allocator had to
// clear and the caches had to fetch.

// minResponseBuffer is the smallest buffer handed to gRPC: it pools only
// buffers above 1 KiB (mem.IsBelowBufferPoolingThreshold) and copies none.
const minResponseBuffer = 2 << 10

// responseBuffers is a mem.BufferPool of response buffers.
type responseBuffers struct{ p sync.Pool }

// Get returns a buffer of length n, reused when one is free.
func (rb *responseBuffers) Get(n int) *[]byte {
	if b, ok := rb.p.Get().(*[]byte); ok {
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	}
	b := make([]byte, n, max(n, minResponseBuffer))
	return &b
}

// Put takes a buffer back.
func (rb *responseBuffers) Put(b *[]byte) { rb.p.Put(b) }

// pooledResponse is an encoded watch response in a buffer of pool: the
// codec hands both to gRPC, which puts the buffer back after writing it.
// One per stream, reused: the codec reads it inside SendMsg.
type pooledResponse struct {
	buf  *[]byte
	pool *responseBuffers
}

// encodeInto writes b as a WatchResponse into a buffer of pool.
func (b *batch) encodeInto(r *pooledResponse) {
	const perUpcall = 64 // a BandwidthChanged is 50–60 bytes
	buf := r.pool.Get(0)
	*buf = appendWatchResponse(slices.Grow((*buf)[:0], perUpcall*len(b.ups)), b.ups)
	r.buf = buf
}
