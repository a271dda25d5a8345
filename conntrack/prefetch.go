package conntrack

import "unsafe"

// Prefetch has the CPU start loading the cache line at each address of
// at and returns at once (see prefetch): for an owner that knows what
// the next few hundred instructions will touch, so that the misses
// overlap with them and with each other. The addresses must be of
// memory kept alive (the table's, an index's: InsertLines, SlotAt).
func Prefetch(at []uintptr) {
	if len(at) > 0 {
		prefetch(&at[0], len(at))
	}
}

// InsertLines puts in at where Insert of a flow whose reply tuple is
// reply writes: the index slot reply hashes to, the two lines of the
// flow it would take, its TCP sequence state (for a TCP tuple) and the
// record it would take (flowExt; the last given back, mostly in the
// caches already, or the next never used); a line named twice where
// there is none of these. The
// original tuple's slot is the one the lookup that missed it has just
// read. When the table is full, the first flow's, which does no harm.
func (t *Table) InsertLines(at *[5]uintptr, reply Key) {
	id := t.freeHead
	if id == noFlow {
		id = t.fresh
	}
	if int(id) >= len(t.flows) {
		id = 0
	}
	f := &t.flows[id]
	x := &t.index
	at[0] = uintptr(unsafe.Pointer(&x.slots[keyHash(&x.key, reply)&x.mask]))
	at[1], at[2] = uintptr(unsafe.Pointer(f)), uintptr(unsafe.Pointer(&f.Packets))
	at[3], at[4] = at[2], at[2]
	if uint8(reply.B>>8) == protoTCP {
		at[3] = uintptr(unsafe.Pointer(&t.seq[id]))
	}
	if r := t.xp.next(); int(r) < len(t.xp.recs) {
		at[4] = uintptr(unsafe.Pointer(t.xp.at(r)))
	}
}
