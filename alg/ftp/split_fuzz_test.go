package ftp

import (
	"net/netip"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

// FuzzServerRepliesSplit: an FTP server behind a port forward sends its
// replies cut into segments wherever cuts says (each byte the length of a
// segment, 1-256), lines split across them included. Whatever the helper
// rewrites, the sequence numbers the remote client sees must run on
// without gap or overlap, and the client's ACKs of them must reach the
// server in its own numbering.
func FuzzServerRepliesSplit(f *testing.F) {
	for _, s := range []struct{ replies, cuts string }{
		{"220 ready\r\n227 Entering Passive Mode (192,168,50,12,100,1).\r\n", "\x0b\x10"},
		{"227 Entering Passive Mode (192,168,50,12,100,1).\r\n", "\x05\x05\x05"},
		{"229 Entering Extended Passive Mode (|||6446|)\r\n227 Entering Passive Mode (192,168,50,12,1,2).\r\n", "\x30\x01"},
		{"227 Entering Passive Mode (192,168,50,12,100,1).\r\n227 Entering Passive Mode (192,168,50,12,100,2).\r\n", "\xff"},
		{"227 Entering Passive Mode (192,168,50,12,100", "\x02"}, // never ends
	} {
		f.Add([]byte(s.replies), []byte(s.cuts))
	}
	f.Fuzz(func(t *testing.T, replies, cuts []byte) {
		if len(replies) > 4000 {
			return
		}
		e := engine(t, nat.PortForward{Proto: packet.ProtoTCP, OutsideLo: 21, OutsideHi: 21, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 21})
		const cli, pub, srv = "203.0.113.20:3000", "203.0.113.1:21", "192.168.50.12:21"
		step := func(from nat.Iface, b []byte) []byte {
			t.Helper()
			v := e.Process(sec, from, b)
			out, ok := nattest.Output(e, v, b)
			if !ok {
				t.Fatalf("verdict %+v (%v)", v, v.Reason)
			}
			out = append([]byte(nil), out...)
			e.ResetEmitted()
			return out
		}
		step(nat.WAN, TCP(cli, pub, packet.TCPSyn, 100, 0, nil, nil))
		step(nat.LAN, TCP(srv, cli, packet.TCPSyn|packet.TCPAck, 9, 101, nil, nil))
		step(nat.WAN, TCP(cli, pub, packet.TCPAck, 101, 10, nil, nil))
		in, outSeq := uint32(10), uint32(10) // the server's next, inside and as the client sees it
		for i := 0; len(replies) > 0; i++ {
			n := len(replies)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])+1)
			}
			seg := step(nat.LAN, TCP(srv, cli, packet.TCPAck|packet.TCPPsh, in, 101, nil, replies[:n]))
			tcp := packet.TCP(packet.IPv4(seg).Payload())
			if tcp.Seq() != outSeq {
				t.Fatalf("segment %d leaves with seq %d, want %d", i, tcp.Seq(), outSeq)
			}
			in += uint32(n)
			outSeq += uint32(len(tcp.Payload()))
			replies = replies[n:]
			ack := step(nat.WAN, TCP(cli, pub, packet.TCPAck, 101, outSeq, nil, nil))
			if got := packet.TCP(packet.IPv4(ack).Payload()).Ack(); got != in {
				t.Fatalf("after segment %d the client's ACK of %d reaches the server as %d, want %d", i, outSeq, got, in)
			}
		}
	})
}
