package te_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/te/tetest"
)

// A receiver listed twice is refused by its index, in a short list
// (checked by scanning) and a long one (checked with a map) alike.
func TestDuplicateReceiverIsAFieldError(t *testing.T) {
	topo, hosts := tetest.FatTree(t, 6)
	for _, n := range []int{3, 40} {
		rcv := append([]string{}, hosts[1:n]...)
		rcv = append(rcv, hosts[n/2])
		_, _, err := te.NewEngine(topo).Admit(te.Request{Sender: hosts[0], Receivers: rcv, LoadsizeBytes: 100, PeriodNs: 1_000_000})
		var fe *te.FieldError
		if !errors.As(err, &fe) || fe.Field != "receivers["+strconv.Itoa(n-1)+"]" {
			t.Fatalf("%d receivers, one twice: %v, want a field error on receivers[%d]", n, err, n-1)
		}
		if _, _, err := te.NewEngine(topo).Admit(te.Request{Sender: hosts[0], Receivers: rcv[:n-1], LoadsizeBytes: 100, PeriodNs: 1_000_000}); err != nil {
			t.Fatalf("%d distinct receivers: %v", n-1, err)
		}
	}
}
