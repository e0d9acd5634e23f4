//go:build amd64 && !race

package bridge

import "unsafe"

// publish stores a slot's stamp and then the head, then asks for lines
// cache lines from next for writing (PREFETCHW): one call for what a push
// does after filling its slot. On amd64 every store is a release store
// (TSO); Go's atomic Store is an XCHG, a full fence that waits for the
// store buffer to drain — for a ring whose slot lines the other core
// holds, one cross-core round trip per message. The call keeps the
// compiler from moving the slot's earlier writes after it. Under the race
// detector atomic Stores are used instead (release_other.go).
//
//go:noescape
func publish(stamp *uint32, sv uint32, head *uint64, hv uint64, next unsafe.Pointer, lines int)
