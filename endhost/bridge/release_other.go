//go:build !amd64 || race

package bridge

import "sync/atomic"

// storeRelease32 publishes v at p (an atomic store: release order on
// every architecture, and visible to the race detector).
func storeRelease32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }

// storeRelease64 is storeRelease32 for a 64-bit word.
func storeRelease64(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
