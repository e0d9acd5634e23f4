package southbound

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

func TestPackedRoutesRoundTrip(t *testing.T) {
	in := []Route{
		{Dst: netip.MustParsePrefix("10.0.1.2/32"), Out: 3},
		{Dst: netip.MustParsePrefix("10.0.0.0/8"), Out: 1},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Out: 7},
		{Dst: netip.MustParsePrefix("::ffff:10.0.0.1/128"), Out: 2}, // a mapped v6 address stays v6
		{Dst: netip.MustParsePrefix("2001:db8::/32"), Out: 9},
		{Out: 5}, // no prefix
	}
	got := PackRoutes(in).Unpack()
	if !slices.Equal(got, in) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, in)
	}
	if PackRoutes(nil).Unpack() != nil {
		t.Fatal("nil routes did not stay nil")
	}
	if rt := reflect.TypeFor[packedRoute](); hasPointers(rt) {
		t.Fatalf("%v holds pointers: the collector would scan it", rt)
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}
