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
	a, b := keyOfHost([4]byte{10, 0, 0, 1}, Owner{}), keyOfHost([4]byte{10, 0, 0, 2}, Owner{})
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
	c := keyOfHost([4]byte{10, 0, 0, 3}, MACOwner([6]byte{2, 0, 0, 0, 0, 1}))
	h.set(c, share{n: 7})
	if len(h.s) != 2 || len(h.m) != 2 || len(h.free) != 0 {
		t.Fatalf("%d places, %d hosts, %d free: a freed place not reused", len(h.s), len(h.m), len(h.free))
	}
	if h.get(c).n != 7 || h.get(b).n != 1 || h.get(a).n != 0 {
		t.Fatalf("after reuse: c %+v b %+v a %+v", h.get(c), h.get(b), h.get(a))
	}
}

// TestShareKeys: keys made of different addresses, MACs and kinds of
// owner differ, the same ones are equal, and an owner's key keeps every
// byte of it.
func TestShareKeys(t *testing.T) {
	a := [4]byte{10, 0, 0, 1}
	m1, m2 := MACOwner([6]byte{2, 0, 0, 0, 0, 1}), MACOwner([6]byte{3, 0, 0, 0, 0, 1})
	keys := []hostKey{keyOfHost(a, Owner{}), keyOfHost(a, m1), keyOfHost(a, m2), keyOfHost(a, RuleOwner(1)),
		keyOfHost([4]byte{10, 0, 0, 2}, m1), keyOfHost([4]byte{11, 0, 0, 1}, m1)}
	for i := range keys {
		for j := range keys {
			if (keys[i] == keys[j]) != (i == j) {
				t.Fatalf("keys %d and %d: %v, %v", i, j, keys[i], keys[j])
			}
		}
	}
	if keyOfHost(a, RuleOwner(1)) != keyOfHost(a, InboundOwner) {
		t.Fatal("a rule's inbound share is not the host's inbound share")
	}
	o := Owner{Kind: OwnerMAC, ID: [6]byte{1, 2, 3, 4, 5, 6}}
	if got, want := o.key(), uint64(0x06050403020101); got != want {
		t.Fatalf("owner key %#x, want %#x", got, want)
	}
}
