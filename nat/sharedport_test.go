package nat

import (
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// notIKE is a datagram no IKE reader takes (byte 17 is no IKE version).
var notIKE = []byte("NOT-IKE/lan-proto: a game's or a custom VPN's datagram")

// TestNonIKEOnPort500GetsAMapping: two LAN hosts send something that is no
// IKE from port 500 to one server's port 500; each gets its own outside
// port, counted and logged, and each gets its answer.
func TestNonIKEOnPort500GetsAMapping(t *testing.T) {
	e := newEngine(t, nil)
	ports := map[string]uint16{}
	for i, h := range []string{"192.168.50.10", "192.168.50.11"} {
		out := pass(t, e, Time(i)*2*sec, LAN, UDP(h+":500", "203.0.113.10:500", notIKE), WAN)
		IPv4(t, out, Src("203.0.113.1"), Dst("203.0.113.10:500"), L4Payload(notIKE))
		p := packet.UDP(packet.IPv4(out).Payload()).SrcPort()
		if p == 500 {
			t.Fatalf("%s's non-IKE datagram took the shared port 500", h)
		}
		ports[h] = p
	}
	if ports["192.168.50.10"] == ports["192.168.50.11"] {
		t.Fatalf("both hosts on outside port %d", ports["192.168.50.10"])
	}
	for _, h := range []string{"192.168.50.11", "192.168.50.10"} {
		pub := "203.0.113.1:" + itoa(ports[h])
		in := pass(t, e, 3*sec, WAN, UDP("203.0.113.10:500", pub, []byte("answer for "+h)), LAN)
		IPv4(t, in, Src("203.0.113.10:500"), Dst(h+":500"), L4Payload([]byte("answer for "+h)))
	}
	if s := e.Stats(); s.IKEFallback != 2 {
		t.Fatalf("IKEFallback %d, want 2", s.IKEFallback)
	}
	evs, _ := e.Events(0)
	n := 0
	for _, ev := range evs {
		if ev.Kind == EventIKEFallback {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d ike_fallback events, want 2: %+v", n, evs)
	}
	// IKE from port 500 still shares the port.
	ike := pass(t, e, 4*sec, LAN, UDP("192.168.50.12:500", "203.0.113.10:500", ikeMsg(0xaaaa, 0, false, 60)), WAN)
	IPv4(t, ike, Src("203.0.113.1:500"))
}

// TestNonIKEReplyOnSharedPort: a datagram on the shared port 500 that is
// no IKE reaches the one LAN host talking IKE with its sender; with two
// such hosts it cannot be told and is dropped.
func TestNonIKEReplyOnSharedPort(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", ikeMsg(0xaaaa, 0, false, 60)), WAN)
	in := pass(t, e, sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", notIKE), LAN)
	IPv4(t, in, Src("203.0.113.10:500"), Dst("192.168.50.10:500"), L4Payload(notIKE))
	if s := e.Stats(); s.SharedToOnlyHost != 1 {
		t.Fatalf("SharedToOnlyHost %d, want 1", s.SharedToOnlyHost)
	}
	pass(t, e, 0, LAN, UDP("192.168.50.11:500", "203.0.113.10:500", ikeMsg(0xbbbb, 0, false, 60)), WAN)
	dropped(t, e, 2*sec, WAN, UDP("203.0.113.10:500", "203.0.113.1:500", notIKE), DropMalformed)
}

// TestL2TPSharedPortOnlyHost: on the shared port 1701, what names no
// tunnel a LAN host announced (a tunnel the server starts, with id 0, or
// a datagram that is no L2TP) reaches the one LAN host talking L2TP with
// that server; with two it is dropped as before; the count follows the
// flows as they end.
func TestL2TPSharedPortOnlyHost(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, UDP("192.168.50.10:1701", "203.0.113.10:1701", l2tpSCCRQ(5, false)), WAN)
	for _, b := range [][]byte{l2tpTo(0), l2tpTo(77), notIKE} {
		in := pass(t, e, sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", b), LAN)
		IPv4(t, in, Src("203.0.113.10:1701"), Dst("192.168.50.10:1701"), L4Payload(b))
	}
	if s := e.Stats(); s.SharedToOnlyHost != 3 {
		t.Fatalf("SharedToOnlyHost %d, want 3", s.SharedToOnlyHost)
	}
	pass(t, e, 2*sec, LAN, UDP("192.168.50.11:1701", "203.0.113.10:1701", l2tpSCCRQ(6, false)), WAN)
	dropped(t, e, 2*sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", l2tpTo(77)), DropL2TPUnknownTunnel)
	dropped(t, e, 2*sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", notIKE[:4]), DropMalformed)
	// .10's flow ends (its last packet at 1 s), .11's lives on: .11 is
	// the only one again.
	udp := Time(e.cfg.Timeouts.UDP)
	e.Expire(udp + 1500*Time(1e6))
	in := pass(t, e, udp+1600*Time(1e6), WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", l2tpTo(0)), LAN)
	IPv4(t, in, Dst("192.168.50.11:1701"))
}
