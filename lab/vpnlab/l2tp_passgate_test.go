//go:build lab

package vpnlab

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
)

// TestL2TPPassgate: xl2tpd as LAC on two LAN hosts dials one LNS through
// passgate at once. Both tunnels and sessions come up and PPP frames cross
// both ways on each; the LNS sees both LACs at the router's address with
// source port 1701 (xl2tpd's log, and a capture on srv1 in which the
// SCCRQ/SCCRP tunnel ids and the data of each tunnel match what xl2tpd
// logged); passgate's flow table holds, per LAN host, a UDP flow from
// HOST:1701 to srv1:1701 translated to WAN:1701 that shows the LAC's tunnel
// id (the one the LNS puts in every header towards that LAC, by which
// passgate demultiplexes what comes back), as xl2tpd logged it.
//
// As for PPTP, the field name is the engine's choice (today
// "tunnel_ids"); the test asks only that the flow object carries the
// number.
func TestL2TPPassgate(t *testing.T) {
	ctx, e := pptpSetup(t, "pgppq", 90*time.Second)
	capt, err := e.StartCapture(ctx, lab.Server1, lab.HostIface, "srv1", "udp port 1701")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := e.StartPassgate(ctx, "passgate", "{}") // L2TP passthrough is on by default
	if err != nil {
		t.Fatal(err)
	}
	links, err := l2tpTwoLACs(ctx, e, 30*time.Second)
	if err != nil {
		t.Fatalf("L2TP from two LAN hosts through passgate: %v", err)
	}
	flows, err := pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wan1701 := netip.MustParseAddrPort(lab.WANAddr + ":1701")
	srv1701 := netip.MustParseAddrPort(lab.Srv1 + ":1701")
	for i, lk := range links {
		host := netip.MustParseAddrPort(lab.LANHosts[i].Addr + ":1701")
		t.Logf("%s: tunnel LAC id %d / LNS id %d, session %d / %d; the LNS sees it at %s:%d",
			lk.LAC.Name, lk.LACTunnel.Local, lk.LNSTunnel.Local, lk.LACSession.Local, lk.LNSSession.Local, lk.LNSTunnel.Peer, lk.LNSTunnel.Port)
		if lk.LNSTunnel.Peer != lab.WANAddr || lk.LNSTunnel.Port != 1701 {
			t.Errorf("%s: the LNS sees it at %s:%d, want %s", lk.LAC.Name, lk.LNSTunnel.Peer, lk.LNSTunnel.Port, wan1701)
		}
		var found []control.Flow
		for _, f := range flows {
			if f.Proto == "udp" && f.Inside == host && f.Remote == srv1701 {
				found = append(found, f)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d UDP flows %s -> %s in passgate's table, want 1", lk.LAC.Name, len(found), host, srv1701)
			continue
		}
		f := found[0]
		if f.Outside != wan1701 {
			t.Errorf("%s: flow translated to %s, want %s", lk.LAC.Name, f.Outside, wan1701)
		}
		if f.VPN != "l2tp" || !slices.Contains(f.TunnelIDs, lk.LACTunnel.Local) {
			t.Errorf("%s: flow %+v does not show L2TP with the LAC's tunnel id %d", lk.LAC.Name, f, lk.LACTunnel.Local)
		}
	}
	if t.Failed() {
		t.Logf("flow table:\n%s", pptpFlowsText(flows))
	}
	pkts, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range l2tpMessages(pkts) {
		if m.Src.Addr() == wan1701.Addr() && m.Src != wan1701 {
			t.Errorf("the LNS received L2TP from %s: the router left source port 1701", m.Src)
			break
		}
	}
	for _, lk := range links {
		l2tpCheckCapture(t, pkts, lk, wan1701)
	}
}
