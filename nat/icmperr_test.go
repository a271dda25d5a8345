package nat

import (
	"fmt"
	"testing"

	"passgate/packet"
	. "passgate/packet/pkttest"
)

// TestICMPErrorChecksums: an ICMP error whose own checksum or whose
// embedded IP header checksum fails is dropped (RFC 5508 REQ-3, 3a); a
// wrong embedded transport checksum is no reason (REQ-3c).
func TestICMPErrorChecksums(t *testing.T) {
	e := newEngine(t, nil)
	out := pass(t, e, 0, LAN, UDP("192.168.50.10:33434", "203.0.113.20:33435", []byte("probe")), WAN)
	quote := append([]byte(nil), out[:28]...)
	mk := func(corrupt func(b []byte)) []byte {
		b := ICMP("203.0.113.20", "203.0.113.1", packet.ICMPUnreachable, 3, 0, quote)
		corrupt(b[20:])
		return b
	}
	dropped(t, e, sec, WAN, mk(func(c []byte) { c[2] ^= 0xff }), DropMalformed)
	// The embedded header's checksum, with the ICMP checksum made right.
	dropped(t, e, sec, WAN, mk(func(c []byte) {
		c[8+10] ^= 0xff
		packet.ICMP(c).ComputeChecksum()
	}), DropMalformed)
	in := pass(t, e, sec, WAN, mk(func(c []byte) {
		c[8+20+6] ^= 0xff // the embedded UDP checksum
		packet.ICMP(c).ComputeChecksum()
	}), LAN)
	IPv4(t, in, Dst("192.168.50.10"), Embedded(Src("192.168.50.10:33434")))
}

// TestOtherICMPDropped: ICMP that is neither a query of a flow nor an
// error about one goes nowhere (RFC 5508 REQ-11): a redirect, an
// unsolicited echo reply, an error about no flow.
func TestOtherICMPDropped(t *testing.T) {
	e := newEngine(t, nil)
	out := pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "203.0.113.20:53", nil), WAN)
	for name, b := range map[string][]byte{
		"redirect":       ICMP("203.0.113.254", "203.0.113.1", packet.ICMPRedirect, 1, 0, out[:28]),
		"echo reply":     Echo("203.0.113.20", "203.0.113.1", true, 9, 1, nil),
		"error, no flow": ICMP("203.0.113.20", "203.0.113.1", packet.ICMPUnreachable, 3, 0, UDP("203.0.113.1:7", "203.0.113.20:7", nil)[:28]),
	} {
		if v := e.Process(sec, WAN, b); v.Action != Drop {
			t.Errorf("%s: %+v, want a drop", name, v)
		}
	}
	if n := e.Stats().Flows; n != 1 {
		t.Fatalf("%d flows, want the one UDP flow", n)
	}
}

// TestICMPErrorIDsCountNothing: the errors passgate sends took their IP
// IDs from one counter, so a WAN host that can draw a time exceeded from
// it (a TTL of 1 through a flow it has) read, from the IDs of two, how
// many errors went to anyone in between: a LAN host's traceroute, its
// refused flows. The IDs are drawn from a keyed generator now.
func TestICMPErrorIDsCountNothing(t *testing.T) {
	e := newEngine(t, nil)
	pass(t, e, 0, LAN, UDP("192.168.50.10:5000", "198.51.100.66:4000", nil), WAN)
	probe := func(now Time) uint16 {
		t.Helper()
		dropped(t, e, now, WAN, UDP("198.51.100.66:4000", "203.0.113.1:5000", nil, TTL(1)), DropTTLExceeded)
		em := e.Emitted()
		if len(em) != 1 {
			t.Fatalf("%d packets for a TTL of 1", len(em))
		}
		ip := packet.IPv4(em[0].Frame[EtherHeadroom:])
		IPv4(t, ip, Src("203.0.113.1"), Dst("198.51.100.66"))
		e.ResetEmitted()
		return ip.ID()
	}
	seq := 0
	for round := range 8 {
		a := probe(Time(round) * sec)
		// A traceroute from the LAN: five time exceeded to the LAN host.
		for i := range 5 {
			dropped(t, e, Time(round)*sec, LAN, UDP("192.168.50.12:33434", fmt.Sprintf("203.0.113.20:%d", 33434+i), nil, TTL(1)), DropTTLExceeded)
		}
		if n := len(e.Emitted()); n != 5 {
			t.Fatalf("%d errors to the traceroute", n)
		}
		e.ResetEmitted()
		if b := probe(Time(round)*sec + sec/2); b-a == 6 {
			seq++
		}
	}
	if seq > 1 {
		t.Fatalf("in %d of 8 rounds the prober's second error's ID was 6 past its first: it counted the 5 sent elsewhere", seq)
	}
}
