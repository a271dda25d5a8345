package conntrack

import (
	"math/rand/v2"
	"unsafe"
)

// TagIndex is flowIndex's way for an owner whose keys live in a slab of
// its own (the NAT mapper's mappings and filters): open addressing,
// linear probing, a random key for the hash (HashKey), probe runs bounded
// by maxProbe and backward-shift deletion, one word a slot (the key's
// hash beside a 31-bit value, the slab index), and the key confirmed by
// the owner against the slab entry a slot names. Room for n keys is 16
// bytes each (at most half the slots used), where Index's is 40.
type TagIndex struct {
	slots []uint64 // 0: empty; else hash<<32 | usedBit | value
	mask  uint64
	n     int
	key   [2]uint64
}

// usedBit marks a slot in use; values are below it.
const usedBit = 1 << 31

// NewTagIndex makes a TagIndex for at most entries keys.
func NewTagIndex(entries int) *TagIndex {
	size := indexSize(entries)
	return &TagIndex{slots: hugeSlice[uint64](size), mask: uint64(size - 1), key: [2]uint64{rand.Uint64(), rand.Uint64()}}
}

// Hash is k's hash under x's key, what Find, Insert and Delete take.
func (x *TagIndex) Hash(k Key) uint64 { return keyHash(&x.key, k) }

// Find is the value of the key hashing to h that is: is says, of a value
// whose slot's hash matches h, whether its slab entry is the key sought.
func (x *TagIndex) Find(h uint64, is func(v uint32) bool) (uint32, bool) {
	tag := h << 32
	i := h & x.mask
	for n := 0; n <= maxProbe; n++ {
		s := x.slots[i]
		if s == 0 {
			break
		}
		if s&^(1<<32-1) == tag {
			if v := uint32(s) &^ usedBit; is(v) {
				return v, true
			}
		}
		i = (i + 1) & x.mask
	}
	return 0, false
}

// Insert adds value v (below 1<<31) of a key hashing to h, which must
// not be there (Find first). It reports false, changing nothing, when
// the key's probe run would pass maxProbe.
func (x *TagIndex) Insert(h uint64, v uint32) bool {
	i := h & x.mask
	for n := 0; n <= maxProbe; n++ {
		if x.slots[i] == 0 {
			x.slots[i] = h<<32 | usedBit | uint64(v)
			x.n++
			return true
		}
		i = (i + 1) & x.mask
	}
	return false
}

// Delete removes value v of the key hashing to h, if there.
func (x *TagIndex) Delete(h uint64, v uint32) {
	want := h<<32 | usedBit | uint64(v)
	i := h & x.mask
	for n := 0; ; n++ {
		s := x.slots[i]
		if s == 0 || n > maxProbe {
			return
		}
		if s == want {
			break
		}
		i = (i + 1) & x.mask
	}
	// Backward shift, as in Index.Del; a slot's home is its hash's low
	// bits, which it keeps.
	for j := (i + 1) & x.mask; ; j = (j + 1) & x.mask {
		s := x.slots[j]
		if s == 0 {
			break
		}
		home := s >> 32 & x.mask
		if (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = 0
	x.n--
}

// Len is the number of keys.
func (x *TagIndex) Len() int { return x.n }

// SlotAt is where the home slot of a key hashing to h lies, for
// Prefetch.
func (x *TagIndex) SlotAt(h uint64) uintptr { return uintptr(unsafe.Pointer(&x.slots[h&x.mask])) }
