package conntrack

import (
	"math/bits"
	"math/rand/v2"
)

// Index maps tuples to 32-bit values (the NAT mapper keys its mappings
// and filters by tuples, the helpers their ids; the flow table has an
// index of its own on the same lines, flowIndex). It is an
// open-addressing table with linear probing and backward-shift deletion
// (no tombstones), sized once to keep the load under one half: a lookup is
// a hash of two words and, almost always, one cache line. Go's map hashes
// the 14-byte key with a generic routine that costs more than the rest of
// the lookup.
//
// The hash is keyed with a random key per index, drawn when it is made:
// where a tuple lands cannot be computed from outside, so a host choosing
// its ports (or forging addresses) cannot pile its keys into one probe run
// and make everyone's lookups there slow. Probe runs are bounded too: a
// key whose run would pass maxProbe slots is refused (Add reports it, the
// flow table counts the flow as not made), so a lookup never walks further.
type Index struct {
	slots []slot
	mask  uint64
	n     int
	key   [2]uint64
	// most is the size the index grows to (NewGrowingIndex); an index
	// NewIndex made has it from the start.
	most int
}

// maxProbe bounds how far from its home slot a key may lie. With a random
// key and the load kept under one half, a run that long comes once in
// about 10^11 inserts; nothing but a broken hash reaches it.
const maxProbe = 128

type slot struct {
	key  Tuple
	used bool
	val  uint32
}

// NewIndex makes an index for at most entries keys.
func NewIndex(entries int) *Index { return NewGrowingIndex(entries, entries) }

// NewGrowingIndex makes an index for at most entries keys that starts
// with room for first of them and doubles when a key more would fill
// it past one half, up to NewIndex(entries)'s size: for keys that only
// some flows make (the helpers'), so that their room for the worst case
// is not memory held for every flow. Growing rehashes every key, so an
// insert that grows it costs time in proportion to the keys held, and
// allocates; it happens only when the index holds more keys than ever
// before, each time twice as many.
func NewGrowingIndex(entries, first int) *Index {
	most := indexSize(entries)
	size := min(indexSize(first), most)
	// math/rand/v2's global source is seeded by the runtime from the
	// system's randomness: the key is unpredictable and differs per index
	// and per process.
	return &Index{slots: hugeSlice[slot](size), mask: uint64(size - 1), key: [2]uint64{rand.Uint64(), rand.Uint64()}, most: most}
}

// indexSize is the slots an index of entries keys has: a power of two,
// at least twice entries.
func indexSize(entries int) int { return 1 << bits.Len(uint(max(entries, 1)*2-1)) }

// grow doubles the slots, each key put again in the new ones.
func (x *Index) grow() {
	old := x.slots
	size := 2 * len(old)
	x.slots, x.mask = hugeSlice[slot](size), uint64(size-1)
	for i := range old {
		if s := &old[i]; s.used {
			j := tupleHash(&x.key, &s.key) & x.mask
			for x.slots[j].used {
				j = (j + 1) & x.mask
			}
			x.slots[j] = *s
		}
	}
}

// hash is where k lands (tupleHash under the index's key).
func (x *Index) hash(k *Tuple) uint64 { return tupleHash(&x.key, k) }

// Get finds k.
func (x *Index) Get(k Tuple) (uint32, bool) {
	i := tupleHash(&x.key, &k) & x.mask
	for n := 0; n <= maxProbe; n++ {
		s := &x.slots[i]
		if !s.used {
			return 0, false
		}
		if s.key == k {
			return s.val, true
		}
		i = (i + 1) & x.mask
	}
	return 0, false
}

// Put inserts or replaces. The table never fills as long as the owner
// keeps to the entries it asked for: it has twice that room. It reports
// false, changing nothing, when k's probe run would pass maxProbe.
func (x *Index) Put(k Tuple, v uint32) bool {
	p, _, ok := x.upsert(k)
	if ok {
		*p = v
	}
	return ok
}

// Del removes k if present.
func (x *Index) Del(k Tuple) {
	i := tupleHash(&x.key, &k) & x.mask
	for n := 0; ; n++ {
		s := &x.slots[i]
		if !s.used || n > maxProbe {
			return
		}
		if s.key == k {
			break
		}
		i = (i + 1) & x.mask
	}
	// Backward shift: pull later entries of the probe run into the hole
	// when their home slot allows it, so lookups never need tombstones.
	for j := (i + 1) & x.mask; ; j = (j + 1) & x.mask {
		s := &x.slots[j]
		if !s.used {
			break
		}
		home := tupleHash(&x.key, &s.key) & x.mask
		if (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = *s
			i = j
		}
	}
	x.slots[i] = slot{}
	x.n--
}

// Add inserts k if absent. It reports ErrExists when k is there, and
// ErrProbe, changing nothing, when k's probe run would pass maxProbe.
func (x *Index) Add(k Tuple, v uint32) error {
	p, found, ok := x.upsert(k)
	switch {
	case !ok:
		return ErrProbe
	case found:
		return ErrExists
	}
	*p = v
	return nil
}

// ErrProbe is Add's answer for a key whose probe run would be too long.
var ErrProbe = errorString("conntrack: index probe run too long")

// Upsert finds k, inserting it with value 0 if absent, and returns a
// pointer to its value (valid until the next change to the index) and
// whether it was there: one probe where Get then Put takes two. The
// pointer is nil when k was absent and its probe run would pass maxProbe.
func (x *Index) Upsert(k Tuple) (*uint32, bool) {
	p, found, _ := x.upsert(k)
	return p, found
}

func (x *Index) upsert(k Tuple) (v *uint32, found, ok bool) {
	if 2*(x.n+1) > len(x.slots) && len(x.slots) < x.most {
		if _, there := x.Get(k); !there {
			x.grow()
		}
	}
	i := tupleHash(&x.key, &k) & x.mask
	for n := 0; n <= maxProbe; n++ {
		s := &x.slots[i]
		if !s.used {
			*s = slot{key: k, used: true}
			x.n++
			return &s.val, false, true
		}
		if s.key == k {
			return &s.val, true, true
		}
		i = (i + 1) & x.mask
	}
	return nil, false, false
}

// Len is the number of keys.
func (x *Index) Len() int { return x.n }
