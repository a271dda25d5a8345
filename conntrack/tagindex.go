package conntrack

import (
	"math/rand/v2"
	"unsafe"
)

// TagIndex is flowIndex's way for an owner whose keys live in a slab of
// its own (the NAT mapper's mappings and filters): open addressing,
// linear probing, a random key for the hash (HashKey), probe runs bounded
// by maxProbe and backward-shift deletion, 4 bytes a slot as flowIndex's
// (the value, a slab index, plus one in the low 24 bits, the top 8 bits
// of the key's hash as a tag), and the key confirmed by the owner against
// the slab entry a slot names. Room for n keys is 8 bytes each (at most
// half the slots used; 16 with 8-byte slots), where Index's is 40. A slot
// does not say where its key's run starts, so Delete's backward shift
// asks the owner for the hash of each entry it may move (from its slab).
type TagIndex struct {
	slots []uint32 // 0: empty; else slotTag(hash) | value+1
	mask  uint64
	n     int
	key   [2]uint64
}

// MaxTagValue bounds a TagIndex's values: they are below it.
const MaxTagValue = slotValue

// NewTagIndex makes a TagIndex for at most entries keys (values below
// MaxTagValue).
func NewTagIndex(entries int) *TagIndex {
	if entries >= MaxTagValue {
		panic("conntrack: a TagIndex of more than MaxTagValue keys")
	}
	size := indexSize(entries)
	return &TagIndex{slots: hugeSlice[uint32](size), mask: uint64(size - 1), key: [2]uint64{rand.Uint64(), rand.Uint64()}}
}

// Hash is k's hash under x's key, what Find, Insert and Delete take.
func (x *TagIndex) Hash(k Key) uint64 { return keyHash(&x.key, k) }

// Find is the value of the key hashing to h that is: is says, of a value
// whose slot's tag matches h's, whether its slab entry is the key sought.
func (x *TagIndex) Find(h uint64, is func(v uint32) bool) (uint32, bool) {
	tag := slotTag(h)
	i := h & x.mask
	for n := 0; n <= maxProbe; n++ {
		s := x.slots[i]
		if s == 0 {
			break
		}
		if s&^slotValue == tag {
			if v := s&slotValue - 1; is(v) {
				return v, true
			}
		}
		i = (i + 1) & x.mask
	}
	return 0, false
}

// Insert adds value v (below MaxTagValue) of a key hashing to h, which
// must not be there (Find first). It reports false, changing nothing,
// when the key's probe run would pass maxProbe.
func (x *TagIndex) Insert(h uint64, v uint32) bool {
	i := h & x.mask
	for n := 0; n <= maxProbe; n++ {
		if x.slots[i] == 0 {
			x.slots[i] = slotTag(h) | (v + 1)
			x.n++
			return true
		}
		i = (i + 1) & x.mask
	}
	return false
}

// Delete removes value v of the key hashing to h, if there. hashOf is
// the hash of the key of a value still in x (its slab entry's), for the
// backward shift.
func (x *TagIndex) Delete(h uint64, v uint32, hashOf func(v uint32) uint64) {
	want := slotTag(h) | (v + 1)
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
	// Backward shift, as in Index.Del; a slot's home is its key's hash's
	// low bits.
	for j := (i + 1) & x.mask; ; j = (j + 1) & x.mask {
		s := x.slots[j]
		if s == 0 {
			break
		}
		home := hashOf(s&slotValue-1) & x.mask
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
