package nat

import (
	"maps"
	"testing"

	"passgate/conntrack"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

// walkCounts counts flows by protocol and VPN sessions by walking the
// table, as Stats did before it kept counters.
func walkCounts(e *Engine) (byProto, vpn map[string]int) {
	byProto, vpn = map[string]int{}, map[string]int{}
	e.ct.Range(func(_ int32, f *conntrack.Flow) bool {
		byProto[protoNames[f.Orig.Proto]]++
		if v := vpnProto(f); v != "" && f.Helper != helperGRE {
			vpn[v]++
		}
		return true
	})
	return byProto, vpn
}

// Stats' counts, kept as flows come and go, equal a walk of the table
// while flows of every kind are made, switched off and expire.
func TestStatsCountsMatchWalk(t *testing.T) {
	e := newEngine(t, nil)
	check := func(when string) {
		t.Helper()
		s := e.Stats()
		wp, wv := walkCounts(e)
		vpn := map[string]int{}
		for k, v := range s.VPNSessions {
			if v != 0 {
				vpn[k] = v
			}
		}
		if !maps.Equal(s.FlowsByProto, wp) || !maps.Equal(vpn, wv) {
			t.Fatalf("%s: Stats %v %v, walk %v %v", when, s.FlowsByProto, s.VPNSessions, wp, wv)
		}
	}
	check("empty")
	c := &pptpClient{t: t, e: e, host: "192.168.50.10", port: 43000, cseq: 1, sseq: 1}
	c.connect()
	pass(t, e, 0, LAN, espPkt("192.168.50.11", "203.0.113.10", 0x1000, "a"), WAN)
	pass(t, e, 0, LAN, UDP("192.168.50.12:500", "203.0.113.10:500", ikeMsg(1, 0, false, 40)), WAN)
	pass(t, e, 0, LAN, UDP("192.168.50.12:1701", "203.0.113.10:1701", l2tpSCCRQ(5, false)), WAN)
	pass(t, e, 0, LAN, UDP("192.168.50.12:4500", "203.0.113.20:4500", []byte("natt")), WAN)
	for i := range 20 {
		pass(t, e, 0, LAN, UDP("192.168.50.13:"+itoa(2000+uint16(i)), "203.0.113.10:53", []byte("q")), WAN)
	}
	pass(t, e, 0, LAN, TCP("192.168.50.13:40000", "203.0.113.10:80", packet.TCPSyn, 1, 0, nil, nil), WAN)
	check("after opening")
	s := e.Stats()
	if s.VPNSessions["pptp"] != 1 || s.VPNSessions["ipsec"] != 3 || s.VPNSessions["l2tp"] != 1 || s.FlowsByProto["udp"] != 23 || s.FlowsByProto["esp"] != 1 {
		t.Fatalf("counts %v %v", s.FlowsByProto, s.VPNSessions)
	}
	cfg := testConfig()
	cfg.Passthrough.PPTP = Off
	if err := e.Reconfigure(cfg, sec); err != nil {
		t.Fatal(err)
	}
	check("after PPTP off")
	e.Expire(3600 * sec)
	check("after expiry")
	if s := e.Stats(); s.Flows != 0 || len(s.FlowsByProto) != 0 || s.VPNSessions["ipsec"] != 0 {
		t.Fatalf("after expiry %+v", s)
	}
}
