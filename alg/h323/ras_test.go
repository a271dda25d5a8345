package h323

import (
	"net/netip"
	"os"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

func udpPayload(b []byte) []byte { return packet.UDP(packet.IPv4(b).Payload()).Payload() }

// rasAddrs decodes a RAS message with the walker.
func rasAddrs(t *testing.T, pl []byte) (map[kind][]netip.AddrPort, uint32) {
	t.Helper()
	var w walker
	r := reader{b: pl}
	if err := w.ras(&r); err != nil {
		t.Fatal(err)
	}
	got := map[kind][]netip.AddrPort{}
	for _, f := range w.refs[:w.n] {
		a := netip.AddrFrom4([4]byte(pl[f.at : f.at+4]))
		got[f.kind] = append(got[f.kind], ap(a, uint16(pl[f.at+4])<<8|uint16(pl[f.at+5])))
	}
	return got, w.ttl
}

// rasFlow registers a LAN phone with an outside gatekeeper, which then
// calls it on the registered call signalling address. It returns every
// packet that left the engine.
func rasFlow(t *testing.T) (*nat.Engine, [][]byte) {
	e := engine(t)
	var out [][]byte
	msg := rrq(1, ap(lanHost, 1720), ap(lanHost, 1719), 300)
	if _, ttl := rasAddrs(t, msg); ttl != 300 {
		t.Fatalf("walker's timeToLive %d", ttl)
	}
	b := UDP("192.168.50.10:1719", "203.0.113.10:1719", msg)
	if v := e.Process(0, nat.LAN, b); v.Action != nat.Forward {
		t.Fatalf("RRQ: %+v (%v)", v, v.Reason)
	}
	IPv4(t, b, Src("203.0.113.1:1719"), Dst("203.0.113.10:1719"))
	out = append(out, b[:packet.IPv4(b).TotalLen()])
	pl := udpPayload(b)
	if len(pl) != len(msg) {
		t.Fatalf("RRQ length %d -> %d", len(msg), len(pl))
	}
	got, _ := rasAddrs(t, pl)
	if g := got[kCall]; len(g) != 1 || g[0] != ap(pubAddr, 1720) {
		t.Fatalf("callSignalAddress %v", g)
	}
	if g := got[kRAS]; len(g) != 1 || g[0] != ap(pubAddr, 1719) {
		t.Fatalf("rasAddress %v", g)
	}

	// The gatekeeper's RegistrationConfirm comes back on the RAS mapping
	// (what it holds is not walked).
	rcf := UDP("203.0.113.10:1719", "203.0.113.1:1719", []byte{0x12, 0x40, 0x00, 0x00})
	if v := e.Process(sec, nat.WAN, rcf); v.Action != nat.Forward {
		t.Fatalf("RCF: %+v (%v)", v, v.Reason)
	}
	IPv4(t, rcf, Dst("192.168.50.10:1719")) // a stub, kept out of the pcap

	// The gatekeeper calls the registered address: the connection reaches
	// the phone and the helper walks it (the phone's Connect is rewritten).
	c := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.10:1720", Remote: "203.0.113.10:30001", Pub: "203.0.113.1:1720", LANSeq: 100, RSeq: 200, Out: &out}
	c.SendAt(2*sec, false, packet.TCPSyn, nil)
	IPv4(t, out[len(out)-1], Dst("192.168.50.10:1720"))
	c.SendAt(2*sec, true, packet.TCPSyn|packet.TCPAck, nil)
	c.SendAt(2*sec, false, packet.TCPAck, nil)
	gk := netip.MustParseAddr("203.0.113.10")
	c.SendAt(3*sec, false, packet.TCPAck|packet.TCPPsh, q931Msg(0x05, 0x0007, setupUU(ap(gk, 30002), nil)))
	o := c.SendAt(3*sec, true, packet.TCPAck|packet.TCPPsh, q931Msg(0x07, 0x8007, connectUU(ap(lanHost, 40020), nil)))
	if g := addrs(t, payloadOf(o), true)[kH245]; len(g) != 1 || g[0] != ap(pubAddr, 40020) {
		t.Fatalf("Connect's h245Address on the gatekeeper's call: %v", g)
	}
	return e, out
}

func TestRAS(t *testing.T) {
	e, out := rasFlow(t)
	if s := e.HelperStats()["h323"]; s.Unparsed != 0 || s.Rewrites != 2 || s.Expected != 1 {
		t.Fatalf("counters %+v", s)
	}
	if dir := os.Getenv("H323_PCAP"); dir != "" {
		writePcap(t, dir, out)
	}
}

func TestRASUntouched(t *testing.T) {
	e := engine(t)
	// A STUN-learned public address, a RAS message the helper does not
	// rewrite, and an unreadable one.
	stun := netip.MustParseAddr("198.51.100.7")
	for i, msg := range [][]byte{
		rrq(1, ap(stun, 1720), ap(stun, 1719), 0),
		{0x12, 0x40, 0x00, 0x00}, // a registrationConfirm: not walked
		{0x0c},                   // RRQ cut short
	} {
		b := UDP("192.168.50.11:1719", "203.0.113.10:1719", msg)
		if v := e.Process(nat.Time(i)*sec, nat.LAN, b); v.Action != nat.Forward {
			t.Fatalf("%d: %+v", i, v)
		}
		if string(udpPayload(b)) != string(msg) {
			t.Fatalf("%d: rewritten", i)
		}
	}
	if s := e.HelperStats()["h323"]; s.Rewrites != 0 || s.Unparsed != 1 || s.Expectations != 0 {
		t.Fatalf("counters %+v", s)
	}
	// No expectation was made: a connection to 1720 finds nobody.
	if v := e.Process(5*sec, nat.WAN, TCP("203.0.113.10:30001", "203.0.113.1:1720", packet.TCPSyn, 1, 0, nil, nil)); v.Action == nat.Forward {
		t.Fatal("unsolicited call signalling admitted")
	}
}

// tunnelFlow runs a call whose H.245 is tunnelled in H.225.0: the Setup
// carries an OpenLogicalChannel, an "empty" message the ...Ack.
func tunnelFlow(t *testing.T) (*nat.Engine, [][]byte) {
	e := engine(t)
	var out [][]byte
	c := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.10:40100", Remote: "203.0.113.10:1720", Pub: "203.0.113.1:40100", LANSeq: 1000, RSeq: 5000, Out: &out}
	c.SendAt(0, true, packet.TCPSyn, nil)
	c.SendAt(0, false, packet.TCPSyn|packet.TCPAck, nil)
	c.SendAt(0, true, packet.TCPAck, nil)
	setup := q931Msg(0x05, 0x0002, setupTunnelUU([][]byte{mscOLC(1, ap(lanHost, 5011))}))
	o := c.SendAt(sec, true, packet.TCPAck|packet.TCPPsh, setup)
	if len(payloadOf(o)) != len(setup) {
		t.Fatal("length changed")
	}
	if g := addrs(t, payloadOf(o), true); len(g[kRTCP]) != 1 || g[kRTCP][0] != ap(pubAddr, 5011) || len(g[kRTP]) != 0 || len(g[kH245]) != 0 {
		t.Fatalf("tunnelled OLC %v", g)
	}
	o = c.SendAt(2*sec, true, packet.TCPAck|packet.TCPPsh, q931Msg(0x62, 0x0002, emptyUU([][]byte{mscOLCAck(2, ap(lanHost, 5012), ap(lanHost, 5013))})))
	if g := addrs(t, payloadOf(o), true); len(g[kRTP]) != 1 || g[kRTP][0] != ap(pubAddr, 5012) || g[kRTCP][0] != ap(pubAddr, 5013) {
		t.Fatalf("tunnelled OLCAck %v", g)
	}
	out = append(out, rtpIn(t, e, 3*sec, "203.0.113.10:6000", "203.0.113.1:5012", "192.168.50.10:5012"))
	c.SendAt(4*sec, true, packet.TCPAck|packet.TCPPsh, q931Msg(0x5a, 0x0002, releaseUU()))
	mediaGone(t, e, 5*sec, "203.0.113.10:6002", "203.0.113.1:5013")
	return e, out
}

func TestTunnelledH245(t *testing.T) {
	e, _ := tunnelFlow(t)
	if s := e.HelperStats()["h323"]; s.Unparsed != 0 || s.Rewrites != 2 || s.Expected != 1 {
		t.Fatalf("counters %+v", s)
	}
}

// BenchmarkRASUntouched is the cost of an RRQ keep-alive whose addresses
// are not the host's own.
func BenchmarkRASUntouched(b *testing.B) {
	e := engine(b)
	stun := netip.MustParseAddr("198.51.100.7")
	pkt := UDP("192.168.50.10:1719", "203.0.113.10:1719", rrq(1, ap(stun, 1720), ap(stun, 1719), 300))
	nattest.Bench(b, e, sec, nat.LAN, pkt, nat.Forward)
	if s := e.HelperStats()["h323"]; s.Unparsed != 0 || s.Rewrites != 0 {
		b.Fatalf("counters %+v", s)
	}
}
