package nat

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// Hosts of the hairpin tests: A and B learn their public mappings from a
// server (as STUN does), C is a third host.
const (
	hpA      = "192.168.50.10:4000"
	hpB      = "192.168.50.11:5000"
	hpC      = "192.168.50.12:6000"
	hpPubA   = "203.0.113.1:4000" // the mappings keep their ports
	hpPubB   = "203.0.113.1:5000"
	hpServer = "203.0.113.10:3478"

	portUnreachable = 3 // ICMP destination unreachable code
)

var filterings = []Filtering{EndpointIndependent, AddressDependent, AddressAndPortDependent}

func (f Filtering) testName() string {
	return [...]string{"address-dependent", "endpoint-independent", "address-and-port-dependent"}[f]
}

// hpEngine is an engine with A's and B's UDP mappings made.
func hpEngine(t *testing.T, filt Filtering) *Engine {
	t.Helper()
	e := newEngine(t, func(c *Config) { c.Filtering = filt })
	for _, h := range []string{hpA, hpB} {
		out := pass(t, e, 0, LAN, UDP(h, hpServer, []byte("binding")), WAN)
		IPv4(t, out, Src(map[string]string{hpA: hpPubA, hpB: hpPubB}[h]))
	}
	return e
}

// step is a packet a host sends and what must come of it: dropped as
// filtered, or delivered to a LAN host with the given source.
type step struct {
	from, to string // LAN source, destination (a public endpoint)
	src, dst string // the delivered packet's source and destination; "" for a drop
}

func runSteps(t *testing.T, e *Engine, steps []step) {
	t.Helper()
	for i, s := range steps {
		b := UDP(s.from, s.to, []byte(fmt.Sprint("punch ", i)))
		if s.src == "" {
			dropped(t, e, Time(i)*sec, LAN, b, DropFiltered)
			continue
		}
		pass(t, e, Time(i)*sec, LAN, b, LAN)
		IPv4(t, b, Src(s.src), Dst(s.dst), TTLIs(63), L4Payload([]byte(fmt.Sprint("punch ", i))))
	}
}

// firstStep is a host's first packet to another's public mapping, which
// has sent nothing to the public address: delivered only under
// endpoint-independent filtering.
func firstStep(filt Filtering, from, to, src, dst string) step {
	if filt != EndpointIndependent {
		return step{from: from, to: to}
	}
	return step{from, to, src, dst}
}

// TestHairpinHolePunch: A and B send to each other's public mapping, A
// first, as hole-punching programs do. Through two NATs A's first packet
// is refused by B's filter unless it is endpoint-independent, and opens
// A's for B, whose packet then gets through and opens B's. Each sees the
// other's public endpoint.
func TestHairpinHolePunch(t *testing.T) {
	for _, filt := range filterings {
		t.Run(filt.testName(), func(t *testing.T) {
			e := hpEngine(t, filt)
			runSteps(t, e, []step{
				firstStep(filt, hpA, hpPubB, hpPubA, hpB),
				{hpB, hpPubA, hpPubB, hpA},
				{hpA, hpPubB, hpPubA, hpB},
				{hpA, hpPubB, hpPubA, hpB}, // the fast path's turn
				{hpB, hpPubA, hpPubB, hpA},
			})
		})
	}
}

// TestHairpinThirdHost: once B has sent to the public address, B's
// mapping admits another LAN host's packets as two NATs would: any under
// endpoint-independent filtering, any from the public address under
// address-dependent, none but A's under address-and-port-dependent (C's
// waits until B answers C).
func TestHairpinThirdHost(t *testing.T) {
	for _, filt := range filterings {
		t.Run(filt.testName(), func(t *testing.T) {
			e := hpEngine(t, filt)
			pass(t, e, 0, LAN, UDP(hpC, hpServer, nil), WAN)
			steps := []step{
				firstStep(filt, hpB, hpPubA, hpPubB, hpA),
				{hpA, hpPubB, hpPubA, hpB},
				{hpC, hpPubB, "203.0.113.1:6000", hpB},
			}
			if filt == AddressAndPortDependent {
				steps[2].src, steps[2].dst = "", ""
			}
			runSteps(t, e, steps)
		})
	}
}

// TestHairpinSelfProbe: a socket sending to its own public mapping (RFC
// 5780 4.6) gets the packet back from that mapping, under every filtering,
// and so do the packets after it (the fast path).
func TestHairpinSelfProbe(t *testing.T) {
	for _, filt := range filterings {
		t.Run(filt.testName(), func(t *testing.T) {
			e := hpEngine(t, filt)
			runSteps(t, e, []step{
				{hpA, hpPubA, hpPubA, hpA},
				{hpA, hpPubA, hpPubA, hpA},
				{hpA, hpPubA, hpPubA, hpA},
			})
			// B's mapping is no part of it: still closed to A unless
			// endpoint-independent.
			if filt != EndpointIndependent {
				dropped(t, e, 5*sec, LAN, UDP(hpA, hpPubB, nil), DropFiltered)
			}
		})
	}
}

// TestHairpinTCPSimultaneousOpen: A and B connect to each other's public
// TCP mapping at once (RFC 5382 REQ-2 through the hairpin, REQ-8): the
// SYNs cross, both answer SYN-ACK, the connection is established and its
// data takes the fast path.
func TestHairpinTCPSimultaneousOpen(t *testing.T) {
	for _, filt := range filterings {
		t.Run(filt.testName(), func(t *testing.T) {
			e := newEngine(t, func(c *Config) { c.Filtering = filt })
			pass(t, e, 0, LAN, TCP(hpA, "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil), WAN)
			pass(t, e, 0, LAN, TCP(hpB, "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil), WAN)

			synA := TCP(hpA, hpPubB, packet.TCPSyn, 100, 0, nil, nil)
			if filt == EndpointIndependent {
				pass(t, e, sec, LAN, synA, LAN)
				IPv4(t, synA, Src(hpPubA), Dst(hpB))
			} else {
				dropped(t, e, sec, LAN, synA, DropFiltered)
			}
			synB := pass(t, e, sec, LAN, TCP(hpB, hpPubA, packet.TCPSyn, 200, 0, nil, nil), LAN)
			IPv4(t, synB, Src(hpPubB), Dst(hpA))
			synAckA := pass(t, e, sec, LAN, TCP(hpA, hpPubB, packet.TCPSyn|packet.TCPAck, 100, 201, nil, nil), LAN)
			IPv4(t, synAckA, Src(hpPubA), Dst(hpB))
			synAckB := pass(t, e, sec, LAN, TCP(hpB, hpPubA, packet.TCPSyn|packet.TCPAck, 200, 101, nil, nil), LAN)
			IPv4(t, synAckB, Src(hpPubB), Dst(hpA))
			ack := pass(t, e, sec, LAN, TCP(hpA, hpPubB, packet.TCPAck, 101, 201, nil, nil), LAN)
			IPv4(t, ack, Src(hpPubA), Dst(hpB))

			var states []string
			e.Flows(sec, func(fi FlowInfo) bool {
				if fi.Origin == "hairpin" {
					states = append(states, fmt.Sprint(fi.Inside, " ", fi.State))
				}
				return true
			})
			if len(states) != 1 || states[0] != hpB+" established" && states[0] != hpA+" established" {
				t.Fatalf("hairpin flows %q, want one established", states)
			}
			var c Counters
			data := TCP(hpB, hpPubA, packet.TCPAck|packet.TCPPsh, 201, 101, nil, []byte("data"))
			if v, ok := e.FastPath(2*sec, LAN, data, &c); !ok || v.Out != LAN {
				t.Fatalf("data of the established hairpin: fast path %v %+v", ok, v)
			}
			IPv4(t, data, Src(hpPubB), Dst(hpA), L4Payload([]byte("data")))
		})
	}
}

// TestHairpinICMPErrors: an ICMP error a LAN host sends about a hairpinned
// packet reaches the packet's sender, about the packet as it sent it; a
// self-probe's comes back to the prober.
func TestHairpinICMPErrors(t *testing.T) {
	e := hpEngine(t, AddressDependent)
	runSteps(t, e, []step{
		{hpB, hpPubA, "", ""},
		{hpA, hpPubB, hpPubA, hpB},
	})
	got := UDP(hpPubA, hpB, []byte("punch 1")) // what B received
	icmp := pass(t, e, 2*sec, LAN, ICMP("192.168.50.11", "203.0.113.1", packet.ICMPUnreachable, portUnreachable, 0, got), LAN)
	IPv4(t, icmp, Src("203.0.113.1"), Dst("192.168.50.10"), ICMPType(packet.ICMPUnreachable, portUnreachable),
		Embedded(Src(hpA), Dst(hpPubB)))

	runSteps(t, e, []step{{hpA, hpPubA, hpPubA, hpA}})
	self := UDP(hpPubA, hpA, []byte("probe"))
	icmp = pass(t, e, 3*sec, LAN, ICMP("192.168.50.10", "203.0.113.1", packet.ICMPUnreachable, portUnreachable, 0, self), LAN)
	IPv4(t, icmp, Src("203.0.113.1"), Dst("192.168.50.10"), Embedded(Src(hpA), Dst(hpPubA)))
}

// TestHairpinHoldsMappings: a hairpin flow keeps the receiver's mapping
// (and so its public port) while it lives, and everything it counted goes
// with it.
func TestHairpinHoldsMappings(t *testing.T) {
	for _, filt := range filterings {
		t.Run(filt.testName(), func(t *testing.T) {
			e := hpEngine(t, filt)
			runSteps(t, e, []step{
				firstStep(filt, hpB, hpPubA, hpPubB, hpA),
				{hpA, hpPubB, hpPubA, hpB},
				{hpA, hpPubA, hpPubA, hpA},
			})
			// The server flows end; the hairpin ones, refreshed, live on
			// and keep both mappings.
			udp := Time(e.cfg.Timeouts.UDP)
			e.Expire(udp + sec/2)
			if s := e.Stats(); s.Flows != 2 || s.Mappings != 2 {
				t.Fatalf("after the server flows: %d flows, %d mappings, want 2, 2", s.Flows, s.Mappings)
			}
			b := UDP(hpB, hpPubA, []byte("still"))
			pass(t, e, udp+sec/2, LAN, b, LAN)
			IPv4(t, b, Src(hpPubB), Dst(hpA))
			e.Expire(3*udp + 3*sec)
			if s := e.Stats(); s.Flows != 0 || s.Mappings != 0 || e.maps.filt.Len() != 0 {
				t.Fatalf("after all: %d flows, %d mappings, %d filter entries", s.Flows, s.Mappings, e.maps.filt.Len())
			}
		})
	}
}

// BenchmarkHairpinUDP is an established hairpin flow between two LAN
// hosts' mappings (opened by hole punching under the default filtering),
// both ways.
func BenchmarkHairpinUDP(b *testing.B) {
	e := newEngine(b, nil)
	for _, h := range []string{hpA, hpB} {
		e.Process(0, LAN, UDP(h, hpServer, nil))
	}
	e.Process(0, LAN, UDP(hpA, hpPubB, nil)) // held
	ab := UDP(hpA, hpPubB, make([]byte, 18))
	ba := UDP(hpB, hpPubA, make([]byte, 18))
	pab, pba := append([]byte(nil), ab...), append([]byte(nil), ba...)
	if v := e.Process(0, LAN, pba); v.Action != Forward {
		b.Fatal(v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(pab, ab)
		if v := e.Process(Time(i), LAN, pab); v.Action != Forward {
			b.Fatal(v)
		}
		copy(pba, ba)
		if v := e.Process(Time(i), LAN, pba); v.Action != Forward {
			b.Fatal(v)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/pkt")
}

// TestHairpinAllocatesNothing: learning the mappings, a held flow's
// drops, its opening, the open flow both ways, the self-probe and the
// flows' ending allocate nothing.
func TestHairpinAllocatesNothing(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.Filtering = AddressAndPortDependent })
	pkts := [][]byte{
		UDP(hpA, hpServer, nil), UDP(hpB, hpServer, nil),
		UDP(hpA, hpPubB, nil), UDP(hpA, hpPubB, nil), UDP(hpB, hpPubA, nil),
		UDP(hpA, hpPubB, nil), UDP(hpB, hpPubA, nil), UDP(hpA, hpPubA, nil), UDP(hpA, hpPubA, nil),
	}
	p := make([]byte, 64)
	now := Time(0)
	n := testing.AllocsPerRun(200, func() {
		now += 400 * sec // the last run's flows are over
		e.Expire(now)
		for _, b := range pkts {
			copy(p, b)
			e.Process(now, LAN, p[:len(b)])
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
	if s := e.Stats(); s.Flows != 4 || s.Drops[DropFiltered] != 200*2+2 {
		t.Fatalf("%d flows, %d filtered: want 4 (two server flows, the hairpin, the self-probe), 2 per run", s.Flows, s.Drops[DropFiltered])
	}
}

// TestHairpinLeavesNothing sends random traffic between three LAN hosts'
// public mappings, a server and a port forward, under each filtering, with
// the table's expiry in between, and checks that once everything has
// expired no flow, mapping or filter entry is left: the hairpin flows'
// second mapping reference and their filter counts always go.
func TestHairpinLeavesNothing(t *testing.T) {
	hosts := []string{"192.168.50.10", "192.168.50.11", "192.168.50.12"}
	ports := []uint16{4000, 4001}
	for _, filt := range filterings {
		t.Run(filt.testName(), func(t *testing.T) {
			e := newEngine(t, func(c *Config) {
				c.Filtering = filt
				c.PortForwards = []PortForward{{Name: "fw", Proto: packet.ProtoUDP, OutsideLo: 9000, OutsideHi: 9000, Host: mustAddr("192.168.50.12"), InsidePort: 9000}}
			})
			rng := uint64(0x1234567)
			next := func(n int) int {
				rng ^= rng << 13
				rng ^= rng >> 7
				rng ^= rng << 17
				return int(rng % uint64(n))
			}
			now := Time(0)
			hairpinned, held := 0, 0
			for i := 0; i < 5000; i++ {
				now += Time(next(3000)) * Time(1e6)
				h := hosts[next(len(hosts))]
				src := fmt.Sprintf("%s:%d", h, ports[next(len(ports))])
				var dst string
				switch next(4) {
				case 0:
					dst = hpServer
				case 1:
					dst = "203.0.113.1:9000"
				default:
					dst = fmt.Sprintf("203.0.113.1:%d", ports[next(len(ports))])
				}
				var b []byte
				if next(4) == 0 {
					fl := []uint8{packet.TCPSyn, packet.TCPSyn | packet.TCPAck, packet.TCPAck, packet.TCPRst, packet.TCPFin | packet.TCPAck}[next(5)]
					b = TCP(src, dst, fl, 1, 1, nil, nil)
				} else {
					b = UDP(src, dst, nil)
				}
				if v := e.Process(now, LAN, b); v.Action == Forward && v.Out == LAN {
					hairpinned++
				} else if v.Reason == DropFiltered {
					held++
				}
				if next(10) == 0 {
					e.Process(now, WAN, UDP(hpServer, fmt.Sprintf("203.0.113.1:%d", ports[next(len(ports))]), nil))
				}
				if next(50) == 0 {
					e.Expire(now)
				}
			}
			if hairpinned < 500 || held < 10 && filt != EndpointIndependent {
				t.Fatalf("only %d packets hairpinned, %d held: the traffic misses the point", hairpinned, held)
			}
			t.Logf("%d hairpinned, %d held, %d flows at the end", hairpinned, held, e.Stats().Flows)
			e.Expire(now + 3*Time(e.cfg.Timeouts.TCPEstablished))
			if s := e.Stats(); s.Flows != 0 || s.Mappings != 0 || e.maps.filt.Len() != 0 || e.maps.len() != 0 {
				t.Fatalf("left: %d flows, %d mappings, %d filter entries", s.Flows, s.Mappings, e.maps.filt.Len())
			}
			for i, p := range e.hairpin {
				if p != 0 {
					t.Fatalf("flow slot %d still holds peer %#x", i, p)
				}
			}
		})
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestHairpinWANAddressChange: a new public address ends every flow; the
// hairpin flows' filter counts, kept under the address they were made
// with, go with them.
func TestHairpinWANAddressChange(t *testing.T) {
	e := hpEngine(t, AddressDependent)
	runSteps(t, e, []step{
		{hpB, hpPubA, "", ""},
		{hpA, hpPubB, hpPubA, hpB},
		{hpA, hpPubA, hpPubA, hpA},
	})
	cfg := e.cfg
	cfg.WANAddr = netip.MustParsePrefix("203.0.113.2/24")
	if err := e.Reconfigure(cfg, 5*sec); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Flows != 0 || s.Mappings != 0 || e.maps.filt.Len() != 0 {
		t.Fatalf("after the address change: %d flows, %d mappings, %d filter entries", s.Flows, s.Mappings, e.maps.filt.Len())
	}
}

// TestHairpinToDynamicForward: a LAN host reaches another's PCP/UPnP
// forward through the public address and is answered from it; a host
// probing its own forward, on its own mapping's port, gets the probe back
// from that port.
func TestHairpinToDynamicForward(t *testing.T) {
	e := hpEngine(t, AddressAndPortDependent)
	for _, d := range []DynamicForward{
		{Proto: packet.ProtoUDP, Outside: 4000, Host: mustAddr("192.168.50.10"), Inside: 4000, By: "pcp"},
		{Proto: packet.ProtoUDP, Outside: 7000, Host: mustAddr("192.168.50.10"), Inside: 7000, By: "upnp"},
	} {
		if err := e.AddDynamicForward(d); err != nil {
			t.Fatalf("%+v: %v", d, err)
		}
	}
	runSteps(t, e, []step{
		{hpB, "203.0.113.1:7000", hpPubB, "192.168.50.10:7000"}, // a forward admits whatever filtering says
		{"192.168.50.10:7000", hpPubB, "203.0.113.1:7000", hpB},
		{hpA, hpPubA, hpPubA, hpA},
		{hpA, hpPubA, hpPubA, hpA},
	})
}

// tcpSeg checks a forwarded TCP segment: its addresses, flags and numbers
// as the receiver sees them.
func tcpSeg(t *testing.T, b []byte, src, dst string, flags uint8, seq, ack uint32) {
	t.Helper()
	IPv4(t, b, Src(src), Dst(dst))
	s := packet.TCP(packet.IPv4(b).Payload())
	if s.Flags() != flags || s.Seq() != seq || s.Ack() != ack {
		t.Fatalf("segment %#x seq %d ack %d, want %#x seq %d ack %d", s.Flags(), s.Seq(), s.Ack(), flags, seq, ack)
	}
}

// TestHairpinTCPSimultaneousOpenAfterRefusals replays what the lab's
// TCP simultaneous open (lab/p2plab) saw when it missed under
// endpoint-independent filtering: each peer's connect sends a SYN, the
// other's kernel, not connecting at that moment, answers RST|ACK, and the
// peer tries again ~50-200 ms later, 180 times a side in 20 s, in either
// order. Every one of those packets reaches the other peer unchanged (the
// flow goes closed and its SYNs reopen it), and once two SYNs do cross,
// whichever reaches passgate first, the connection opens: nothing the
// refusals left in the flow refuses it.
func TestHairpinTCPSimultaneousOpenAfterRefusals(t *testing.T) {
	for _, bFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("crossing, B's SYN first: ", bFirst), func(t *testing.T) {
			e := newEngine(t, func(c *Config) { c.Filtering = EndpointIndependent })
			pass(t, e, 0, LAN, TCP(hpA, "203.0.113.10:3478", packet.TCPSyn, 1, 0, nil, nil), WAN)
			pass(t, e, 0, LAN, TCP(hpB, "203.0.113.10:3478", packet.TCPSyn, 1, 0, nil, nil), WAN)
			rng := uint32(0x9e3779b9)
			next := func() uint32 {
				rng ^= rng << 13
				rng ^= rng >> 17
				rng ^= rng << 5
				return rng
			}
			const (
				syn    = packet.TCPSyn
				synAck = packet.TCPSyn | packet.TCPAck
				rstAck = packet.TCPRst | packet.TCPAck
				ack    = packet.TCPAck
			)
			type end struct{ lan, pub string }
			a, b := end{hpA, hpPubA}, end{hpB, hpPubB}
			now := sec
			refused := func(x, y end, isn uint32) {
				// x's SYN reaches y's kernel, which answers RST|ACK
				// (sequence 0, acknowledging the SYN).
				s := pass(t, e, now, LAN, TCP(x.lan, y.pub, syn, isn, 0, nil, nil), LAN)
				tcpSeg(t, s, x.pub, y.lan, syn, isn, 0)
				r := pass(t, e, now+Time(time.Millisecond)/10, LAN, TCP(y.lan, x.pub, rstAck, 0, isn+1, nil, nil), LAN)
				tcpSeg(t, r, y.pub, x.lan, rstAck, 0, isn+1)
			}
			for i := 0; i < 180; i++ {
				x, y := a, b
				if next()&1 == 0 {
					x, y = b, a
				}
				refused(x, y, next())
				now += Time(20+next()%40) * Time(time.Millisecond)
				refused(y, x, next())
				now += Time(20+next()%40) * Time(time.Millisecond)
				if i%20 == 0 {
					e.Expire(now)
				}
			}
			var flows []string
			e.Flows(now, func(fi FlowInfo) bool {
				if fi.Origin == "hairpin" {
					flows = append(flows, fmt.Sprint(fi.State, " ", fi.PacketsOut, "/", fi.PacketsIn))
				}
				return true
			})
			if len(flows) != 1 || flows[0] != "closed 360/360" {
				t.Fatalf("hairpin flows after the refusals %q, want one closed, 360 packets each way", flows)
			}

			// The SYNs cross: each kernel is in SYN-SENT when the other's
			// arrives, answers SYN|ACK (RFC 9293 figure 8), then ACK.
			isnA, isnB := next(), next()
			x, y, ix, iy := a, b, isnA, isnB
			if bFirst {
				x, y, ix, iy = b, a, isnB, isnA
			}
			tcpSeg(t, pass(t, e, now, LAN, TCP(x.lan, y.pub, syn, ix, 0, nil, nil), LAN), x.pub, y.lan, syn, ix, 0)
			tcpSeg(t, pass(t, e, now, LAN, TCP(y.lan, x.pub, syn, iy, 0, nil, nil), LAN), y.pub, x.lan, syn, iy, 0)
			tcpSeg(t, pass(t, e, now, LAN, TCP(x.lan, y.pub, synAck, ix, iy+1, nil, nil), LAN), x.pub, y.lan, synAck, ix, iy+1)
			tcpSeg(t, pass(t, e, now, LAN, TCP(y.lan, x.pub, synAck, iy, ix+1, nil, nil), LAN), y.pub, x.lan, synAck, iy, ix+1)
			tcpSeg(t, pass(t, e, now, LAN, TCP(x.lan, y.pub, ack, ix+1, iy+1, nil, nil), LAN), x.pub, y.lan, ack, ix+1, iy+1)
			tcpSeg(t, pass(t, e, now, LAN, TCP(y.lan, x.pub, ack, iy+1, ix+1, nil, nil), LAN), y.pub, x.lan, ack, iy+1, ix+1)
			flows = flows[:0]
			e.Flows(now, func(fi FlowInfo) bool {
				if fi.Origin == "hairpin" {
					flows = append(flows, fi.State)
				}
				return true
			})
			if len(flows) != 1 || flows[0] != "established" {
				t.Fatalf("hairpin flows after the crossing %q, want one established", flows)
			}
			data := TCP(hpB, hpPubA, packet.TCPAck|packet.TCPPsh, isnB+1, isnA+1, nil, []byte("hello from B\n"))
			pass(t, e, now, LAN, data, LAN)
			IPv4(t, data, Src(hpPubB), Dst(hpA), L4Payload([]byte("hello from B\n")))
		})
	}
}
