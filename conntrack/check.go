package conntrack

import "fmt"

// Check verifies the table's bookkeeping against its flows: the live count,
// the per-host and per-owner counts, the unreplied lists (closed flows
// first) and the index. It
// walks everything: for tests and fuzzers, not the packet path.
func (t *Table) Check() error {
	live, unreplied, exts := 0, 0, 0
	hosts := map[hostKey]int32{}
	owners := map[Owner]int32{}
	for i := range t.flows {
		f := &t.flows[i]
		if f.st&stInUse == 0 {
			continue
		}
		live++
		if f.st&stReplied == 0 {
			unreplied++
		}
		if f.x != 0 {
			exts++
			if d, a := t.Data(int32(i)); f.st&stReplied != 0 && d == 0 && a == 0 {
				return fmt.Errorf("flow %d: answered, no data, and holds a record", i)
			}
		} else if f.st&stReplied == 0 {
			return fmt.Errorf("flow %d: unanswered and holds no record", i)
		}
		if f.Host != ([4]byte{}) {
			hosts[keyOfHost(f.Host, f.Owner)]++
		}
		if f.Owner.Kind != OwnerNone {
			owners[f.Owner]++
		}
		for d, k := range [2]Tuple{f.Orig, f.Reply} {
			if v, ok := t.get(&k); !ok || v != uint32(i)<<1|uint32(d) {
				return fmt.Errorf("flow %d: tuple %v indexed as %d %v", i, k, v, ok)
			}
		}
	}
	free := len(t.flows) - int(t.fresh)
	for id := t.freeHead; id != noFlow && free <= len(t.flows); id = t.flows[id].next {
		if t.flows[id].st&stInUse != 0 {
			return fmt.Errorf("flow %d live and free", id)
		}
		free++
	}
	if live != t.live || live+free != len(t.flows) {
		return fmt.Errorf("%d live flows, counted %d, %d free of %d", live, t.live, free, len(t.flows))
	}
	if held := t.xp.held(); held != exts {
		return fmt.Errorf("%d records held by flows, %d handed out", exts, held)
	}
	if t.index.n != 2*live {
		return fmt.Errorf("index holds %d tuples for %d flows", t.index.n, live)
	}
	if len(t.perHost.m)+len(t.perHost.free) != len(t.perHost.s) || len(t.perOwner.m)+len(t.perOwner.free) != len(t.perOwner.s) {
		return fmt.Errorf("%d hosts and %d free places in %d shares, %d owners and %d free places in %d", len(t.perHost.m), len(t.perHost.free), len(t.perHost.s),
			len(t.perOwner.m), len(t.perOwner.free), len(t.perOwner.s))
	}
	if len(hosts) != len(t.perHost.m) || len(owners) != len(t.perOwner.m) {
		return fmt.Errorf("%d hosts and %d owners charged, counted %d and %d", len(hosts), len(owners), len(t.perHost.m), len(t.perOwner.m))
	}
	for h, n := range hosts {
		if t.perHost.get(h).n != n {
			return fmt.Errorf("host %v: %d flows, counted %d", h, n, t.perHost.get(h).n)
		}
		if err := t.checkShare(t.perHost.get(h), shareHost, func(f *Flow) bool { return f.Host != ([4]byte{}) && keyOfHost(f.Host, f.Owner) == h }); err != nil {
			return fmt.Errorf("host %v: %w", h, err)
		}
	}
	for o, n := range owners {
		if t.perOwner.get(o.key()).n != n {
			return fmt.Errorf("owner %v: %d flows, counted %d", o, n, t.perOwner.get(o.key()).n)
		}
		if err := t.checkShare(t.perOwner.get(o.key()), shareOwner, func(f *Flow) bool { return f.Owner == o }); err != nil {
			return fmt.Errorf("owner %v: %w", o, err)
		}
	}
	n, prev := 0, int32(noFlow) // prev: a record
	for x := t.unrHead; x != noFlow; x = t.xp.at(x).unrNext {
		r := t.xp.at(x)
		id := r.id
		if id < 0 || int(id) >= len(t.flows) {
			return fmt.Errorf("unreplied list: record %d of flow %d", x, id)
		}
		f := &t.flows[id]
		if f.st&stInUse == 0 || f.st&stReplied != 0 || f.x != x || r.unrPrev != prev || n > live {
			return fmt.Errorf("unreplied list broken at flow %d", id)
		}
		if f.st&stClosed != 0 && prev != noFlow && t.flows[t.xp.at(prev).id].st&stClosed == 0 {
			return fmt.Errorf("unreplied list: closed flow %d after one never answered", id)
		}
		prev, n = x, n+1
	}
	if n != unreplied || t.unrTail != prev {
		return fmt.Errorf("unreplied list holds %d flows, %d unreplied", n, unreplied)
	}
	if ct := t.lastClosed(t.unrHead, func(x int32) int32 { return t.xp.at(x).unrNext }); ct != t.unrCTail {
		return fmt.Errorf("unreplied list: last closed record %d, noted %d", ct, t.unrCTail)
	}
	return nil
}

// checkShare verifies a share's unreplied list w: exactly its unreplied
// flows (those mine accepts), linked both ways, the closed ones (Closed)
// first, then the others oldest first.
func (t *Table) checkShare(s share, w int, mine func(*Flow) bool) error {
	want := 0
	for i := range t.flows {
		if f := &t.flows[i]; f.st&stInUse != 0 && f.st&stReplied == 0 && mine(f) {
			want++
		}
	}
	n, prev := 0, int32(noFlow) // prev: a record
	for x := s.head; x != noFlow; x = t.xp.at(x).shNext[w] {
		r := t.xp.at(x)
		id := r.id
		if id < 0 || int(id) >= len(t.flows) {
			return fmt.Errorf("unreplied list: record %d of flow %d", x, id)
		}
		f := &t.flows[id]
		if f.st&stInUse == 0 || f.st&stReplied != 0 || !mine(f) || f.x != x || r.shPrev[w] != prev || n > len(t.flows) {
			return fmt.Errorf("unreplied list broken at flow %d", id)
		}
		if prev != noFlow && t.flows[t.xp.at(prev).id].st&stClosed == 0 {
			// Past the closed flows at the head: never answered, oldest
			// first.
			if f.st&stClosed != 0 {
				return fmt.Errorf("unreplied list: closed flow %d after one never answered", id)
			}
			if t.Created(t.xp.at(prev).id) > t.Created(id) {
				return fmt.Errorf("unreplied list out of order at flow %d", id)
			}
		}
		prev, n = x, n+1
	}
	if n != want || s.tail != prev {
		return fmt.Errorf("unreplied list holds %d flows, %d unreplied", n, want)
	}
	if ct := t.lastClosed(s.head, func(x int32) int32 { return t.xp.at(x).shNext[w] }); ct != s.ctail {
		return fmt.Errorf("unreplied list: last closed record %d, noted %d", ct, s.ctail)
	}
	return nil
}

// lastClosed is the record of the last closed flow of the run at the
// head of the unreplied list from head (next follows it), or noFlow.
func (t *Table) lastClosed(head int32, next func(int32) int32) int32 {
	last := int32(noFlow)
	for x := head; x != noFlow && t.flows[t.xp.at(x).id].st&stClosed != 0; x = next(x) {
		last = x
	}
	return last
}
