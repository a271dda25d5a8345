package ftp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

const sec = nat.Time(1e9)

func engine(t testing.TB, forwards ...nat.PortForward) *nat.Engine {
	t.Helper()
	e, err := nat.New(nat.Config{
		LANAddr:      netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:      netip.MustParsePrefix("203.0.113.1/24"),
		MaxFlows:     1024,
		PortForwards: forwards,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.RegisterHelpers(&Helper{})
	return e
}

// conn is a TCP connection through the engine, both ends' sequence
// numbers tracked as the endpoints see them.
type conn struct {
	t            *testing.T
	e            *nat.Engine
	lan, remote  string
	pub          string
	lanSeq, rSeq uint32
	fromWAN      bool // the connection is opened from the WAN (port forward)
}

// send passes a segment and returns what came out (frames the engine
// emitted count too).
func (c *conn) send(fromLAN bool, flags uint8, payload string) []byte {
	c.t.Helper()
	var b []byte
	var from nat.Iface
	if fromLAN {
		dst := c.remote
		b = TCP(c.lan, dst, flags, c.lanSeq, c.rSeq, nil, []byte(payload))
		c.lanSeq += uint32(len(payload))
		from = nat.LAN
	} else {
		b = TCP(c.remote, c.pub, flags, c.rSeq, c.lanSeq, nil, []byte(payload))
		c.rSeq += uint32(len(payload))
		from = nat.WAN
	}
	if flags&packet.TCPSyn != 0 {
		if fromLAN {
			c.lanSeq++
		} else {
			c.rSeq++
		}
	}
	v := c.e.Process(sec, from, b)
	switch v.Action {
	case nat.Forward:
		return b[:packet.IPv4(b).TotalLen()]
	case nat.Consumed:
		em := c.e.Emitted()
		if len(em) != 1 {
			c.t.Fatalf("consumed with %d emitted packets", len(em))
		}
		out := append([]byte(nil), em[0].Frame[nat.EtherHeadroom:]...)
		c.e.ResetEmitted()
		return out
	}
	c.t.Fatalf("verdict %+v (%v)", v, v.Reason)
	return nil
}

func payloadOf(b []byte) string { return string(packet.TCP(packet.IPv4(b).Payload()).Payload()) }

func TestActivePORT(t *testing.T) {
	e := engine(t)
	c := &conn{t: t, e: e, lan: "192.168.50.10:40000", remote: "203.0.113.10:21", pub: "203.0.113.1:40000", lanSeq: 1000, rSeq: 5000}
	c.send(true, packet.TCPSyn, "")
	c.send(false, packet.TCPSyn|packet.TCPAck, "")
	c.send(true, packet.TCPAck, "")
	c.send(false, packet.TCPAck|packet.TCPPsh, "220 ready\r\n")
	out := c.send(true, packet.TCPAck|packet.TCPPsh, "PORT 192,168,50,10,200,10\r\n")
	IPv4(t, out, Src("203.0.113.1:40000"))
	got := payloadOf(out)
	want := "PORT 203,0,113,1,200,10\r\n" // 51210 is free outside, so kept
	if got != want {
		t.Fatalf("rewritten %q, want %q", got, want)
	}
	delta := len(want) - len("PORT 192,168,50,10,200,10\r\n")
	// The client's next segment moves into the server's numbering by the
	// change in length.
	clientSeq := c.lanSeq
	next := c.send(true, packet.TCPAck|packet.TCPPsh, "RETR f\r\n")
	if s := packet.TCP(packet.IPv4(next).Payload()).Seq(); s != clientSeq+uint32(delta) {
		t.Fatalf("client seq after rewrite %d, want %d", s, clientSeq+uint32(delta))
	}
	IPv4(t, next, L4Payload([]byte("RETR f\r\n")))
	// The server's data connection from port 20 reaches the client.
	d := TCP("203.0.113.10:20", "203.0.113.1:51210", packet.TCPSyn, 1, 0, nil, nil)
	if v := e.Process(2*sec, nat.WAN, d); v.Action != nat.Forward {
		t.Fatalf("data connection: %+v (%v)", v, v.Reason)
	}
	IPv4(t, d, Dst("192.168.50.10:51210"), Src("203.0.113.10:20"))
}

func TestServerAckTranslated(t *testing.T) {
	e := engine(t)
	c := &conn{t: t, e: e, lan: "192.168.50.10:40001", remote: "203.0.113.10:21", pub: "203.0.113.1:40001", lanSeq: 100, rSeq: 900}
	c.send(true, packet.TCPSyn, "")
	c.send(false, packet.TCPSyn|packet.TCPAck, "")
	line := "PORT 192,168,50,10,200,11\r\n"
	out := c.send(true, packet.TCPAck|packet.TCPPsh, line)
	sent := packet.TCP(packet.IPv4(out).Payload())
	serverNext := sent.Seq() + uint32(len(sent.Payload()))
	// The server acks what it received, in its numbering.
	b := TCP("203.0.113.10:21", "203.0.113.1:40001", packet.TCPAck, c.rSeq, serverNext, nil, nil)
	if v := e.Process(sec, nat.WAN, b); v.Action != nat.Forward {
		t.Fatal(v)
	}
	IPv4(t, b)
	if a := packet.TCP(packet.IPv4(b).Payload()).Ack(); a != c.lanSeq {
		t.Fatalf("ack to client %d, want %d (what it sent)", a, c.lanSeq)
	}
}

func TestEPRTAndForeignAddress(t *testing.T) {
	e := engine(t)
	c := &conn{t: t, e: e, lan: "192.168.50.11:40002", remote: "203.0.113.10:21", pub: "203.0.113.1:40002", lanSeq: 1, rSeq: 1}
	c.send(true, packet.TCPSyn, "")
	c.send(false, packet.TCPSyn|packet.TCPAck, "")
	out := c.send(true, packet.TCPAck, "EPRT |1|192.168.50.11|6000|\r\n")
	if got := payloadOf(out); got != "EPRT |1|203.0.113.1|6000|\r\n" {
		t.Fatalf("EPRT rewritten to %q", got)
	}
	// An address that is not the host's own (already public) stays.
	out = c.send(true, packet.TCPAck, "PORT 198,51,100,7,10,10\r\n")
	if got := payloadOf(out); got != "PORT 198,51,100,7,10,10\r\n" {
		t.Fatalf("foreign address rewritten: %q", got)
	}
}

func TestPassiveServerBehindForward(t *testing.T) {
	e := engine(t, nat.PortForward{Proto: packet.ProtoTCP, OutsideLo: 21, OutsideHi: 21, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 21})
	// A client outside opens the control connection to the public port.
	syn := TCP("203.0.113.20:3000", "203.0.113.1:21", packet.TCPSyn, 1, 0, nil, nil)
	if v := e.Process(0, nat.WAN, syn); v.Action != nat.Forward {
		t.Fatal(v)
	}
	reply := TCP("192.168.50.12:21", "203.0.113.20:3000", packet.TCPAck|packet.TCPPsh, 10, 2, nil, []byte("227 Entering Passive Mode (192,168,50,12,100,1).\r\n"))
	v := e.Process(sec, nat.LAN, reply)
	var out []byte
	switch v.Action {
	case nat.Forward:
		out = reply[:packet.IPv4(reply).TotalLen()]
	case nat.Consumed:
		out = e.Emitted()[0].Frame[nat.EtherHeadroom:]
	default:
		t.Fatal(v)
	}
	IPv4(t, out, Src("203.0.113.1:21"))
	got := payloadOf(out)
	if !bytes.HasPrefix([]byte(got), []byte("227 Entering Passive Mode (203,0,113,1,")) {
		t.Fatalf("227 rewritten to %q", got)
	}
	var h [6]int
	var p1, p2 int
	if _, err := sscan(got, &h, &p1, &p2); err != nil {
		t.Fatal(err)
	}
	port := uint16(p1<<8 | p2)
	e.ResetEmitted()
	data := TCP("203.0.113.20:3001", "203.0.113.1:"+itoa(port), packet.TCPSyn, 1, 0, nil, nil)
	if v := e.Process(2*sec, nat.WAN, data); v.Action != nat.Forward {
		t.Fatalf("passive data connection: %+v (%v)", v, v.Reason)
	}
	IPv4(t, data, Dst("192.168.50.12:25601"))
}

func itoa(p uint16) string { return string(binary.BigEndian.AppendUint16(nil, p)[:0]) + fmtUint(p) }

func fmtUint(p uint16) string {
	if p == 0 {
		return "0"
	}
	var b []byte
	for ; p > 0; p /= 10 {
		b = append([]byte{byte('0' + p%10)}, b...)
	}
	return string(b)
}

func sscan(s string, h *[6]int, p1, p2 *int) (int, error) {
	i := bytes.IndexByte([]byte(s), '(')
	j := bytes.IndexByte([]byte(s), ')')
	ap, ok := parseHostPort([]byte(s[i+1 : j]))
	if !ok {
		return 0, errBad
	}
	*p1, *p2 = int(ap.Port()>>8), int(ap.Port()&0xff)
	return 6, nil
}

type errString string

func (e errString) Error() string { return string(e) }

const errBad = errString("unparsable")

// BenchmarkUntouched is the cost on control packets the helper reads but
// does not rewrite.
func BenchmarkUntouched(b *testing.B) {
	e := engine(b)
	syn := TCP("192.168.50.10:40000", "203.0.113.10:21", packet.TCPSyn, 1, 0, nil, nil)
	e.Process(0, nat.LAN, syn)
	seg := TCP("192.168.50.10:40000", "203.0.113.10:21", packet.TCPAck|packet.TCPPsh, 2, 1, nil, []byte("RETR some/file.iso\r\n"))
	p := append([]byte(nil), seg...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(p, seg)
		if v := e.Process(sec, nat.LAN, p); v.Action != nat.Forward {
			b.Fatal(v)
		}
	}
}

func FuzzFTP(f *testing.F) {
	for _, s := range []string{
		"PORT 192,168,50,10,200,10\r\n",
		"EPRT |1|192.168.50.10|6000|\r\n",
		"227 Entering Passive Mode (192,168,50,10,1,2).\r\n",
		"229 Entering Extended Passive Mode (|||6446|)\r\n",
		"PORT 192,168,50,10,999,10\r\n", // a byte out of range
		"EPRT |2|::1|6000|\r\n",         // IPv6: left alone
		"USER a\r\nPORT 192,168,50,10,1,1\r\nPASV\r\n",
		"PORT 192,168,50,10,200", // cut by the segment end
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 1400 {
			return
		}
		e := engine(t)
		e.Process(0, nat.LAN, TCP("192.168.50.10:40000", "203.0.113.10:21", packet.TCPSyn, 1, 0, nil, nil))
		seg := TCP("192.168.50.10:40000", "203.0.113.10:21", packet.TCPAck, 2, 1, nil, payload)
		v := e.Process(sec, nat.LAN, seg)
		var out []byte
		switch v.Action {
		case nat.Forward:
			out = seg[:packet.IPv4(seg).TotalLen()]
		case nat.Consumed:
			out = e.Emitted()[0].Frame[nat.EtherHeadroom:]
		default:
			t.Fatalf("verdict %+v", v)
		}
		IPv4(t, out, Src("203.0.113.1"))
	})
}

func TestExpectationListed(t *testing.T) {
	e := engine(t)
	c := &conn{t: t, e: e, lan: "192.168.50.10:40005", remote: "203.0.113.10:21", pub: "203.0.113.1:40005", lanSeq: 1, rSeq: 1}
	c.send(true, packet.TCPSyn, "")
	c.send(false, packet.TCPSyn|packet.TCPAck, "")
	c.send(true, packet.TCPAck, "PORT 192,168,50,10,200,20\r\n")
	var got []nat.FlowInfo
	e.Flows(sec, func(fi nat.FlowInfo) bool {
		if fi.State == "expected" {
			got = append(got, fi)
		}
		return true
	})
	if len(got) != 1 || got[0].Helper != "ftp" || got[0].Inside.String() != "192.168.50.10:51220" ||
		got[0].Outside.String() != "203.0.113.1:51220" || got[0].Remote.Addr().String() != "203.0.113.10" {
		t.Fatalf("expectations listed: %+v", got)
	}
}
