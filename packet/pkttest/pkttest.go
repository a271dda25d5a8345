// Package pkttest builds IPv4 packets for tests and checks packets the way
// gVisor's checker does: every check verifies the IPv4 header checksum and
// the transport checksum first, then composes assertions on fields.
// It is test support and allocates freely; never use it on the packet path.
package pkttest

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"passgate/packet"
)

// Opt modifies a packet being built (after the payload is in place, before
// checksums are computed).
type Opt struct {
	set     func(b []byte)
	zeroUDP bool
}

// TTL sets the time to live.
func TTL(n uint8) Opt { return Opt{set: func(b []byte) { b[8] = n }} }

// DF sets Don't Fragment.
func DF() Opt { return Opt{set: func(b []byte) { b[6] |= 0x40 }} }

// ID sets the IP identification.
func ID(id uint16) Opt {
	return Opt{set: func(b []byte) { binary.BigEndian.PutUint16(b[4:], id) }}
}

// ZeroUDPChecksum leaves the UDP checksum field zero ("none", RFC 768).
func ZeroUDPChecksum() Opt { return Opt{zeroUDP: true} }

func addr(s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a := netip.MustParseAddr(s)
		return netip.AddrPortFrom(a, 0)
	}
	return ap
}

func ipHeader(total int, proto uint8, src, dst netip.AddrPort) []byte {
	b := make([]byte, total)
	packet.InitIPv4(b, total, 0x1234, 64, proto, src.Addr().As4(), dst.Addr().As4())
	return b
}

func finish(b []byte, opts []Opt) []byte {
	zeroUDP := false
	for _, o := range opts {
		if o.set != nil {
			o.set(b)
		}
		zeroUDP = zeroUDP || o.zeroUDP
	}
	ip := packet.IPv4(b)
	ip.ComputeChecksum()
	FixL4Checksum(ip, zeroUDP)
	return b
}

// FixL4Checksum computes the transport checksum of a whole (unfragmented)
// packet. With zeroUDP the UDP checksum is left zero.
func FixL4Checksum(ip packet.IPv4, zeroUDP bool) {
	l4 := ip.Payload()
	switch ip.Protocol() {
	case packet.ProtoUDP:
		l4[6], l4[7] = 0, 0
		if zeroUDP {
			return
		}
		c := packet.Fold(packet.Sum(l4, packet.PseudoHeaderSum(ip.Src(), ip.Dst(), packet.ProtoUDP, len(l4))))
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case packet.ProtoTCP:
		l4[16], l4[17] = 0, 0
		binary.BigEndian.PutUint16(l4[16:], packet.Fold(packet.Sum(l4, packet.PseudoHeaderSum(ip.Src(), ip.Dst(), packet.ProtoTCP, len(l4)))))
	case packet.ProtoICMP:
		packet.ICMP(l4).ComputeChecksum()
	}
}

// UDP builds an IPv4/UDP packet from src to dst ("a.b.c.d:port").
func UDP(src, dst string, payload []byte, opts ...Opt) []byte {
	s, d := addr(src), addr(dst)
	n := 20 + 8 + len(payload)
	b := ipHeader(n, packet.ProtoUDP, s, d)
	u := b[20:]
	binary.BigEndian.PutUint16(u[0:], s.Port())
	binary.BigEndian.PutUint16(u[2:], d.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	return finish(b, opts)
}

// TCP builds an IPv4/TCP packet; options are raw TCP option bytes (padded
// to 4).
func TCP(src, dst string, flags uint8, seq, ack uint32, tcpOpts, payload []byte, opts ...Opt) []byte {
	s, d := addr(src), addr(dst)
	for len(tcpOpts)%4 != 0 {
		tcpOpts = append(tcpOpts, 0)
	}
	hl := 20 + len(tcpOpts)
	n := 20 + hl + len(payload)
	b := ipHeader(n, packet.ProtoTCP, s, d)
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], s.Port())
	binary.BigEndian.PutUint16(t[2:], d.Port())
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = byte(hl/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(t[20:], tcpOpts)
	copy(t[hl:], payload)
	return finish(b, opts)
}

// ICMP builds an ICMP message of type typ, code code; rest is the 4 bytes
// after the checksum (id and sequence for queries).
func ICMP(src, dst string, typ, code uint8, rest uint32, payload []byte, opts ...Opt) []byte {
	s, d := addr(src), addr(dst)
	n := 20 + 8 + len(payload)
	b := ipHeader(n, packet.ProtoICMP, s, d)
	c := b[20:]
	c[0], c[1] = typ, code
	binary.BigEndian.PutUint32(c[4:], rest)
	copy(c[8:], payload)
	return finish(b, opts)
}

// Echo builds an echo request (or reply with reply=true).
func Echo(src, dst string, reply bool, id, seq uint16, payload []byte, opts ...Opt) []byte {
	typ := uint8(packet.ICMPEcho)
	if reply {
		typ = packet.ICMPEchoReply
	}
	return ICMP(src, dst, typ, 0, uint32(id)<<16|uint32(seq), payload, opts...)
}

// Fragment splits a whole packet into fragments of at most mtu bytes,
// returned in order.
func Fragment(whole []byte, mtu int) [][]byte {
	ip := packet.IPv4(whole)
	hl := ip.HeaderLen()
	pl := ip.Payload()
	chunk := (mtu - hl) &^ 7
	var out [][]byte
	for off := 0; off < len(pl); off += chunk {
		end := min(off+chunk, len(pl))
		f := make([]byte, hl+end-off)
		copy(f, whole[:hl])
		copy(f[hl:], pl[off:end])
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		v := uint16(off / 8)
		if end < len(pl) {
			v |= 0x2000
		}
		binary.BigEndian.PutUint16(f[6:], v)
		packet.IPv4(f).ComputeChecksum()
		out = append(out, f)
	}
	return out
}

// Check is one assertion on a packet whose checksums were verified.
type Check func(t testing.TB, ip packet.IPv4)

// IPv4 verifies b is a well-formed IPv4 packet with right header and
// transport checksums (skipped for fragments, whose transport checksum
// covers other packets too), then runs the checks.
func IPv4(t testing.TB, b []byte, checks ...Check) {
	t.Helper()
	ip, err := packet.ParseIPv4(b)
	if err != nil {
		t.Fatalf("not an IPv4 packet: %v", err)
	}
	if !ip.ValidChecksum() {
		t.Errorf("bad IPv4 header checksum %#04x", ip.Checksum())
	}
	if !ip.IsFragment() {
		checkL4(t, ip)
	}
	for _, c := range checks {
		c(t, ip)
	}
}

func checkL4(t testing.TB, ip packet.IPv4) {
	t.Helper()
	l4 := ip.Payload()
	switch ip.Protocol() {
	case packet.ProtoUDP:
		if len(l4) >= 8 && binary.BigEndian.Uint16(l4[6:]) != 0 {
			if packet.Fold(packet.Sum(l4, packet.PseudoHeaderSum(ip.Src(), ip.Dst(), packet.ProtoUDP, len(l4)))) != 0 {
				t.Errorf("bad UDP checksum")
			}
		}
	case packet.ProtoTCP:
		if packet.Fold(packet.Sum(l4, packet.PseudoHeaderSum(ip.Src(), ip.Dst(), packet.ProtoTCP, len(l4)))) != 0 {
			t.Errorf("bad TCP checksum")
		}
	case packet.ProtoICMP:
		if packet.Checksum(l4) != 0 {
			t.Errorf("bad ICMP checksum")
		}
	}
}

// Src and Dst check addresses ("a.b.c.d" or "a.b.c.d:port" to check the
// transport port or ICMP id too).
func Src(s string) Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		want := addr(s)
		if got := netip.AddrFrom4(ip.Src()); got != want.Addr() {
			t.Errorf("src %v, want %v", got, want.Addr())
		}
		if want.Port() != 0 {
			if got := srcID(ip); got != want.Port() {
				t.Errorf("src port %d, want %d", got, want.Port())
			}
		}
	}
}

func Dst(s string) Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		want := addr(s)
		if got := netip.AddrFrom4(ip.Dst()); got != want.Addr() {
			t.Errorf("dst %v, want %v", got, want.Addr())
		}
		if want.Port() != 0 {
			if got := dstID(ip); got != want.Port() {
				t.Errorf("dst port %d, want %d", got, want.Port())
			}
		}
	}
}

func srcID(ip packet.IPv4) uint16 {
	l4 := ip.Payload()
	if ip.Protocol() == packet.ProtoICMP {
		return packet.ICMP(l4).ID()
	}
	return binary.BigEndian.Uint16(l4[0:])
}

func dstID(ip packet.IPv4) uint16 {
	l4 := ip.Payload()
	if ip.Protocol() == packet.ProtoICMP {
		return packet.ICMP(l4).ID()
	}
	return binary.BigEndian.Uint16(l4[2:])
}

// TTLIs checks the time to live.
func TTLIs(n uint8) Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		if ip.TTL() != n {
			t.Errorf("ttl %d, want %d", ip.TTL(), n)
		}
	}
}

// Proto checks the IP protocol.
func Proto(p uint8) Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		if ip.Protocol() != p {
			t.Errorf("protocol %d, want %d", ip.Protocol(), p)
		}
	}
}

// ICMPType checks an ICMP message's type and code.
func ICMPType(typ, code uint8) Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		c := packet.ICMP(ip.Payload())
		if c.Type() != typ || c.Code() != code {
			t.Errorf("icmp %d/%d, want %d/%d", c.Type(), c.Code(), typ, code)
		}
	}
}

// UDPChecksumZero checks that a UDP checksum is (still) zero.
func UDPChecksumZero() Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		if c := packet.UDP(ip.Payload()).Checksum(); c != 0 {
			t.Errorf("udp checksum %#04x, want 0", c)
		}
	}
}

// L4Payload checks the transport payload (after the UDP or TCP header).
func L4Payload(want []byte) Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		var got []byte
		switch ip.Protocol() {
		case packet.ProtoUDP:
			got = packet.UDP(ip.Payload()).Payload()
		case packet.ProtoTCP:
			got = packet.TCP(ip.Payload()).Payload()
		default:
			got = ip.Payload()[8:]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("payload %q, want %q", got, want)
		}
	}
}

// Embedded checks the datagram embedded in an ICMP error: its header
// checksum, then the checks (on a view of the embedded datagram, whose
// transport part may be cut short).
func Embedded(checks ...Check) Check {
	return func(t testing.TB, ip packet.IPv4) {
		t.Helper()
		in := packet.IPv4(packet.ICMP(ip.Payload()).Payload())
		if len(in) < 28 {
			t.Fatalf("embedded datagram too short: %d", len(in))
		}
		if !in.ValidChecksum() {
			t.Errorf("bad embedded IPv4 header checksum")
		}
		for _, c := range checks {
			c(t, in)
		}
	}
}
