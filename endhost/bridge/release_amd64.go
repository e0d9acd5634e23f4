//go:build amd64 && !race

package bridge

// storeRelease32 publishes v at p. On amd64 every store is a release
// store (TSO); Go's atomic Store is an XCHG, a full fence that waits for
// the store buffer to drain — for a ring whose slot lines the other core
// holds, one cross-core round trip per message. The call keeps the
// compiler from moving the slot's earlier writes after it. Under the race
// detector the atomic Store is used instead (release_other.go).
//
//go:noescape
func storeRelease32(p *uint32, v uint32)

// storeRelease64 is storeRelease32 for a 64-bit word.
//
//go:noescape
func storeRelease64(p *uint64, v uint64)
