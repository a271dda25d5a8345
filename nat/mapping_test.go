package nat

import (
	"testing"
	"unsafe"
)

// TestMapperLines: the lines mapper.lines names are those acquire and
// filterAdd of a new flow then use, for a new mapping whose LAN port is
// kept (the slab entries it takes, its outside port's entry, the
// mapping's and filter's home slots) and for a second flow of the
// mapping, to another remote (a new filter's entry).
func TestMapperLines(t *testing.T) {
	m := newMapper(64, 1024, 65535, 1)
	none := func(uint8, uint16) bool { return false }
	host := [4]byte{192, 168, 50, 10}
	for i, c := range []struct {
		port   uint16
		remote [4]byte
	}{{5000, [4]byte{198, 18, 0, 1}}, {5000, [4]byte{198, 18, 0, 2}}, {6000, [4]byte{198, 18, 0, 1}}} {
		var at [5]uintptr
		m.lines(&at, 17, host, c.port, c.remote)
		k := mapKey{host: host, port: c.port, proto: 17}
		f := filter{remote: c.remote, ext: c.port, proto: 17}
		_, existed := m.lookup(17, host, c.port)
		mi, ok := m.acquire(17, host, c.port, [6]byte{}, none)
		if !ok || m.slab[mi].extPort != c.port {
			t.Fatalf("%d: acquire %d %v, outside port %d", i, mi, ok, m.slab[mi].extPort)
		}
		m.filterAdd(17, c.port, c.remote, 1)
		fi, _, ok := m.findFilter(f)
		if !ok {
			t.Fatalf("%d: no filter", i)
		}
		want := [5]uintptr{
			m.byKey.SlotAt(m.byKey.Hash(k.packed())), m.filt.SlotAt(m.filt.Hash(f.packed())),
			uintptr(unsafe.Pointer(&m.byPort[protoSlot(17)][c.port])),
			uintptr(unsafe.Pointer(&m.slab[mi])), uintptr(unsafe.Pointer(&m.filts[fi])),
		}
		if existed {
			want[3] = at[3] // no new mapping: the free entry is not taken
		}
		if at != want {
			t.Fatalf("%d: lines %#x, want %#x", i, at, want)
		}
	}
}

// TestMACTableLast: the MAC ref last named is remembered, and forgotten
// with its id, so an id freed is never handed out twice.
func TestMACTableLast(t *testing.T) {
	a, b := [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}
	m := newMACTable()
	ia := m.ref(a)
	if ia == 0 || m.ref(a) != ia || m.refs[ia] != 2 {
		t.Fatalf("a: id %d, refs %d; want one id, 2 refs", ia, m.refs[ia])
	}
	m.unref(ia)
	m.unref(ia) // a's id is free now
	ia2 := m.ref(a)
	ib := m.ref(b)
	if ia2 == ib || ia2 == 0 || ib == 0 {
		t.Fatalf("a again took id %d, then b %d", ia2, ib)
	}
	if m.macs[ia2] != a || m.macs[ib] != b || m.refs[ia2] != 1 || m.refs[ib] != 1 {
		t.Fatalf("ids %d %d name %v %v with refs %d %d", ia2, ib, m.macs[ia2], m.macs[ib], m.refs[ia2], m.refs[ib])
	}
	if m.ref(b) != ib || m.ref(a) != ia2 || m.refs[ib] != 2 || m.refs[ia2] != 2 {
		t.Fatal("refs of a and b in turn")
	}
}
