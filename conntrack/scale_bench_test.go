package conntrack

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// scaleTuples are n distinct flows' tuples (original, reply): a LAN host
// address per flow, random remote endpoints, a distinct outside endpoint
// per flow, in random order.
func scaleTuples(n int) (orig, reply []Tuple) {
	r := rand.New(rand.NewPCG(5, 6))
	orig, reply = make([]Tuple, n), make([]Tuple, n)
	for i := range orig {
		remote := [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		rport := uint16(r.Uint32())
		orig[i] = Tuple{Src: [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}, Dst: remote, SrcID: uint16(r.Uint32()), DstID: rport, Proto: 17}
		reply[i] = Tuple{Src: remote, Dst: [4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}, SrcID: rport, DstID: uint16(i), Proto: 17, Side: 1}
	}
	return orig, reply
}

// fillTable makes a table of n flows, all live.
func fillTable(tb testing.TB, n int, orig, reply []Tuple) *Table {
	t := New(n, 0, 0)
	for i := range orig {
		if _, err := t.Insert(orig[i], reply[i], [4]byte{}, 0, 1<<40); err != nil {
			tb.Fatalf("flow %d: %v", i, err)
		}
	}
	return t
}

// BenchmarkLookupLive looks up flows of a full table of 1 k, 64 k and
// 1 M live flows, both directions, in random order: the cost of a lookup
// should not grow with the table.
func BenchmarkLookupLive(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 16, 1 << 20} {
		b.Run(fmt.Sprintf("flows=%s", sizeName(n)), func(b *testing.B) {
			orig, reply := scaleTuples(n)
			t := fillTable(b, n, orig, reply)
			keys := make([]Tuple, 0, 2*n)
			keys = append(append(keys, orig...), reply...)
			rand.New(rand.NewPCG(7, 8)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id, _, ok := t.Lookup(keys[i%len(keys)])
				if !ok {
					b.Fatal("lost a flow")
				}
				// What a packet does next: read the flow.
				if t.Get(id).Deadline == 0 {
					b.Fatal("no deadline")
				}
			}
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dk", n>>10)
	}
	return fmt.Sprint(n)
}

// heapBytes is the live heap after a collection.
func heapBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// tableBytesPerFlow is what a full table of n flows takes, per flow,
// each answered (Replied) as it is made, or none.
func tableBytesPerFlow(tb testing.TB, n int, answered bool) float64 {
	orig, reply := scaleTuples(n)
	before := heapBytes()
	t := New(n, 0, 0)
	for i := range orig {
		id, err := t.Insert(orig[i], reply[i], [4]byte{}, 0, 1<<40)
		if err != nil {
			tb.Fatalf("flow %d: %v", i, err)
		}
		if answered {
			// Answered as it is made, as a connection is (its record
			// for the early-drop lists goes back at once).
			t.Replied(id)
		}
	}
	after := heapBytes()
	// The record pool is address space apart from the heap (reserveExt):
	// its resident pages count.
	_, resident := t.ExtMemory()
	runtime.KeepAlive(t)
	runtime.KeepAlive(orig)
	runtime.KeepAlive(reply)
	return (float64(after-before) + float64(resident)) / float64(n)
}

// BenchmarkMemoryPerFlow reports what a full table of 1 M flows takes per
// flow and in all (the flows, their TCP sequence state, their index):
// flows that have seen a reply, and flows that have not (each holds its
// early-drop lists' record too: a table full of half-open connections).
func BenchmarkMemoryPerFlow(b *testing.B) {
	const n = 1 << 20
	for _, answered := range []bool{true, false} {
		b.Run(map[bool]string{true: "answered", false: "unanswered"}[answered], func(b *testing.B) {
			var per float64
			for i := 0; i < b.N; i++ {
				per = tableBytesPerFlow(b, n, answered)
			}
			b.ReportMetric(per, "bytes/flow")
			b.ReportMetric(per*n/(1<<20), "MB/1M-flows")
		})
	}
}

// TestMemoryPerFlow: a full table of answered flows takes at most 184
// bytes a flow (the flow 128, its TCP state 32, its index 16, the huge
// pages' alignment), leaving the NAT's mapper room within 256 bytes a
// flow, so 1 M flows fit in 256 MB; unanswered ones at most 48 bytes
// more (their records) (measured on 64 k flows: the table's parts are all per flow, so
// it scales).
func TestMemoryPerFlow(t *testing.T) {
	for _, c := range []struct {
		answered bool
		most     float64
	}{{true, 184}, {false, 232}} {
		if per := tableBytesPerFlow(t, 1<<16, c.answered); per > c.most {
			t.Errorf("answered %v: %.0f bytes a flow, want at most %.0f", c.answered, per, c.most)
		} else {
			t.Logf("answered %v: %.0f bytes a flow", c.answered, per)
		}
	}
}
