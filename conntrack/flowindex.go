package conntrack

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// flowIndex is the table's own index of its flows' tuples: Index's
// open addressing, linear probing, keyed hash, bounded probe runs and
// backward-shift deletion, but a slot is 4 bytes: the value (flow id << 1
// | Dir) plus one in its low 24 bits (0 is an empty slot; a table holds
// at most MaxFlows) and the top 8 bits of the tuple's hash as a tag. The
// tuple itself is read from the flow the slot names, which the packet
// reads next anyway. So an index holds sixteen slots to a cache line,
// and 16 bytes a flow at the load Index keeps (under one half; with
// 8-byte slots, the hash's 32 bits beside the value, it was 32). A slot
// whose tag matches but whose flow is another costs a comparison (one
// probed slot in 256), never a wrong answer. The masks are constants,
// not the fewest bits a table's values need, so that a lookup holds no
// mask in a register (it spilled). A slot does not say where its key's
// run starts, so a deletion's backward shift hashes the tuples of the
// slots it moves, from their flows.
type flowIndex struct {
	slots []uint32
	mask  uint64
	n     int
	key   [2]uint64
}

// slotValue is the value bits of a flowIndex slot.
const slotValue = 1<<24 - 1

// MaxFlows is the most flows a table holds: its values (flow id << 1 |
// Dir) plus one fit a slot's 24 bits (1 << 23 did not: its last flow's
// reply value plus one is 1 << 24).
const MaxFlows = 1<<23 - 1

func newFlowIndex(entries int) flowIndex {
	size := indexSize(entries)
	return flowIndex{slots: hugeSlice[uint32](size), mask: uint64(size - 1), key: [2]uint64{rand.Uint64(), rand.Uint64()}}
}

// slotTag is the part of a slot that h, a tuple's hash, fixes: the top
// 8 bits (its place comes from the low ones).
func slotTag(h uint64) uint32 { return uint32(h>>32) &^ slotValue }

// Key is a Tuple packed in two words: A holds the addresses as one
// little-endian load of Src then Dst gives them (the 8 bytes an IPv4
// header holds at 12), B the ids, protocol and side (SrcID<<32 |
// DstID<<16 | Proto<<8 | Side). The packet path builds it straight from
// the header (two loads, no Tuple on the stack to copy) and looks it up
// with LookupKey; two words travel in registers where a 14-byte Tuple
// goes through memory.
type Key struct{ A, B uint64 }

// Key packs t.
func (t *Tuple) Key() Key {
	return Key{
		A: uint64(binary.LittleEndian.Uint32(t.Src[:])) | uint64(binary.LittleEndian.Uint32(t.Dst[:]))<<32,
		B: uint64(t.SrcID)<<32 | uint64(t.DstID)<<16 | uint64(t.Proto)<<8 | uint64(t.Side),
	}
}

// tupleHash is the hash of Index and flowIndex under key: the tuple's 14
// bytes as two words (Key), each xored with half of the key, through the
// 64x64->128 multiply-and-fold (the mixing step of wyhash, which Go's
// runtime uses for its own maps where AES is missing), then a fold by a
// fixed odd constant to spread that over the low bits: a few nanoseconds,
// and without the key its output says nothing useful about where another
// tuple lands. It stays under the inliner's budget so that lookups pay
// no call.
func tupleHash(key *[2]uint64, k *Tuple) uint64 { return keyHash(key, k.Key()) }

// keyHash is tupleHash of a packed tuple.
func keyHash(key *[2]uint64, k Key) uint64 {
	hi, lo := bits.Mul64(k.A^key[0], k.B^key[1])
	hi, lo = bits.Mul64(hi^lo, 0x9e3779b97f4a7c15)
	return hi ^ lo
}

// tuple is the tuple a value names.
func (t *Table) tuple(v uint32) *Tuple {
	f := &t.flows[v>>1]
	if v&1 == 0 {
		return &f.Orig
	}
	return &f.Reply
}

// Lookup finds the flow one of whose tuples is k.
func (t *Table) Lookup(k Tuple) (id int32, dir Dir, ok bool) { return t.LookupKey(k.Key()) }

// LookupKey is Lookup of a packed tuple. It is the index's probe loop
// itself, the hash inlined: one call per packet. A slot whose hash tag
// matches is confirmed against the flow's tuple, packed as k is.
func (t *Table) LookupKey(k Key) (id int32, dir Dir, ok bool) {
	x := &t.index
	h := keyHash(&x.key, k)
	tag := slotTag(h)
	i := h & x.mask
	for n := 0; n <= maxProbe; n++ {
		s := x.slots[i]
		if s == 0 {
			break
		}
		if s&^slotValue == tag {
			if v := s&slotValue - 1; t.tuple(v).Key() == k {
				return int32(v >> 1), Dir(v & 1), true
			}
		}
		i = (i + 1) & x.mask
	}
	return noFlow, 0, false
}

// Warm starts loading what LookupKey of each of keys and the packet
// after it read: the index slot of the key and the flow it names (the
// line the lookup compares and the packet reads, the line of the counts
// it adds to and, for TCP, its sequence state). It changes nothing. The
// slots are prefetched all at once, then read (their misses overlap: one
// memory round trip for the batch), and the flows' lines prefetched in
// turn; Warm returns without waiting for them, so they arrive while the
// caller works through the batch's first packets. At most WarmBatch keys
// are read. Its result means nothing (the slots read, folded together).
func (t *Table) Warm(keys []Key) uint64 {
	var hs [WarmBatch]uint64
	var at [3 * WarmBatch]uintptr
	keys = t.warmSlots(keys, &hs, &at)
	prefetch(&at[0], len(keys))
	n, sink := t.warmLines(keys, &hs, &at)
	prefetch(&at[0], n)
	return sink
}

// WarmSlots is Warm's first stage alone: it prefetches the index slot
// of each of keys (at most WarmBatch) and returns at once, reading
// nothing. A caller that has the next batch's keys before it works
// through this one's (software pipelining) may call it a batch ahead,
// then WarmFlows on the same keys a batch later, when the slots have
// come (BenchmarkEstablishedUDPLiveBatchPipelined in nat: it saved
// nothing, the misses' rate and not their wait bounds a batch).
func (t *Table) WarmSlots(keys []Key) {
	var hs [WarmBatch]uint64
	var at [3 * WarmBatch]uintptr
	keys = t.warmSlots(keys, &hs, &at)
	prefetch(&at[0], len(keys))
}

// WarmFlows is Warm's second stage: it reads the index slots of keys (at
// most WarmBatch; WarmSlots prefetched them earlier, or they miss here)
// and prefetches the lines of the flows they name, returning without
// waiting for those. It changes nothing; its result means nothing.
func (t *Table) WarmFlows(keys []Key) uint64 {
	var hs [WarmBatch]uint64
	var at [3 * WarmBatch]uintptr
	keys = t.warmSlots(keys, &hs, &at)
	n, sink := t.warmLines(keys, &hs, &at)
	prefetch(&at[0], n)
	return sink
}

// warmSlots hashes the first WarmBatch of keys into hs and puts their
// home slots' addresses in at; it returns the keys it took.
func (t *Table) warmSlots(keys []Key, hs *[WarmBatch]uint64, at *[3 * WarmBatch]uintptr) []Key {
	x := &t.index
	keys = keys[:min(len(keys), WarmBatch)]
	for i, k := range keys {
		h := keyHash(&x.key, k)
		hs[i] = h
		at[i] = uintptr(unsafe.Pointer(&x.slots[h&x.mask]))
	}
	return keys
}

// warmLines puts in at the lines of the flows of keys (hashed to hs) the
// index names, and says how many; sink folds the slots read together.
func (t *Table) warmLines(keys []Key, hs *[WarmBatch]uint64, at *[3 * WarmBatch]uintptr) (n int, sink uint64) {
	x := &t.index
	for i, k := range keys {
		// The key's slot is its home slot or, for a quarter of the
		// keys at the index's load, one of the few after it, mostly
		// on the same line: looked for as LookupKey does, up to
		// warmProbe slots (a tag that matches another key's costs a
		// needless prefetch, nothing else). Looking at the home slot
		// alone, a quarter of the flows were not fetched.
		h := hs[i]
		tag := slotTag(h)
		j := h & x.mask
		var s uint32
		for range warmProbe {
			s = x.slots[j]
			if s == 0 || s&^slotValue == tag {
				break
			}
			j = (j + 1) & x.mask
		}
		sink ^= uint64(s)
		if s == 0 || s&^slotValue != tag {
			continue
		}
		// A flow is two lines: the one the lookup compares and the
		// packet reads, the counts'; a TCP flow's sequence state is
		// a third, apart.
		id := (s&slotValue - 1) >> 1
		f := &t.flows[id]
		at[n], at[n+1] = uintptr(unsafe.Pointer(f)), uintptr(unsafe.Pointer(&f.Packets))
		n += 2
		if uint8(k.B>>8) == protoTCP {
			at[n] = uintptr(unsafe.Pointer(&t.seq[id]))
			n++
		}
	}
	return n, sink
}

// warmProbe bounds the slots Warm reads for a key: at the index's load
// (one half) a key lies that far from its home slot or further about
// once in 170 (0.6% of 131,072 tuples in 262,144 slots).
const warmProbe = 8

// WarmBatch is the most keys one Warm reads.
const WarmBatch = 32

// get is Lookup's answer as the index holds it.
func (t *Table) get(k *Tuple) (uint32, bool) {
	id, dir, ok := t.Lookup(*k)
	return uint32(id)<<1 | uint32(dir), ok
}

// add indexes k with value v, whose flow must hold k already. It reports
// ErrExists when k is there, and ErrProbe, changing nothing, when k's
// probe run would pass maxProbe.
func (t *Table) add(k *Tuple, v uint32) error {
	x := &t.index
	h := tupleHash(&x.key, k)
	tag := slotTag(h)
	i := h & x.mask
	for n := 0; n <= maxProbe; n++ {
		s := x.slots[i]
		if s == 0 {
			x.slots[i] = tag | (v + 1)
			x.n++
			return nil
		}
		if s&^slotValue == tag && s&slotValue-1 != v && *t.tuple(s&slotValue - 1) == *k {
			return ErrExists
		}
		i = (i + 1) & x.mask
	}
	return ErrProbe
}

// del removes k, indexed with value v. The backward shift (Index.Del's)
// needs each later slot's home, its tuple's hash: read from its flow.
func (t *Table) del(k *Tuple, v uint32) {
	x := &t.index
	h := tupleHash(&x.key, k)
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
	for j := (i + 1) & x.mask; ; j = (j + 1) & x.mask {
		s := x.slots[j]
		if s == 0 {
			break
		}
		home := tupleHash(&x.key, t.tuple(s&slotValue-1)) & x.mask
		if (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = 0
	x.n--
}
