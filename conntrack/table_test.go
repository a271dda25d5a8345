package conntrack

import (
	"math/rand"
	"testing"
)

const ms = int64(1e6)

func tup(i int, side uint8) Tuple {
	return Tuple{Src: [4]byte{10, 0, byte(i >> 8), byte(i)}, Dst: [4]byte{1, 1, 1, 1}, SrcID: uint16(i), DstID: 80, Proto: 6, Side: side}
}

func TestInsertLookupBothDirections(t *testing.T) {
	tb := New(8, 0, 0)
	id, err := tb.Insert(tup(1, 0), tup(1, 1), [4]byte{10, 0, 0, 1}, 0, 1000*ms)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		k   Tuple
		dir Dir
	}{{tup(1, 0), Original}, {tup(1, 1), Reply}} {
		got, dir, ok := tb.Lookup(c.k)
		if !ok || got != id || dir != c.dir {
			t.Fatalf("lookup %v: %d %d %v", c.k, got, dir, ok)
		}
	}
	if _, err := tb.Insert(tup(1, 0), tup(2, 1), [4]byte{}, 0, 1); err != ErrExists {
		t.Fatalf("duplicate orig: %v", err)
	}
	if _, err := tb.Insert(tup(3, 0), tup(1, 1), [4]byte{}, 0, 1); err != ErrExists {
		t.Fatalf("duplicate reply: %v", err)
	}
	if _, _, ok := tb.Lookup(tup(3, 0)); ok {
		t.Fatal("failed insert left its original tuple behind")
	}
}

func TestLimits(t *testing.T) {
	tb := New(4, 2, 0)
	h := [4]byte{10, 0, 0, 1}
	for i := 0; i < 2; i++ {
		if _, err := tb.Insert(tup(i, 0), tup(i, 1), h, 0, 1000*ms); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Insert(tup(2, 0), tup(2, 1), h, 0, 1000*ms); err != ErrHostLimit {
		t.Fatalf("third flow of one host: %v", err)
	}
	for i := 3; i < 5; i++ {
		if _, err := tb.Insert(tup(i, 0), tup(i, 1), [4]byte{10, 0, 0, byte(i)}, 0, 1000*ms); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Insert(tup(9, 0), tup(9, 1), [4]byte{10, 0, 0, 9}, 0, 1000*ms); err != ErrFull {
		t.Fatalf("full table: %v", err)
	}
}

// TestWheelExpiry checks against a model: random deadlines, moved later and
// earlier, must expire within a tick of when due and never before.
func TestWheelExpiry(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	tb := New(2000, 0, 0)
	deadline := map[int32]int64{}
	deleted := 0
	now := int64(0)
	tb.OnDelete = func(id int32, f *Flow) {
		deleted++
		if f.Deadline != deadline[id] {
			t.Fatalf("flow %d removed with deadline %d, model %d", id, f.Deadline, deadline[id])
		}
		if f.Deadline > now {
			t.Fatalf("flow %d removed at %d before its deadline %d", id, now, f.Deadline)
		}
		delete(deadline, id)
	}
	for step := 0; step < 4000; step++ {
		now += int64(r.Intn(400)) * ms
		if len(deadline) < 1500 {
			i := step
			d := now + int64(r.Intn(600_000))*ms // up to 10 min: longer than a wheel turn
			id, err := tb.Insert(tup(i, 0), tup(i, 1), [4]byte{}, now, d)
			if err != nil {
				t.Fatal(err)
			}
			deadline[id] = d
		}
		for id := range deadline {
			if r.Intn(10) == 0 {
				d := now + int64(r.Intn(300_000))*ms
				tb.SetDeadline(id, d)
				deadline[id] = d
			}
			break
		}
		tb.Expire(now)
		for id, d := range deadline {
			// The wheel's resolution is one tick: a flow may outlive its
			// deadline by less than that (lookups treat it as gone).
			if d+1<<tickShift <= now {
				t.Fatalf("step %d: flow %d due at %d still live at %d", step, id, d, now)
			}
		}
		if tb.Len() != len(deadline) {
			t.Fatalf("table has %d flows, model %d", tb.Len(), len(deadline))
		}
	}
	if deleted == 0 {
		t.Fatal("nothing expired")
	}
}

func TestRekey(t *testing.T) {
	tb := New(4, 0, 0)
	id, _ := tb.Insert(tup(1, 0), tup(1, 1), [4]byte{}, 0, 1000*ms)
	if err := tb.Rekey(id, tup(7, 1)); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := tb.Lookup(tup(1, 1)); ok {
		t.Fatal("old reply tuple still indexed")
	}
	if got, dir, ok := tb.Lookup(tup(7, 1)); !ok || got != id || dir != Reply {
		t.Fatal("new reply tuple not indexed")
	}
}

func TestExpectations(t *testing.T) {
	tb := New(4, 0, 0)
	match := Tuple{Src: [4]byte{1, 1, 1, 1}, Dst: [4]byte{2, 2, 2, 2}, DstID: 5004, Proto: 17, Side: 1}
	if err := tb.Expect(Expectation{Match: match, Deadline: 10 * ms, Data: 42}); err != nil {
		t.Fatal(err)
	}
	pkt := match
	pkt.SrcID = 6000 // any source port
	e, ok := tb.Expected(pkt, 5*ms)
	if !ok || e.Data != 42 {
		t.Fatalf("expectation not found: %+v %v", e, ok)
	}
	if _, ok := tb.Expected(pkt, 5*ms); ok {
		t.Fatal("an expectation matched twice")
	}
	tb.Expect(Expectation{Match: match, Deadline: 10 * ms})
	if _, ok := tb.Expected(pkt, 11*ms); ok {
		t.Fatal("a stale expectation matched")
	}
	tb.Expect(Expectation{Match: match, Deadline: 10 * ms})
	tb.Expire(20 * ms)
	if tb.Expectations() != 0 {
		t.Fatal("expired expectation kept")
	}
}

// FuzzIndex drives the index with random operations against a Go map.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 1, 1, 2, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		x := NewIndex(64)
		model := map[Tuple]uint32{}
		for i := 0; i+1 < len(ops); i += 2 {
			// Few distinct keys (and colliding home slots) stress the
			// backward-shift deletion.
			k := Tuple{SrcID: uint16(ops[i+1] & 0x3f), Proto: 17}
			switch ops[i] % 4 {
			case 0:
				if len(model) < 64 {
					x.Put(k, uint32(i))
					model[k] = uint32(i)
				}
			case 1:
				x.Del(k)
				delete(model, k)
			case 2:
				v, ok := x.Get(k)
				mv, mok := model[k]
				if ok != mok || v != mv {
					t.Fatalf("get %v: %d %v, model %d %v", k, v, ok, mv, mok)
				}
			case 3:
				if _, in := model[k]; !in && len(model) >= 64 {
					continue
				}
				v, found := x.Upsert(k)
				mv, mok := model[k]
				if found != mok || *v != mv {
					t.Fatalf("upsert %v: %d %v, model %d %v", k, *v, found, mv, mok)
				}
				*v++
				model[k] = mv + 1
			}
		}
		if x.Len() != len(model) {
			t.Fatalf("len %d, model %d", x.Len(), len(model))
		}
		for k, mv := range model {
			if v, ok := x.Get(k); !ok || v != mv {
				t.Fatalf("final get %v: %d %v want %d", k, v, ok, mv)
			}
		}
	})
}

// TestIndexProbeBound fills every slot: a lookup of a missing key must
// still end, and adding one must be refused, not loop.
func TestIndexProbeBound(t *testing.T) {
	x := NewIndex(256)
	for i := range x.slots {
		x.slots[i] = slot{key: tup(i, 1), used: true}
	}
	k := tup(1, 0)
	if _, ok := x.Get(k); ok {
		t.Fatal("found a key never added")
	}
	if err := x.Add(k, 1); err != ErrProbe {
		t.Fatalf("add to a full run: %v", err)
	}
	if x.Put(k, 1) {
		t.Fatal("put into a full run")
	}
	if v, _ := x.Upsert(k); v != nil {
		t.Fatal("upsert into a full run")
	}
}

// TestGrowingIndex: an index NewGrowingIndex made starts small, doubles
// as keys come, never past NewIndex's size for its entries, and every
// key put before and after a growth is found with its value, deleted
// ones not.
func TestGrowingIndex(t *testing.T) {
	const entries = 5000
	x := NewGrowingIndex(entries, 16)
	if len(x.slots) != 32 {
		t.Fatalf("first room %d slots, want 32", len(x.slots))
	}
	for i := range entries {
		if err := x.Add(tup(i, 0), uint32(i)); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if 2*x.Len() > len(x.slots) {
			t.Fatalf("%d keys in %d slots", x.Len(), len(x.slots))
		}
		if i%3 == 0 {
			x.Del(tup(i, 0))
		}
	}
	if want := len(NewIndex(entries).slots); len(x.slots) > want {
		t.Fatalf("grew to %d slots, NewIndex has %d", len(x.slots), want)
	}
	for i := range entries {
		v, ok := x.Get(tup(i, 0))
		if i%3 == 0 {
			if ok {
				t.Fatalf("deleted key %d found", i)
			}
			continue
		}
		if !ok || v != uint32(i) {
			t.Fatalf("key %d: %d, %v", i, v, ok)
		}
	}
}

// TestIndexKeyed: two indexes hash the same tuple to unrelated slots, so
// where a tuple lands in one says nothing about another process's.
func TestIndexKeyed(t *testing.T) {
	a, b := NewIndex(1<<16), NewIndex(1<<16)
	same := 0
	for i := 0; i < 1000; i++ {
		k := tup(i, 0)
		if a.hash(&k)&a.mask == b.hash(&k)&b.mask {
			same++
		}
	}
	if same > 5 {
		t.Fatalf("%d of 1000 tuples in the same slot of two indexes", same)
	}
}

// TestEarlyDrop: a full table, host share or owner share makes room by
// removing the oldest flow that saw no reply of the one that is full,
// never one that did; when none qualifies the insert is refused.
func TestEarlyDrop(t *testing.T) {
	tb := New(6, 3, 0)
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	mac := MACOwner([6]byte{2, 0, 0, 0, 0, 1})
	var gone []int32
	tb.OnDelete = func(id int32, f *Flow) { gone = append(gone, id) }
	ins := func(i int, host [4]byte, o Owner) int32 {
		t.Helper()
		if err := tb.MakeRoom(host, o); err != nil {
			t.Fatalf("room for %d: %v", i, err)
		}
		id, err := tb.InsertOwned(tup(i, 0), tup(i, 1), host, o, 0, 1000*ms)
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		return id
	}
	a0 := ins(0, a, Owner{})
	a1 := ins(1, a, Owner{})
	a2 := ins(2, a, Owner{})
	tb.Replied(a0)
	// a's share is full: its oldest unreplied (a1, not the replied a0) goes.
	ins(3, a, Owner{})
	if len(gone) != 1 || gone[0] != a1 {
		t.Fatalf("host share: removed %v, want [%d]", gone, a1)
	}
	tb.Replied(a2)
	// b fills the table; then one more: the oldest unreplied anywhere.
	a3 := tb.xp.at(tb.unrHead).id
	b0 := ins(4, b, mac)
	ins(5, b, mac)
	ins(6, b, mac)
	gone = gone[:0]
	ins(7, [4]byte{10, 0, 0, 3}, Owner{})
	if len(gone) != 1 || gone[0] != a3 {
		t.Fatalf("table full: removed %v, want the oldest unreplied %d (a0 %d and a2 %d saw replies)", gone, a3, a0, a2)
	}
	// The MAC's share (3): a new flow of another address on the same MAC
	// takes the MAC's oldest unreplied.
	gone = gone[:0]
	ins(8, [4]byte{10, 0, 0, 9}, mac)
	if len(gone) != 1 || gone[0] != b0 || tb.OwnerFlows(mac) != 3 {
		t.Fatalf("mac share: removed %v (want [%d]), %d flows", gone, b0, tb.OwnerFlows(mac))
	}
	// Nothing unreplied left for a: refused, nothing removed.
	for _, id := range []int32{a0, a2} {
		tb.Replied(id)
	}
	tb.Range(func(id int32, f *Flow) bool { tb.Replied(id); return true })
	gone = gone[:0]
	if err := tb.MakeRoom(a, Owner{}); err != ErrHostLimit && err != ErrFull {
		t.Fatalf("no unreplied flow: %v", err)
	}
	if len(gone) != 0 {
		t.Fatalf("removed replied flows %v", gone)
	}
	d := tb.EarlyDrops()
	if d.HostQuota != 1 || d.TableFull < 1 || d.MACQuota < 1 {
		t.Fatalf("early drops %+v", d)
	}
}

// TestRuleOwnerLimit: inbound flows of a rule are held to the rule's share,
// not their LAN host's.
func TestRuleOwnerLimit(t *testing.T) {
	tb := New(16, 8, 0)
	tb.SetRuleLimit(2)
	r := RuleOwner(0)
	for i := 0; i < 2; i++ {
		if _, err := tb.InsertOwned(tup(i, 0), tup(i, 1), [4]byte{}, r, 0, 1000*ms); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.InsertOwned(tup(2, 0), tup(2, 1), [4]byte{}, r, 0, 1000*ms); err != ErrOwnerLimit {
		t.Fatalf("third flow of a rule: %v", err)
	}
	if _, err := tb.InsertOwned(tup(2, 0), tup(2, 1), [4]byte{}, RuleOwner(1), 0, 1000*ms); err != nil {
		t.Fatalf("another rule: %v", err)
	}
}

func TestExpectationHostShare(t *testing.T) {
	tb := New(4, 0, 0)
	h := [4]byte{10, 0, 0, 1}
	for i := 0; i < maxExpectationsPerHost; i++ {
		m := Tuple{Src: [4]byte{1, 1, 1, 1}, DstID: uint16(i), Proto: 17, Side: 1}
		if err := tb.Expect(Expectation{Match: m, Host: h, Deadline: 10 * ms}); err != nil {
			t.Fatal(err)
		}
	}
	m := Tuple{Src: [4]byte{1, 1, 1, 1}, DstID: 60000, Proto: 17, Side: 1}
	if err := tb.Expect(Expectation{Match: m, Host: h, Deadline: 10 * ms}); err != ErrTooManyExpectations {
		t.Fatalf("over the host's share: %v", err)
	}
	if err := tb.Expect(Expectation{Match: m, Host: [4]byte{10, 0, 0, 2}, Deadline: 10 * ms}); err != nil {
		t.Fatalf("another host: %v", err)
	}
	tb.Expire(20 * ms)
	if tb.HostExpectations(h) != 0 || tb.Expectations() != 0 {
		t.Fatalf("after expiry: %d of the host's, %d in all", tb.HostExpectations(h), tb.Expectations())
	}
}

// TestClosedEarlyDropFirst: a flow the owner says is over (Closed: a
// reset TCP connection) is no longer assured and goes first when room is
// needed, the one closed longest ago first, before the oldest never
// answered; an
// answered flow not closed is never taken, and one answered again
// (Replied: the tuple reused, established) is assured again.
func TestClosedEarlyDropFirst(t *testing.T) {
	tb := New(5, 4, 0)
	a, b, c := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 3}
	mac := MACOwner([6]byte{2, 0, 0, 0, 0, 2})
	var gone []int32
	tb.OnDelete = func(id int32, f *Flow) { gone = append(gone, id) }
	ins := func(i int, host [4]byte, o Owner) int32 {
		t.Helper()
		if err := tb.MakeRoom(host, o); err != nil {
			t.Fatalf("room for %d: %v", i, err)
		}
		id, err := tb.InsertOwned(tup(i, 0), tup(i, 1), host, o, int64(i)*ms, 1000*ms)
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		if err := tb.Check(); err != nil {
			t.Fatalf("after insert %d: %v", i, err)
		}
		return id
	}
	check := func(what string) {
		t.Helper()
		if err := tb.Check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	e0 := ins(0, a, Owner{}) // established, stays so
	e1 := ins(1, a, Owner{}) // established, then reset
	u2 := ins(2, a, Owner{}) // never answered
	c3 := ins(3, a, Owner{}) // a SYN answered by a reset
	b0 := ins(4, b, mac)     // never answered, older than any closing
	tb.Replied(e0)
	tb.Replied(e1)
	tb.Closed(e1)
	check("e1 closed")
	tb.Closed(c3)
	tb.Closed(c3) // again: stays where it is
	check("c3 closed")
	if tb.Get(e1).Assured() || !tb.Get(e0).Assured() {
		t.Fatalf("assured: closed e1 %v, established e0 %v", tb.Get(e1).Assured(), tb.Get(e0).Assured())
	}

	// a's share is full: the first closed (e1) goes, not c3, closed
	// since, nor u2, the oldest never answered.
	x5 := ins(5, a, Owner{})
	if len(gone) != 1 || gone[0] != e1 {
		t.Fatalf("host share: removed %v, want [%d] (closed first), not c3 %d nor u2 %d", gone, e1, c3, u2)
	}
	// The table is full: the closed c3 goes, not b0, older and never
	// answered, nor the established e0.
	gone = gone[:0]
	c6 := ins(6, c, Owner{})
	if len(gone) != 1 || gone[0] != c3 {
		t.Fatalf("table full: removed %v, want [%d] (closed), not b0 %d", gone, c3, b0)
	}

	// A closed flow reused and established again is assured again: off
	// the lists, never taken.
	gone = gone[:0]
	tb.Closed(u2)
	check("u2 closed")
	tb.Replied(u2)
	check("u2 answered again")
	if !tb.Get(u2).Assured() {
		t.Fatal("u2 answered again but not assured")
	}
	// a: e0 and u2 answered, x5 closed, x7 answered: x5 goes (c6 is
	// gone to leave the table room).
	tb.Delete(c6)
	gone = gone[:0]
	tb.Replied(x5)
	tb.Closed(x5)
	tb.Replied(ins(7, a, Owner{})) // a had 3: no drop
	ins(8, a, Owner{})             // a full: x5, closed, goes
	if len(gone) != 1 || gone[0] != x5 {
		t.Fatalf("removed %v, want the closed x5 %d", gone, x5)
	}
	gone = gone[:0]
	tb.Range(func(id int32, f *Flow) bool {
		if f.Host == a {
			tb.Replied(id)
		}
		return true
	})
	if err := tb.MakeRoom(a, Owner{}); err != ErrHostLimit {
		t.Fatalf("only established flows left: %v", err)
	}
	if len(gone) != 0 || !tb.Live(e0, tb.Get(e0).Gen) {
		t.Fatalf("removed %v, e0 live %v", gone, tb.Live(e0, tb.Get(e0).Gen))
	}
	check("end")
}

// TestFlowIndexChurn makes and removes flows at random in a small table
// (64 flows, 256 index slots, so probe runs meet and the backward shift
// moves slots of other flows and of the same flow's other tuple), with
// tuples drawn from few values so that runs collide, against a model:
// every live flow is found by both tuples, every removed one by neither,
// and Check holds throughout. TestFlowIndexTagClash forces equal tags.
func TestFlowIndexChurn(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	tb := New(64, 0, 0)
	live := map[int32][2]Tuple{}
	byTuple := map[Tuple]int32{}
	for op := range 200000 {
		if r.Intn(2) == 0 && len(live) < 64 {
			o := Tuple{Src: [4]byte{10, 0, 0, byte(r.Intn(8))}, SrcID: uint16(r.Intn(16)), Proto: 17}
			rp := Tuple{Dst: [4]byte{100, 0, 0, 1}, SrcID: 9, DstID: uint16(r.Intn(256)), Proto: 17, Side: 1}
			_, o1 := byTuple[o]
			_, r1 := byTuple[rp]
			id, err := tb.Insert(o, rp, [4]byte{}, 0, 1<<40)
			if o1 || r1 {
				if err == nil {
					t.Fatalf("op %d: %v %v made though tracked", op, o, rp)
				}
				continue
			}
			if err != nil {
				t.Fatalf("op %d: %v", op, err)
			}
			live[id] = [2]Tuple{o, rp}
			byTuple[o], byTuple[rp] = id, id
		} else if len(live) > 0 {
			for id, k := range live {
				tb.Delete(id)
				delete(live, id)
				delete(byTuple, k[0])
				delete(byTuple, k[1])
				break
			}
		}
		if op%1000 == 0 {
			if err := tb.Check(); err != nil {
				t.Fatalf("op %d: %v", op, err)
			}
		}
		for k, id := range byTuple {
			if got, _, ok := tb.Lookup(k); !ok || got != id {
				t.Fatalf("op %d: %v found as %d %v, want %d", op, k, got, ok, id)
			}
			break
		}
	}
	for k, id := range byTuple {
		if got, _, ok := tb.Lookup(k); !ok || got != id {
			t.Fatalf("%v found as %d %v, want %d", k, got, ok, id)
		}
	}
	if _, _, ok := tb.Lookup(Tuple{Src: [4]byte{1, 2, 3, 4}, Proto: 17}); ok {
		t.Fatal("found a tuple never made")
	}
}

// TestFlowIndexTagClash: flows whose tuples' hashes share their tag
// (the 8 bits a 4-byte slot keeps) and land in one probe run: lookups,
// duplicate detection and deletion still tell them apart by their
// tuples.
func TestFlowIndexTagClash(t *testing.T) {
	tb := New(64, 0, 0) // 256 slots
	x := &tb.index
	var origs []Tuple
	want := uint32(0)
	for i := 0; len(origs) < 24 && i < 1<<22; i++ {
		// tup repeats every 65,536; the third byte of the destination
		// keeps the tuples apart past that (the same tuple twice was
		// refused by Insert, a failure in one run of some 50).
		k := tup(i, 0)
		k.Dst[2] = byte(i >> 16)
		h := tupleHash(&x.key, &k)
		if len(origs) == 0 {
			want = slotTag(h)
		}
		if slotTag(h) == want && h&x.mask < 32 {
			origs = append(origs, k)
		}
	}
	if len(origs) < 24 {
		t.Fatalf("only %d tuples of one tag found", len(origs))
	}
	reply := func(i int) Tuple { return tup(1000+i, 1) }
	ids := make([]int32, len(origs))
	for i, k := range origs {
		id, err := tb.Insert(k, reply(i), [4]byte{}, 0, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	if _, err := tb.Insert(origs[3], tup(2000, 1), [4]byte{}, 0, 1<<40); err != ErrExists {
		t.Fatalf("a tracked tuple again: %v", err)
	}
	for i := 0; i < len(ids); i += 2 {
		tb.Delete(ids[i])
	}
	for i, k := range origs {
		id, dir, ok := tb.Lookup(k)
		if ok != (i%2 == 1) || ok && (dir != Original || id != ids[i]) {
			t.Fatalf("flow %d: found %d %v %v", i, id, ok, dir)
		}
	}
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestFlowData: a flow's data (Table.Data) is kept in the record it holds
// while unanswered, stays when the flow is answered if it has any, goes
// with the record when set to zero on an answered flow, and a record is
// taken again when an answered flow gets data or is closed; Check
// counts the records held against the flows holding them.
func TestFlowData(t *testing.T) {
	tb := New(8, 0, 0)
	a, _ := tb.Insert(tup(1, 0), tup(1, 1), [4]byte{}, 0, 1<<40)
	b, _ := tb.Insert(tup(2, 0), tup(2, 1), [4]byte{}, 0, 1<<40)
	tb.SetData(a, 7, 9)
	tb.Replied(a)
	tb.Replied(b)
	if d, x := tb.Data(a); d != 7 || x != 9 || tb.flows[a].x == 0 {
		t.Fatalf("answered flow's data %d %d, record %d", d, x, tb.flows[a].x)
	}
	if d, x := tb.Data(b); d != 0 || x != 0 || tb.flows[b].x != 0 {
		t.Fatalf("answered flow without data: %d %d, record %d", d, x, tb.flows[b].x)
	}
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
	tb.SetData(a, 0, 0)
	tb.SetData(b, 0, 5)
	if tb.flows[a].x != 0 || tb.flows[b].x == 0 {
		t.Fatalf("records %d %d, want none and one", tb.flows[a].x, tb.flows[b].x)
	}
	if d, x := tb.DataOf(tb.Get(b)); d != 0 || x != 5 || tb.ID(tb.Get(b)) != b {
		t.Fatalf("DataOf %d %d, ID %d", d, x, tb.ID(tb.Get(b)))
	}
	tb.Closed(a)
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
	tb.Delete(a)
	tb.Delete(b)
	if n := tb.xp.held(); n != 0 {
		t.Fatalf("%d records held with no flow", n)
	}
}

// TestInsertAfterMakeRoom: the room MakeRoom made spares Insert its
// checks for that host and owner once; a second Insert, another host or
// owner, or a rule limit changed in between is checked again.
func TestInsertAfterMakeRoom(t *testing.T) {
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	mac := MACOwner([6]byte{2, 0, 0, 0, 0, 7})
	tb := New(16, 1, 0)
	if err := tb.MakeRoom(a, mac); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertOwned(tup(1, 0), tup(1, 1), a, mac, 0, 1000*ms); err != nil {
		t.Fatal(err)
	}
	// The room was the first flow's: a's share and the MAC's are full.
	if _, err := tb.InsertOwned(tup(2, 0), tup(2, 1), a, mac, 0, 1000*ms); err != ErrHostLimit {
		t.Fatalf("second flow of a after one MakeRoom: %v, want %v", err, ErrHostLimit)
	}
	if _, err := tb.InsertOwned(tup(2, 0), tup(2, 1), b, mac, 0, 1000*ms); err != ErrOwnerLimit {
		t.Fatalf("b from the full MAC: %v, want %v", err, ErrOwnerLimit)
	}
	// Room made for b alone says nothing of a.
	if err := tb.MakeRoom(b, Owner{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.InsertOwned(tup(3, 0), tup(3, 1), a, Owner{}, 0, 1000*ms); err != nil {
		t.Fatalf("a with no MAC: %v", err) // a's share from no MAC is its own
	}
	if _, err := tb.InsertOwned(tup(4, 0), tup(4, 1), a, Owner{}, 0, 1000*ms); err != ErrHostLimit {
		t.Fatalf("a again, room made for b: %v, want %v", err, ErrHostLimit)
	}
	// A rule's room, then its limit lowered: checked again.
	rule := RuleOwner(1)
	tb.SetRuleLimit(2)
	if _, err := tb.InsertOwned(tup(5, 0), tup(5, 1), b, rule, 0, 1000*ms); err != nil {
		t.Fatal(err)
	}
	if err := tb.MakeRoom(b, rule); err != nil {
		t.Fatal(err)
	}
	tb.SetRuleLimit(1)
	if _, err := tb.InsertOwned(tup(6, 0), tup(6, 1), b, rule, 0, 1000*ms); err == nil {
		t.Fatal("a second flow of a rule limited to 1 made")
	}
	if got := tb.OwnerFlows(rule); got != 1 {
		t.Fatalf("rule holds %d flows, want 1", got)
	}
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestMakeRoomAfterLimitLowered: a rule's limit lowered below the flows
// it holds (Reconfigure) leaves its share over the limit by more than the
// one flow MakeRoom's early drop takes; the room it reports must then be
// none, else Insert, trusting it, kept the share over the new limit
// forever (one dropped, one made, each new flow).
func TestMakeRoomAfterLimitLowered(t *testing.T) {
	b := [4]byte{10, 0, 0, 2}
	rule := RuleOwner(1)
	tb := New(16, 8, 0)
	tb.SetRuleLimit(4)
	for i := range 4 {
		if _, err := tb.InsertOwned(tup(i, 0), tup(i, 1), b, rule, 0, 1000*ms); err != nil {
			t.Fatal(err)
		}
	}
	tb.SetRuleLimit(1)
	for i := 4; i < 8; i++ {
		mrErr := tb.MakeRoom(b, rule)
		_, err := tb.InsertOwned(tup(i, 0), tup(i, 1), b, rule, 0, 1000*ms)
		if err == nil && tb.OwnerFlows(rule) > 1 {
			t.Fatalf("flow %d made (MakeRoom: %v) with the rule holding %d, limit 1", i, mrErr, tb.OwnerFlows(rule))
		}
		if (mrErr == nil) != (err == nil) {
			t.Fatalf("flow %d: MakeRoom said %v, Insert %v", i, mrErr, err)
		}
	}
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRoomNeverOverLimits drives the table at random the engine's way
// (MakeRoom, then Insert, or something else in between: another host's
// flow, a reply, a close, a delete, data set and cleared, a rule limit
// changed) and checks after each step that no share nor the table holds
// more than its limit, past what it held when its limit was lowered.
func TestRoomNeverOverLimits(t *testing.T) {
	const maxFlows, perHost = 24, 5
	hosts := [][4]byte{{10, 0, 0, 1}, {10, 0, 0, 2}, {10, 0, 0, 3}, {}}
	owners := []Owner{{}, MACOwner([6]byte{2, 0, 0, 0, 0, 1}), MACOwner([6]byte{2, 0, 0, 0, 0, 2}),
		RuleOwner(1), InboundOwner, MACInboundOwner([6]byte{2, 0, 0, 0, 0, 1})}
	r := rand.New(rand.NewSource(56))
	tb := New(maxFlows, perHost, 0)
	rule := 8
	tb.SetRuleLimit(rule)
	var ids []int32
	next := 0
	over := map[Owner]int{} // an owner's count when its limit was lowered below it
	for step := range 200000 {
		switch op := r.Intn(10); {
		case op < 6:
			h, o := hosts[r.Intn(len(hosts))], owners[r.Intn(len(owners))]
			if r.Intn(4) != 0 {
				_ = tb.MakeRoom(h, o)
			}
			if r.Intn(8) == 0 { // something else made in between
				h2, o2 := hosts[r.Intn(len(hosts))], owners[r.Intn(len(owners))]
				next++
				if id, err := tb.InsertOwned(tup(next, 0), tup(next, 1), h2, o2, 0, 1<<40); err == nil {
					ids = append(ids, id)
				}
			}
			next++
			if id, err := tb.InsertOwned(tup(next, 0), tup(next, 1), h, o, 0, 1<<40); err == nil {
				ids = append(ids, id)
			}
		case op == 6 && len(ids) > 0:
			i := r.Intn(len(ids))
			if f := tb.Get(ids[i]); f.st&stInUse != 0 {
				switch r.Intn(4) {
				case 0:
					tb.Replied(ids[i])
				case 1:
					tb.Closed(ids[i])
				case 2:
					tb.SetData(ids[i], uint64(r.Intn(2)), 0)
				default:
					tb.Delete(ids[i])
				}
			}
		case op == 7:
			rule = 1 + r.Intn(10)
			tb.SetRuleLimit(rule)
			for _, o := range owners {
				if m := int(tb.ownerMax(o)); m > 0 && tb.OwnerFlows(o) > m {
					over[o] = max(over[o], tb.OwnerFlows(o))
				}
			}
		}
		if tb.Len() > maxFlows {
			t.Fatalf("step %d: %d flows, max %d", step, tb.Len(), maxFlows)
		}
		for _, o := range owners {
			if o.Kind == OwnerNone {
				continue
			}
			lim := int(tb.ownerMax(o))
			if n := tb.OwnerFlows(o); lim > 0 && n > lim && n > over[o] {
				t.Fatalf("step %d: %v holds %d, limit %d (%d when lowered)", step, o, n, lim, over[o])
			} else if n <= lim {
				delete(over, o)
			}
		}
		for _, h := range hosts[:3] {
			for _, o := range []Owner{{}, owners[1], owners[2]} {
				if n := int(tb.perHost.get(keyOfHost(h, o)).n); n > perHost {
					t.Fatalf("step %d: host %v from %v holds %d, limit %d", step, h, o, n, perHost)
				}
			}
		}
		if step%1000 == 0 {
			if err := tb.Check(); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
}

// TestSetDataOnEndedFlow: data set on a flow that has ended (a helper
// holding its id past the end) takes no record: the pool is sized for
// one record a flow when the table is made, and a record taken by an
// ended flow was lost when its id was reused (Insert takes another), so
// such calls ran the pool past its end (index out of range).
func TestSetDataOnEndedFlow(t *testing.T) {
	tb := New(4, 0, 0)
	for i := range 16 {
		id, err := tb.Insert(tup(i, 0), tup(i, 1), [4]byte{}, 0, 1<<40)
		if err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		tb.Delete(id)
		tb.SetData(id, 1, 2)
		if d, x := tb.Data(id); d != 0 || x != 0 {
			t.Fatalf("ended flow's data %d %d", d, x)
		}
	}
	if n := tb.xp.held(); n != 0 {
		t.Fatalf("%d records held with no flow", n)
	}
}

// TestLastFlowOfLargestTable: a table of MaxFlows flows indexes its last
// flow's reply tuple too. Its value (id << 1 | 1) plus one is 1 << 24
// where MaxFlows was 1 << 23, past a slot's 24 bits: the slot's value read
// back was 0 - 1 (its tag changed, so it was not found, nor deleted).
func TestLastFlowOfLargestTable(t *testing.T) {
	tb := New(MaxFlows, 0, 0)      // address space; a few pages touched
	tb.fresh = int32(MaxFlows - 1) // as after MaxFlows-1 flows made
	id, err := tb.Insert(tup(1, 0), tup(1, 1), [4]byte{}, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if id != MaxFlows-1 {
		t.Fatalf("flow %d, want the last, %d", id, MaxFlows-1)
	}
	for d, k := range []Tuple{tup(1, 0), tup(1, 1)} {
		if got, dir, ok := tb.Lookup(k); !ok || got != id || dir != Dir(d) {
			t.Fatalf("tuple %d: flow %d dir %d found %v", d, got, dir, ok)
		}
	}
	tb.Delete(id)
	if _, _, ok := tb.Lookup(tup(1, 1)); ok {
		t.Fatal("the reply tuple found after the flow's delete")
	}
}
