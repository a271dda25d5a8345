package conntrack

import (
	"runtime"
	"testing"
	"unsafe"
)

// TestExtPoolNoGrowth: the record pool is reserved for every flow when
// the table is made, so making unanswered flows (each holding a record)
// allocates nothing however many, and on Linux only the pages of the
// records handed out are resident.
func TestExtPoolNoGrowth(t *testing.T) {
	const n = 1 << 16
	tb := New(n, 0, 0)
	reserved, resident := tb.ExtMemory()
	size := int(unsafe.Sizeof(flowExt{}))
	if reserved < (n+1)*size {
		t.Fatalf("%d bytes reserved for %d records of %d", reserved, n, size)
	}
	// Each run makes more flows than the 1024 records the pool grew by
	// at once (AllocsPerRun rounds one in a thousand flows to 0).
	i := 0
	allocs := testing.AllocsPerRun(3, func() {
		for range extTestStep {
			if _, err := tb.Insert(tup(i, 0), tup(i, 1), [4]byte{10, 0, 0, 1}, 0, 1000*ms); err != nil {
				t.Fatal(err)
			}
			i++
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations making %d unanswered flows", allocs, extTestStep)
	}
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
	_, after := tb.ExtMemory()
	if runtime.GOOS == "linux" {
		held := (i + 1) * size
		if grew := after - resident; grew < held || grew > held+2*4096 {
			t.Fatalf("resident %d -> %d bytes for %d records (%d bytes)", resident, after, i, held)
		}
	}
}

const extTestStep = 1500
