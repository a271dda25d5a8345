package conntrack

import (
	"testing"
	"unsafe"
)

// TestWarmChangesNothing: Warm, and its two stages WarmSlots and
// WarmFlows, over more keys than WarmBatch, of flows there (TCP and UDP,
// both directions) and not there, leave every lookup's answer and every
// flow as they were; WarmFlows reads the slots Warm reads.
func TestWarmChangesNothing(t *testing.T) {
	tb := New(64, 0, 0)
	var keys []Key
	want := map[Key]int32{}
	for i := range 40 {
		o, r := tup(i, 0), tup(i, 1)
		if i%2 == 1 {
			o.Proto, r.Proto = 17, 17
		}
		if i%5 == 4 {
			keys = append(keys, o.Key()) // never inserted
			continue
		}
		id, err := tb.Insert(o, r, [4]byte{}, 0, 1000*ms)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key(), r.Key())
		want[o.Key()], want[r.Key()] = id, id
	}
	before := append([]Flow(nil), tb.flows...)
	whole := tb.Warm(keys)
	tb.Warm(keys[WarmBatch:])
	tb.Warm(nil)
	tb.WarmSlots(keys)
	tb.WarmSlots(nil)
	if got := tb.WarmFlows(keys); got != whole {
		t.Fatalf("WarmFlows read slots folding to %#x, Warm %#x", got, whole)
	}
	tb.WarmFlows(nil)
	for i := range before {
		if before[i] != tb.flows[i] {
			t.Fatalf("flow %d changed: %+v -> %+v", i, before[i], tb.flows[i])
		}
	}
	for _, k := range keys {
		id, _, ok := tb.LookupKey(k)
		if w, there := want[k]; ok != there || ok && id != w {
			t.Fatalf("key %+v: %d %v, want %d %v", k, id, ok, w, there)
		}
	}
}

// TestInsertLines: the lines InsertLines names are those Insert then
// writes: the reply tuple's home slot (empty before, so the tuple lands
// there) holding the new flow's reply, and the new flow itself, fresh
// or reused.
func TestInsertLines(t *testing.T) {
	tb := New(8, 0, 0)
	for i := range 12 {
		if i == 6 {
			tb.Delete(2) // from here on the free flow and record are reused
		}
		o, r := tup(100+i, 0), tup(100+i, 1)
		var at [5]uintptr
		tb.InsertLines(&at, r.Key())
		x := &tb.index
		home := &x.slots[keyHash(&x.key, r.Key())&x.mask]
		was, xFree := *home, tb.xp.free
		id, err := tb.Insert(o, r, [4]byte{}, 0, 1000*ms)
		if i >= 7 && err == ErrFull {
			continue
		}
		if err != nil {
			t.Fatal(i, err)
		}
		f := &tb.flows[id]
		if at[1] != uintptr(unsafe.Pointer(f)) || at[2] != uintptr(unsafe.Pointer(&f.Packets)) || at[3] != uintptr(unsafe.Pointer(&tb.seq[id])) {
			t.Fatalf("%d: flow %d at %#x, InsertLines said %#x", i, id, uintptr(unsafe.Pointer(f)), at[1:])
		}
		if wantX := uintptr(unsafe.Pointer(tb.xp.at(f.x))); xFree != 0 && at[4] != wantX {
			t.Fatalf("%d: flow %d's record at %#x, InsertLines said %#x", i, id, wantX, at[4])
		}
		if at[0] != uintptr(unsafe.Pointer(home)) {
			t.Fatalf("%d: reply's home slot %p, InsertLines said %#x", i, home, at[0])
		}
		// A home slot taken already puts the tuple further along
		// its run (the prefetch then misses it); an empty one it
		// takes, or the flow's original tuple, added first, did.
		if v := *home&slotValue - 1; was == 0 && v>>1 != uint32(id) {
			t.Fatalf("%d: reply's empty home slot holds %#x, want flow %d's reply", i, *home, id)
		}
	}
}

// TestTagIndexSlotAt: SlotAt names the slot a key inserted into an
// empty run takes.
func TestTagIndexSlotAt(t *testing.T) {
	x := NewTagIndex(16)
	for i := range 8 {
		k := tup(i, 0)
		h := x.Hash(k.Key())
		at := x.SlotAt(h)
		empty := x.slots[h&x.mask] == 0
		if !x.Insert(h, uint32(i)) {
			t.Fatal(i)
		}
		if s := &x.slots[h&x.mask]; at != uintptr(unsafe.Pointer(s)) || empty && *s&slotValue != uint32(i)+1 {
			t.Fatalf("%d: SlotAt %#x, home %p holds %#x", i, at, s, *s)
		}
	}
}

// TestWarmFindsDisplacedFlows: Warm fetches the flow of every key of a
// full table whose slot is within warmProbe of its home, the quarter not
// in their home slot too (a full table is at the index's greatest load),
// and the TCP flows' sequence state; a key not there names nothing (but
// where a tag matches another's: then that flow, needlessly).
func TestWarmFindsDisplacedFlows(t *testing.T) {
	const n = 1024
	tb := New(n, 0, 0)
	var keys []Key
	for i := range n {
		o, r := tup(i, 0), tup(i, 1)
		o.Src[1], r.Src[1] = byte(i%2), byte(i%2)
		if i%2 == 1 {
			o.Proto, r.Proto = 17, 17
		}
		if _, err := tb.Insert(o, r, [4]byte{}, 0, 1000*ms); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key(), r.Key())
	}
	x := &tb.index
	missing := tup(5000, 0)
	hs := [WarmBatch]uint64{keyHash(&x.key, missing.Key())}
	var at [3 * WarmBatch]uintptr
	clash := false // a slot of its run with its tag (one in 256 a slot)
	for j := hs[0] & x.mask; x.slots[j] != 0; j = (j + 1) & x.mask {
		clash = clash || x.slots[j]&^slotValue == slotTag(hs[0])
	}
	if m, _ := tb.warmLines([]Key{missing.Key()}, &hs, &at); m != 0 && !clash {
		t.Fatalf("a key not there names %d lines", m)
	}
	displaced, near := 0, 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), WarmBatch)]
		keys = keys[len(batch):]
		var hs [WarmBatch]uint64
		var at [3 * WarmBatch]uintptr
		for i, k := range batch {
			hs[i] = keyHash(&x.key, k)
		}
		m, _ := tb.warmLines(batch, &hs, &at)
		named := map[uintptr]bool{}
		for _, a := range at[:m] {
			named[a] = true
		}
		for i, k := range batch {
			id, dir, ok := tb.LookupKey(k)
			if !ok {
				continue
			}
			d, clash := 0, false
			for j := hs[i] & x.mask; x.slots[j] != slotTag(hs[i])|(uint32(id)<<1|uint32(dir))+1; j = (j + 1) & x.mask {
				d++
				clash = clash || x.slots[j]&^slotValue == slotTag(hs[i])
			}
			if clash {
				// Another key's slot before it has its tag (one in
				// 256): Warm fetches that flow instead.
				near++
				continue
			}
			if d > 0 {
				displaced++
			}
			if d >= warmProbe {
				continue
			}
			near++
			f := &tb.flows[id]
			if !named[uintptr(unsafe.Pointer(f))] || !named[uintptr(unsafe.Pointer(&f.Packets))] ||
				f.Orig.Proto == 6 && !named[uintptr(unsafe.Pointer(&tb.seq[id]))] {
				t.Fatalf("key %+v, %d slots from home: flow %d's lines not named", k, d, id)
			}
		}
	}
	if displaced == 0 || near < 2*n-2*n/50 {
		t.Fatalf("%d of %d keys away from home, %d within reach: the test reaches no displaced key", displaced, 2*n, near)
	}
}
