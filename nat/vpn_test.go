package nat

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"passgate/alg/pptp"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

func ikeMsg(spiI, spiR uint64, response bool, size int) []byte {
	b := make([]byte, max(28, size))
	binary.BigEndian.PutUint64(b[0:], spiI)
	binary.BigEndian.PutUint64(b[8:], spiR)
	b[16], b[17], b[18] = 33, 0x20, 34
	if response {
		b[19] = 0x20
	} else {
		b[19] = 0x08
	}
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b
}

func TestIKESharedPort500(t *testing.T) {
	e := newEngine(t, nil)
	a := pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", ikeMsg(0xaaaa, 0, false, 100)), WAN)
	b := pass(t, e, 0, LAN, UDP("192.168.50.11:500", "203.0.113.10:500", ikeMsg(0xbbbb, 0, false, 100)), WAN)
	IPv4(t, a, Src("203.0.113.1:500"))
	IPv4(t, b, Src("203.0.113.1:500"))
	// Responses come back in the other order; each reaches its host.
	rb := pass(t, e, sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", ikeMsg(0xbbbb, 0x22, true, 100)), LAN)
	IPv4(t, rb, Dst("192.168.50.11:500"))
	ra := pass(t, e, sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", ikeMsg(0xaaaa, 0x11, true, 100)), LAN)
	IPv4(t, ra, Dst("192.168.50.10:500"))
	// A SPI nobody sent, with two candidates, is dropped and said.
	dropped(t, e, sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", ikeMsg(0xcccc, 0, false, 100)), DropIKEUnknownSPI)
	evs, _ := e.Events(0)
	if len(evs) == 0 || evs[len(evs)-1].Kind != EventIKEUnknownSPI {
		t.Fatalf("events %+v", evs)
	}
	// Another app's port 500 never takes the shared port.
	o := pass(t, e, 0, LAN, UDP("192.168.50.12:500", "203.0.113.20:9999", nil), WAN)
	if p := packet.UDP(packet.IPv4(o).Payload()).SrcPort(); p == 500 {
		t.Fatal("a non-IKE flow took outside port 500")
	}
	var spis []string
	e.Flows(sec, func(fi FlowInfo) bool {
		if fi.VPN == "ipsec" && fi.Inside.Addr().String() == "192.168.50.10" {
			spis = fi.IKESPIs
		}
		return true
	})
	if len(spis) != 1 || spis[0] != "000000000000aaaa" {
		t.Fatalf("flow table shows IKE SPIs %v", spis)
	}
}

func TestIKEServerInitiatedSingleHost(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", ikeMsg(0xaaaa, 0, false, 60)), WAN)
	// The server starts a new IKE SA (its own initiator SPI): the only
	// host talking IKE with it gets it.
	r := pass(t, e, sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", ikeMsg(0x5e5e, 0, false, 60)), LAN)
	IPv4(t, r, Dst("192.168.50.10:500"))
}

func TestIKEFragmentedOutOfOrder(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", ikeMsg(0xaaaa, 0, false, 60)), WAN)
	pass(t, e, 0, LAN, UDP("192.168.50.11:500", "203.0.113.10:500", ikeMsg(0xbbbb, 0, false, 60)), WAN)
	// A response with certificates, in three fragments, last first.
	big := UDP("203.0.113.10:500", "203.0.113.1:500", ikeMsg(0xbbbb, 0x2, true, 2600), ID(4242))
	frags := Fragment(big, 1000)
	var out [][]byte
	for _, i := range []int{2, 1, 0} {
		v := e.Process(sec, WAN, frags[i])
		if v.Action == Forward {
			out = append(out, frags[i])
		}
		for _, em := range e.Emitted() {
			out = append(out, append([]byte(nil), em.Frame[EtherHeadroom:]...))
		}
		e.ResetEmitted()
	}
	if len(out) != 3 {
		t.Fatalf("%d fragments left", len(out))
	}
	for _, f := range out {
		IPv4(t, f, Dst("192.168.50.11"))
	}
}

func TestNATTPort4500(t *testing.T) {
	e := newEngine(t, nil)
	a := pass(t, e, 0, LAN, UDP("192.168.50.10:4500", "203.0.113.10:4500", append([]byte{0, 0, 0, 0}, ikeMsg(1, 2, false, 60)...)), WAN)
	b := pass(t, e, 0, LAN, UDP("192.168.50.11:4500", "203.0.113.10:4500", []byte{0xff}), WAN)
	pa := packet.UDP(packet.IPv4(a).Payload()).SrcPort()
	pb := packet.UDP(packet.IPv4(b).Payload()).SrcPort()
	if pa != 4500 || pb == 4500 {
		t.Fatalf("outside ports %d %d", pa, pb)
	}
	// ESP-in-UDP back to the second host on its mapping.
	esp := []byte{0xc0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4}
	r := pass(t, e, sec, WAN, UDP("203.0.113.10:4500", "203.0.113.1:"+itoa(pb), esp), LAN)
	IPv4(t, r, Dst("192.168.50.11:4500"), L4Payload(esp))
	// Keepalives every 20 s keep an idle tunnel for as long as it lives.
	for now := 20 * sec; now < 30*Time(time.Minute); now += 20 * sec {
		pass(t, e, now, LAN, UDP("192.168.50.11:4500", "203.0.113.10:4500", []byte{0xff}), WAN)
		e.Expire(now)
	}
	pass(t, e, 30*Time(time.Minute), WAN, UDP("203.0.113.10:4500", "203.0.113.1:"+itoa(pb), esp), LAN)
}

func itoa(p uint16) string {
	b := make([]byte, 0, 5)
	if p == 0 {
		return "0"
	}
	for ; p > 0; p /= 10 {
		b = append([]byte{byte('0' + p%10)}, b...)
	}
	return string(b)
}

// espPkt builds a raw ESP packet with a SPI and a payload.
func espPkt(src, dst string, spi uint32, payload string) []byte {
	body := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint32(body, spi)
	binary.BigEndian.PutUint32(body[4:], 1)
	copy(body[8:], payload)
	b := UDP(src+":1", dst+":1", body)
	// Turn the UDP packet into ESP: same bytes after the IP header.
	ip := packet.IPv4(b)
	copy(ip.Payload(), body)
	b = b[:20+len(body)]
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[9] = packet.ProtoESP
	packet.IPv4(b).ComputeChecksum()
	return b
}

func espSPI(b []byte) uint32 { return binary.BigEndian.Uint32(packet.IPv4(b).Payload()) }

func TestRawESPTwoHosts(t *testing.T) {
	e := newEngine(t, nil)
	a := pass(t, e, 0, LAN, espPkt("192.168.50.10", "203.0.113.10", 0x1000, "a1"), WAN)
	IPv4(t, a, Src("203.0.113.1"), Dst("203.0.113.10"))
	if espSPI(a) != 0x1000 {
		t.Fatal("SPI changed on the way out")
	}
	ra := pass(t, e, sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2000, "A1"), LAN)
	IPv4(t, ra, Dst("192.168.50.10"))
	pass(t, e, 2*sec, LAN, espPkt("192.168.50.11", "203.0.113.10", 0x1001, "b1"), WAN)
	rb := pass(t, e, 3*sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2001, "B1"), LAN)
	IPv4(t, rb, Dst("192.168.50.11"))
	// Learned SPIs keep going to their hosts, in any order.
	IPv4(t, pass(t, e, 4*sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2000, "A2"), LAN), Dst("192.168.50.10"))
	IPv4(t, pass(t, e, 4*sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2001, "B2"), LAN), Dst("192.168.50.11"))
	if e.Stats().ESPAmbiguous != 0 {
		t.Fatal("unambiguous binding counted as ambiguous")
	}
	var in, out []string
	e.Flows(4*sec, func(fi FlowInfo) bool {
		if fi.Proto == "esp" {
			in, out = append(in, fi.ESPSPIIn), append(out, fi.ESPSPIOut)
		}
		return true
	})
	if len(in) != 2 {
		t.Fatalf("esp flows %v %v", in, out)
	}
	// An SPI no host is waiting for is dropped.
	dropped(t, e, 5*sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x3000, "?"), DropESPUnknownSPI)
}

func TestRawESPAmbiguousIsSaid(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, espPkt("192.168.50.10", "203.0.113.10", 0x1000, "a"), WAN)
	pass(t, e, sec, LAN, espPkt("192.168.50.11", "203.0.113.10", 0x1001, "b"), WAN)
	r := pass(t, e, 2*sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2000, "?"), LAN)
	IPv4(t, r, Dst("192.168.50.10")) // the oldest unanswered
	if e.Stats().ESPAmbiguous != 1 {
		t.Fatal("ambiguity not counted")
	}
	evs, _ := e.Events(0)
	if evs[len(evs)-1].Kind != EventESPAmbiguous {
		t.Fatalf("events %+v", evs)
	}
	// The other host's SPI then binds without doubt.
	IPv4(t, pass(t, e, 3*sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2001, "?"), LAN), Dst("192.168.50.11"))
	if e.Stats().ESPAmbiguous != 1 {
		t.Fatal("second binding counted as ambiguous")
	}
}

func TestAHDroppedAndSaid(t *testing.T) {
	e := newEngine(t, nil)
	ah := espPkt("192.168.50.10", "203.0.113.10", 0x1000, "ah")
	ah[9] = packet.ProtoAH
	packet.IPv4(ah).ComputeChecksum()
	dropped(t, e, 0, LAN, ah, DropAH)
	evs, _ := e.Events(0)
	if len(evs) != 1 || evs[0].Kind != EventAHDropped {
		t.Fatalf("events %+v", evs)
	}
	if m := evs[0].Message(); m == "" || !contains(m, "cannot cross NAT") {
		t.Fatalf("message %q", m)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// pptpMsg builds a control message.
func pptpMsg(typ uint16, callID, peer uint16, result byte) []byte {
	lengths := map[uint16]int{1: 156, 2: 156, 7: 168, 8: 32, 12: 16, 13: 148}
	b := make([]byte, lengths[typ])
	binary.BigEndian.PutUint16(b[0:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint32(b[4:], pptp.MagicCookie)
	binary.BigEndian.PutUint16(b[8:], typ)
	binary.BigEndian.PutUint16(b[12:], callID)
	binary.BigEndian.PutUint16(b[14:], peer)
	if len(b) > 16 {
		b[16] = result
	}
	return b
}

func grePkt(src, dst string, key uint16, payload string) []byte {
	body := make([]byte, 12+len(payload))
	body[0], body[1] = 0x30, 0x01
	binary.BigEndian.PutUint16(body[2:], pptp.GREProtoPPP)
	binary.BigEndian.PutUint16(body[4:], uint16(len(payload)))
	binary.BigEndian.PutUint16(body[6:], key)
	binary.BigEndian.PutUint32(body[8:], 1)
	copy(body[12:], payload)
	b := espPkt(src, dst, 0x100, string(make([]byte, len(body)-8)))
	copy(packet.IPv4(b).Payload(), body)
	b[9] = packet.ProtoGRE
	packet.IPv4(b).ComputeChecksum()
	return b
}

func greKey(b []byte) uint16 { return binary.BigEndian.Uint16(packet.IPv4(b).Payload()[6:]) }

// pptpClient drives one client's control connection through the engine.
type pptpClient struct {
	t          *testing.T
	e          *Engine
	host       string
	port       uint16
	pub        string
	cseq, sseq uint32
}

func (c *pptpClient) out(now Time, payload []byte, flags uint8) []byte {
	b := TCP(c.host+":"+itoa(c.port), "203.0.113.10:1723", flags, c.cseq, c.sseq, nil, payload)
	c.cseq += uint32(len(payload))
	return pass(c.t, c.e, now, LAN, b, WAN)
}

func (c *pptpClient) in(now Time, payload []byte, flags uint8) []byte {
	b := TCP("203.0.113.10:1723", c.pub, flags, c.sseq, c.cseq, nil, payload)
	c.sseq += uint32(len(payload))
	return pass(c.t, c.e, now, WAN, b, LAN)
}

func (c *pptpClient) connect() {
	o := c.out(0, nil, packet.TCPSyn)
	c.pub = "203.0.113.1:" + itoa(packet.TCP(packet.IPv4(o).Payload()).SrcPort())
	c.cseq++
	c.in(0, nil, packet.TCPSyn|packet.TCPAck)
	c.sseq++
	c.out(0, pptpMsg(1, 0, 0, 0), packet.TCPAck)
	c.in(0, pptpMsg(2, 0, 0, 1), packet.TCPAck)
}

// connectQuiet sets up a control connection and a call without asserting
// (for the fuzzer's starting state).
func (c *pptpClient) connectQuiet() {
	send := func(from Iface, b []byte) { c.e.Process(0, from, b) }
	send(LAN, TCP(c.host+":"+itoa(c.port), "203.0.113.10:1723", packet.TCPSyn, c.cseq, 0, nil, nil))
	c.cseq++
	send(WAN, TCP("203.0.113.10:1723", "203.0.113.1:"+itoa(c.port), packet.TCPSyn|packet.TCPAck, c.sseq, c.cseq, nil, nil))
	c.sseq++
	m := pptpMsg(7, 0x0100, 0, 0)
	send(LAN, TCP(c.host+":"+itoa(c.port), "203.0.113.10:1723", packet.TCPAck, c.cseq, c.sseq, nil, m))
	c.cseq += uint32(len(m))
	r := pptpMsg(8, 0x0700, 0x0100, 1)
	send(WAN, TCP("203.0.113.10:1723", "203.0.113.1:"+itoa(c.port), packet.TCPAck, c.sseq, c.cseq, nil, r))
}

func tcpPayload(b []byte) []byte { return packet.TCP(packet.IPv4(b).Payload()).Payload() }

func TestPPTPTwoClientsSameCallID(t *testing.T) {
	e := newEngine(t, nil)
	clients := []*pptpClient{
		{t: t, e: e, host: "192.168.50.10", port: 40000, cseq: 100, sseq: 900},
		{t: t, e: e, host: "192.168.50.11", port: 40000, cseq: 100, sseq: 900},
	}
	var outside [2]uint16
	for i, c := range clients {
		c.connect()
		// Both clients use call id 0x0100.
		o := c.out(sec, pptpMsg(pptp.OutgoingCallRequest, 0x0100, 0, 0), packet.TCPAck)
		IPv4(t, o)
		outside[i] = binary.BigEndian.Uint16(tcpPayload(o)[12:])
		if outside[i]>>8 != 0x01 {
			t.Fatalf("outside call id %#04x lost the high byte", outside[i])
		}
		// The server answers with its own call id and the outside one.
		in := c.in(sec, pptpMsg(pptp.OutgoingCallReply, uint16(0x700+i), outside[i], 1), packet.TCPAck)
		IPv4(t, in)
		if peer := binary.BigEndian.Uint16(tcpPayload(in)[14:]); peer != 0x0100 {
			t.Fatalf("peer call id back to the client %#04x, want 0x0100", peer)
		}
	}
	if outside[0] == outside[1] {
		t.Fatalf("both clients have outside call id %#04x", outside[0])
	}
	// GRE both ways for each.
	for i, c := range clients {
		g := pass(t, e, 2*sec, LAN, grePkt(c.host, "203.0.113.10", uint16(0x700+i), "ppp-out"), WAN)
		IPv4(t, g, Src("203.0.113.1"))
		if greKey(g) != uint16(0x700+i) {
			t.Fatal("outbound GRE key changed")
		}
		r := pass(t, e, 2*sec, WAN, grePkt("203.0.113.10", "203.0.113.1", outside[i], "ppp-in"), LAN)
		IPv4(t, r, Dst(c.host))
		if greKey(r) != 0x0100 {
			t.Fatalf("inbound GRE key %#04x, want the client's 0x0100", greKey(r))
		}
	}
	var calls int
	e.Flows(2*sec, func(fi FlowInfo) bool {
		if fi.Proto == "gre" && fi.CallIDInside == 0x0100 && fi.CallIDOutside != 0 {
			calls++
		}
		return true
	})
	if calls != 2 {
		t.Fatalf("flow table shows %d GRE calls", calls)
	}
	// The server disconnects client 0's call: its GRE goes.
	clients[0].in(3*sec, pptpMsg(pptp.CallDisconnectNotify, 0x700, 0, 0), packet.TCPAck)
	dropped(t, e, 3*sec, WAN, grePkt("203.0.113.10", "203.0.113.1", outside[0], "late"), DropGRENoControl)
	pass(t, e, 3*sec, WAN, grePkt("203.0.113.10", "203.0.113.1", outside[1], "still"), LAN)
	// GRE with no control connection never passes.
	dropped(t, e, 3*sec, LAN, grePkt("192.168.50.12", "203.0.113.10", 0x55, "x"), DropGRENoControl)
}

func TestPPTPMessagesSplitAndShared(t *testing.T) {
	e := newEngine(t, nil)
	c := &pptpClient{t: t, e: e, host: "192.168.50.10", port: 41000, cseq: 1, sseq: 1}
	c.connect()
	// Another client holds call id 0x0100 outside, so this one's moves.
	other := &pptpClient{t: t, e: e, host: "192.168.50.11", port: 41000, cseq: 1, sseq: 1}
	other.connect()
	other.out(sec, pptpMsg(7, 0x0100, 0, 0), packet.TCPAck)
	// OCRQ split in the middle of the call id field.
	m := pptpMsg(7, 0x0100, 0, 0)
	o1 := c.out(sec, m[:13], packet.TCPAck)
	o2 := c.out(sec, m[13:], packet.TCPAck)
	IPv4(t, o1)
	IPv4(t, o2)
	got := uint16(tcpPayload(o1)[12])<<8 | uint16(tcpPayload(o2)[0])
	if got == 0x0100 || got>>8 != 1 {
		t.Fatalf("split call id became %#04x", got)
	}
	// Echo reply and OCRP in one segment.
	two := append(pptpMsg(2, 0, 0, 1)[:0:0], make([]byte, 0)...)
	echo := pptpMsg(1, 0, 0, 0)
	binary.BigEndian.PutUint16(echo[8:], pptp.EchoReply)
	echo = echo[:20]
	binary.BigEndian.PutUint16(echo[0:], 20)
	two = append(echo, pptpMsg(8, 0x0999, got, 1)...)
	in := c.in(sec, two, packet.TCPAck)
	IPv4(t, in)
	if peer := binary.BigEndian.Uint16(tcpPayload(in)[20+14:]); peer != 0x0100 {
		t.Fatalf("peer call id %#04x", peer)
	}
	r := pass(t, e, sec, WAN, grePkt("203.0.113.10", "203.0.113.1", got, "x"), LAN)
	IPv4(t, r, Dst("192.168.50.10"))
}

func TestPPTPOutOfOrderSegmentDropped(t *testing.T) {
	e := newEngine(t, nil)
	c := &pptpClient{t: t, e: e, host: "192.168.50.10", port: 42000, cseq: 1, sseq: 1}
	c.connect()
	ahead := TCP(c.host+":42000", "203.0.113.10:1723", packet.TCPAck, c.cseq+100, c.sseq, nil, pptpMsg(7, 1, 0, 0))
	dropped(t, e, sec, LAN, ahead, DropPPTPOutOfOrder)
}

func l2tpSCCRQ(tid uint16, hidden bool) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, 0xc802)
	avp := func(attr uint16, hid bool, v ...byte) {
		w := uint16(0x8000) | uint16(6+len(v))
		if hid {
			w |= 0x4000
		}
		a := make([]byte, 6)
		binary.BigEndian.PutUint16(a, w)
		binary.BigEndian.PutUint16(a[4:], attr)
		b = append(b, append(a, v...)...)
	}
	avp(0, false, 0, 1)
	avp(9, hidden, byte(tid>>8), byte(tid))
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func l2tpTo(tid uint16) []byte {
	b := []byte{0xc8, 0x02, 0, 12, byte(tid >> 8), byte(tid), 0, 0, 0, 0, 0, 0}
	return b
}

func TestL2TPSharedPort1701(t *testing.T) {
	e := newEngine(t, nil)
	a := pass(t, e, 0, LAN, UDP("192.168.50.10:1701", "203.0.113.10:1701", l2tpSCCRQ(5, false)), WAN)
	b := pass(t, e, 0, LAN, UDP("192.168.50.11:1701", "203.0.113.10:1701", l2tpSCCRQ(6, false)), WAN)
	IPv4(t, a, Src("203.0.113.1:1701"))
	IPv4(t, b, Src("203.0.113.1:1701"))
	IPv4(t, pass(t, e, sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", l2tpTo(6)), LAN), Dst("192.168.50.11:1701"))
	IPv4(t, pass(t, e, sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", l2tpTo(5)), LAN), Dst("192.168.50.10:1701"))
	dropped(t, e, sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", l2tpTo(7)), DropL2TPUnknownTunnel)

	// Same tunnel id as another host, and a hidden AVP: ordinary ports.
	c := pass(t, e, 0, LAN, UDP("192.168.50.12:1701", "203.0.113.10:1701", l2tpSCCRQ(5, false)), WAN)
	pc := packet.UDP(packet.IPv4(c).Payload()).SrcPort()
	if pc == 1701 {
		t.Fatal("clashing tunnel id kept port 1701")
	}
	IPv4(t, pass(t, e, sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:"+itoa(pc), l2tpTo(5)), LAN), Dst("192.168.50.12:1701"))
	h := pass(t, e, 0, LAN, UDP("192.168.50.12:1701", "203.0.113.20:1701", l2tpSCCRQ(9, true)), WAN)
	if packet.UDP(packet.IPv4(h).Payload()).SrcPort() == 1701 {
		t.Fatal("hidden tunnel id kept port 1701")
	}
	if e.Stats().L2TPFallback != 2 {
		t.Fatalf("fallbacks %d", e.Stats().L2TPFallback)
	}
	var tids []uint16
	e.Flows(sec, func(fi FlowInfo) bool {
		if fi.VPN == "l2tp" && fi.Inside.Addr().String() == "192.168.50.11" {
			tids = fi.TunnelIDs
		}
		return true
	})
	if len(tids) != 1 || tids[0] != 6 {
		t.Fatalf("tunnel ids %v", tids)
	}
}

func TestPassthroughSwitches(t *testing.T) {
	e := newEngine(t, nil)
	c := &pptpClient{t: t, e: e, host: "192.168.50.10", port: 43000, cseq: 1, sseq: 1}
	c.connect()
	pass(t, e, 0, LAN, espPkt("192.168.50.11", "203.0.113.10", 0x1000, "a"), WAN)
	cfg := testConfig()
	cfg.Passthrough.PPTP = Off
	if err := e.Reconfigure(cfg, sec); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.VPNSessions["pptp"] != 0 || s.VPNSessions["ipsec"] != 1 {
		t.Fatalf("sessions after PPTP off: %v", s.VPNSessions)
	}
	dropped(t, e, sec, LAN, TCP("192.168.50.10:43001", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil), DropPPTPOff)
	dropped(t, e, sec, LAN, grePkt("192.168.50.10", "203.0.113.10", 1, "x"), DropPPTPOff)
	evs, _ := e.Events(0)
	if evs[len(evs)-1].Kind != EventPassthroughOff || !contains(evs[len(evs)-1].Message(), "PPTP passthrough is switched off") {
		t.Fatalf("event %+v", evs[len(evs)-1])
	}
	cfg.Passthrough.PPTP = On
	cfg.Passthrough.IPsec = Off
	e.Reconfigure(cfg, 2*sec)
	pass(t, e, 2*sec, LAN, TCP("192.168.50.10:43001", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil), WAN)
	dropped(t, e, 2*sec, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", ikeMsg(1, 0, false, 40)), DropIPsecOff)
	dropped(t, e, 2*sec, LAN, espPkt("192.168.50.11", "203.0.113.10", 0x1000, "a"), DropIPsecOff)
	if s := e.Stats(); s.VPNSessions["ipsec"] != 0 {
		t.Fatalf("ipsec sessions after IPsec off: %v", s.VPNSessions)
	}
}

// A PPTP server (the PAC) on the LAN behind a port forward of TCP 1723:
// two remote clients, each with the same call id of its own, call it at
// once; the server's call ids are followed in its replies and the GRE of
// each call crosses both ways; a call the server ends takes its GRE along.
func TestPPTPServerBehindForward(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Name: "vpn", Proto: 6, OutsideLo: 1723, OutsideHi: 1723, Host: netip.MustParseAddr("192.168.50.10"), InsidePort: 1723}}
	})
	const server = "192.168.50.10"
	remotes := []string{"198.51.100.20", "198.51.100.21"}
	type conn struct{ cseq, sseq uint32 }
	conns := make([]conn, len(remotes))
	fromRemote := func(i int, now Time, payload []byte, flags uint8) []byte {
		c := &conns[i]
		b := TCP(remotes[i]+":40000", "203.0.113.1:1723", flags, c.cseq, c.sseq, nil, payload)
		c.cseq += uint32(len(payload))
		if flags&packet.TCPSyn != 0 {
			c.cseq++
		}
		return pass(t, e, now, WAN, b, LAN)
	}
	fromServer := func(i int, now Time, payload []byte, flags uint8) []byte {
		c := &conns[i]
		b := TCP(server+":1723", remotes[i]+":40000", flags, c.sseq, c.cseq, nil, payload)
		c.sseq += uint32(len(payload))
		if flags&packet.TCPSyn != 0 {
			c.sseq++
		}
		return pass(t, e, now, LAN, b, WAN)
	}
	for i := range remotes {
		conns[i] = conn{cseq: 100, sseq: 900}
		IPv4(t, fromRemote(i, 0, nil, packet.TCPSyn), Dst(server+":1723"))
		fromServer(i, 0, nil, packet.TCPSyn|packet.TCPAck)
		fromRemote(i, 0, pptpMsg(pptp.StartCtrlConnRequest, 0, 0, 0), packet.TCPAck)
		fromServer(i, 0, pptpMsg(pptp.StartCtrlConnReply, 0, 0, 1), packet.TCPAck)
		// Both clients call with their call id 0x4000; the server answers
		// each with a call id of its own.
		req := fromRemote(i, sec, pptpMsg(pptp.OutgoingCallRequest, 0x4000, 0, 0), packet.TCPAck)
		if id := binary.BigEndian.Uint16(tcpPayload(req)[12:]); id != 0x4000 {
			t.Fatalf("remote %d: the client's own call id changed to %#04x", i, id)
		}
		rep := fromServer(i, sec, pptpMsg(pptp.OutgoingCallReply, uint16(0x100+i), 0x4000, 1), packet.TCPAck)
		IPv4(t, rep, Src("203.0.113.1:1723"))
		if id, peer := binary.BigEndian.Uint16(tcpPayload(rep)[12:]), binary.BigEndian.Uint16(tcpPayload(rep)[14:]); id != uint16(0x100+i) || peer != 0x4000 {
			t.Fatalf("remote %d: reply call ids %#04x/%#04x, want %#04x/0x4000", i, id, peer, 0x100+i)
		}
	}
	for i, r := range remotes {
		in := pass(t, e, 2*sec, WAN, grePkt(r, "203.0.113.1", uint16(0x100+i), "to-server"), LAN)
		IPv4(t, in, Src(r), Dst(server))
		if k := greKey(in); k != uint16(0x100+i) {
			t.Fatalf("remote %d: GRE to the server has key %#04x, want %#04x", i, k, 0x100+i)
		}
		out := pass(t, e, 2*sec, LAN, grePkt(server, r, 0x4000, "to-client"), WAN)
		IPv4(t, out, Src("203.0.113.1"), Dst(r))
		if k := greKey(out); k != 0x4000 {
			t.Fatalf("remote %d: GRE to the client has key %#04x, want 0x4000", i, k)
		}
	}
	var calls int
	e.Flows(2*sec, func(fi FlowInfo) bool {
		if fi.Proto == "gre" && fi.Inside.Addr().String() == server {
			calls++
		}
		return true
	})
	if calls != 2 {
		t.Fatalf("flow table shows %d GRE calls of the server, want 2", calls)
	}
	// The server ends remote 0's call: that GRE goes, the other stays.
	fromServer(0, 3*sec, pptpMsg(pptp.CallDisconnectNotify, 0x100, 0, 0), packet.TCPAck)
	dropped(t, e, 3*sec, WAN, grePkt(remotes[0], "203.0.113.1", 0x100, "late"), DropGRENoControl)
	pass(t, e, 3*sec, WAN, grePkt(remotes[1], "203.0.113.1", 0x101, "still"), LAN)
}

// A tunnel's flows (ESP, GRE) live as long as UDP's after their last
// packet, not ICMP's minute: an IPsec tunnel idle for two minutes still
// takes the server's next packet to its host.
func TestTunnelFlowsKeepTheUDPTimeout(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, espPkt("192.168.50.10", "203.0.113.10", 0x1000, "out"), WAN)
	pass(t, e, sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2000, "in"), LAN)
	idle := sec + 2*Time(time.Minute)
	if idle < sec+e.timeouts.icmp || idle >= sec+e.timeouts.udp {
		t.Fatalf("timeouts icmp %v udp %v: the test needs 2 min between them", e.timeouts.icmp, e.timeouts.udp)
	}
	e.Expire(idle)
	IPv4(t, pass(t, e, idle, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2000, "after"), LAN), Dst("192.168.50.10"))
	e.Expire(idle + e.timeouts.udp + sec)
	dropped(t, e, idle+e.timeouts.udp+sec, WAN, espPkt("203.0.113.10", "203.0.113.1", 0x2000, "gone"), DropESPUnknownSPI)
}
