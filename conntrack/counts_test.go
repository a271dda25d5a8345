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
