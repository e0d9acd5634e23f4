//go:build !amd64 || race

package bridge

import (
	"sync/atomic"
	"unsafe"
)

// publish stores a slot's stamp and then the head (atomic stores: release
// order on every architecture, and visible to the race detector), then
// prefetches the lines of next for writing.
func publish(stamp *uint32, sv uint32, head *uint64, hv uint64, next unsafe.Pointer, lines int) {
	atomic.StoreUint32(stamp, sv)
	atomic.StoreUint64(head, hv)
	for i := range lines {
		prefetchWrite(unsafe.Add(next, i*cacheLine))
	}
}
