package nat

import (
	"math/rand/v2"
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

// TestMACTableModel: ref and unref at random, with the ids running out
// (more MACs than macIDs) and the last MAC named freed and its id taken
// by another: every id ref hands out names the MAC asked for, with the
// references counted as a model counts them.
func TestMACTableModel(t *testing.T) {
	for _, tc := range []struct{ macs, held int }{{3, 4}, {40, 30}, {5000, 6000}} {
		macTableModel(t, tc.macs, tc.held)
	}
}

func macTableModel(t *testing.T, macs, most int) {
	m := newMACTable()
	type held struct {
		mac [6]byte
		id  uint16
	}
	var refs []held
	count := map[uint16]int32{}
	owner := map[uint16][6]byte{}
	byMAC := map[[6]byte]uint16{}
	r := rand.New(rand.NewPCG(7, uint64(macs)))
	for step := range 300000 {
		if len(refs) > 0 && (r.IntN(2) == 0 || len(refs) > most) {
			i := r.IntN(len(refs))
			h := refs[i]
			refs[i] = refs[len(refs)-1]
			refs = refs[:len(refs)-1]
			m.unref(h.id)
			if h.id != 0 {
				if count[h.id]--; count[h.id] == 0 {
					delete(count, h.id)
					delete(owner, h.id)
				}
			}
			continue
		}
		// Runs of one MAC, as a LAN's flows come.
		n := r.IntN(macs)
		if r.IntN(3) != 0 && len(refs) > 0 {
			n = int(refs[len(refs)-1].mac[5]) | int(refs[len(refs)-1].mac[4])<<8
		}
		mac := [6]byte{2, 0, 0, 0, byte(n >> 8), byte(n)}
		id := m.ref(mac)
		refs = append(refs, held{mac, id})
		if id == 0 {
			if len(owner) < macIDs {
				t.Fatalf("%d MACs, step %d: no id for %v with %d of %d taken", macs, step, mac, len(owner), macIDs)
			}
			continue
		}
		if o, ok := owner[id]; ok && o != mac {
			t.Fatalf("%d MACs, step %d: id %d handed to %v, held by %v", macs, step, id, mac, o)
		}
		if h := byMAC[mac]; h != 0 && h != id && count[h] > 0 && owner[h] == mac {
			t.Fatalf("%d MACs, step %d: %v holds ids %d and %d", macs, step, mac, h, id)
		}
		owner[id], byMAC[mac] = mac, id
		count[id]++
		if m.macs[id] != mac || m.refs[id] != count[id] {
			t.Fatalf("%d MACs, step %d: id %d names %v with %d refs, want %v with %d", macs, step, id, m.macs[id], m.refs[id], mac, count[id])
		}
	}
}
