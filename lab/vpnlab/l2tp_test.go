//go:build lab

package vpnlab

import (
	"net/netip"
	"testing"
	"time"

	"passgate/lab"
)

// TestL2TPDirect proves the L2TP harness without NAT: xl2tpd as LAC on srv2
// dials xl2tpd as LNS on srv1 across the WAN segment. Both daemons report
// the tunnel and the session with matching ids, the pppd stand-ins they
// start exchange PPP frames both ways, and a capture on srv1 shows the
// Assigned Tunnel ID AVPs of SCCRQ and SCCRP carrying the ids xl2tpd logged
// (which also checks the parser the passgate test relies on).
func TestL2TPDirect(t *testing.T) {
	ctx, e := pptpSetup(t, "pgppl", 90*time.Second)

	capt, err := e.StartCapture(ctx, lab.Server1, lab.HostIface, "srv1", "udp port 1701")
	if err != nil {
		t.Fatal(err)
	}
	lns, err := e.StartL2TPServer(ctx, lab.Server1, lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	lac, err := e.StartL2TPClient(ctx, lab.Server2, "srv2", lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	if err := lac.Dial(); err != nil {
		t.Fatal(err)
	}
	links, err := l2tpWaitLinks(ctx, 20*time.Second, lns, []*l2tpDaemon{lac}, 5)
	if err != nil {
		t.Fatalf("L2TP tunnel, session and frames, direct: %v", err)
	}
	lk := links[0]
	t.Logf("tunnel: LAC id %d, LNS id %d; session: LAC id %d, LNS id %d; LNS sees the LAC at %s:%d; LNS stand-in %s",
		lk.LACTunnel.Local, lk.LNSTunnel.Local, lk.LACSession.Local, lk.LNSSession.Local, lk.LNSTunnel.Peer, lk.LNSTunnel.Port, lk.ServerEnd)
	if lk.LNSTunnel.Peer != lab.Srv2 || lk.LNSTunnel.Port != 1701 {
		t.Errorf("LNS sees the LAC at %s:%d, want %s:1701", lk.LNSTunnel.Peer, lk.LNSTunnel.Port, lab.Srv2)
	}

	pkts, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	l2tpCheckCapture(t, pkts, lk, netip.MustParseAddrPort(lab.Srv2+":1701"))
}

// l2tpCheckCapture checks a capture on the LNS against a link whose LAC the
// server sees at from (several LACs may share it): the SCCRQ from there
// assigns the LAC's tunnel id, the SCCRP back is addressed to that id and
// assigns the LNS's, and data crosses both ways with the receiver's tunnel
// id in each header.
func l2tpCheckCapture(t *testing.T, pkts []pptpPacket, lk l2tpLink, from netip.AddrPort) {
	t.Helper()
	lac, lns := lk.LACTunnel.Local, lk.LNSTunnel.Local
	var sccrq, sccrp, in, out int
	for _, m := range l2tpMessages(pkts) {
		switch {
		case m.Control && m.Type == l2tpSCCRQ && m.Src == from && m.AssignedTunnel == lac:
			sccrq++
		case m.Control && m.Type == l2tpSCCRP && m.Dst == from && m.TunnelID == lac && m.AssignedTunnel == lns:
			sccrp++
		case !m.Control && m.Src == from && m.Dst.Port() == 1701 && m.TunnelID == lns:
			in++
		case !m.Control && m.Dst == from && m.Src.Port() == 1701 && m.TunnelID == lac:
			out++
		}
	}
	if sccrq == 0 || sccrp == 0 {
		t.Errorf("%s: capture on the LNS: %d SCCRQ from %s assigning tunnel %d, %d SCCRP to it assigning %d; want at least 1 each",
			lk.LAC.Name, sccrq, from, lac, sccrp, lns)
	}
	if in < 5 || out < 5 {
		t.Errorf("%s: L2TP data between %s and the LNS: %d in (tunnel %d), %d out (tunnel %d); want at least 5 each",
			lk.LAC.Name, from, in, lns, out, lac)
	}
}

// TestL2TPKernelNAT is the reference: the kernel's own NAT (masquerade in
// the router namespace) carries L2TP from two LAN hosts to one LNS at
// once. L2TP is plain UDP, and RFC 2661 section 8.1 lets a LAC's source
// port change, so it works: the kernel keeps 1701 for the first LAC and
// remaps the second, and the LNS answers each where it came from. What
// passgate adds (keeping 1701 for both, demultiplexing by tunnel id) is
// TestL2TPPassgate's business.
func TestL2TPKernelNAT(t *testing.T) {
	ctx, e := pptpSetup(t, "pgppk", 90*time.Second)
	if err := e.Lab.KernelNAT(true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Lab.KernelNAT(false) })

	capt, err := e.StartCapture(ctx, lab.Server1, lab.HostIface, "srv1", "udp port 1701")
	if err != nil {
		t.Fatal(err)
	}
	links, err := l2tpTwoLACs(ctx, e, 25*time.Second)
	if err != nil {
		t.Fatalf("L2TP from two LAN hosts through the kernel's NAT: %v", err)
	}
	ports := map[int]string{}
	for _, lk := range links {
		t.Logf("%s: tunnel LAC id %d / LNS id %d, session %d / %d; the LNS sees it at %s:%d",
			lk.LAC.Name, lk.LACTunnel.Local, lk.LNSTunnel.Local, lk.LACSession.Local, lk.LNSSession.Local, lk.LNSTunnel.Peer, lk.LNSTunnel.Port)
		if lk.LNSTunnel.Peer != lab.WANAddr {
			t.Errorf("%s: the LNS sees it at %s, want the router's %s", lk.LAC.Name, lk.LNSTunnel.Peer, lab.WANAddr)
		}
		if other, dup := ports[lk.LNSTunnel.Port]; dup {
			t.Errorf("%s and %s share outside port %d", other, lk.LAC.Name, lk.LNSTunnel.Port)
		}
		ports[lk.LNSTunnel.Port] = lk.LAC.Name
	}
	pkts, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	for _, lk := range links {
		l2tpCheckCapture(t, pkts, lk, netip.AddrPortFrom(netip.MustParseAddr(lab.WANAddr), uint16(lk.LNSTunnel.Port)))
	}
}
