package rtsp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

const sec = nat.Time(1e9)

func engine(t testing.TB, sw nat.Switch, forwards ...nat.PortForward) *nat.Engine {
	t.Helper()
	return nattest.Engine(t, func(c *nat.Config) {
		c.Filtering = nat.AddressAndPortDependent
		c.PortForwards = forwards
		c.Helpers = map[string]nat.Switch{"rtsp": sw}
	}, &Helper{})
}

func payloadOf(b []byte) string { return string(packet.TCP(packet.IPv4(b).Payload()).Payload()) }

func open(t *testing.T, e *nat.Engine, lan string, port int) *nattest.Conn {
	c := &nattest.Conn{T: t, E: e, Now: sec, Check: true, LAN: lan, Remote: fmt.Sprintf("203.0.113.10:%d", port), Pub: "203.0.113.1:" + strings.Split(lan, ":")[1], LANSeq: 1000, RSeq: 7000}
	c.Send(true, packet.TCPSyn, "")
	c.Send(false, packet.TCPSyn|packet.TCPAck, "")
	c.Send(true, packet.TCPAck, "")
	return c
}

func setup(transport string) string {
	return "SETUP rtsp://203.0.113.10/test/stream=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: " + transport + "\r\nUser-Agent: t\r\n\r\n"
}

func reply(transport string) string {
	return "RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: " + transport + "\r\nSession: 1234;timeout=60\r\n\r\n"
}

// udpIn sends a UDP packet from the server to a public port and returns
// the verdict and packet.
func udpIn(e *nat.Engine, src string, port uint16) (nat.Verdict, []byte) {
	b := UDP(src, fmt.Sprintf("203.0.113.1:%d", port), []byte("\x80\x60rtp"))
	return e.Process(2*sec, nat.WAN, b), b
}

func TestSetupRewrittenAndMappedBack(t *testing.T) {
	e := engine(t, nat.On)
	// Another host holds public ports 5000 and 5001, so lan1's ports get
	// others.
	for _, p := range []string{"5000", "5001"} {
		if v := e.Process(0, nat.LAN, UDP("192.168.50.11:"+p, "203.0.113.99:9", []byte("x"))); v.Action != nat.Forward {
			t.Fatal(v)
		}
	}
	c := open(t, e, "192.168.50.10:41000", 554)
	out := c.Send(true, packet.TCPAck|packet.TCPPsh, setup("RTP/AVP;unicast;client_port=5000-5001"))
	got := payloadOf(out)
	var lo, hi uint16
	i := strings.Index(got, "client_port=")
	if i < 0 {
		t.Fatalf("no client_port in %q", got)
	}
	if _, err := fmt.Sscanf(got[i:], "client_port=%d-%d\r\n", &lo, &hi); err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	if lo == 5000 || hi == 5001 || lo%2 != 0 || hi%2 != 1 {
		t.Fatalf("public ports %d-%d: want others than 5000-5001, parity kept", lo, hi)
	}
	if want := setup(fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d", lo, hi)); got != want {
		t.Fatalf("rewritten\n%q\nwant\n%q", got, want)
	}
	// The server's reply echoes the public ports: the client sees its own.
	out = c.Send(false, packet.TCPAck|packet.TCPPsh, reply(fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d;server_port=6970-6971;ssrc=1A2B", lo, hi)))
	if got, want := payloadOf(out), reply("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1A2B"); got != want {
		t.Fatalf("reply to the client\n%q\nwant\n%q", got, want)
	}
	// Sequence numbers: the client's next request moves by the change.
	delta := len(fmt.Sprintf("%d%d", lo, hi)) - len("50005001")
	seq := c.LANSeq
	out = c.Send(true, packet.TCPAck|packet.TCPPsh, "PLAY rtsp://203.0.113.10/test RTS/1.0\r\nCSeq: 4\r\n\r\n")
	if s := packet.TCP(packet.IPv4(out).Payload()).Seq(); s != seq+uint32(delta) {
		t.Fatalf("seq %d, want %d", s, seq+uint32(delta))
	}
	// RTP and RTCP from the server's ports reach the client's own ports,
	// despite address-and-port-dependent filtering.
	for _, x := range []struct {
		from string
		pub  uint16
		to   string
	}{{"203.0.113.10:6970", lo, "192.168.50.10:5000"}, {"203.0.113.10:6971", hi, "192.168.50.10:5001"}} {
		v, b := udpIn(e, x.from, x.pub)
		if v.Action != nat.Forward {
			t.Fatalf("media from %s to %d: %+v (%v)", x.from, x.pub, v, v.Reason)
		}
		IPv4(t, b, Dst(x.to), Src(x.from))
	}
	st := e.HelperStats()["rtsp"]
	if st.Rewrites != 2 || st.Expectations != 2 || st.Expected != 2 || st.Unparsed != 0 {
		t.Fatalf("counters %+v", st)
	}
}

func TestWithoutHelperMediaFiltered(t *testing.T) {
	e := engine(t, nat.Default) // off by default
	c := open(t, e, "192.168.50.10:41001", 8554)
	in := setup("RTP/AVP;unicast;client_port=5002-5003")
	if got := payloadOf(c.Send(true, packet.TCPAck|packet.TCPPsh, in)); got != in {
		t.Fatalf("helper off, yet rewritten: %q", got)
	}
	if v, _ := udpIn(e, "203.0.113.10:6970", 5002); v.Action != nat.Drop {
		t.Fatalf("media without the helper: %+v", v)
	}
}

func TestTransportsLeftAlone(t *testing.T) {
	e := engine(t, nat.On)
	c := open(t, e, "192.168.50.10:41002", 554)
	for _, tr := range []string{
		"RTP/AVP/TCP;unicast;interleaved=0-1",
		"RTP/AVP;unicast;client_port=5004-5005;interleaved=0-1",
		"RTP/AVP;multicast;destination=232.1.1.1;client_port=5004-5005",
		"RTP/AVP;unicast;destination=198.51.100.7;client_port=5004-5005", // media sent elsewhere
		"RTP/AVP;unicast",
	} {
		in := setup(tr)
		if got := payloadOf(c.Send(true, packet.TCPAck|packet.TCPPsh, in)); got != in {
			t.Errorf("%s: rewritten to %q", tr, got)
		}
	}
	// Replies to the client with ports it never announced stay too.
	in := reply("RTP/AVP;unicast;client_port=7000-7001;server_port=6970-6971")
	if got := payloadOf(c.Send(false, packet.TCPAck|packet.TCPPsh, in)); got != in {
		t.Errorf("unknown reply rewritten to %q", got)
	}
	if st := e.HelperStats()["rtsp"]; st.Rewrites != 0 || st.Expectations != 0 || st.Unparsed != 0 {
		t.Fatalf("counters %+v", st)
	}
}

func TestDestinationAndSeveralSpecs(t *testing.T) {
	e := engine(t, nat.On)
	c := open(t, e, "192.168.50.10:41003", 554)
	in := setup("RTP/AVP/TCP;interleaved=0-1, RTP/AVP;unicast;destination=192.168.50.10;client_port=6000-6001, RTP/AVP;unicast;client_port=6002")
	want := setup("RTP/AVP/TCP;interleaved=0-1, RTP/AVP;unicast;destination=203.0.113.1;client_port=6000-6001, RTP/AVP;unicast;client_port=6002")
	if got := payloadOf(c.Send(true, packet.TCPAck|packet.TCPPsh, in)); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	out := c.Send(false, packet.TCPAck|packet.TCPPsh, reply("RTP/AVP;unicast;destination=203.0.113.1;client_port=6000-6001;server_port=7000-7001"))
	if got, want := payloadOf(out), reply("RTP/AVP;unicast;destination=192.168.50.10;client_port=6000-6001;server_port=7000-7001"); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if v, _ := udpIn(e, "203.0.113.10:7002", 6002); v.Action != nat.Forward {
		t.Fatalf("single-port spec: %+v (%v)", v, v.Reason)
	}
}

func TestUnparsedAndTeardown(t *testing.T) {
	e := engine(t, nat.On)
	c := open(t, e, "192.168.50.10:41004", 554)
	for _, bad := range []string{
		setup("RTP/AVP;unicast;client_port=70000-70001"),
		setup("RTP/AVP;unicast;client_port=a-b"),
		"SETUP rtsp://x RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_po", // cut
	} {
		if got := payloadOf(c.Send(true, packet.TCPAck|packet.TCPPsh, bad)); got != bad {
			t.Errorf("%q rewritten to %q", bad, got)
		}
	}
	if st := e.HelperStats()["rtsp"]; st.Unparsed != 3 || st.Expectations != 0 {
		t.Fatalf("counters %+v", st)
	}
	out := c.Send(true, packet.TCPAck|packet.TCPPsh, setup("RTP/AVP;unicast;client_port=8000-8001"))
	if !strings.Contains(payloadOf(out), "client_port=8000-8001") {
		t.Fatalf("free ports not kept: %q", payloadOf(out))
	}
	c.Send(true, packet.TCPAck|packet.TCPPsh, "TEARDOWN rtsp://203.0.113.10/test RTSP/1.0\r\nCSeq: 5\r\n\r\n")
	if v, _ := udpIn(e, "203.0.113.10:6970", 8000); v.Action != nat.Drop {
		t.Fatalf("media after TEARDOWN: %+v", v)
	}
}

func TestServerBehindForward(t *testing.T) {
	e := engine(t, nat.On, nat.PortForward{Proto: packet.ProtoTCP, OutsideLo: 554, OutsideHi: 554, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 554})
	if v := e.Process(0, nat.WAN, TCP("203.0.113.20:3000", "203.0.113.1:554", packet.TCPSyn, 1, 0, nil, nil)); v.Action != nat.Forward {
		t.Fatal(v)
	}
	r := TCP("192.168.50.12:554", "203.0.113.20:3000", packet.TCPAck|packet.TCPPsh, 10, 2, nil,
		[]byte(reply("RTP/AVP;unicast;client_port=4000-4001;source=192.168.50.12;server_port=9000-9001")))
	v := e.Process(sec, nat.LAN, r)
	out, ok := nattest.Output(e, v, r)
	if !ok {
		t.Fatal(v)
	}
	IPv4(t, out, Src("203.0.113.1:554"))
	if got, want := payloadOf(out), reply("RTP/AVP;unicast;client_port=4000-4001;source=203.0.113.1;server_port=9000-9001"); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	// The client's RTCP to the server port reaches the server.
	b := UDP("203.0.113.20:4001", "203.0.113.1:9001", []byte("rtcp"))
	if v := e.Process(2*sec, nat.WAN, b); v.Action != nat.Forward {
		t.Fatalf("client RTCP: %+v (%v)", v, v.Reason)
	}
	IPv4(t, b, Dst("192.168.50.12:9001"))
}

func TestParseTransport(t *testing.T) {
	var specs [maxSpecs]Spec
	n, ok := ParseTransport([]byte("RTP/AVP;unicast;client_port=1-2;server_port=3 ; destination = 10.0.0.1,RTP/AVP/TCP;interleaved=0-1"), specs[:])
	if !ok || n != 2 {
		t.Fatal(n, ok)
	}
	s := specs[0]
	if s.Client != (PortRange{1, 2, 2}) || s.Server != (PortRange{3, 3, 1}) || !s.HasDest || s.Dest != netip.MustParseAddr("10.0.0.1") || s.TCP || s.Interleaved {
		t.Fatalf("%+v", s)
	}
	if !specs[1].TCP || !specs[1].Interleaved {
		t.Fatalf("%+v", specs[1])
	}
	for _, bad := range []string{"RTP/AVP;client_port=0-1", "RTP/AVP;client_port=1-2;client_port=3-4", "RTP/AVP;server_port=", "a,b,c,d,e,f,g,h,i"} {
		if _, ok := ParseTransport([]byte(bad), specs[:]); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzTransport(f *testing.F) {
	for _, s := range []string{
		"RTP/AVP;unicast;client_port=5000-5001",
		"RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1A2B;mode=\"PLAY\"",
		"RTP/AVP/TCP;unicast;interleaved=0-1",
		"RTP/AVP;multicast;destination=232.1.1.1;ttl=16;port=3456-3457",
		"RTP/AVP;unicast;destination=192.168.50.10;client_port=6000, RTP/AVP;unicast;source = 1.2.3.4;client_port=1",
		"RTP/AVP;unicast;client_port=70000",
		";;,,=;client_port=-",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, val []byte) {
		var specs [maxSpecs]Spec
		n, ok := ParseTransport(val, specs[:])
		if !ok {
			return
		}
		// Unedited, the value is copied as it is.
		if out := AppendTransport(nil, val, specs[:n]); string(out) != string(val) {
			t.Fatalf("unedited %q became %q", val, out)
		}
		// Edited, it parses again with the new values and as many specs.
		a := netip.MustParseAddr("203.0.113.1")
		for i := range specs[:n] {
			s := &specs[i]
			if s.Client.N != 0 {
				s.SetClient(40000, 40001)
			}
			if s.Server.N != 0 {
				s.SetServer(50000, 50001)
			}
			if s.HasDest {
				s.SetDest(a)
			}
			if s.HasSource {
				s.SetSource(a)
			}
		}
		out := AppendTransport(nil, val, specs[:n])
		var again [maxSpecs]Spec
		m, ok := ParseTransport(out, again[:])
		if !ok || m != n {
			t.Fatalf("%q edited to %q: reparsed %d %v, want %d specs", val, out, m, ok, n)
		}
		for i := range again[:m] {
			s, o := &again[i], &specs[i]
			if o.Client.N != 0 && (s.Client.Lo != 40000 || (o.Client.N == 2 && s.Client.Hi != 40001)) ||
				o.Server.N != 0 && s.Server.Lo != 50000 ||
				o.HasDest && s.Dest != a || o.HasSource && s.Source != a ||
				s.Interleaved != o.Interleaved || s.TCP != o.TCP || s.Multicast != o.Multicast {
				t.Fatalf("%q edited to %q: spec %d %+v", val, out, i, s)
			}
		}
	})
}

// FuzzSetup runs fuzzed SETUP requests and replies through the engine:
// every output is a well-formed packet from the public address.
func FuzzSetup(f *testing.F) {
	f.Add([]byte(setup("RTP/AVP;unicast;client_port=5000-5001")), false)
	f.Add([]byte(reply("RTP/AVP;unicast;client_port=5000-5001;server_port=1-2")), true)
	f.Add([]byte("SETUP x RTSP/1.0\r\ntransport:RTP/AVP;client_port=1"), false)
	f.Fuzz(func(t *testing.T, payload []byte, fromWAN bool) {
		if len(payload) > 1200 {
			return
		}
		e := engine(t, nat.On)
		e.Process(0, nat.LAN, TCP("192.168.50.10:40000", "203.0.113.10:554", packet.TCPSyn, 1, 0, nil, nil))
		seg := TCP("192.168.50.10:40000", "203.0.113.10:554", packet.TCPAck, 2, 1, nil, payload)
		from := nat.LAN
		if fromWAN {
			e.Process(0, nat.WAN, TCP("203.0.113.10:554", "203.0.113.1:40000", packet.TCPSyn|packet.TCPAck, 0, 2, nil, nil))
			seg = TCP("203.0.113.10:554", "203.0.113.1:40000", packet.TCPAck, 1, 2, nil, payload)
			from = nat.WAN
		}
		v := e.Process(sec, from, seg)
		out, ok := nattest.Output(e, v, seg)
		if !ok {
			t.Fatalf("verdict %+v", v)
		}
		if fromWAN {
			IPv4(t, out, Dst("192.168.50.10:40000"))
		} else {
			IPv4(t, out, Src("203.0.113.1:40000"))
		}
	})
}

// BenchmarkUntouched is the helper's cost on control packets it reads and
// leaves alone: a PLAY request.
func BenchmarkUntouched(b *testing.B) {
	benchSegment(b, "PLAY rtsp://203.0.113.10:8554/test RTSP/1.0\r\nCSeq: 4\r\nSession: 1234\r\nRange: npt=0.000-\r\n\r\n")
}

// BenchmarkInterleaved is an RTP packet carried on the RTSP connection.
func BenchmarkInterleaved(b *testing.B) {
	benchSegment(b, "$\x00\x05\x00"+strings.Repeat("\x80", 1280))
}

func benchSegment(b *testing.B, payload string) {
	e := engine(b, nat.On)
	e.Process(0, nat.LAN, TCP("192.168.50.10:40000", "203.0.113.10:8554", packet.TCPSyn, 1, 0, nil, nil))
	seg := TCP("192.168.50.10:40000", "203.0.113.10:8554", packet.TCPAck|packet.TCPPsh, 2, 1, nil, []byte(payload))
	nattest.Bench(b, e, sec, nat.LAN, seg, nat.Forward)
}
