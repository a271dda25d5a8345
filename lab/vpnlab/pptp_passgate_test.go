//go:build lab

package vpnlab

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
)

// TestPPTPPassgate: three LAN clients call one pptpd through passgate at
// once, each with its own call, and PPP frames cross both ways for each.
// Captures inside (the switch port of the router's LAN side) and outside
// (srv1) give each call's ids as either side sees them: the outside call
// ids must be unique at the server, GRE on each side must carry the ids
// of that side, and passgate's flow table must show, per LAN host, a GRE
// flow holding the inside and the outside call id. Then passgate restarts
// with "passthrough":{"pptp":false}: a client's call fails, and passgate's
// status counts PPTP drops and its log says so. Switched on again, a call
// works.
//
// The flow table's shape for GRE is the engine's choice; this test only
// asks that the flow whose "inside" address is the LAN host, with proto
// "gre", carries both call ids somewhere (as the port of an "addr:id"
// endpoint or as a number).
func TestPPTPPassgate(t *testing.T) {
	ctx, e := pptpSetup(t, "pgppp", 90*time.Second)

	inside, err := e.StartCapture(ctx, lab.Switch, e.Lab.Prefix+"-rlan", "inside", "tcp port 1723 or ip proto 47")
	if err != nil {
		t.Fatal(err)
	}
	outside, err := e.StartCapture(ctx, lab.Server1, lab.HostIface, "outside", "tcp port 1723 or ip proto 47")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := e.StartPassgate(ctx, "passgate-on", "{}") // PPTP passthrough is on by default
	if err != nil {
		t.Fatal(err)
	}
	srv, err := e.StartPPTPServer(ctx, lab.Server1, lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	var clients []*pptpClient
	for _, h := range lab.LANHosts {
		c, err := e.StartPPTPClient(h.Node, h.Node, lab.Srv1)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	pairs, err := pptpWaitFrames(ctx, 30*time.Second, srv, clients, 5)
	if err != nil {
		t.Fatalf("three PPTP calls through passgate: %v\n%s", err, pptpDescribe(srv, clients))
	}
	t.Logf("calls: %v", pairs)

	flows, err := pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.Stop()
	}
	inPkts, err := inside.Packets()
	if err != nil {
		t.Fatal(err)
	}
	outPkts, err := outside.Packets()
	if err != nil {
		t.Fatal(err)
	}

	// Each LAN host's call, inside and outside, joined by the server's
	// call id (which passgate leaves alone).
	wan := netip.MustParseAddr(lab.WANAddr)
	outCalls := map[uint16]pptpCall{}
	outIDs := map[uint16]bool{}
	for _, c := range pptpCalls(outPkts) {
		if c.Client != wan {
			t.Errorf("outside capture: a call from %s, want every call from %s", c.Client, wan)
			continue
		}
		if outIDs[c.ClientCallID] {
			t.Errorf("outside call id %d used by two calls to one server", c.ClientCallID)
		}
		outIDs[c.ClientCallID] = true
		outCalls[c.ServerCallID] = c
	}
	inCalls := pptpCalls(inPkts)
	if len(inCalls) != len(lab.LANHosts) || len(outCalls) != len(lab.LANHosts) {
		t.Fatalf("captures show %d calls inside and %d outside, want %d each:\ninside %+v\noutside %+v",
			len(inCalls), len(outCalls), len(lab.LANHosts), inCalls, outCalls)
	}
	for _, h := range lab.LANHosts {
		host := netip.MustParseAddr(h.Addr)
		var in pptpCall
		for _, c := range inCalls {
			if c.Client == host {
				in = c
			}
		}
		out, ok := outCalls[in.ServerCallID]
		if !in.Client.IsValid() || !ok {
			t.Errorf("%s: no call both inside and outside (inside %+v)", h.Node, in)
			continue
		}
		t.Logf("%s: call id %d inside, %d outside; server call id %d; GRE data inside %d/%d, outside %d/%d (to client/to server)",
			h.Node, in.ClientCallID, out.ClientCallID, in.ServerCallID, in.ToClient, in.ToServ, out.ToClient, out.ToServ)
		if in.ToClient < 5 || in.ToServ < 5 || out.ToClient < 5 || out.ToServ < 5 {
			t.Errorf("%s: GRE keyed by each side's call ids: inside %d/%d, outside %d/%d; want at least 5 each",
				h.Node, in.ToClient, in.ToServ, out.ToClient, out.ToServ)
		}
		if err := pptpCheckGREFlow(flows, host, in.ClientCallID, out.ClientCallID); err != nil {
			t.Errorf("%s: %v", h.Node, err)
		}
	}
	if t.Failed() {
		t.Logf("flow table:\n%s", pptpFlowsText(flows))
	}

	// Switched off: the client's call fails, counted and logged.
	pg.Stop()
	pgOff, err := e.StartPassgate(ctx, "passgate-off", `{"passthrough":{"pptp":false}}`)
	if err != nil {
		t.Fatal(err)
	}
	off, err := e.StartPPTPClient(lab.Lan1, "lan1off", lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	if got := off.End().Recv; len(got) > 0 {
		t.Errorf("with PPTP passthrough off, the client still received frames: %q", got[:min(len(got), 5)])
	}
	if s := pptpServerFor(srv.Ends(), "lan1off", srv.Prefix); s != nil {
		t.Errorf("with PPTP passthrough off, server end %s heard the client", s.Name)
	}
	off.Stop()
	st, err := pgOff.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	drops := pptpDrops(st, "pptp")
	if len(drops) == 0 {
		t.Errorf("with PPTP passthrough off, passgate status shows no PPTP drops; drops: %v", pptpDrops(st))
	} else {
		t.Logf("PPTP drops: %v", drops)
	}
	// Our own paths contain the test's name; only passgate's words count.
	pgLog := strings.ReplaceAll(pgOff.Log(), e.Dir, "DIR")
	if lines := pptpLogLines(pgLog, regexp.MustCompile(`(?i)pptp`)); len(lines) == 0 {
		t.Errorf("with PPTP passthrough off, passgate's log never mentions PPTP")
	} else {
		t.Logf("passgate log on PPTP: %s", strings.Join(lines[:min(len(lines), 5)], "\n"))
	}
	pgOff.Stop()

	// Switched on again: a call works.
	if _, err := e.StartPassgate(ctx, "passgate-on-again", `{"passthrough":{"pptp":true}}`); err != nil {
		t.Fatal(err)
	}
	again, err := e.StartPPTPClient(lab.Lan1, "lan1again", lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pptpWaitFrames(ctx, 20*time.Second, srv, []*pptpClient{again}, 5); err != nil {
		t.Fatalf("PPTP passthrough switched on again: %v\n%s", err, pptpDescribe(srv, []*pptpClient{again}))
	}
}

// pptpCheckGREFlow finds host's GRE flow and checks that it shows the
// client's call id inside and the one the server sees.
func pptpCheckGREFlow(flows []control.Flow, host netip.Addr, insideID, outsideID uint16) error {
	found := pptpGREFlows(flows, host)
	if len(found) != 1 {
		return fmt.Errorf("%d GRE flows with inside address %s, want 1", len(found), host)
	}
	if f := found[0]; f.VPN != "pptp" || f.CallIDInside != insideID || f.CallIDOutside != outsideID {
		return fmt.Errorf("GRE flow %+v: want vpn pptp, call_id_inside %d, call_id_outside %d", f, insideID, outsideID)
	}
	return nil
}
