package ovs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xlane/xlane/testbed/ovs/ovstest"
)

// TestRestartVswitchd kills ovs-vswitchd as a crash would and starts it
// again; the bridges come back from the database.
func TestRestartVswitchd(t *testing.T) {
	inst := ovstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := inst.Vsctl(ctx, "add-br", "xlr0", "--", "set", "bridge", "xlr0", "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	if err := inst.StopVswitchd(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Appctl(ctx, "version"); err == nil {
		t.Fatal("ovs-vswitchd still answers after being killed")
	}
	if err := inst.StartVswitchd(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := inst.Ofctl(ctx, "show", "xlr0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "LOCAL(xlr0)") {
		t.Errorf("bridge not back after restart:\n%s", out)
	}
}
