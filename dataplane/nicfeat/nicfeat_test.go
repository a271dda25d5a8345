package nicfeat

import (
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// The kernel's answers, built as it writes them (native byte order).

func ssetInfo(mask uint64, n uint32) []byte {
	b := make([]byte, ssetInfoLen)
	binary.NativeEndian.PutUint32(b, unix.ETHTOOL_GSSET_INFO)
	binary.NativeEndian.PutUint64(b[8:], mask)
	binary.NativeEndian.PutUint32(b[16:], n)
	return b
}

func gstrings(names ...string) []byte {
	b := make([]byte, gstringsHdrLen+len(names)*gstringLen)
	binary.NativeEndian.PutUint32(b, unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(b[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(b[8:], uint32(len(names)))
	for i, n := range names {
		copy(b[gstringsHdrLen+i*gstringLen:][:gstringLen], n)
	}
	return b
}

func gfeatures(blocks ...[4]uint32) []byte {
	b := make([]byte, featuresHdrLen+len(blocks)*getBlockLen)
	binary.NativeEndian.PutUint32(b, unix.ETHTOOL_GFEATURES)
	binary.NativeEndian.PutUint32(b[4:], uint32(len(blocks)))
	for i, blk := range blocks {
		for j, w := range blk {
			binary.NativeEndian.PutUint32(b[featuresHdrLen+i*getBlockLen+4*j:], w)
		}
	}
	return b
}

// vethNames are the first names of the kernel's feature string set, and
// rx-gro-hw far in the second word, as on a 6.x veth.
func vethNames() []string {
	names := make([]string, 40)
	for i := range names {
		names[i] = "x"
	}
	names[8] = "rx-vlan-hw-parse"
	names[14] = "rx-gro"
	names[15] = "rx-lro"
	names[37] = "rx-gro-hw"
	return names
}

func TestParse(t *testing.T) {
	n, err := parseSsetCount(ssetInfo(1<<ethSSFeatures, 40))
	if err != nil || n != 40 {
		t.Fatalf("sset count %d %v", n, err)
	}
	for _, bad := range [][]byte{ssetInfo(1<<1, 40), ssetInfo(1<<ethSSFeatures, 0), ssetInfo(1<<ethSSFeatures, 32*maxWords+1), make([]byte, 12)} {
		if _, err := parseSsetCount(bad); err == nil {
			t.Errorf("sset info %x accepted", bad)
		}
	}

	names, err := parseStrings(gstrings(vethNames()...), 40)
	if err != nil || !slices.Equal(names, vethNames()) {
		t.Fatalf("strings %q %v", names, err)
	}
	// A name of the full 32 bytes has no NUL.
	long := "rx-abcdefghijklmnopqrstuvwxyz012" // 32 bytes
	if names, err := parseStrings(gstrings(long), 1); err != nil || names[0] != long {
		t.Errorf("32-byte name: %q %v", names, err)
	}
	if _, err := parseStrings(gstrings(vethNames()...), 39); err == nil {
		t.Error("more strings than asked for accepted")
	}
	if _, err := parseStrings(gstrings(vethNames()...)[:100], 40); err == nil {
		t.Error("strings past the buffer accepted")
	}

	// Word 0: rx-gro available, requested, active; rx-lro nowhere (fixed
	// off); rx-vlan-hw-parse active but never changed. Word 1: rx-gro-hw
	// (bit 37) available and requested but not active.
	gro, vlan, grohw := uint32(1)<<14, uint32(1)<<8, uint32(1)<<5
	blocks, err := parseFeatures(gfeatures([4]uint32{gro | vlan, gro | vlan, gro | vlan, vlan}, [4]uint32{grohw, grohw, 0, 0}), 2)
	if err != nil || len(blocks) != 2 {
		t.Fatalf("features %v %v", blocks, err)
	}
	f := &Features{names: names, blocks: blocks}
	for _, c := range []struct {
		name  string
		want  State
		fixed bool
	}{
		{"rx-gro", State{Available: true, Requested: true, Active: true}, false},
		{"rx-lro", State{}, true},
		{"rx-vlan-hw-parse", State{true, true, true, true}, true},
		{"rx-gro-hw", State{Available: true, Requested: true}, false},
	} {
		s, ok := f.Lookup(c.name)
		if !ok || s != c.want || s.Fixed() != c.fixed {
			t.Errorf("%s: %+v %v (fixed %v), want %+v (fixed %v)", c.name, s, ok, s.Fixed(), c.want, c.fixed)
		}
	}
	if _, ok := f.Lookup("rx-gro-list"); ok {
		t.Error("a feature the kernel did not name found")
	}
	// A name whose bit is past the words reported is not known.
	short := &Features{names: names, blocks: blocks[:1]}
	if _, ok := short.Lookup("rx-gro-hw"); ok {
		t.Error("bit 37 found in one word")
	}
	for _, bad := range [][]byte{gfeatures(), gfeatures([4]uint32{}, [4]uint32{}, [4]uint32{}), gfeatures([4]uint32{})[:20]} {
		if _, err := parseFeatures(bad, 2); err == nil {
			t.Errorf("features %x accepted", bad)
		}
	}
}

func TestSetRequest(t *testing.T) {
	b := setRequest(2, map[int]bool{14: false, 8: true, 37: true, 64: true, -1: false})
	if len(b) != featuresHdrLen+2*setBlockLen {
		t.Fatalf("length %d", len(b))
	}
	w := func(off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	if w(0) != unix.ETHTOOL_SFEATURES || w(4) != 2 {
		t.Errorf("header %x", b[:8])
	}
	// valid, requested per word: only the named bits are valid, and only
	// those asked on are requested; bits past the words are left out.
	if got := [4]uint32{w(8), w(12), w(16), w(20)}; got != [4]uint32{1<<14 | 1<<8, 1 << 8, 1 << 5, 1 << 5} {
		t.Errorf("blocks %#x", got)
	}
}

func TestInspect(t *testing.T) {
	names, _ := parseStrings(gstrings(vethNames()...), 40)
	gro, vlan := uint32(1)<<14, uint32(1)<<8
	blocks, _ := parseFeatures(gfeatures([4]uint32{gro, gro, gro, 0}, [4]uint32{0, 0, 0, 0}), 2)
	// rx-vlan-hw-parse active but not available: fixed on.
	blocks[0][2] |= vlan
	cs := inspect(&Features{names: names, blocks: blocks}, "lan0", RxOffloads)
	want := []Change{
		{Iface: "lan0", Feature: "rx-gro", Before: true, After: true},
		{Iface: "lan0", Feature: "rx-lro", Fixed: true},
		{Iface: "lan0", Feature: "rx-gro-hw", Fixed: true},
		{Iface: "lan0", Feature: "rx-vlan-hw-parse", Before: true, After: true, Fixed: true},
	}
	if !slices.Equal(cs, want) {
		t.Errorf("got %+v\nwant %+v", cs, want)
	}
}

// FuzzParse feeds the three parsers arbitrary kernel answers: none may
// panic, and what parseFeatures accepts fits the words asked for.
func FuzzParse(f *testing.F) {
	f.Add(ssetInfo(1<<ethSSFeatures, 40), gstrings(vethNames()...), gfeatures([4]uint32{1, 1, 1, 0}, [4]uint32{}))
	f.Fuzz(func(t *testing.T, sset, strs, feats []byte) {
		n, err := parseSsetCount(sset)
		if err != nil {
			n = 40
		}
		names, err := parseStrings(strs, n)
		if err == nil && len(names) > n {
			t.Fatalf("%d names for %d", len(names), n)
		}
		words := (n + 31) / 32
		blocks, err := parseFeatures(feats, words)
		if err == nil && (len(blocks) == 0 || len(blocks) > words) {
			t.Fatalf("%d words for %d", len(blocks), words)
		}
		ft := &Features{names: names, blocks: blocks}
		for _, name := range RxOffloads {
			ft.Lookup(name)
		}
	})
}
