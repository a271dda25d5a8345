package offload

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"passgate/packet"
	"passgate/packet/pkttest"
)

var (
	lanMAC  = [6]byte{2, 0, 0, 0, 0, 1}
	hostMAC = [6]byte{2, 0, 0, 0, 0, 2}
	gwMAC   = [6]byte{2, 0, 0, 0, 0, 3}
	wanMAC  = [6]byte{2, 0, 0, 0, 0, 4}
)

func frame(ip []byte, dst, src [6]byte) []byte {
	f := make([]byte, 14+len(ip))
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12] = 0x08
	copy(f[14:], ip)
	return f
}

// partial leaves ip's transport checksum as a sender relying on checksum
// offload does: the pseudo-header sum, not complemented.
func partial(ip []byte) []byte {
	off := 20 + 6
	if ip[9] == packet.ProtoTCP {
		off = 20 + 16
	}
	ps := packet.PseudoHeaderSum([4]byte(ip[12:]), [4]byte(ip[16:]), ip[9], len(ip)-20)
	binary.BigEndian.PutUint16(ip[off:], ^packet.Fold(ps))
	return ip
}

func a4(s string) [4]byte { return netip.MustParseAddr(s).As4() }

// outbound is the value for 10.0.0.2:sport -> 198.51.100.7:dport
// translated to 203.0.113.1:40000.
func outbound(k Key) Value {
	return NewValue(k, a4("203.0.113.1"), k.Dst, 40000, k.DstPort, 7, gwMAC, wanMAC, lanMAC, 1500)
}

func TestKeyValueEncoding(t *testing.T) {
	k := Key{Ifindex: 0x01020304, Proto: 17, Src: a4("10.0.0.2"), Dst: a4("198.51.100.7"), SrcPort: 0x1234, DstPort: 53}
	var kb [KeySize]byte
	k.Encode(&kb)
	want := []byte{0, 0, 0, 0, 10, 0, 0, 2, 198, 51, 100, 7, 0x12, 0x34, 0, 53, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(want[0:], 0x01020304)
	binary.NativeEndian.PutUint32(want[16:], 17)
	if !bytes.Equal(kb[:], want) {
		t.Fatalf("key % x, want % x", kb, want)
	}
	// The key bytes are the packet's own: source, destination and the
	// ports word at the offsets the program copies them from.
	ip := pkttest.UDP("10.0.0.2:4660", "198.51.100.7:53", []byte("q"))
	if !bytes.Equal(kb[4:12], ip[12:20]) || !bytes.Equal(kb[12:16], ip[20:24]) {
		t.Fatalf("key % x does not hold the packet's tuple % x", kb, ip[12:24])
	}
	v := outbound(k)
	v.Packets, v.Bytes = 3, 0x1_0000_0001
	var vb [ValueSize]byte
	v.Encode(&vb)
	var got Value
	got.Decode(&vb)
	if got != v {
		t.Fatalf("decoded %+v, want %+v", got, v)
	}
	if vb[vPorts] != 0x9c || vb[vPorts+1] != 0x40 || vb[vPorts+3] != 53 {
		t.Fatalf("ports not in network order: % x", vb[vPorts:vPorts+4])
	}
}

// TestApplyChecksums rewrites crafted packets by the deltas alone and has
// pkttest's checker recompute every checksum from scratch.
func TestApplyChecksums(t *testing.T) {
	payload := bytes.Repeat([]byte{0xa5, 0x5a, 0xff, 0}, 100)
	cases := []struct {
		name string
		ip   []byte
	}{
		{"udp", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload, pkttest.DF())},
		{"udp odd length", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload[:101], pkttest.DF())},
		{"udp no checksum", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload, pkttest.ZeroUDPChecksum(), pkttest.DF())},
		{"tcp ack", pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 2, nil, payload, pkttest.DF())},
		{"tcp psh ttl 2", pkttest.TCP("10.0.0.2:65535", "198.51.100.7:443", packet.TCPAck|packet.TCPPsh, 0xffffffff, 0, nil, nil, pkttest.TTL(2), pkttest.DF())},
		{"tcp extreme", pkttest.TCP("255.255.255.254:65535", "0.0.0.1:1", packet.TCPAck, 0, 0, nil, []byte{0xff, 0xff}, pkttest.TTL(255), pkttest.ID(0xffff), pkttest.DF())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := frame(c.ip, lanMAC, hostMAC)
			k, ok := Match(f)
			if !ok {
				t.Fatal("not matched")
			}
			k.Ifindex = 3
			ttl := f[14+8]
			v := outbound(k)
			if Apply(f, &v) != Redirect {
				t.Fatal("not redirected")
			}
			checks := []pkttest.Check{pkttest.Src("203.0.113.1:40000"), pkttest.Dst(netip.AddrPortFrom(netip.AddrFrom4(k.Dst), k.DstPort).String()), pkttest.TTLIs(ttl - 1)}
			if c.name == "udp no checksum" {
				checks = append(checks, pkttest.UDPChecksumZero())
			}
			pkttest.IPv4(t, f[14:], checks...)
			if [6]byte(f[0:6]) != gwMAC || [6]byte(f[6:12]) != wanMAC {
				t.Fatalf("MACs % x", f[:12])
			}
			// And back: the reply's entry undoes it.
			rk, ok := Match(f)
			if !ok {
				if ttl-1 > 1 {
					t.Fatal("the rewritten packet is not matched")
				}
				return // TTL 1: the engine's
			}
			rv := NewValue(rk, k.Src, k.Dst, k.SrcPort, k.DstPort, 3, hostMAC, lanMAC, wanMAC, 1500)
			copy(f[0:6], wanMAC[:]) // the reply arrives for the router's WAN MAC
			if Apply(f, &rv) != Redirect {
				t.Fatal("the reply is not forwarded")
			}
			pkttest.IPv4(t, f[14:], pkttest.Src(netip.AddrPortFrom(netip.AddrFrom4(k.Src), k.SrcPort).String()), pkttest.TTLIs(ttl-2))
		})
	}
}

// TestApplyLeavesIDToEngine: a datagram with DF clear whose source the
// entry rewrites goes to the engine, which gives it a new IP ID (RFC 7857
// section 10, nat/ipid.go); with DF set, or inbound (the source kept), the
// entry forwards it with its ID.
func TestApplyLeavesIDToEngine(t *testing.T) {
	for _, c := range []struct {
		name    string
		ip      []byte
		inbound bool
		want    int
	}{
		{"df clear", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", []byte("x"), pkttest.ID(7)), false, Miss},
		{"df set", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", []byte("x"), pkttest.ID(7), pkttest.DF()), false, Redirect},
		{"df clear inbound", pkttest.UDP("198.51.100.7:53", "203.0.113.1:40000", []byte("x"), pkttest.ID(7)), true, Redirect},
	} {
		f := frame(c.ip, lanMAC, hostMAC)
		k, ok := Match(f)
		if !ok {
			t.Fatalf("%s: not matched", c.name)
		}
		v := outbound(k)
		if c.inbound {
			v = NewValue(k, k.Src, a4("10.0.0.2"), k.SrcPort, 5000, 3, hostMAC, lanMAC, lanMAC, 1500)
		}
		if got := Apply(f, &v); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		} else if got == Redirect && packet.IPv4(f[14:]).ID() != 7 {
			t.Errorf("%s: ID %d, want 7", c.name, packet.IPv4(f[14:]).ID())
		}
	}
}

// TestMatch: what the program leaves to the engine.
func TestMatch(t *testing.T) {
	udp := pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", []byte("x"))
	for _, c := range []struct {
		name string
		f    []byte
		want bool
	}{
		{"udp", frame(udp, lanMAC, hostMAC), true},
		{"syn", frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPSyn, 0, 0, nil, nil), lanMAC, hostMAC), false},
		{"fin", frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPFin|packet.TCPAck, 0, 0, nil, nil), lanMAC, hostMAC), false},
		{"rst", frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPRst, 0, 0, nil, nil), lanMAC, hostMAC), false},
		{"ttl 1", frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", nil, pkttest.TTL(1)), lanMAC, hostMAC), false},
		{"fragment", frame(pkttest.Fragment(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", make([]byte, 100)), 68)[0], lanMAC, hostMAC), false},
		{"icmp", frame(pkttest.Echo("10.0.0.2", "198.51.100.7", false, 1, 1, nil), lanMAC, hostMAC), false},
		{"short", frame(udp, lanMAC, hostMAC)[:14+27], false},
		{"udp partial checksum", frame(partial(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", []byte("xyz"))), lanMAC, hostMAC), false},
		{"tcp partial checksum", frame(partial(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 1, nil, []byte("xyz"))), lanMAC, hostMAC), false},
	} {
		if _, ok := Match(c.f); ok != c.want {
			t.Errorf("%s: matched %v, want %v", c.name, ok, c.want)
		}
	}
	opts := frame(udp, lanMAC, hostMAC)
	opts[14] = 0x46
	if _, ok := Match(opts); ok {
		t.Error("IP options matched")
	}
	big := frame(pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", make([]byte, 1473)), lanMAC, hostMAC)
	k, _ := Match(big)
	v := outbound(k)
	if Apply(big, &v) != Miss {
		t.Error("a frame over the MTU was offloaded")
	}
}
