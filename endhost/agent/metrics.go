package agent

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

func portLabel(p uint16) string { return strconv.Itoa(int(p)) }

// Collector exposes the lanes' counters to Prometheus (xlane_endhost_*),
// read from the lanes' snapshots at each scrape.
func (a *Agent) Collector() prometheus.Collector { return collector{a} }

type collector struct{ a *Agent }

var (
	descSent     = prometheus.NewDesc("xlane_endhost_lane_packets_sent_total", "Packets a lane sent.", []string{"lane"}, nil)
	descMsgSent  = prometheus.NewDesc("xlane_endhost_lane_messages_sent_total", "Messages a lane packed and sent.", []string{"lane"}, nil)
	descSendErr  = prometheus.NewDesc("xlane_endhost_lane_send_errors_total", "Packets a lane's socket refused.", []string{"lane"}, nil)
	descTooLarge = prometheus.NewDesc("xlane_endhost_lane_messages_too_large_total", "Messages dropped: larger than the lane's packets.", []string{"lane"}, nil)
	descRecv     = prometheus.NewDesc("xlane_endhost_receive_packets_total", "X-Lane packets received.", []string{"port"}, nil)
	descMsgRecv  = prometheus.NewDesc("xlane_endhost_receive_messages_total", "Messages handed to applications.", []string{"port"}, nil)
	descDropped  = prometheus.NewDesc("xlane_endhost_receive_dropped_total", "Messages not delivered, by cause.", []string{"port", "cause"}, nil)
	descTunnel   = prometheus.NewDesc("xlane_endhost_lane_tunnel", "The tunnel id a lane sends on (0: none).", []string{"lane"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSent, descMsgSent, descSendErr, descTooLarge, descRecv, descMsgRecv, descDropped, descTunnel} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, l := range c.a.laneList() {
		if l.sender == nil {
			continue
		}
		s := l.sender.Snapshot()
		counter(descSent, s.Packets, l.cfg.Name)
		counter(descMsgSent, s.Messages, l.cfg.Name)
		counter(descSendErr, s.SendErrors, l.cfg.Name)
		counter(descTooLarge, s.Fill.TooLarge, l.cfg.Name)
		c.a.mu.Lock()
		id := l.tunnel
		c.a.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(descTunnel, prometheus.GaugeValue, float64(id), l.cfg.Name)
	}
	for i, r := range c.a.recvs {
		port := portLabel(c.a.cfg.Receive[i].Port)
		s := r.Snapshot()
		counter(descRecv, s.Packets, port)
		counter(descMsgRecv, s.Messages, port)
		for cause, v := range map[string]uint64{"ring_full": s.RingFull, "no_application": s.NoSink,
			"corrupt": s.Wire.DroppedMessages, "bad_packet": s.Wire.Bad} {
			counter(descDropped, v, port, cause)
		}
	}
}
