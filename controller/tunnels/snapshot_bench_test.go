package tunnels

import "testing"

// BenchmarkSnapshot10k and BenchmarkLinks10k are what a metrics scrape
// asks of a controller holding 10,000 tunnels on a k=16 fat-tree (6,144
// links); admissions wait for the controller's lock while they hold it.
func BenchmarkSnapshot10k(b *testing.B) {
	c, _ := fatTreeWith(b, 16, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = c.Snapshot()
	}
}

func BenchmarkLinks10k(b *testing.B) {
	c, _ := fatTreeWith(b, 16, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = c.Links()
	}
}
