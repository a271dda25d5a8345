package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"passgate/packet"
	"passgate/packet/pkttest"
)

// FuzzProcess, with the VPN passthrough helpers registered, is in
// helpers_test.go.

// seqSteps are the clock steps a FuzzProcessSequence record may take
// before its packet: none, a little, past the closed-TCP, fragment, UDP and
// transitory-TCP timeouts.
var seqSteps = [8]Time{0, Time(time.Millisecond), Time(100 * time.Millisecond), sec, 11 * sec, 31 * sec, 301 * sec, Time(2*time.Hour + 5*time.Minute)}

// seqRecord encodes one step of FuzzProcessSequence's input: op (bit 0 the
// side, bits 1-3 the clock step, bit 4 an Expire first, bits 5-6 which of
// three LAN MACs sent it, 0 none), the packet's length, the packet.
func seqRecord(op byte, pkt []byte) []byte {
	return append([]byte{op, byte(len(pkt) >> 8), byte(len(pkt))}, pkt...)
}

func seqInput(recs ...[]byte) []byte { return bytes.Join(recs, nil) }

// FuzzProcessSequence hands the engine sequences of packets from either
// side with time passing between them: TCP through its states (RSTs in
// and out of the window among them), fragments in any order, floods that
// fill a small table and a host's share. After every packet whatever left
// must be well-formed and the flow table's bookkeeping must add up
// (conntrack's Check); in the end expiry must leave nothing.
func FuzzProcessSequence(f *testing.F) {
	const (
		lan, wan = 0, 1
		syn      = packet.TCPSyn
		ack      = packet.TCPAck
	)
	c, s, pub := "192.168.50.10:40000", "203.0.113.10:80", "203.0.113.1:40000"
	tcp := seqInput(
		seqRecord(lan|2<<5, pkttest.TCP(c, s, syn, 100, 0, []byte{3, 3, 7, 1}, nil)),
		seqRecord(wan, pkttest.TCP(s, pub, syn|ack, 500, 101, []byte{3, 3, 2, 1}, nil)),
		seqRecord(lan|2<<5, pkttest.TCP(c, s, ack, 101, 501, nil, nil)),
		seqRecord(wan|3<<1, pkttest.TCP(s, pub, ack|packet.TCPPsh, 501, 101, nil, []byte("hello"))),
		seqRecord(wan, pkttest.TCP(s, pub, packet.TCPRst, 0x7a3b9c01, 0, nil, nil)), // blind: out of the window
		seqRecord(wan, pkttest.TCP(s, pub, packet.TCPRst, 520, 0, nil, nil)),        // in the window, not at its edge
		seqRecord(wan|4<<1|1<<4, pkttest.TCP(s, pub, ack, 506, 101, nil, []byte("x"))),
		seqRecord(lan|2<<5, pkttest.TCP(c, s, packet.TCPFin|ack, 101, 507, nil, nil)),
		seqRecord(wan, pkttest.TCP(s, pub, packet.TCPRst, 507, 0, nil, nil)), // at the edge: closes
		seqRecord(lan|4<<1|1<<4, pkttest.TCP(c, s, ack, 102, 507, nil, nil)),
	)
	f.Add(tcp)
	frags := pkttest.Fragment(pkttest.UDP("192.168.50.11:500", "203.0.113.10:500", make([]byte, 2500), pkttest.ID(9)), 1000)
	var rev [][]byte
	for i := len(frags) - 1; i >= 0; i-- {
		rev = append(rev, seqRecord(lan|1<<5|1<<1, frags[i]))
	}
	f.Add(seqInput(rev...))
	inFrags := pkttest.Fragment(pkttest.UDP("203.0.113.10:500", "203.0.113.1:5000", make([]byte, 2500), pkttest.ID(7)), 1000)
	f.Add(seqInput(seqRecord(lan|1<<5, pkttest.UDP("192.168.50.11:5000", "203.0.113.10:500", nil)),
		seqRecord(wan, inFrags[1]), seqRecord(wan|5<<1, inFrags[2]), seqRecord(wan, inFrags[0])))
	var flood [][]byte
	for i := 0; i < 40; i++ {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 50, byte(20 + i)}), uint16(1000+i)).String()
		flood = append(flood, seqRecord(lan|3<<5, pkttest.UDP(src, "203.0.113.10:9", nil)))
	}
	flood = append(flood, seqRecord(lan|1<<5, pkttest.UDP("192.168.50.10:7", "203.0.113.10:9", nil)))
	f.Add(seqInput(flood...))
	var synFlood [][]byte
	for i := 0; i < 30; i++ {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), uint16(2000+i)).String()
		synFlood = append(synFlood, seqRecord(wan|1<<1, pkttest.TCP(src, "203.0.113.1:80", syn, uint32(i), 0, nil, nil)))
	}
	f.Add(seqInput(synFlood...))
	macs := [4][6]byte{{}, {2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {2, 0, 0, 0, 0, 3}}
	f.Fuzz(func(t *testing.T, in []byte) {
		e := newEngine(t, func(c *Config) {
			c.MaxFlows = 32
			c.MaxFlowsPerHost = 8
			c.WANMTU = 1000
			c.PortForwards = []PortForward{{Proto: 6, OutsideLo: 80, OutsideHi: 80, Host: netip.MustParseAddr("192.168.50.12"), InsidePort: 80}}
		})
		now := Time(0)
		for len(in) >= 3 {
			op, n := in[0], int(binary.BigEndian.Uint16(in[1:]))
			in = in[3:]
			if n > len(in) {
				n = len(in)
			}
			p := append([]byte(nil), in[:n]...)
			in = in[n:]
			now += seqSteps[op>>1&7]
			if op&(1<<4) != 0 {
				e.Expire(now)
			}
			e.ResetEmitted()
			v := e.ProcessFrom(now, Iface(op&1), macs[op>>5&3], p)
			if v.Action == Forward {
				if ip, err := packet.ParseIPv4(p); err != nil || !ip.ValidChecksum() {
					t.Fatalf("forwarded a bad packet: %v", err)
				}
			}
			for _, em := range e.Emitted() {
				if ip, err := packet.ParseIPv4(em.Frame[EtherHeadroom:]); err != nil || !ip.ValidChecksum() {
					t.Fatalf("emitted a bad packet: %v", err)
				}
			}
			if err := e.ct.Check(); err != nil {
				t.Fatal(err)
			}
		}
		e.Expire(now + 1<<50)
		if err := e.ct.Check(); err != nil {
			t.Fatal(err)
		}
		if s := e.Stats(); s.Flows != 0 || s.Mappings != 0 {
			t.Fatalf("state left after expiry: %d flows %d mappings", s.Flows, s.Mappings)
		}
	})
}
