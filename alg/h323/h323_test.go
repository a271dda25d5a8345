package h323

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

const sec = nat.Time(1e9)

var (
	lanHost = netip.MustParseAddr("192.168.50.10")
	pubAddr = netip.MustParseAddr("203.0.113.1")
)

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func engine(t testing.TB) *nat.Engine {
	t.Helper()
	return nattest.Engine(t, func(c *nat.Config) { c.Helpers = map[string]nat.Switch{"h323": nat.On} }, &Helper{})
}

func payloadOf(b []byte) []byte { return packet.TCP(packet.IPv4(b).Payload()).Payload() }

// addrs decodes a segment's payload with the walker and returns the
// addresses found by kind.
func addrs(t *testing.T, pl []byte, signalling bool) map[kind][]netip.AddrPort {
	t.Helper()
	var w walker
	got := map[kind][]netip.AddrPort{}
	for off := 0; off < len(pl); {
		msg, ok := tpkt(pl[off:])
		if !ok {
			t.Fatalf("bad TPKT at %d", off)
		}
		base := off + 4
		off += 4 + len(msg)
		r := reader{b: msg, base: base}
		if signalling {
			_, _, uu, at, ok := q931(msg)
			if !ok {
				t.Fatal("bad Q.931")
			}
			r = reader{b: uu, base: base + at}
			if err := w.uuie(&r); err != nil {
				t.Fatal(err)
			}
		} else if err := w.msc(&r); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range w.refs[:w.n] {
		a := netip.AddrFrom4([4]byte(pl[f.at : f.at+4]))
		got[f.kind] = append(got[f.kind], ap(a, binary.BigEndian.Uint16(pl[f.at+4:])))
	}
	return got
}

func udpTo(t *testing.T, e *nat.Engine, now nat.Time, from, to string) (nat.Verdict, []byte) {
	b := UDP(from, to, []byte("rtp"))
	return e.Process(now, nat.WAN, b), b
}

// rtpIn sends RTP from the WAN (from, to the public address to) and
// checks it reaches the LAN at lan; it returns the packet as it left.
func rtpIn(t *testing.T, e *nat.Engine, now nat.Time, from, to, lan string) []byte {
	t.Helper()
	v, b := udpTo(t, e, now, from, to)
	if v.Action != nat.Forward {
		t.Fatalf("RTP: %+v (%v)", v, v.Reason)
	}
	IPv4(t, b, Dst(lan))
	return b[:packet.IPv4(b).TotalLen()]
}

// mediaGone checks that the ended call's media expectation for to is gone.
func mediaGone(t *testing.T, e *nat.Engine, now nat.Time, from, to string) {
	t.Helper()
	if v, _ := udpTo(t, e, now, from, to); v.Action == nat.Forward {
		t.Fatal("media expectation survived ReleaseComplete")
	}
}

// callFlow runs a call from a LAN phone with fast start and a separate
// H.245 connection, returning every packet that left the engine.
func callFlow(t *testing.T) (*nat.Engine, [][]byte) {
	e := engine(t)
	var out [][]byte
	c := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.10:40000", Remote: "203.0.113.10:1720", Pub: "203.0.113.1:40000", LANSeq: 1000, RSeq: 5000, Out: &out}
	c.SendAt(0, true, packet.TCPSyn, nil)
	c.SendAt(0, false, packet.TCPSyn|packet.TCPAck, nil)
	c.SendAt(0, true, packet.TCPAck, nil)

	fast := [][]byte{
		enc(func(w *perw) { olcForward(w, 1, ap(lanHost, 5001)) }),
		enc(func(w *perw) { olcReverse(w, 2, ap(lanHost, 5000), ap(lanHost, 5001)) }),
	}
	setup := q931Msg(0x05, 0x0001, setupUU(ap(lanHost, 40002), fast))
	o := c.SendAt(sec, true, packet.TCPAck|packet.TCPPsh, setup)
	if len(payloadOf(o)) != len(setup) {
		t.Fatalf("length changed: %d -> %d", len(setup), len(payloadOf(o)))
	}
	got := addrs(t, payloadOf(o), true)
	if g := got[kH245]; len(g) != 1 || g[0] != ap(pubAddr, 40002) {
		t.Fatalf("h245Address %v", g)
	}
	if g := got[kRTP]; len(g) != 1 || g[0] != ap(pubAddr, 5000) {
		t.Fatalf("mediaChannel %v", g)
	}
	if g := got[kRTCP]; len(g) != 2 || g[0] != ap(pubAddr, 5001) || g[1] != ap(pubAddr, 5001) {
		t.Fatalf("mediaControlChannel %v", g)
	}
	// The callee's answer passes as it is (its addresses are public).
	c.SendAt(2*sec, false, packet.TCPAck|packet.TCPPsh, q931Msg(0x07, 0x8001, connectUU(ap(netip.MustParseAddr("203.0.113.10"), 30000), nil)))

	// The callee opens H.245 to the public address; the helper owns it.
	h := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.10:40002", Remote: "203.0.113.10:30000", Pub: "203.0.113.1:40002", LANSeq: 7000, RSeq: 9000, Out: &out}
	h.SendAt(3*sec, false, packet.TCPSyn, nil)
	IPv4(t, out[len(out)-1], Dst("192.168.50.10:40002"))
	h.SendAt(3*sec, true, packet.TCPSyn|packet.TCPAck, nil)
	h.SendAt(3*sec, false, packet.TCPAck, nil)
	o = h.SendAt(4*sec, true, packet.TCPAck|packet.TCPPsh, h245OLC(3, ap(lanHost, 5003)))
	if g := addrs(t, payloadOf(o), false)[kRTCP]; len(g) != 1 || g[0] != ap(pubAddr, 5003) {
		t.Fatalf("OLC mediaControlChannel %v", g)
	}
	o = h.SendAt(4*sec, true, packet.TCPAck|packet.TCPPsh, h245OLCAck(4, ap(lanHost, 5004), ap(lanHost, 5005)))
	g := addrs(t, payloadOf(o), false)
	if g[kRTP][0] != ap(pubAddr, 5004) || g[kRTCP][0] != ap(pubAddr, 5005) {
		t.Fatalf("OLCAck %v", g)
	}

	// RTP from the callee reaches the phone.
	out = append(out, rtpIn(t, e, 5*sec, "203.0.113.10:6000", "203.0.113.1:5000", "192.168.50.10:5000"))

	// ReleaseComplete ends the call: its pending expectations go.
	c.SendAt(6*sec, true, packet.TCPAck|packet.TCPPsh, q931Msg(0x5a, 0x0001, releaseUU()))
	mediaGone(t, e, 7*sec, "203.0.113.10:6002", "203.0.113.1:5004")
	return e, out
}

func TestCall(t *testing.T) {
	e, out := callFlow(t)
	s := e.HelperStats()["h323"]
	if s.Unparsed != 0 || s.Rewrites != 3 || s.Expected < 2 {
		t.Fatalf("counters %+v", s)
	}
	if dir := os.Getenv("H323_PCAP"); dir != "" {
		writePcap(t, dir, out)
	}
}

func TestForeignAddressUntouched(t *testing.T) {
	e := engine(t)
	c := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.11:40000", Remote: "203.0.113.10:1720", Pub: "203.0.113.1:40000", LANSeq: 1, RSeq: 1}
	c.SendAt(0, true, packet.TCPSyn, nil)
	c.SendAt(0, false, packet.TCPSyn|packet.TCPAck, nil)
	// A STUN-learned public address is the phone's business.
	stun := ap(netip.MustParseAddr("198.51.100.7"), 40002)
	msg := q931Msg(0x07, 0x8001, connectUU(stun, nil))
	o := c.SendAt(sec, true, packet.TCPAck, msg)
	if string(payloadOf(o)) != string(msg) {
		t.Fatal("foreign address rewritten")
	}
	if s := e.HelperStats()["h323"]; s.Rewrites != 0 || s.Unparsed != 0 {
		t.Fatalf("counters %+v", s)
	}
}

func TestConnectFromServerBehindForward(t *testing.T) {
	e, err := nat.New(nat.Config{
		LANAddr:      netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:      netip.MustParsePrefix("203.0.113.1/24"),
		MaxFlows:     1024,
		Helpers:      map[string]nat.Switch{"h323": nat.On},
		PortForwards: []nat.PortForward{{Proto: packet.ProtoTCP, OutsideLo: Port, OutsideHi: Port, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: Port}},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.RegisterHelpers(&Helper{})
	if v := e.Process(0, nat.WAN, TCP("203.0.113.20:3000", "203.0.113.1:1720", packet.TCPSyn, 1, 0, nil, nil)); v.Action != nat.Forward {
		t.Fatal(v)
	}
	callee := netip.MustParseAddr("192.168.50.12")
	msg := q931Msg(0x07, 0x8001, connectUU(ap(callee, 41000), [][]byte{enc(func(w *perw) { olcReverse(w, 1, ap(callee, 7000), ap(callee, 7001)) })}))
	b := TCP("192.168.50.12:1720", "203.0.113.20:3000", packet.TCPAck|packet.TCPPsh, 10, 2, nil, msg)
	v := e.Process(sec, nat.LAN, b)
	if v.Action != nat.Forward {
		t.Fatal(v)
	}
	IPv4(t, b, Src("203.0.113.1:1720"))
	got := addrs(t, payloadOf(b), true)
	if got[kH245][0] != ap(pubAddr, 41000) || got[kRTP][0] != ap(pubAddr, 7000) || got[kRTCP][0] != ap(pubAddr, 7001) {
		t.Fatalf("addresses %v", got)
	}
}

func TestUnparsedCounted(t *testing.T) {
	e := engine(t)
	c := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.10:40000", Remote: "203.0.113.10:1720", Pub: "203.0.113.1:40000", LANSeq: 1, RSeq: 1}
	c.SendAt(0, true, packet.TCPSyn, nil)
	c.SendAt(0, false, packet.TCPSyn|packet.TCPAck, nil)
	msg := q931Msg(0x05, 1, setupUU(ap(lanHost, 40002), nil))
	cut := msg[:len(msg)-10] // the TPKT says more than the segment holds
	o := c.SendAt(sec, true, packet.TCPAck, cut)
	if string(payloadOf(o)) != string(cut) {
		t.Fatal("cut message rewritten")
	}
	if s := e.HelperStats()["h323"]; s.Unparsed != 1 || s.Rewrites != 0 {
		t.Fatalf("counters %+v", s)
	}
}

// gateway is a LAN H.323 gateway reached through a port forward of 1720.
var gateway = netip.MustParseAddr("192.168.50.12")

// progressFlow runs a call from outside to the LAN gateway, which answers
// with a Progress for early media: its h245Address and fastStart (after
// the H.235 fields h235 says, which Progress-UUIE has in its root before
// fastStart) name the gateway. It returns every packet that left the engine.
func progressFlow(t *testing.T, h235 sec235) (*nat.Engine, [][]byte) {
	e := nattest.Engine(t, func(c *nat.Config) {
		c.Helpers = map[string]nat.Switch{"h323": nat.On}
		c.PortForwards = []nat.PortForward{{Proto: packet.ProtoTCP, OutsideLo: Port, OutsideHi: Port, Host: gateway, InsidePort: Port}}
	}, &Helper{})
	var out [][]byte
	c := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.12:1720", Remote: "203.0.113.20:3000", Pub: "203.0.113.1:1720", LANSeq: 100, RSeq: 200, Out: &out}
	c.SendAt(0, false, packet.TCPSyn, nil)
	c.SendAt(0, true, packet.TCPSyn|packet.TCPAck, nil)
	c.SendAt(0, false, packet.TCPAck, nil)
	caller := netip.MustParseAddr("203.0.113.20")
	c.SendAt(sec, false, packet.TCPAck|packet.TCPPsh, q931Msg(0x05, 0x0009, setupUU(ap(caller, 30010), nil)))

	fast := [][]byte{
		enc(func(w *perw) { olcForward(w, 1, ap(gateway, 7001)) }),
		enc(func(w *perw) { olcReverse(w, 2, ap(gateway, 7000), ap(gateway, 7001)) }),
	}
	msg := q931Msg(0x03, 0x8009, progressUU(ap(gateway, 41000), fast, h235))
	o := c.SendAt(2*sec, true, packet.TCPAck|packet.TCPPsh, msg)
	if len(payloadOf(o)) != len(msg) {
		t.Fatalf("length changed: %d -> %d", len(msg), len(payloadOf(o)))
	}
	got := addrs(t, payloadOf(o), true)
	if g := got[kH245]; len(g) != 1 || g[0] != ap(pubAddr, 41000) {
		t.Fatalf("Progress h245Address %v", g)
	}
	if g := got[kRTP]; len(g) != 1 || g[0] != ap(pubAddr, 7000) {
		t.Fatalf("Progress mediaChannel %v", g)
	}
	if g := got[kRTCP]; len(g) != 2 || g[0] != ap(pubAddr, 7001) || g[1] != ap(pubAddr, 7001) {
		t.Fatalf("Progress mediaControlChannel %v", g)
	}

	// Early media from the caller reaches the gateway, and so does the
	// caller's H.245 connection.
	out = append(out, rtpIn(t, e, 3*sec, "203.0.113.20:6000", "203.0.113.1:7000", "192.168.50.12:7000"))
	h := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.12:41000", Remote: "203.0.113.20:30011", Pub: "203.0.113.1:41000", LANSeq: 7000, RSeq: 9000, Out: &out}
	h.SendAt(3*sec, false, packet.TCPSyn, nil)
	IPv4(t, out[len(out)-1], Dst("192.168.50.12:41000"))
	return e, out
}

func TestProgress(t *testing.T) {
	for _, h235 := range []sec235{h235None, h235Tokens, h235Signed} {
		e, _ := progressFlow(t, h235)
		if s := e.HelperStats()["h323"]; s.Unparsed != 0 || s.Rewrites != 1 || s.Expected != 2 {
			t.Fatalf("h235 %v: counters %+v", h235, s)
		}
	}
}

// TestProgressForeign: a Progress naming addresses not the LAN host's
// (here a STUN-learned public one) passes as it is, and counts nothing.
func TestProgressForeign(t *testing.T) {
	e := engine(t)
	c := &nattest.Conn{T: t, E: e, Check: true, LAN: "192.168.50.10:40000", Remote: "203.0.113.10:1720", Pub: "203.0.113.1:40000", LANSeq: 1, RSeq: 1}
	c.SendAt(0, true, packet.TCPSyn, nil)
	c.SendAt(0, false, packet.TCPSyn|packet.TCPAck, nil)
	stun := netip.MustParseAddr("198.51.100.7")
	fast := [][]byte{enc(func(w *perw) { olcReverse(w, 2, ap(stun, 7000), ap(stun, 7001)) })}
	for i, msg := range [][]byte{
		q931Msg(0x03, 0x8001, progressUU(ap(stun, 40002), fast, h235Signed)),
		q931Msg(0x03, 0x8001, progressUU(netip.AddrPort{}, nil, h235None)), // neither h245Address nor fastStart
	} {
		o := c.SendAt(sec, true, packet.TCPAck, msg)
		if string(payloadOf(o)) != string(msg) {
			t.Fatalf("%d: rewritten", i)
		}
		if g := addrs(t, msg, true); i == 0 && (len(g[kH245]) != 1 || len(g[kRTP]) != 1 || len(g[kRTCP]) != 1) {
			t.Fatalf("%d: walker found %v", i, g)
		}
	}
	if s := e.HelperStats()["h323"]; s.Rewrites != 0 || s.Unparsed != 0 || s.Expectations != 0 {
		t.Fatalf("counters %+v", s)
	}
}

// BenchmarkUntouched is the cost of an Alerting from the LAN with no
// address to rewrite: the whole walk, no change.
func BenchmarkUntouched(b *testing.B) {
	e := engine(b)
	e.Process(0, nat.LAN, TCP("192.168.50.10:40000", "203.0.113.10:1720", packet.TCPSyn, 1, 0, nil, nil))
	seg := TCP("192.168.50.10:40000", "203.0.113.10:1720", packet.TCPAck|packet.TCPPsh, 2, 1, nil, q931Msg(0x01, 0x8001, alertingUU()))
	nattest.Bench(b, e, sec, nat.LAN, seg, nat.Forward)
	if s := e.HelperStats()["h323"]; s.Unparsed != 0 || s.Rewrites != 0 {
		b.Fatalf("counters %+v", s)
	}
}

// BenchmarkProgressUntouched is the cost of a Progress from the LAN whose
// addresses (h245Address, fastStart) are not the host's, with the H.235
// fields walked before its fastStart.
func BenchmarkProgressUntouched(b *testing.B) {
	e := engine(b)
	e.Process(0, nat.LAN, TCP("192.168.50.10:40000", "203.0.113.10:1720", packet.TCPSyn, 1, 0, nil, nil))
	stun := netip.MustParseAddr("198.51.100.7")
	fast := [][]byte{enc(func(w *perw) { olcReverse(w, 2, ap(stun, 7000), ap(stun, 7001)) })}
	seg := TCP("192.168.50.10:40000", "203.0.113.10:1720", packet.TCPAck|packet.TCPPsh, 2, 1, nil, q931Msg(0x03, 0x8001, progressUU(ap(stun, 40002), fast, h235Signed)))
	nattest.Bench(b, e, sec, nat.LAN, seg, nat.Forward)
	if s := e.HelperStats()["h323"]; s.Unparsed != 0 || s.Rewrites != 0 {
		b.Fatalf("counters %+v", s)
	}
}
