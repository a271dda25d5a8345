package router

import (
	"slices"
	"testing"

	"passgate/dataplane/nicfeat"
)

// TestRxOffloadStates: what status shows for each thing the router found
// and did at start.
func TestRxOffloadStates(t *testing.T) {
	r := &Router{rxOff: []nicfeat.Change{
		{Iface: "lan0", Feature: "rx-gro", Before: true, After: false, Changed: true},
		{Iface: "lan0", Feature: "rx-gro-list"},
		{Iface: "lan0", Feature: "rx-lro", Fixed: true},
		{Iface: "wan0", Feature: "rx-lro", Before: true, After: true, Fixed: true},
		{Iface: "wan0", Feature: "rx-gro", Before: true, After: true}, // kept, or refused
	}}
	want := []RxOffload{
		{"lan0", "rx-gro", "turned off"},
		{"lan0", "rx-gro-list", "off"},
		{"lan0", "rx-lro", "off"},
		{"wan0", "rx-lro", "fixed on"},
		{"wan0", "rx-gro", "on"},
	}
	if got := r.RxOffloads(); !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
