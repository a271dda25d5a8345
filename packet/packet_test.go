package packet_test

import (
	"encoding/binary"
	"math/rand"
	"testing"

	"passgate/packet"
	"passgate/packet/pkttest"
)

// fullL4 recomputes a transport checksum from scratch for comparison.
func fullL4(ip packet.IPv4) uint16 {
	l4 := append([]byte(nil), ip.Payload()...)
	off := 16
	if ip.Protocol() == packet.ProtoUDP {
		off = 6
	}
	l4[off], l4[off+1] = 0, 0
	return packet.Fold(packet.Sum(l4, packet.PseudoHeaderSum(ip.Src(), ip.Dst(), ip.Protocol(), len(l4))))
}

func TestIncrementalMatchesFull(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		payload := make([]byte, r.Intn(100))
		r.Read(payload)
		var b []byte
		if i%2 == 0 {
			b = pkttest.UDP("10.0.0.1:1000", "10.0.0.2:2000", payload)
		} else {
			b = pkttest.TCP("10.0.0.1:1000", "10.0.0.2:2000", packet.TCPAck, r.Uint32(), r.Uint32(), nil, payload)
		}
		ip, err := packet.ParseIPv4(b)
		if err != nil {
			t.Fatal(err)
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], r.Uint32())
		ip.SetSrc(a)
		binary.BigEndian.PutUint32(a[:], r.Uint32())
		ip.SetDst(a)
		ip.DecTTL()
		sp, dp := uint16(r.Uint32()), uint16(r.Uint32())
		if ip.Protocol() == packet.ProtoUDP {
			u := packet.UDP(ip.Payload())
			u.UpdateAddr([4]byte{10, 0, 0, 1}, ip.Src())
			u.UpdateAddr([4]byte{10, 0, 0, 2}, ip.Dst())
			u.SetSrcPort(sp)
			u.SetDstPort(dp)
			want := fullL4(ip)
			if want == 0 {
				want = 0xffff
			}
			if u.Checksum() != want && !(u.Checksum() == 0xffff && want == 0) {
				t.Fatalf("udp: incremental %#04x, full %#04x", u.Checksum(), want)
			}
		} else {
			tc := packet.TCP(ip.Payload())
			tc.UpdateAddr([4]byte{10, 0, 0, 1}, ip.Src())
			tc.UpdateAddr([4]byte{10, 0, 0, 2}, ip.Dst())
			tc.SetSrcPort(sp)
			tc.SetDstPort(dp)
			if got, want := tc.Checksum(), fullL4(ip); got != want {
				// 0x0000 and 0xffff are the same sum in ones' complement.
				if !(got^want == 0xffff && (got == 0 || want == 0)) {
					t.Fatalf("tcp: incremental %#04x, full %#04x", got, want)
				}
			}
		}
		if !ip.ValidChecksum() {
			t.Fatal("ip header checksum wrong after updates")
		}
	}
}

func TestRFC1624Example(t *testing.T) {
	// RFC 1624 section 4: HC 0xdd2f, field 0x5555 -> 0x3285 gives 0x0000,
	// which eqn. 3 yields (eqn. 2 gives the wrong 0xffff).
	if got := packet.Update16(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Fatalf("got %#04x, want 0x0000", got)
	}
}

func TestZeroUDPChecksumStaysZero(t *testing.T) {
	b := pkttest.UDP("10.0.0.1:1", "10.0.0.2:2", []byte("x"), pkttest.ZeroUDPChecksum())
	ip := packet.IPv4(b)
	u := packet.UDP(ip.Payload())
	u.UpdateAddr(ip.Src(), [4]byte{1, 2, 3, 4})
	u.SetSrcPort(999)
	if u.Checksum() != 0 {
		t.Fatalf("zero checksum became %#04x", u.Checksum())
	}
}

func TestParseIPv4(t *testing.T) {
	good := pkttest.UDP("10.0.0.1:1", "10.0.0.2:2", []byte("abc"))
	padded := append(append([]byte(nil), good...), 0, 0, 0, 0)
	for _, tc := range []struct {
		name string
		b    []byte
		err  error
		n    int
	}{
		{"ok", good, nil, len(good)},
		{"link padding trimmed", padded, nil, len(good)},
		{"short", good[:19], packet.ErrTruncated, 0},
		{"ipv6", append([]byte{0x60}, good[1:]...), packet.ErrVersion, 0},
		{"ihl 4", append([]byte{0x44}, good[1:]...), packet.ErrHeaderLen, 0},
		{"ihl past end", append([]byte{0x4f}, good[1:20]...), packet.ErrHeaderLen, 0},
		{"total past end", good[:len(good)-1], packet.ErrTotalLen, 0},
	} {
		ip, err := packet.ParseIPv4(tc.b)
		if err != tc.err || (err == nil && len(ip) != tc.n) {
			t.Errorf("%s: len %d err %v, want %d %v", tc.name, len(ip), err, tc.n, tc.err)
		}
	}
}

func TestFragmentFields(t *testing.T) {
	b := pkttest.UDP("10.0.0.1:1", "10.0.0.2:2", make([]byte, 100))
	ip := packet.IPv4(b)
	ip.SetFragment(false, true, 64)
	if !ip.IsFragment() || !ip.MoreFragments() || ip.FragmentOffset() != 64 || ip.DontFragment() || !ip.ValidChecksum() {
		t.Fatal("fragment fields wrong")
	}
	ip.SetFragment(true, false, 0)
	if ip.IsFragment() || !ip.DontFragment() || !ip.ValidChecksum() {
		t.Fatal("DF-only packet reads as a fragment")
	}
}

func TestClampMSS(t *testing.T) {
	for _, opts := range [][]byte{
		{2, 4, 0x05, 0xb4},          // even offset
		{1, 2, 4, 0x05, 0xb4},       // odd offset
		{1, 1, 1, 2, 4, 0x05, 0xb4}, // odd offset, later
	} {
		b := pkttest.TCP("10.0.0.1:1", "10.0.0.2:2", packet.TCPSyn, 1, 0, opts, nil)
		tc := packet.TCP(packet.IPv4(b).Payload())
		if !tc.ClampMSS(1360) {
			t.Fatalf("%v: not clamped", opts)
		}
		if mss, _, _ := tc.MSS(); mss != 1360 {
			t.Fatalf("%v: mss %d", opts, mss)
		}
		pkttest.IPv4(t, b)
		if tc.ClampMSS(1400) {
			t.Fatalf("%v: raised the MSS", opts)
		}
	}
}

func TestSACKEdges(t *testing.T) {
	for _, tc := range []struct {
		opts []byte
		off  int // of the first block in the segment
		n    int
	}{
		{opts: []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9}, off: 24, n: 1},                           // aligned
		{opts: []byte{1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 20, 0, 0, 0, 30, 0}, off: 23, n: 2}, // odd offset
		{opts: []byte{2, 4, 5, 0xb4, 5, 11, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0}},                           // length not 2+8n
		{opts: []byte{1, 1, 5, 2}},                          // no blocks
		{opts: []byte{1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 9}}, // runs past the options
	} {
		b := pkttest.TCP("10.0.0.1:1", "10.0.0.2:2", packet.TCPAck, 1, 1, tc.opts, nil)
		seg := packet.TCP(packet.IPv4(b).Payload())
		off, n := seg.SACK()
		if off != tc.off || n != tc.n {
			t.Fatalf("%v: SACK at %d, %d blocks; want %d, %d", tc.opts, off, n, tc.off, tc.n)
		}
		for i := 0; i < 2*n; i++ {
			seg.SetUint32(off+4*i, 0xfedcba98-uint32(i))
			pkttest.IPv4(t, b) // the checksum followed every edge
		}
	}
}
