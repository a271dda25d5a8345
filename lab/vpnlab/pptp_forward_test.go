//go:build lab

package vpnlab

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

// pptpForwardConfig is passgate's configuration with TCP 1723 forwarded to
// pptpd on lan1, and PPTP passthrough on or off.
func pptpForwardConfig(pptpOn bool) string {
	return fmt.Sprintf(`{"passthrough":{"pptp":%t},"port_forwards":[{"name":"pptp","proto":"tcp","outside_port":1723,"host":%q,"inside_port":1723}]}`,
		pptpOn, lab.LAN1)
}

// TestPPTPServerBehindForward: pptpd runs on lan1 behind a port forward of
// TCP 1723, and pptp clients on srv1 and srv2 both dial passgate's public
// address at once. PPP frames cross both ways for each client. Captures on
// srv1 and srv2 show each call with 203.0.113.1 as the server and every
// GRE packet to the client coming from 203.0.113.1; a capture on the LAN
// side shows the same calls with lan1 as the server. passgate's flow table
// holds one GRE flow per call with lan1 as the inside host and the remote
// client as the remote, whose call ids are lan1's own (inside, as the LAN
// capture shows it in the Outgoing-Call-Reply), what the client sees
// (outside, the reply as the client's capture shows it) and the client's
// (server: the remote end's id, which passgate leaves alone).
//
// Control: with the same forward and PPTP passthrough off, the control
// connection still reaches pptpd (a plain forward: pptpctrl answers the
// call and starts the stand-in), but no frame crosses either way, no GRE
// flow is made, and passgate counts the GRE it dropped.
func TestPPTPServerBehindForward(t *testing.T) {
	ctx, e := pptpSetup(t, "pgppf", 60*time.Second)
	remotes := []struct{ Node, Addr string }{{lab.Server1, lab.Srv1}, {lab.Server2, lab.Srv2}}
	const filter = "tcp port 1723 or ip proto 47"
	inside, err := e.StartCapture(ctx, lab.Switch, e.Lab.Prefix+"-rlan", "inside", filter)
	if err != nil {
		t.Fatal(err)
	}
	outside := map[string]*pptpCapture{}
	for _, r := range remotes {
		if outside[r.Node], err = e.StartCapture(ctx, r.Node, lab.HostIface, r.Node, filter); err != nil {
			t.Fatal(err)
		}
	}
	pg, err := e.StartPassgate(ctx, "passgate-fwd", pptpForwardConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := e.StartPPTPServer(ctx, lab.Lan1, lab.LAN1)
	if err != nil {
		t.Fatal(err)
	}
	var clients []*pptpClient
	for _, r := range remotes {
		c, err := e.StartPPTPClient(r.Node, r.Node, lab.WANAddr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	pairs, err := pptpWaitFrames(ctx, 25*time.Second, srv, clients, 5)
	if err != nil {
		t.Fatalf("two remote PPTP calls to lan1 through the port forward: %v\n%s", err, pptpDescribe(srv, clients))
	}
	flows, err := pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ends := srv.Ends()
	for _, c := range clients {
		c.Stop()
		ce, se := c.End(), ends[pairs[c.Name]]
		t.Logf("%s <-> server end %s: frames %s->lan1 %d, lan1->%s %d; echoes back to %s %d, to lan1 %d",
			c.Name, se.Name, c.Name, se.From()[c.Name], c.Name, ce.From()[se.Name], c.Name, ce.EchoedBy()[se.Name], se.EchoedBy()[c.Name])
	}
	inPkts, err := inside.Packets()
	if err != nil {
		t.Fatal(err)
	}

	wan := netip.MustParseAddr(lab.WANAddr)
	host := netip.MustParseAddr(lab.LAN1)
	inCalls := pptpCalls(inPkts)
	if len(inCalls) != len(remotes) {
		t.Errorf("LAN-side capture shows %d calls, want %d: %+v", len(inCalls), len(remotes), inCalls)
	}
	greFlows := pptpGREFlows(flows, host)
	if len(greFlows) != len(remotes) {
		t.Errorf("%d GRE flows with inside address %s, want %d", len(greFlows), host, len(remotes))
	}
	for _, r := range remotes {
		addr := netip.MustParseAddr(r.Addr)
		pkts, err := outside[r.Node].Packets()
		if err != nil {
			t.Fatal(err)
		}
		// At the remote client: one call, to passgate's address, and all
		// GRE to the client from there.
		calls := pptpCalls(pkts)
		if len(calls) != 1 {
			t.Errorf("%s: capture shows %d calls, want 1: %+v", r.Node, len(calls), calls)
			continue
		}
		out := calls[0]
		if out.Client != addr || out.Server != wan {
			t.Errorf("%s: call between client %s and server %s, want %s and %s", r.Node, out.Client, out.Server, addr, wan)
		}
		fromWAN, fromElse := 0, map[netip.Addr]int{}
		for _, g := range pptpGREPackets(pkts) {
			if g.Dst != addr {
				continue
			}
			if g.Src == wan {
				fromWAN++
			} else {
				fromElse[g.Src]++
			}
		}
		if fromWAN < 5 || len(fromElse) > 0 {
			t.Errorf("%s: GRE to the client: %d from %s, others %v; want at least 5, all from %s", r.Node, fromWAN, wan, fromElse, wan)
		}

		// On the LAN side: the same call (the client's call id is left
		// alone) between the client's own address and lan1.
		var in pptpCall
		for _, c := range inCalls {
			if c.Client == addr && c.ClientCallID == out.ClientCallID {
				in = c
			}
		}
		if in.Server != host {
			t.Errorf("%s: no call to %s with client call id %d on the LAN side: %+v", r.Node, host, out.ClientCallID, inCalls)
			continue
		}
		t.Logf("%s: client call id %d; lan1's call id %d inside, %d outside; GRE data at %s %d/%d, LAN side %d/%d (to client/to server); %d GRE packets from %s at %s",
			r.Node, out.ClientCallID, in.ServerCallID, out.ServerCallID, r.Node, out.ToClient, out.ToServ, in.ToClient, in.ToServ, fromWAN, wan, r.Node)
		if in.ToClient < 5 || in.ToServ < 5 || out.ToClient < 5 || out.ToServ < 5 {
			t.Errorf("%s: GRE keyed by each side's call ids: LAN side %d/%d, at the client %d/%d; want at least 5 each",
				r.Node, in.ToClient, in.ToServ, out.ToClient, out.ToServ)
		}

		// passgate's flow for the call.
		var f *control.Flow
		for i, g := range greFlows {
			if g.Remote.Addr() == addr {
				if f != nil {
					t.Errorf("%s: two GRE flows of %s with remote %s", r.Node, host, addr)
				}
				f = &greFlows[i]
			}
		}
		if f == nil {
			t.Errorf("%s: no GRE flow with inside %s and remote %s", r.Node, host, addr)
			continue
		}
		// The JSON leaves the ids out when 0 (omitempty): pptpd's first
		// call id is 0, which passgate never uses outside.
		if f.VPN != "pptp" || f.CallIDInside != in.ServerCallID || f.CallIDOutside != out.ServerCallID || f.CallIDServer != out.ClientCallID {
			t.Errorf("%s: GRE flow %+v: want vpn pptp, call ids inside %d, outside %d, server %d",
				r.Node, *f, in.ServerCallID, out.ServerCallID, out.ClientCallID)
		}
		if f.Outside.Addr() != wan {
			t.Errorf("%s: GRE flow outside %v, want %s", r.Node, f.Outside, wan)
		}
	}
	if t.Failed() {
		t.Fatalf("flow table:\n%s", pptpFlowsText(flows))
	}

	// Control: the same forward, PPTP passthrough off.
	pg.Stop()
	pgOff, err := e.StartPassgate(ctx, "passgate-fwd-off", pptpForwardConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Ends()
	off, err := e.StartPPTPClient(lab.Server1, "srv1off", lab.WANAddr)
	if err != nil {
		t.Fatal(err)
	}
	// pptpctrl starts a stand-in for the call: the control connection
	// crossed. Both ends then send for a while.
	var offEnd *pptpStub
	var exited error
	err = labtest.Poll(ctx, 15*time.Second, func() (bool, string) {
		if done, err := off.Exited(); done && offEnd == nil {
			exited = fmt.Errorf("client srv1off exited: %v", err)
			return true, ""
		}
		if offEnd == nil {
			for name, s := range srv.Ends() {
				if before[name] == nil && strings.Contains(s.Args, `"ipparam" "`+lab.Srv1+`"`) {
					offEnd = s
				}
			}
			if offEnd == nil {
				return false, "pptpd on lan1 has started no stand-in for srv1off's call"
			}
		}
		offEnd = srv.Ends()[offEnd.Name]
		// passgate answers the server's GRE with ICMP unreachable code
		// 13 (administratively prohibited, RFC 5508 REQ-8), and pptpd
		// may end the call on it (and the client with it): then its end
		// stops early, which is what the error is for.
		if offEnd.Exit != "" {
			return true, ""
		}
		n, m := len(off.End().Sent), len(offEnd.Sent)
		return n >= 10 && m >= 10, fmt.Sprintf("srv1off sent %d frames, %s %d; want 10 each (or the server's end to stop)", n, offEnd.Name, m)
	})
	if err == nil {
		err = exited
	}
	if err != nil {
		t.Fatalf("with PPTP passthrough off, behind the forward: %v\n%s", err, pptpDescribe(srv, []*pptpClient{off}))
	}
	offFlows, err := pgOff.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pgOff.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := pgOff.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	off.Stop()
	ce := off.End()
	t.Logf("passthrough off: srv1off sent %d frames, received %d; server end %s sent %d, received %d",
		len(ce.Sent), len(ce.Recv), offEnd.Name, len(offEnd.Sent), len(offEnd.Recv))
	if len(ce.Recv) > 0 || len(offEnd.Recv) > 0 {
		t.Errorf("with PPTP passthrough off, frames crossed: srv1off received %q, %s received %q",
			ce.Recv[:min(len(ce.Recv), 5)], offEnd.Name, offEnd.Recv[:min(len(offEnd.Recv), 5)])
	}
	tcpFwd := false
	for _, f := range offFlows {
		if f.Proto == "tcp" && f.Inside == netip.AddrPortFrom(host, 1723) && f.Remote.Addr() == netip.MustParseAddr(lab.Srv1) {
			tcpFwd = true
		}
	}
	if !tcpFwd || len(pptpGREFlows(offFlows, host)) > 0 {
		t.Errorf("with PPTP passthrough off, want the forwarded TCP flow %s:1723 from %s and no GRE flow; flow table:\n%s",
			host, lab.Srv1, pptpFlowsText(offFlows))
	}
	drops := append(pptpDrops(st, "gre_without_control"), pptpDrops(st, "pptp_passthrough_off")...)
	if len(drops) == 0 {
		t.Errorf("with PPTP passthrough off, passgate counts no GRE dropped (gre_without_control, pptp_passthrough_off); drops: %v",
			pptpDrops(st))
	}
	if offEnd.Exit != "" && len(offEnd.Sent) < 10 && st.NAT.Guards["icmp_prohibited_sent"] == 0 {
		t.Errorf("with PPTP passthrough off, the server's end stopped after %d frames (%s) but passgate sent no administratively prohibited error",
			len(offEnd.Sent), offEnd.Exit)
	}
	t.Logf("passthrough off: ICMP administratively prohibited sent %d, held back %d",
		st.NAT.Guards["icmp_prohibited_sent"], st.NAT.Guards["icmp_prohibited_suppressed"])
	var greEvents []string
	for _, ev := range evs {
		if (ev.Kind == "gre_without_control" || ev.Kind == "passthrough_off") && (ev.Host == lab.Srv1 || ev.Peer == lab.Srv1) {
			greEvents = append(greEvents, ev.Kind+": "+ev.Message)
		}
	}
	if len(greEvents) == 0 {
		t.Errorf("with PPTP passthrough off, passgate logged no dropped GRE with %s", lab.Srv1)
	}
	t.Logf("passthrough off: drops %v; events %q", drops, greEvents[:min(len(greEvents), 4)])
}
