package alg_test

import (
	"testing"

	"passgate/alg"
)

// The list people read says what the helpers do: every entry's name and
// default are its helper's own, and the names are unique.
func TestAllMatchesTheHelpers(t *testing.T) {
	seen := map[string]bool{}
	for i, a := range alg.All() {
		h := alg.Helpers()[i]
		if h.Name() != a.Name || h.DefaultOn() != a.DefaultOn {
			t.Errorf("entry %q (default %v) makes helper %q (default %v)", a.Name, a.DefaultOn, h.Name(), h.DefaultOn())
		}
		if seen[a.Name] || a.Label == "" || a.Description == "" || (a.Kind != alg.Passthrough && a.Kind != alg.Gateway) {
			t.Errorf("entry %+v", a)
		}
		seen[a.Name] = true
	}
	if got, _ := alg.ByName("pptp"); got.Warning == "" {
		t.Error("PPTP lost its warning")
	}
}
