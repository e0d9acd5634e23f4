package topogen

import (
	"testing"

	"github.com/xlane/xlane/controller/te"
)

func TestFatTreeShape(t *testing.T) {
	for _, k := range []int{2, 4, 8} {
		spec, err := FatTree(k, Defaults())
		if err != nil {
			t.Fatal(err)
		}
		topo, err := te.NewTopology(spec)
		if err != nil {
			t.Fatalf("k=%d: %v", k, err)
		}
		hosts, switches := 0, 0
		for _, n := range topo.Nodes {
			if n.Kind == te.KindHost {
				hosts++
			} else {
				switches++
			}
		}
		// k³/4 hosts, 5k²/4 switches, 3k³/4 cables = 3k³/2 directed links.
		if hosts != k*k*k/4 || switches != 5*k*k/4 || len(topo.Links) != 3*k*k*k/2 {
			t.Fatalf("k=%d: %d hosts, %d switches, %d links", k, hosts, switches, len(topo.Links))
		}
	}
	if _, err := FatTree(3, Defaults()); err == nil {
		t.Fatal("odd k accepted")
	}
}

func TestLeafSpineShape(t *testing.T) {
	spec, err := LeafSpine(4, 2, 3, Defaults())
	if err != nil {
		t.Fatal(err)
	}
	topo, err := te.NewTopology(spec)
	if err != nil {
		t.Fatal(err)
	}
	// 4×2 leaf-spine cables + 12 host cables = 20 cables = 40 links.
	if len(topo.Nodes) != 4+2+12 || len(topo.Links) != 40 {
		t.Fatalf("%d nodes, %d links", len(topo.Nodes), len(topo.Links))
	}
	if _, err := LeafSpine(0, 2, 3, Defaults()); err == nil {
		t.Fatal("zero leaves accepted")
	}
}
