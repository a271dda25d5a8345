package nat

import (
	"bytes"
	"sort"
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// outOf runs p through e and returns the packets that left, in order
// (forwarded in place or emitted).
func outOf(t *testing.T, e *Engine, from Iface, p []byte) [][]byte {
	t.Helper()
	v := e.Process(0, from, p)
	var got [][]byte
	switch v.Action {
	case Forward:
		got = append(got, append([]byte(nil), p...))
	case Consumed:
	default:
		t.Fatalf("verdict %+v (reason %v)", v, v.Reason)
	}
	for _, em := range e.Emitted() {
		got = append(got, append([]byte(nil), em.Frame[EtherHeadroom:]...))
	}
	e.ResetEmitted()
	return got
}

// TestIPIDUniqueAfterTranslation: two LAN hosts send one fragmented UDP
// datagram each, with the same ID, to one server; their fragments
// interleave, one of B's before its first. After the NAT both share the
// public source, so their IDs must differ (RFC 7857 section 10), every
// fragment of one datagram carrying its datagram's, and each datagram
// must reassemble to what its host sent.
func TestIPIDUniqueAfterTranslation(t *testing.T) {
	e := newEngine(t, nil)
	pa := bytes.Repeat([]byte{0xa5}, 2400)
	pb := bytes.Repeat([]byte{0x5a, 0x01}, 1200)
	fa := Fragment(UDP("192.168.50.10:5000", "203.0.113.10:9000", pa, ID(77)), 1000)
	fb := Fragment(UDP("192.168.50.11:5000", "203.0.113.10:9000", pb, ID(77)), 1000)
	if len(fa) != 3 || len(fb) != 3 {
		t.Fatalf("%d and %d fragments", len(fa), len(fb))
	}
	byID := map[uint16][][]byte{}
	for _, p := range [][]byte{fa[0], fb[1], fa[1], fb[0], fb[2], fa[2]} {
		for _, o := range outOf(t, e, LAN, p) {
			IPv4(t, o, Src("203.0.113.1"), Dst("203.0.113.10"))
			id := packet.IPv4(o).ID()
			byID[id] = append(byID[id], o)
		}
	}
	if len(byID) != 2 {
		t.Fatalf("%d IDs after translation, want 2 (one a datagram): %v", len(byID), keys(byID))
	}
	seen := map[string]bool{}
	for id, fs := range byID {
		if len(fs) != 3 {
			t.Fatalf("ID %d: %d fragments, want 3", id, len(fs))
		}
		sort.Slice(fs, func(i, j int) bool {
			return packet.IPv4(fs[i]).FragmentOffset() < packet.IPv4(fs[j]).FragmentOffset()
		})
		var whole []byte
		for _, f := range fs {
			whole = append(whole, packet.IPv4(f).Payload()...)
		}
		u := packet.UDP(whole)
		body := whole[packet.UDPHeaderLen:]
		// The reassembled datagram is its host's, its checksum right: a
		// fresh translation with the port the NAT chose.
		re := UDP("203.0.113.1:"+itoa(u.SrcPort()), "203.0.113.10:9000", body)
		if !bytes.Equal(whole, packet.IPv4(re).Payload()) {
			t.Fatalf("ID %d: reassembled datagram differs from a fresh translation", id)
		}
		switch {
		case bytes.Equal(body, pa):
			seen["a"] = true
		case bytes.Equal(body, pb):
			seen["b"] = true
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("reassembled %v, want both hosts' payloads", seen)
	}
}

// TestIPIDUnfragmented: DF-clear datagrams (which a router on the way may
// fragment) of two hosts with the same ID get different IDs, on a flow's
// first packet (Process) and later ones (the established path) alike;
// atomic datagrams (DF set) and inbound ones keep theirs.
func TestIPIDUnfragmented(t *testing.T) {
	e := newEngine(t, nil)
	ids := map[uint16]bool{}
	for round := 0; round < 2; round++ {
		for _, src := range []string{"192.168.50.10:5000", "192.168.50.11:5000"} {
			p := pass(t, e, 0, LAN, UDP(src, "203.0.113.10:9000", []byte("x"), ID(5)), WAN)
			IPv4(t, p, Src("203.0.113.1"))
			ids[packet.IPv4(p).ID()] = true
		}
	}
	if len(ids) != 4 {
		t.Fatalf("4 DF-clear datagrams left with IDs %v, want 4 different", keys(ids))
	}
	p := pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:9000", []byte("x"), ID(5), DF()), WAN)
	if id := packet.IPv4(p).ID(); id != 5 {
		t.Fatalf("atomic datagram left with ID %d, want 5 (kept)", id)
	}
	in := pass(t, e, 0, WAN, UDP("203.0.113.10:9000", "203.0.113.1:5000", []byte("y"), ID(1234)), LAN)
	IPv4(t, in, Dst("192.168.50.10:5000"))
	if id := packet.IPv4(in).ID(); id != 1234 {
		t.Fatalf("inbound datagram left with ID %d, want 1234 (kept)", id)
	}
	// Nothing allocates: DF clear on the established path, and a
	// fragmented datagram's way (first fragment, a later one).
	est := UDP("192.168.50.10:5000", "203.0.113.10:9000", []byte("x"), ID(5))
	fr := Fragment(UDP("192.168.50.10:5000", "203.0.113.10:9000", make([]byte, 1600), ID(9)), 1000)
	all := append([][]byte{est}, fr...)
	buf := make([]byte, 2048)
	n := 0
	if a := testing.AllocsPerRun(200, func() {
		for _, q := range all {
			b := buf[:len(q)]
			copy(b, q)
			packet.IPv4(b)[5] = byte(n) // a new datagram each run
			packet.IPv4(b).ComputeChecksum()
			e.Process(0, LAN, b)
			e.ResetEmitted()
		}
		n++
	}); a != 0 {
		t.Fatalf("%v allocs a run, want 0", a)
	}
}

// TestShareIPIDs: the engine takes IDs from the counters it is given
// (the offload programs' too), going on from where its own were, sees what
// another added to them, and goes back to its own, from there, when
// given nil.
func TestShareIPIDs(t *testing.T) {
	e := newEngine(t, nil)
	next := func() uint16 {
		p := pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.10:9000", []byte("x"), ID(5)), WAN)
		return packet.IPv4(p).ID()
	}
	first := next()
	var ctr [IPIDBuckets]uint32
	key := e.ShareIPIDs(&ctr)
	b := IPIDBucket(key, be32([4]byte{203, 0, 113, 10}), packet.ProtoUDP)
	if uint16(ctr[b]) != first {
		t.Fatalf("shared bucket %d at %#x, want the engine's counter %#x copied", b, ctr[b], first)
	}
	if id := next(); id != first+1 || uint16(ctr[b]) != first+1 {
		t.Fatalf("ID %d (bucket %#x), want %d from the shared counters", id, ctr[b], first+1)
	}
	ctr[b] += 5 // another translator's five
	if id := next(); id != first+7 {
		t.Fatalf("ID %d, want %d: after the other's", id, first+7)
	}
	e.ShareIPIDs(nil)
	ctr[b] += 100
	if id := next(); id != first+8 {
		t.Fatalf("ID %d, want %d: its own counters again, from where the shared ones were", id, first+8)
	}
}

func keys[K comparable, V any](m map[K]V) []K {
	var ks []K
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestIPIDKeyRevealsNoPortSeed: the ID counters' key (in the offload's
// BPF map, and what an attacker learns by finding which of its addresses
// share a counter) and their starting values (the first ID a server of
// its sees from a counter, less one) were the port seed itself and the
// top bits of the port generator's first 1024 draws: knowing the key gave
// every outside port the engine would pick (RFC 6056's defence of a LAN
// resolver's queries gone). Now both come from the seed one way.
func TestIPIDKeyRevealsNoPortSeed(t *testing.T) {
	const seed = 0x1234_5678_9abc_def1
	e := newEngine(t, func(c *Config) { c.PortSeed = seed })
	key := e.ShareIPIDs(nil)
	guess := newMapper(16, 1024, 65535, key)
	for i := range 16 {
		if got, want := guess.next(), e.maps.next(); got == want {
			t.Fatalf("draw %d: the ID key predicts the port generator (%#x)", i, got)
		}
	}
	e = newEngine(t, func(c *Config) { c.PortSeed = seed })
	same := 0
	for i := range IPIDBuckets {
		if uint32(e.maps.next()>>48) == e.ids.own[i] {
			same++
		}
	}
	if same > 4 {
		t.Fatalf("%d of %d counters start at the port generator's draws", same, IPIDBuckets)
	}
}
