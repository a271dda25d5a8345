package alg_test

// The engine's VPN passthrough tests, moved here from nat with the code
// (nat/vpn_test.go): what crosses the NAT with the helper registered.

import (
	"testing"

	"passgate/alg/internal/passthrough"
	"passgate/alg/ipsec"
	"passgate/alg/pptp"
	. "passgate/alg/vpntest"
	. "passgate/nat"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

func TestPassthroughSwitches(t *testing.T) {
	e := NewEngine(t, nil)
	c := &PPTPClient{T: t, E: e, Host: "192.168.50.10", Port: 43000, CSeq: 1, SSeq: 1}
	c.Connect()
	Pass(t, e, 0, LAN, ESP("192.168.50.11", "203.0.113.10", 0x1000, "a"), WAN)
	cfg := LabConfig()
	cfg.Helpers = map[string]Switch{"pptp": Off}
	if err := e.Reconfigure(cfg, Sec); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.VPNSessions["pptp"] != 0 || s.VPNSessions["ipsec"] != 1 {
		t.Fatalf("sessions after PPTP off: %v", s.VPNSessions)
	}
	Dropped(t, e, Sec, LAN, TCP("192.168.50.10:43001", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil), pptp.DropPPTPOff)
	Dropped(t, e, Sec, LAN, GRE("192.168.50.10", "203.0.113.10", 1, "x"), pptp.DropPPTPOff)
	evs, _ := e.Events(0)
	if evs[len(evs)-1].Kind != passthrough.Kind || !Contains(evs[len(evs)-1].Message(), "PPTP passthrough is switched off") {
		t.Fatalf("event %+v", evs[len(evs)-1])
	}
	cfg.Helpers = map[string]Switch{"pptp": On, "ipsec": Off}
	e.Reconfigure(cfg, 2*Sec)
	Pass(t, e, 2*Sec, LAN, TCP("192.168.50.10:43001", "203.0.113.10:1723", packet.TCPSyn, 1, 0, nil, nil), WAN)
	Dropped(t, e, 2*Sec, LAN, UDP("192.168.50.10:500", "203.0.113.10:500", IKEMsg(1, 0, false, 40)), ipsec.DropIPsecOff)
	Dropped(t, e, 2*Sec, LAN, ESP("192.168.50.11", "203.0.113.10", 0x1000, "a"), ipsec.DropIPsecOff)
	if s := e.Stats(); s.VPNSessions["ipsec"] != 0 {
		t.Fatalf("ipsec sessions after IPsec off: %v", s.VPNSessions)
	}
}
