package conntrack

import "math/bits"

// Index maps tuples to 32-bit values (flow ids here; the NAT mapper keys
// its mappings and filters by tuples too). It is an open-addressing table with
// linear probing and backward-shift deletion (no tombstones), sized once
// to keep the load under one half: a lookup is a hash of two words and,
// almost always, one cache line. It is what makes an established flow
// cheap; Go's map hashes the 14-byte key with a generic routine that costs
// more than the rest of the lookup.
type Index struct {
	slots []slot
	mask  uint64
	n     int
}

type slot struct {
	key  Tuple
	used bool
	val  uint32
}

// NewIndex makes an index for at most entries keys.
func NewIndex(entries int) *Index {
	size := 1 << bits.Len(uint(entries*2-1))
	return &Index{slots: make([]slot, size), mask: uint64(size - 1)}
}

func (k *Tuple) hash() uint64 {
	a := uint64(k.Src[0])<<56 | uint64(k.Src[1])<<48 | uint64(k.Src[2])<<40 | uint64(k.Src[3])<<32 |
		uint64(k.Dst[0])<<24 | uint64(k.Dst[1])<<16 | uint64(k.Dst[2])<<8 | uint64(k.Dst[3])
	b := uint64(k.SrcID)<<32 | uint64(k.DstID)<<16 | uint64(k.Proto)<<8 | uint64(k.Side)
	h := a*0x9e3779b97f4a7c15 ^ b*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	h *= 0x94d049bb133111eb
	return h ^ h>>32
}

// Get finds k.
func (x *Index) Get(k Tuple) (uint32, bool) {
	for i := k.hash() & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if !s.used {
			return 0, false
		}
		if s.key == k {
			return s.val, true
		}
	}
}

// Put inserts or replaces. The table never fills as long as the owner
// keeps to the entries it asked for: it has twice that room.
func (x *Index) Put(k Tuple, v uint32) {
	for i := k.hash() & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if !s.used {
			*s = slot{key: k, used: true, val: v}
			x.n++
			return
		}
		if s.key == k {
			s.val = v
			return
		}
	}
}

// Del removes k if present.
func (x *Index) Del(k Tuple) {
	i := k.hash() & x.mask
	for {
		s := &x.slots[i]
		if !s.used {
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
		home := s.key.hash() & x.mask
		if (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = *s
			i = j
		}
	}
	x.slots[i] = slot{}
	x.n--
}

// Add inserts k if absent and reports whether it did.
func (x *Index) Add(k Tuple, v uint32) bool {
	for i := k.hash() & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if !s.used {
			*s = slot{key: k, used: true, val: v}
			x.n++
			return true
		}
		if s.key == k {
			return false
		}
	}
}

// Upsert finds k, inserting it with value 0 if absent, and returns a
// pointer to its value (valid until the next change to the index) and
// whether it was there: one probe where Get then Put takes two.
func (x *Index) Upsert(k Tuple) (*uint32, bool) {
	for i := k.hash() & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if !s.used {
			*s = slot{key: k, used: true}
			x.n++
			return &s.val, false
		}
		if s.key == k {
			return &s.val, true
		}
	}
}

// Len is the number of keys.
func (x *Index) Len() int { return x.n }
