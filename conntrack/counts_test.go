package conntrack

import "testing"

// The per-protocol and per-class counts follow inserts, SetClass, Delete
// and expiry, and a reused slot starts in class 0.
func TestCounts(t *testing.T) {
	tb := New(8, 0, 0)
	udp := func(i int, side uint8) Tuple { k := tup(i, side); k.Proto = 17; return k }
	a, _ := tb.Insert(tup(1, 0), tup(1, 1), [4]byte{}, 0, 10*ms)
	b, _ := tb.Insert(udp(2, 0), udp(2, 1), [4]byte{}, 0, 1000*ms)
	if _, err := tb.Insert(udp(3, 0), udp(3, 1), [4]byte{}, 0, 1000*ms); err != nil {
		t.Fatal(err)
	}
	tb.SetClass(a, 2)
	tb.SetClass(b, 2)
	tb.SetClass(b, 3)
	tb.SetClass(b, NumClasses) // out of range: ignored
	if tb.ProtoFlows(6) != 1 || tb.ProtoFlows(17) != 2 || tb.ClassFlows(0) != 1 || tb.ClassFlows(2) != 1 || tb.ClassFlows(3) != 1 {
		t.Fatalf("tcp %d udp %d classes %d %d %d", tb.ProtoFlows(6), tb.ProtoFlows(17), tb.ClassFlows(0), tb.ClassFlows(2), tb.ClassFlows(3))
	}
	tb.Expire(600 * ms) // a goes
	tb.Delete(b)
	if tb.ProtoFlows(6) != 0 || tb.ProtoFlows(17) != 1 || tb.ClassFlows(2) != 0 || tb.ClassFlows(3) != 0 || tb.ClassFlows(0) != 1 {
		t.Fatalf("after removal: tcp %d udp %d classes %d %d %d", tb.ProtoFlows(6), tb.ProtoFlows(17), tb.ClassFlows(0), tb.ClassFlows(2), tb.ClassFlows(3))
	}
	c, _ := tb.Insert(tup(4, 0), tup(4, 1), [4]byte{}, 0, 1000*ms) // reuses a slot
	if tb.Get(c).Class() != 0 || tb.ClassFlows(0) != 2 {
		t.Fatalf("reused slot class %d, class 0 %d", tb.Get(c).Class(), tb.ClassFlows(0))
	}
}

// TestHostShares: a host's share (shares) reads back as set, a host gone reads as
// none (through the remembered last host too), and a place freed is
// taken by the next new host, so the slab does not grow with churn.
func TestHostShares(t *testing.T) {
	h := newShares[hostKey]()
	a, b := hostKey{addr: [4]byte{10, 0, 0, 1}}, hostKey{addr: [4]byte{10, 0, 0, 2}}
	h.set(a, share{n: 3, head: 1, tail: 2})
	h.set(b, share{n: 1})
	if got := h.get(a); got != (share{n: 3, head: 1, tail: 2}) {
		t.Fatalf("a: %+v", got)
	}
	h.del(a)
	if got := h.get(a); got != (share{}) {
		t.Fatalf("a after del: %+v", got)
	}
	if got := h.get(b); got.n != 1 {
		t.Fatalf("b: %+v", got)
	}
	if got := h.get(a); got != (share{}) {
		t.Fatalf("a after del, not last: %+v", got)
	}
	c := hostKey{addr: [4]byte{10, 0, 0, 3}}
	h.set(c, share{n: 7})
	if len(h.s) != 2 || len(h.m) != 2 || len(h.free) != 0 {
		t.Fatalf("%d places, %d hosts, %d free: a freed place not reused", len(h.s), len(h.m), len(h.free))
	}
	if h.get(c).n != 7 || h.get(b).n != 1 || h.get(a).n != 0 {
		t.Fatalf("after reuse: c %+v b %+v a %+v", h.get(c), h.get(b), h.get(a))
	}
}
