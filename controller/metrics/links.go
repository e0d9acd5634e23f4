package metrics

import (
	"cmp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xlane/xlane/controller/tunnels"
)

// The per-link gauges. A k=16 fat-tree has 6,144 links, three series
// each: made as constant metrics and gathered through the registry, which
// labels, checks and sorts every series again at every scrape, a scrape
// cost the daemon 35 ms of CPU and 16 MB of garbage beside its
// admissions. They are built here as metric families instead, from label
// pairs made once; topology validation keeps link names unique, which is
// all the registry's check would add.
var linkFamilies = []struct {
	name, help string
	value      func(tunnels.LinkUse) float64
}{
	{"xlane_link_express_queue_reserved_bytes", "Egress buffer reserved on a link by express tunnels (≈-validity), bytes.",
		func(u tunnels.LinkUse) float64 { return float64(u.QueueReserve) }},
	{"xlane_link_express_reserved_bps", "Express rate reserved on a link (at requested periods), bit/s.",
		func(u tunnels.LinkUse) float64 { return u.ReservedBps }},
	{"xlane_link_express_utilization", "Reserved express rate over the express share of the link (0 to 1).",
		func(u tunnels.LinkUse) float64 {
			if u.CapacityBps > 0 {
				return u.ReservedBps / u.CapacityBps
			}
			return 0
		}},
}

// linkGatherer adds the link families to what the registry gathers.
type linkGatherer struct {
	reg *prometheus.Registry
	ctl func() *tunnels.Controller // nil until Watch

	mu     sync.Mutex
	names  []string // the links the labels were made for, by link id
	labels [][]*dto.LabelPair
	order  []int // link ids by name, the order the text is written in
}

func (g *linkGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.reg.Gather()
	ctl := g.ctl()
	if ctl == nil {
		return mfs, err
	}
	links := ctl.Links()
	labels, order := g.label(links)
	for _, f := range linkFamilies {
		ms := make([]dto.Metric, len(links))
		gs := make([]dto.Gauge, len(links))
		vs := make([]float64, len(links))
		mf := &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: dto.MetricType_GAUGE.Enum(), Metric: make([]*dto.Metric, len(links))}
		for j, i := range order {
			vs[j] = f.value(links[i])
			gs[j].Value = &vs[j]
			ms[j].Label, ms[j].Gauge = labels[i], &gs[j]
			mf.Metric[j] = &ms[j]
		}
		mfs = append(mfs, mf)
	}
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return mfs, err
}

// label returns each link's label pair and the link ids in name order,
// made again only when the links are not those of the last scrape. The
// pairs are shared by every scrape's metrics and never changed.
func (g *linkGatherer) label(links []tunnels.LinkUse) ([][]*dto.LabelPair, []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if slices.EqualFunc(g.names, links, func(n string, u tunnels.LinkUse) bool { return n == u.Link }) {
		return g.labels, g.order
	}
	g.names = make([]string, len(links))
	g.labels = make([][]*dto.LabelPair, len(links))
	g.order = make([]int, len(links))
	name := "link"
	for i, u := range links {
		v := u.Link
		g.names[i], g.order[i] = v, i
		g.labels[i] = []*dto.LabelPair{{Name: &name, Value: &v}}
	}
	slices.SortFunc(g.order, func(a, b int) int { return cmp.Compare(g.names[a], g.names[b]) })
	return g.labels, g.order
}
