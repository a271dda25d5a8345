package packet

import (
	"math/rand/v2"
	"testing"
)

// TestValidChecksumFast: the option-less header's sum at once answers as
// Sum does, on random headers, right and wrong checksums alike.
func TestValidChecksumFast(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	h := make(IPv4, IPv4MinHeader)
	valid := 0
	for i := 0; i < 200000; i++ {
		for j := range h {
			h[j] = byte(r.Uint32())
			if r.IntN(8) == 0 {
				h[j] = 0xff
			}
		}
		h[0] = 0x45
		if i%2 == 0 {
			h.ComputeChecksum()
		}
		want := Fold(Sum(h, 0)) == 0
		if got := h.ValidChecksum(); got != want {
			t.Fatalf("% x: ValidChecksum %v, Sum says %v", []byte(h), got, want)
		}
		if want {
			valid++
		}
	}
	if valid < 100000 {
		t.Fatalf("only %d valid headers", valid)
	}
}
