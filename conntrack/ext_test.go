package conntrack

import (
	"math/bits"
	"math/rand/v2"
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

// TestTagIndexDelete checks TagIndex against a model: keys in a slab,
// inserted and deleted at random in an index kept near its fullest (so
// runs are long and Delete's backward shift moves slots, hashing their
// keys from the slab), each live key found with its value, each deleted
// one not.
func TestTagIndexDelete(t *testing.T) {
	const n = 512
	x := NewTagIndex(n)
	slab := make([]Key, n)
	live := map[uint32]bool{}
	hashOf := func(v uint32) uint64 { return x.Hash(slab[v]) }
	r := rand.New(rand.NewPCG(3, 4))
	next := uint64(0)
	for step := range 20000 {
		v := uint32(r.IntN(n))
		if live[v] {
			if r.IntN(4) != 0 {
				continue // four inserts to a delete: some 80% live
			}
			x.Delete(x.Hash(slab[v]), v, hashOf)
			delete(live, v)
		} else if len(live) < n {
			next++
			slab[v] = Key{A: next, B: next * 7}
			if !x.Insert(x.Hash(slab[v]), v) {
				t.Fatalf("step %d: insert %d refused", step, v)
			}
			live[v] = true
		}
		if step%97 != 0 {
			continue
		}
		if x.Len() != len(live) {
			t.Fatalf("step %d: Len %d, %d live", step, x.Len(), len(live))
		}
		for w := range uint32(n) {
			got, ok := x.Find(x.Hash(slab[w]), func(u uint32) bool { return slab[u] == slab[w] })
			if ok != live[w] || ok && got != w {
				t.Fatalf("step %d: key of %d found %v as %d, live %v", step, w, ok, got, live[w])
			}
		}
	}
}

// TestTagIndexAdversarial checks TagIndex against a model with hashes
// chosen to collide: a few home slots astride the end of the slots (runs
// wrap), two tags, the index at its capacity and runs past maxProbe (an
// Insert refused must change nothing). Every step checks every key.
func TestTagIndexAdversarial(t *testing.T) {
	for _, tc := range []struct {
		n, homes, tags int
	}{{64, 4, 1}, {64, 3, 2}, {512, 2, 2}, {512, 16, 1}, {1000, 40, 3}} {
		x := NewTagIndex(tc.n)
		mask := uint64(len(x.slots) - 1)
		hash := make([]uint64, tc.n)
		live := map[uint32]bool{}
		hashOf := func(v uint32) uint64 {
			if !live[v] {
				t.Fatalf("hash asked of %d, not in the index", v)
			}
			return hash[v]
		}
		r := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.homes)))
		for step := range 6000 {
			v := uint32(r.IntN(tc.n))
			if live[v] {
				if r.IntN(3) == 0 {
					x.Delete(hash[v], v, hashOf)
					delete(live, v)
				}
			} else {
				home := (mask - uint64(tc.homes/2) + uint64(r.IntN(tc.homes)) + 1) & mask
				h := uint64(r.IntN(tc.tags))<<56 | uint64(r.Uint32())<<uint(bits.Len64(mask))&(1<<56-1) | home
				if h&mask != home {
					t.Fatal("bad test hash")
				}
				hash[v] = h
				if x.Insert(h, v) {
					live[v] = true
				}
			}
			if x.Len() != len(live) {
				t.Fatalf("%+v step %d: Len %d, %d live", tc, step, x.Len(), len(live))
			}
			if step%7 != 0 && step < 5000 {
				continue
			}
			for w := range uint32(tc.n) {
				got, ok := x.Find(hash[w], func(u uint32) bool { return u == w })
				if ok != live[w] || ok && got != w {
					t.Fatalf("%+v step %d: %d found %v as %d, live %v", tc, step, w, ok, got, live[w])
				}
				if ok {
					// Within maxProbe of its home, where Find looks.
					at := uint64(0)
					for i := range x.slots {
						if x.slots[i]&slotValue == w+1 {
							at = uint64(i)
						}
					}
					if d := (at - hash[w]) & mask; d > maxProbe {
						t.Fatalf("%+v step %d: %d at %d from its home", tc, step, w, d)
					}
				}
			}
		}
	}
}
