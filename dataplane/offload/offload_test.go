package offload

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"passgate/nat"
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

// tcpHeaderBits sets bits of the TCP header's byte 12 (after the data
// offset: three reserved bits and AE) in frame f, keeping its TCP checksum
// right, and returns it.
func tcpHeaderBits(f []byte, bits byte) []byte {
	const t = 14 + 20
	old := binary.BigEndian.Uint16(f[t+12:])
	f[t+12] |= bits
	binary.BigEndian.PutUint16(f[t+16:], packet.Update16(binary.BigEndian.Uint16(f[t+16:]), old, binary.BigEndian.Uint16(f[t+12:])))
	return f
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
		// DF clear: a new ID too (IDs), its change in the header checksum.
		{"udp df clear", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", payload, pkttest.ID(0))},
		{"tcp df clear", pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 2, nil, payload, pkttest.ID(0xffff))},
		{"udp df clear extreme", pkttest.UDP("255.255.255.254:65535", "0.0.0.1:1", payload[:3], pkttest.ID(0x1234), pkttest.TTL(255))},
	}
	ids := &IDs{Key: 0x0123456789abcdef}
	for i := range ids.Counters {
		ids.Counters[i] = uint32(i)*0x10001 + 0xfffe
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := frame(c.ip, lanMAC, hostMAC)
			k, ok := Match(f)
			if !ok {
				t.Fatal("not matched")
			}
			k.Ifindex = 3
			ttl, id := f[14+8], packet.IPv4(f[14:]).ID()
			if !packet.IPv4(f[14:]).DontFragment() {
				sim := *ids
				id = sim.Next(k.Dst, k.Proto)
			}
			v := outbound(k)
			if Apply(f, &v, ids) != Redirect {
				t.Fatal("not redirected")
			}
			checks := []pkttest.Check{pkttest.Src("203.0.113.1:40000"), pkttest.Dst(netip.AddrPortFrom(netip.AddrFrom4(k.Dst), k.DstPort).String()), pkttest.TTLIs(ttl - 1)}
			if c.name == "udp no checksum" {
				checks = append(checks, pkttest.UDPChecksumZero())
			}
			pkttest.IPv4(t, f[14:], checks...)
			if got := packet.IPv4(f[14:]).ID(); got != id {
				t.Fatalf("ID %#x, want %#x", got, id)
			}
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
			if !packet.IPv4(f[14:]).DontFragment() {
				sim := *ids // its source rewritten as well
				id = sim.Next(k.Dst, k.Proto)
			}
			copy(f[0:6], wanMAC[:]) // the reply arrives for the router's WAN MAC
			if Apply(f, &rv, ids) != Redirect {
				t.Fatal("the reply is not forwarded")
			}
			pkttest.IPv4(t, f[14:], pkttest.Src(netip.AddrPortFrom(netip.AddrFrom4(k.Src), k.SrcPort).String()), pkttest.TTLIs(ttl-2))
			if got := packet.IPv4(f[14:]).ID(); got != id {
				t.Fatalf("the reply's ID %#x, want %#x", got, id)
			}
		})
	}
}

// TestApplyNewID: a datagram with DF clear whose source the entry
// rewrites is forwarded with a new IP ID (RFC 7857 section 10,
// nat/ipid.go), the next of the counter of its destination and protocol;
// with DF set, or inbound (the source kept), it keeps its ID and the
// counters stay.
func TestApplyNewID(t *testing.T) {
	ids := &IDs{Key: 0xfeedface12345678}
	for i := range ids.Counters {
		ids.Counters[i] = uint32(i) << 4
	}
	for _, c := range []struct {
		name    string
		ip      []byte
		inbound bool
		newID   bool
	}{
		{"df clear", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", []byte("x"), pkttest.ID(7)), false, true},
		{"df clear again", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", []byte("x"), pkttest.ID(7)), false, true},
		{"df clear tcp", pkttest.TCP("10.0.0.2:5000", "198.51.100.7:53", packet.TCPAck, 1, 1, nil, []byte("x"), pkttest.ID(7)), false, true},
		{"df set", pkttest.UDP("10.0.0.2:5000", "198.51.100.7:53", []byte("x"), pkttest.ID(7), pkttest.DF()), false, false},
		{"df clear inbound", pkttest.UDP("198.51.100.7:53", "203.0.113.1:40000", []byte("x"), pkttest.ID(7)), true, false},
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
		b := nat.IPIDBucket(ids.Key, binary.BigEndian.Uint32(v.Dst[:]), k.Proto)
		before := ids.Counters
		want := uint16(7)
		if c.newID {
			want = uint16(before[b] + 1)
		}
		if got := Apply(f, &v, ids); got != Redirect {
			t.Fatalf("%s: verdict %d, want Redirect", c.name, got)
		}
		if got := packet.IPv4(f[14:]).ID(); got != want {
			t.Errorf("%s: ID %d, want %d", c.name, got, want)
		}
		pkttest.IPv4(t, f[14:]) // the checksums
		after := before
		if c.newID {
			after[b]++
		}
		if ids.Counters != after {
			t.Errorf("%s: counters moved other than bucket %d's by 1", c.name, b)
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
		// Only ACK with PSH, URG, ECE, CWR, AE: a segment without ACK,
		// or with a reserved bit, is the engine's to judge.
		{"ack", frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 1, nil, nil), lanMAC, hostMAC), true},
		{"ack psh urg ece cwr", frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck|packet.TCPPsh|0x20|0x40|0x80, 1, 1, nil, nil), lanMAC, hostMAC), true},
		{"psh without ack", frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPPsh, 1, 0, nil, []byte("x")), lanMAC, hostMAC), false},
		{"no flags", frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", 0, 1, 0, nil, nil), lanMAC, hostMAC), false},
		{"ack ae", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 1, nil, nil), lanMAC, hostMAC), 0x01), true},
		{"ack psh ece cwr ae", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck|packet.TCPPsh|0x40|0x80, 1, 1, nil, []byte("x")), lanMAC, hostMAC), 0x01), true},
		{"ack reserved 0x800", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 1, nil, nil), lanMAC, hostMAC), 0x08), false},
		{"ack reserved 0x400", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 1, nil, nil), lanMAC, hostMAC), 0x04), false},
		{"ack reserved 0x200 ae", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPAck, 1, 1, nil, nil), lanMAC, hostMAC), 0x03), false},
		{"syn ack ae", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPSyn|packet.TCPAck, 1, 1, nil, nil), lanMAC, hostMAC), 0x01), false},
		{"fin ack ae", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPFin|packet.TCPAck, 1, 1, nil, nil), lanMAC, hostMAC), 0x01), false},
		{"ae without ack", tcpHeaderBits(frame(pkttest.TCP("10.0.0.2:5000", "198.51.100.7:80", packet.TCPPsh, 1, 0, nil, []byte("x")), lanMAC, hostMAC), 0x01), false},
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
	if Apply(big, &v, &IDs{}) != Miss {
		t.Error("a frame over the MTU was offloaded")
	}
}

// TestEngineAndApplyShareIDs: the engine and Apply, the program's model,
// give DF-clear datagrams to one destination IDs from one counter
// sequence (nat.Engine.ShareIPIDs): two hosts, one translated by each.
func TestEngineAndApplyShareIDs(t *testing.T) {
	ids := &IDs{}
	engineAndProgramShareIDs(t, ids, func(f []byte) []byte {
		k, ok := Match(f)
		if !ok {
			t.Fatal("not matched")
		}
		v := outbound(k)
		if Apply(f, &v, ids) != Redirect {
			t.Fatal("not redirected")
		}
		return f
	})
}

// engineAndProgramShareIDs makes an engine that takes its IP IDs from
// ids and sends, in turn, a DF-clear UDP datagram of 192.168.50.10
// through it and one of 192.168.50.11 through kernel (which returns the
// frame as forwarded), both with ID 7 to 198.51.100.7:53: the IDs that
// leave must be one counter's, each one more than the last.
func engineAndProgramShareIDs(t *testing.T, ids *IDs, kernel func(frame []byte) []byte) {
	t.Helper()
	e, err := nat.New(nat.Config{LANAddr: netip.MustParsePrefix("192.168.50.1/24"), WANAddr: netip.MustParsePrefix("203.0.113.1/24"),
		WANGateway: netip.MustParseAddr("203.0.113.254"), MaxFlows: 64, PortSeed: 99}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids.Key = e.ShareIPIDs(&ids.Counters)
	var got []uint16
	for i := range 6 {
		var ip []byte
		if i%2 == 0 {
			p := pkttest.UDP("192.168.50.10:5000", "198.51.100.7:53", []byte("engine"), pkttest.ID(7))
			if v := e.Process(0, nat.LAN, p); v.Action != nat.Forward {
				t.Fatalf("engine: %+v", v)
			}
			ip = p
		} else {
			ip = kernel(frame(pkttest.UDP("192.168.50.11:5000", "198.51.100.7:53", []byte("kernel"), pkttest.ID(7)), lanMAC, hostMAC))[14:]
		}
		pkttest.IPv4(t, ip, pkttest.Src("203.0.113.1"))
		got = append(got, packet.IPv4(ip).ID())
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("IDs %v (engine, kernel in turn): want one counter's sequence", got)
		}
	}
}
