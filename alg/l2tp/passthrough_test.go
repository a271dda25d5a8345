package l2tp_test

// The engine's VPN passthrough tests, moved here from nat with the code
// (nat/vpn_test.go): what crosses the NAT with the helper registered.

import (
	"net/netip"
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

// One LAN host opening tunnels to hundreds of servers holds no more than
// its share of the helper's keys (its own oldest unanswered flows give
// theirs back), and another host's new tunnel on the shared port still
// gets its tunnel id, so the server's answer reaches it.
func TestL2TPTunnelKeysShare(t *testing.T) {
	// The flow table does not bound the host here: the keys' share must.
	e := NewEngine(t, func(c *Config) { c.MaxFlowsPerHost = c.MaxFlows })
	const a, b = "192.168.50.10", "192.168.50.11"
	Pass(t, e, 0, LAN, UDP(a+":1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)), WAN)
	IPv4(t, Pass(t, e, 0, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(5)), LAN), Dst(a+":1701"))
	Pass(t, e, 0, LAN, UDP(b+":1701", "203.0.113.10:1701", L2TPSCCRQ(6, false)), WAN)
	for i := 0; i < 400; i++ {
		server := "198.18." + Itoa(uint16(i/250)) + "." + Itoa(uint16(i%250+1)) + ":1701"
		for tid := uint16(1); tid <= 4; tid++ {
			Pass(t, e, Sec, LAN, UDP(a+":1701", server, L2TPSCCRQ(tid, false)), WAN)
		}
	}
	// The second host's new tunnel to the shared server is told apart.
	Pass(t, e, 2*Sec, LAN, UDP(b+":1701", "203.0.113.10:1701", L2TPSCCRQ(7, false)), WAN)
	IPv4(t, Pass(t, e, 2*Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(7)), LAN), Dst(b+":1701"))
	IPv4(t, Pass(t, e, 2*Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(6)), LAN), Dst(b+":1701"))
	// The first host's answered tunnel was not given up for its flood.
	IPv4(t, Pass(t, e, 2*Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(5)), LAN), Dst(a+":1701"))
	var flows, tunnels int
	e.Flows(2*Sec, func(fi FlowInfo) bool {
		if fi.VPN == "l2tp" && fi.Inside.Addr().String() == a {
			flows++
			tunnels += len(fi.TunnelIDs)
		}
		return true
	})
	// A quarter of the 2048 keys: each flow holds its tunnels and its
	// server's two.
	if keys := tunnels + 2*flows; keys > 512 || keys < 400 {
		t.Fatalf("the flooding host holds %d keys (%d flows, %d tunnels), want at most its share of 512", keys, flows, tunnels)
	}
}

// An L2TP server on the LAN behind a port forward of UDP 1701: a remote
// client's tunnel reaches it, while a LAN client's tunnel on the shared
// port 1701 still gets its server's answers (by tunnel id), and an id no
// LAN client announced goes to the forward, not dropped.
func TestL2TPServerBehindForward(t *testing.T) {
	e := NewEngine(t, func(c *Config) {
		c.PortForwards = []PortForward{{Name: "l2tp", Proto: packet.ProtoUDP, OutsideLo: 1701, OutsideHi: 1701, Host: netip.MustParseAddr("192.168.50.20"), InsidePort: 1701}}
	})
	IPv4(t, Pass(t, e, 0, LAN, UDP("192.168.50.10:1701", "203.0.113.10:1701", L2TPSCCRQ(5, false)), WAN), Src("203.0.113.1:1701"))
	Pass(t, e, 0, LAN, UDP("192.168.50.11:1701", "203.0.113.10:1701", L2TPSCCRQ(6, false)), WAN)
	IPv4(t, Pass(t, e, Sec, WAN, UDP("198.51.100.7:1701", "203.0.113.1:1701", L2TPSCCRQ(9, false)), LAN), Dst("192.168.50.20:1701"))
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(6)), LAN), Dst("192.168.50.11:1701"))
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(5)), LAN), Dst("192.168.50.10:1701"))
	IPv4(t, Pass(t, e, Sec, WAN, UDP("203.0.113.10:1701", "203.0.113.1:1701", L2TPTo(7)), LAN), Dst("192.168.50.20:1701"))
	IPv4(t, Pass(t, e, 2*Sec, LAN, UDP("192.168.50.20:1701", "198.51.100.7:1701", L2TPTo(9)), WAN), Src("203.0.113.1:1701"))
}
