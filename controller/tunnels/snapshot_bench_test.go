package tunnels

import "testing"

// BenchmarkScrapeReads10k is what a metrics scrape asks of a controller
// holding 10,000 tunnels on a k=16 fat-tree (6,144 links): each tunnel's
// bound (Snapshot) and each link's reservation (Links). Admissions wait
// for the controller's lock while these hold it.
func BenchmarkScrapeReads10k(b *testing.B) {
	c, _ := fatTreeWith(b, 16, 10_000)
	for name, read := range map[string]func(){
		"Snapshot": func() { _ = c.Snapshot() },
		"Links":    func() { _ = c.Links() },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				read()
			}
		})
	}
}
