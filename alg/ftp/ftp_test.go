package ftp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

const sec = nat.Time(1e9)

func engine(t testing.TB, forwards ...nat.PortForward) *nat.Engine {
	t.Helper()
	return nattest.Engine(t, func(c *nat.Config) { c.PortForwards = forwards }, &Helper{})
}

func payloadOf(b []byte) string { return string(packet.TCP(packet.IPv4(b).Payload()).Payload()) }

func TestActivePORT(t *testing.T) {
	e := engine(t)
	c := &nattest.Conn{T: t, E: e, Now: sec, LAN: "192.168.50.10:40000", Remote: "203.0.113.10:21", Pub: "203.0.113.1:40000", LANSeq: 1000, RSeq: 5000}
	c.Send(true, packet.TCPSyn, "")
	c.Send(false, packet.TCPSyn|packet.TCPAck, "")
	c.Send(true, packet.TCPAck, "")
	c.Send(false, packet.TCPAck|packet.TCPPsh, "220 ready\r\n")
	out := c.Send(true, packet.TCPAck|packet.TCPPsh, "PORT 192,168,50,10,200,10\r\n")
	IPv4(t, out, Src("203.0.113.1:40000"))
	got := payloadOf(out)
	want := "PORT 203,0,113,1,200,10\r\n" // 51210 is free outside, so kept
	if got != want {
		t.Fatalf("rewritten %q, want %q", got, want)
	}
	delta := len(want) - len("PORT 192,168,50,10,200,10\r\n")
	// The client's next segment moves into the server's numbering by the
	// change in length.
	clientSeq := c.LANSeq
	next := c.Send(true, packet.TCPAck|packet.TCPPsh, "RETR f\r\n")
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
	c := &nattest.Conn{T: t, E: e, Now: sec, LAN: "192.168.50.10:40001", Remote: "203.0.113.10:21", Pub: "203.0.113.1:40001", LANSeq: 100, RSeq: 900}
	c.Send(true, packet.TCPSyn, "")
	c.Send(false, packet.TCPSyn|packet.TCPAck, "")
	line := "PORT 192,168,50,10,200,11\r\n"
	out := c.Send(true, packet.TCPAck|packet.TCPPsh, line)
	sent := packet.TCP(packet.IPv4(out).Payload())
	serverNext := sent.Seq() + uint32(len(sent.Payload()))
	// The server acks what it received, in its numbering.
	b := TCP("203.0.113.10:21", "203.0.113.1:40001", packet.TCPAck, c.RSeq, serverNext, nil, nil)
	if v := e.Process(sec, nat.WAN, b); v.Action != nat.Forward {
		t.Fatal(v)
	}
	IPv4(t, b)
	if a := packet.TCP(packet.IPv4(b).Payload()).Ack(); a != c.LANSeq {
		t.Fatalf("ack to client %d, want %d (what it sent)", a, c.LANSeq)
	}
}

func TestEPRTAndForeignAddress(t *testing.T) {
	e := engine(t)
	c := &nattest.Conn{T: t, E: e, Now: sec, LAN: "192.168.50.11:40002", Remote: "203.0.113.10:21", Pub: "203.0.113.1:40002", LANSeq: 1, RSeq: 1}
	c.Send(true, packet.TCPSyn, "")
	c.Send(false, packet.TCPSyn|packet.TCPAck, "")
	out := c.Send(true, packet.TCPAck, "EPRT |1|192.168.50.11|6000|\r\n")
	if got := payloadOf(out); got != "EPRT |1|203.0.113.1|6000|\r\n" {
		t.Fatalf("EPRT rewritten to %q", got)
	}
	// An address that is not the host's own (already public) stays.
	out = c.Send(true, packet.TCPAck, "PORT 198,51,100,7,10,10\r\n")
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
	out, ok := nattest.Output(e, v, reply)
	if !ok {
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
	nattest.Bench(b, e, sec, nat.LAN, seg, nat.Forward)
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
		out, ok := nattest.Output(e, v, seg)
		if !ok {
			t.Fatalf("verdict %+v", v)
		}
		IPv4(t, out, Src("203.0.113.1"))
	})
}

func TestExpectationListed(t *testing.T) {
	e := engine(t)
	c := &nattest.Conn{T: t, E: e, Now: sec, LAN: "192.168.50.10:40005", Remote: "203.0.113.10:21", Pub: "203.0.113.1:40005", LANSeq: 1, RSeq: 1}
	c.Send(true, packet.TCPSyn, "")
	c.Send(false, packet.TCPSyn|packet.TCPAck, "")
	c.Send(true, packet.TCPAck, "PORT 192,168,50,10,200,20\r\n")
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

// After a rewrite changed the control connection's length, the server's
// SACK blocks count the client's bytes in the server's (shifted)
// numbering; the client must get them back in its own.
func TestServerSACKTranslated(t *testing.T) {
	for _, tc := range []struct {
		name string
		pad  []byte // options before SACK: two NOPs keep its edges aligned, one does not
	}{
		{"aligned", []byte{1, 1}},
		{"odd offset", []byte{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := engine(t)
			c := &nattest.Conn{T: t, E: e, Now: sec, LAN: "192.168.50.10:40009", Remote: "203.0.113.10:21", Pub: "203.0.113.1:40009", LANSeq: 0xfffffff0, RSeq: 900}
			c.Send(true, packet.TCPSyn, "")
			c.Send(false, packet.TCPSyn|packet.TCPAck, "")
			line := "PORT 192,168,50,10,200,12\r\n"
			c.Send(true, packet.TCPAck|packet.TCPPsh, line)
			// Two more segments; the server gets the second, not the first.
			before := c.LANSeq
			c.Send(true, packet.TCPAck|packet.TCPPsh, "NOOP\r\n")
			second := c.Send(true, packet.TCPAck|packet.TCPPsh, "LIST\r\n")
			st := packet.TCP(packet.IPv4(second).Payload())
			left, right := st.Seq(), st.Seq()+uint32(len(st.Payload()))
			ackOut := st.Seq() - 6 // the server has everything before NOOP

			opts := append(append([]byte{}, tc.pad...), 5, 10)
			opts = binary.BigEndian.AppendUint32(opts, left)
			opts = binary.BigEndian.AppendUint32(opts, right)
			for len(opts)%4 != 0 {
				opts = append(opts, 0)
			}
			b := TCP("203.0.113.10:21", "203.0.113.1:40009", packet.TCPAck, c.RSeq, ackOut, opts, nil)
			if v := e.Process(sec, nat.WAN, b); v.Action != nat.Forward {
				t.Fatalf("%+v (%v)", v, v.Reason)
			}
			IPv4(t, b, Dst("192.168.50.10:40009")) // checksum verified
			got := packet.TCP(packet.IPv4(b).Payload())
			if got.Ack() != before {
				t.Errorf("ack %#x, want %#x", got.Ack(), before)
			}
			off, n := got.SACK()
			if n != 1 {
				t.Fatalf("SACK blocks %d, want 1", n)
			}
			gl, gr := binary.BigEndian.Uint32(got[off:]), binary.BigEndian.Uint32(got[off+4:])
			if wl, wr := before+6, before+12; gl != wl || gr != wr {
				t.Errorf("SACK block %#x-%#x, want %#x-%#x (the client's own numbering)", gl, gr, wl, wr)
			}
		})
	}
}
