package conntrack

import (
	"testing"
	"unsafe"
)

// TestFlowLayout keeps Flow's layout (see its comment): everything an
// established packet reads in the first 64 bytes, and 128 bytes in all
// (two cache lines, so that every flow of the slab starts on one); a
// TCP flow's sequence state (Table.Seq) is 32 bytes and starts on a
// half line, so never straddles two.
func TestFlowLayout(t *testing.T) {
	var f Flow
	if n := unsafe.Sizeof(f); n != 128 {
		t.Errorf("Flow is %d bytes, want 128", n)
	}
	if n := unsafe.Sizeof([2]Seq{}); n != 32 {
		t.Errorf("a flow's Seq is %d bytes, want 32", n)
	}
	hot := map[string]uintptr{
		"Orig": unsafe.Offsetof(f.Orig) + unsafe.Sizeof(f.Orig), "Reply": unsafe.Offsetof(f.Reply) + unsafe.Sizeof(f.Reply),
		"Xlate": unsafe.Offsetof(f.Xlate) + unsafe.Sizeof(f.Xlate), "State": unsafe.Offsetof(f.State) + 1,
		"Helper": unsafe.Offsetof(f.Helper) + 1, "Flags": unsafe.Offsetof(f.Flags) + 2, "Gen": unsafe.Offsetof(f.Gen) + 4,
		"tick": unsafe.Offsetof(f.tick) + 4, "Deadline": unsafe.Offsetof(f.Deadline) + 8, "st": unsafe.Offsetof(f.st) + 1,
	}
	for name, end := range hot {
		if end > 64 {
			t.Errorf("Flow.%s ends at byte %d, past the first cache line", name, end)
		}
	}
	tb := New(1024, 0, 0)
	if s := uintptr(unsafe.Pointer(&tb.flows[0])); s%64 != 0 {
		t.Errorf("flows at %#x, not on a cache line", s)
	}
	if s := uintptr(unsafe.Pointer(&tb.seq[0])); s%64 != 0 {
		t.Errorf("seq at %#x, not on a cache line", s)
	}
	if s := uintptr(unsafe.Pointer(&tb.index.slots[0])); s%64 != 0 {
		t.Errorf("index at %#x, not on a cache line", s)
	}
}

// TestWheelTickLargeClock: a flow keeps its wheel tick's low 32 bits
// only; with a clock of Unix nanoseconds (ticks past 1<<32) deadlines
// still move, and flows still expire, when they should.
func TestWheelTickLargeClock(t *testing.T) {
	const sec = int64(1e9)
	now := int64(1_765_000_000) * sec
	tb := New(4, 0, now)
	id, err := tb.Insert(tup(1, 0), tup(1, 1), [4]byte{}, now, now+30*sec)
	if err != nil {
		t.Fatal(err)
	}
	if !tb.ExtendDeadline(id, now+40*sec) {
		t.Fatal("a later deadline needed the wheel")
	}
	if tb.ExtendDeadline(id, now+400*sec) && tb.Deadline(id) != now+400*sec {
		t.Fatal("deadline not moved")
	}
	tb.SetDeadline(id, now+5*sec) // earlier: the flow moves slot
	if n := tb.Expire(now + 4*sec); n != 0 {
		t.Fatalf("%d expired early", n)
	}
	if n := tb.Expire(now + 6*sec); n != 1 {
		t.Fatalf("%d expired at its deadline, want 1", n)
	}
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestHugeSlab: a slab of 32 MB or more is placed on a huge page's
// boundary inside a larger allocation (hugeSlice); the table works on
// it as on any other (run with -race too: checkptr vets the placement).
func TestHugeSlab(t *testing.T) {
	const n = 1 << 18 // 48 MB of flows
	tb := New(n, 0, 0)
	if s := uintptr(unsafe.Pointer(&tb.flows[0])); s%(2<<20) != 0 {
		t.Errorf("flows at %#x, not on a huge page", s)
	}
	if len(tb.flows) != n || cap(tb.flows) != n {
		t.Fatalf("slab of %d (cap %d), want %d", len(tb.flows), cap(tb.flows), n)
	}
	for i := range 1000 {
		if _, err := tb.Insert(tup(i, 0), tup(i, 1), [4]byte{}, 0, 1<<40); err != nil {
			t.Fatal(err)
		}
	}
	tb.flows[n-1].Ext = 1 // the last flow is the slab's
	if id, dir, ok := tb.Lookup(tup(999, 1)); !ok || dir != Reply || tb.Get(id).Reply != tup(999, 1) {
		t.Fatalf("lookup: %d %v %v", id, dir, ok)
	}
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
}
