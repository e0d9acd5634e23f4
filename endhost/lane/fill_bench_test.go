package lane

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
)

// BenchmarkFill is the sending lane's R-X path: full packets packed from
// four applications' rings (messages read in place, the rings taken in
// turn) and sealed. Refilling the rings is not timed.
func BenchmarkFill(b *testing.B) {
	for _, size := range []int{16, 64, 512} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			const apps, slots = 4, 1024
			var srcs []Source
			for i := range apps {
				r, err := bridge.Create(filepath.Join(b.TempDir(), fmt.Sprint("app", i)), slots, size)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { r.Close() })
				srcs = append(srcs, Source{Ring: r, Channel: uint16(i)})
			}
			msg := make([]byte, size)
			refill := func() {
				for _, s := range srcs {
					for s.Ring.Push(msg, bridge.Meta{}) {
					}
				}
			}
			p, err := wire.NewPacker(wire.HD6, make([]byte, 2048), wire.HD6.MaxChunks(wire.MTU))
			if err != nil {
				b.Fatal(err)
			}
			var f Filler
			refill()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			msgs := 0
			for b.Loop() {
				p.Reset(wire.Header{})
				n := f.Fill(p, srcs)
				p.Packet()
				msgs += n
				if srcs[0].Ring.Len() < 128 {
					b.StopTimer()
					refill()
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds()/1e6, "M-msgs/s")
			b.SetBytes(int64(size * msgs / b.N))
		})
	}
}
