package conntrack

import "unsafe"

// flowExt is what only some flows need, kept apart from Flow so that a
// Flow is two cache lines: a helper's data (Data, Aux) and the early-drop
// lists' links (only flows that have seen no reply, or are closed, are on
// them). A flow holds one (Flow.x) from Insert until it is answered, and
// after that only if a helper gave it data or it is closed again.
type flowExt struct {
	data, aux uint64
	id        int32 // the flow holding it
	// The lists link records (handles), so that unlinking a flow
	// touches its neighbours' records, not their flows.
	// The unreplied list (Table.unrHead): closed flows first, then
	// those never answered, oldest first. A free record is chained
	// through unrNext.
	unrNext, unrPrev int32
	// The unreplied lists of the flow's host and owner shares.
	shNext, shPrev [2]int32
}

// extPool holds flowExt records, handed out by handle (its index in
// recs; 0 is none). A flow holds at most one, so the pool is sized for
// the table's every flow when the table is made, and the packet path
// never grows it (it grew by 1024 records there, an allocation per
// thousand flows more than were ever unanswered at once). Only the
// records ever handed out take memory: on Linux recs is address space
// mapped apart from Go's heap (reserveExt, MAP_NORESERVE), its pages
// made resident by the kernel as records on them are first written;
// freed records are handed out again last freed first, so those pages
// are the peak of unanswered flows' (ExtMemory).
type extPool struct {
	recs []flowExt // by handle; recs[0] unused
	free int32     // the last record put back (handle), chained through unrNext
	n    int32     // records ever handed out: recs[1:n+1]
}

// at is the record of handle x (not 0).
func (p *extPool) at(x int32) *flowExt { return &p.recs[x] }

// get hands out a record, the last put back first (still in the
// caches, most likely); its fields are the caller's to set.
func (p *extPool) get() int32 {
	if x := p.free; x != 0 {
		p.free = p.recs[x].unrNext
		return x
	}
	p.n++ // never past len(recs)-1: one record a flow at most
	return p.n
}

// next is the handle get would hand out now.
func (p *extPool) next() int32 {
	if p.free != 0 {
		return p.free
	}
	return p.n + 1
}

// put gives back the record of handle x.
func (p *extPool) put(x int32) {
	p.recs[x].unrNext = p.free
	p.free = x
}

// held is how many records are handed out now (for Check).
func (p *extPool) held() int {
	n := int(p.n)
	for x := p.free; x != 0 && n >= 0; x = p.at(x).unrNext {
		n--
	}
	return n
}

// Data is the owner's or a helper's data of flow id (zero until set).
func (t *Table) Data(id int32) (data, aux uint64) {
	if x := t.flows[id].x; x != 0 {
		r := t.xp.at(x)
		return r.data, r.aux
	}
	return 0, 0
}

// SetData sets the owner's or a helper's data of flow id; on a flow that
// has ended it does nothing (a record taken there would be lost when the
// id is reused, and the pool holds one a flow).
func (t *Table) SetData(id int32, data, aux uint64) {
	f := &t.flows[id]
	if f.st&stInUse == 0 {
		return
	}
	if f.x == 0 {
		if data == 0 && aux == 0 {
			return
		}
		f.x = t.newExt(id)
	}
	r := t.xp.at(f.x)
	r.data, r.aux = data, aux
	t.dropExt(f) // zero data on an answered flow: no record needed
}

// newExt hands out a record for flow id, on no list.
func (t *Table) newExt(id int32) int32 {
	x := t.xp.get()
	r := t.xp.at(x)
	r.data, r.aux, r.id = 0, 0, id
	r.unrNext, r.unrPrev = noFlow, noFlow
	r.shNext[0], r.shNext[1], r.shPrev[0], r.shPrev[1] = noFlow, noFlow, noFlow, noFlow
	return x
}

// dropExt gives back flow id's record if it needs it no more: answered,
// not closed, and no data.
func (t *Table) dropExt(f *Flow) {
	if f.x != 0 && f.st&stReplied != 0 {
		if r := t.xp.at(f.x); r.data == 0 && r.aux == 0 {
			t.xp.put(f.x)
			f.x = 0
		}
	}
}

// ID is the id of f, a flow of t (what Get returned).
func (t *Table) ID(f *Flow) int32 {
	return int32((uintptr(unsafe.Pointer(f)) - uintptr(unsafe.Pointer(&t.flows[0]))) / unsafe.Sizeof(Flow{}))
}

// DataOf is Data of f, a flow of t.
func (t *Table) DataOf(f *Flow) (data, aux uint64) {
	if f.x != 0 {
		r := t.xp.at(f.x)
		return r.data, r.aux
	}
	return 0, 0
}
