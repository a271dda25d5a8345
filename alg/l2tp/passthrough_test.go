package l2tp_test

// The engine's VPN passthrough tests, moved here from nat with the code
// (nat/vpn_test.go): what crosses the NAT with the helper registered.

import (
	"testing"

	"passgate/alg/l2tp"
	. "passgate/alg/vpntest"
	. "passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

func TestL2TPSharedPort1701(t *testing.T) {
	e := NewEngine(t, nil)
	a := Pass(t, e, 0, LAN, UDP("192.168.50.10:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)), WAN)
	b := Pass(t, e, 0, LAN, UDP("192.168.50.11:1701", "203.0.113.10:1701", L2TPSCCRQ(6, false)), WAN)
	IPv4(t, a, Src("203.0.113.1:1701"))
	IPv4(t, b, Src("203.0.113.1:1701"))
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(6)), LAN), Dst("192.168.50.11:1701"))
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(5)), LAN), Dst("192.168.50.10:1701"))
	Dropped(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(7)), l2tp.DropL2TPUnknownTunnel)

	// Same tunnel id as another host, and a hidden AVP: ordinary ports.
	c := Pass(t, e, 0, LAN, UDP("192.168.50.12:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)), WAN)
	pc := packet.UDP(packet.IPv4(c).Payload()).SrcPort()
	if pc == 1701 {
		t.Fatal("clashing tunnel id kept port 1701")
	}
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:"+Itoa(pc), L2TPTo(5)), LAN), Dst("192.168.50.12:1701"))
	h := Pass(t, e, 0, LAN, UDP("192.168.50.12:1701", "203.0.113.20:1701", L2TPSCCRQ(9, true)), WAN)
	if packet.UDP(packet.IPv4(h).Payload()).SrcPort() == 1701 {
		t.Fatal("hidden tunnel id kept port 1701")
	}
	if e.Stats().L2TPFallback != 2 {
		t.Fatalf("fallbacks %d", e.Stats().L2TPFallback)
	}
	var tids []uint16
	e.Flows(Sec, func(fi FlowInfo) bool {
		if fi.VPN == "l2tp" && fi.Inside.Addr().String() == "192.168.50.11" {
			tids = fi.TunnelIDs
		}
		return true
	})
	if len(tids) != 1 || tids[0] != 6 {
		t.Fatalf("tunnel ids %v", tids)
	}
}
