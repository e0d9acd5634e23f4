package lane

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xlane/xlane/endhost/bridge"
	"github.com/xlane/xlane/endhost/wire"
)

// BenchmarkSendPeriodError measures how late each packet leaves against
// its schedule (one every 100 µs, messages always waiting), for a
// sleeping sender and for a pinned, polling one; b.N packets.
func BenchmarkSendPeriodError(b *testing.B) {
	for _, mode := range []string{"sleeping", "pinned-polling"} {
		b.Run(mode, func(b *testing.B) {
			sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			go func() { // drain, so the socket never pushes back
				buf := make([]byte, 2048)
				for {
					if _, err := sink.Read(buf); err != nil {
						return
					}
				}
			}()
			conn, err := net.DialUDP("udp4", nil, sink.LocalAddr().(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			ring, err := bridge.Create(filepath.Join(b.TempDir(), "tx"), 4096, 16)
			if err != nil {
				b.Fatal(err)
			}
			defer ring.Close()
			lags := make([]int64, 0, b.N)
			var sent atomic.Int64
			cfg := SenderConfig{Conn: conn, Schema: wire.HD6, Params: Params{PeriodNs: 100_000, Loadsize: 46}, NotBefore: time.Now(),
				Sources: []Source{{Ring: ring, Channel: 1}}, OnSend: func(s, a int64) { lags = append(lags, a-s); sent.Add(1) }}
			if mode == "pinned-polling" {
				cfg.BusyPoll = true
				if runtime.NumCPU() >= 2 {
					cfg.Core = &Core{CPU: runtime.NumCPU() - 1}
				}
			}
			snd, err := NewSender(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- snd.Run(ctx) }()
			msg := make([]byte, 16)
			for sent.Load() < int64(b.N) {
				for ring.Len() < 64 {
					ring.Push(msg, bridge.Meta{})
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			l := lags[1:] // the first packet waits for nothing
			slices.Sort(l)
			b.ReportMetric(float64(l[len(l)/2]), "p50-late-ns")
			b.ReportMetric(float64(l[len(l)*99/100]), "p99-late-ns")
			b.ReportMetric(float64(l[len(l)-1]), "max-late-ns")
		})
	}
}
