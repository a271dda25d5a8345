//go:build lab

package vpnlab

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"passgate/lab"
)

// TestPPTPDirect proves the PPTP harness without NAT: pptp on srv2 calls
// pptpd on srv1 across the WAN segment; the stand-ins on both ends exchange
// PPP frames through GRE both ways, and a capture on srv1 shows the call's
// ids (OCRQ and OCRP) keying the GRE each way, which also checks the pcap
// parsers the passgate tests rely on.
func TestPPTPDirect(t *testing.T) {
	ctx, e := pptpSetup(t, "pgppd", 90*time.Second)

	capt, err := e.StartCapture(ctx, lab.Server1, lab.HostIface, "srv1", "tcp port 1723 or ip proto 47")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := e.StartPPTPServer(ctx, lab.Server1, lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := e.StartPPTPClient(lab.Server2, "srv2", lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	clients := []*pptpClient{cli}
	pairs, err := pptpWaitFrames(ctx, 20*time.Second, srv, clients, 5)
	if err != nil {
		t.Fatalf("PPP frames over PPTP, direct: %v\n%s", err, pptpDescribe(srv, clients))
	}
	t.Logf("client srv2 talks to server end %s", pairs["srv2"])

	// The server-side stand-in was started by pptpctrl as pppd would be.
	end := srv.Ends()[pairs["srv2"]]
	if end == nil || !pptpContainsAll(end.Args, "mode pppd", `"ipparam" "`+lab.Srv2+`"`) {
		t.Errorf("server end started as %q, want pppd mode with ipparam %s", end.Args, lab.Srv2)
	}

	cli.Stop()
	pkts, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	calls := pptpCalls(pkts)
	if len(calls) != 1 {
		t.Fatalf("capture on srv1 shows %d calls, want 1: %+v", len(calls), calls)
	}
	c := calls[0]
	t.Logf("call seen on srv1: client %s call id %d, server call id %d; GRE data %d to client, %d to server",
		c.Client, c.ClientCallID, c.ServerCallID, c.ToClient, c.ToServ)
	if c.Client != netip.MustParseAddr(lab.Srv2) || c.Server != netip.MustParseAddr(lab.Srv1) {
		t.Errorf("call between %s and %s, want %s and %s", c.Client, c.Server, lab.Srv2, lab.Srv1)
	}
	if c.ToClient < 5 || c.ToServ < 5 {
		t.Errorf("GRE keyed by the call ids: %d packets to the client, %d to the server; want at least 5 each", c.ToClient, c.ToServ)
	}
}

// pptpContainsAll reports whether s contains every one of subs.
func pptpContainsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
