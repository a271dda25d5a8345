//go:build lab

package vpnlab

// IPsec passthrough through passgate itself: strongSwan from two LAN hosts
// at once, raw ESP by SPI, IKE sharing port 500, AH dropped.
//
//	go test -run TestIPsecPassgate ./lab/vpnlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

// ipsecWithPassgate brings a lab up under prefix, builds passgate and runs
// it in the router namespace (the kernel's NAT stays off). passgate's log
// and flow table are printed if the test fails.
func ipsecWithPassgate(t *testing.T, prefix string, extra map[string]any) (context.Context, *lab.Lab, string, *ipsecPassgate) {
	t.Helper()
	bin := labtest.Passgate(t) // before the test's clock starts
	ctx, l, tool := ipsecSetup(t, prefix, 110*time.Second)
	if err := l.KernelNAT(false); err != nil {
		t.Fatal(err)
	}
	dir, err := ipsecTempDir("pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	pg, err := ipsecStartPassgate(sctx, l, bin, dir, extra)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t.Logf("passgate flow table:\n%s", pg.Conntrack(cctx))
			cancel()
			t.Logf("passgate log (pid %d):\n%s", pg.PID(), labtest.Tail(pg.Log(), 8000))
		}
		pg.Stop()
	})
	return ctx, l, tool, pg
}

// ipsecFlowsFor returns the flows of proto between a LAN host and remote.
func ipsecFlowsFor(flows []control.Flow, proto, inside, remote string) []control.Flow {
	var out []control.Flow
	for _, f := range flows {
		if strings.EqualFold(f.Proto, proto) && f.Inside.Addr() == netip.MustParseAddr(inside) && f.Remote.Addr() == netip.MustParseAddr(remote) {
			out = append(out, f)
		}
	}
	return out
}

// TestIPsecPassgateStrongSwan: two LAN hosts bring strongSwan IKEv2 tunnels
// up to srv1 at once through passgate; NAT-T is detected, ESP crosses
// UDP-encapsulated on 4500, pings cross both tunnels both ways, and
// passgate's flow table shows each host's NAT-T flow.
func TestIPsecPassgateStrongSwan(t *testing.T) {
	ctx, l, _, pg := ipsecWithPassgate(t, "pgipsw", nil)
	tun := ipsecStartTunnels(t, ctx, l, lab.Lan1, lab.Lan2)
	ipsecCheckTunnels(t, ctx, l, tun)
	if pg.Exited() {
		t.Fatal("passgate exited during the test")
	}
	flows, err := pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{lab.LAN1, lab.LAN2} {
		found := false
		for _, f := range ipsecFlowsFor(flows, "udp", h, lab.Srv1) {
			if f.Inside.Port() == 4500 && f.Remote.Port() == 4500 && f.PacketsIn > 0 && f.PacketsOut > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("passgate shows no NAT-T flow %s:4500 -> %s:4500 carrying packets both ways", h, lab.Srv1)
		}
	}
	// Two tunnels are 2 IPsec sessions, however many flows (IKE on 500,
	// NAT-T on 4500) each has.
	st, err := pg.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range flows {
		if f.VPN == "ipsec" {
			n++
		}
	}
	t.Logf("%d IPsec sessions, %d IPsec flows", st.NAT.VPNSessions["ipsec"], n)
	if st.NAT.VPNSessions["ipsec"] != 2 || n < 3 {
		t.Errorf("passgate shows %d IPsec sessions for 2 tunnels of %d flows, want 2 (of at least 3 flows)", st.NAT.VPNSessions["ipsec"], n)
	}
}

// TestIPsecPassgateRawESP: raw ESP (protocol 50, no UDP) from two LAN hosts
// to one server. The server answers each with ESP under an SPI passgate has
// never seen (as real IPsec does: the receiver chooses it). Each host in
// turn, then both at once once the SPIs are learned: every reply reaches
// the host that owns it, with the server's SPI and its own payload echoed,
// and nothing of one host's reaches the other.
func TestIPsecPassgateRawESP(t *testing.T) {
	ctx, l, tool, pg := ipsecWithPassgate(t, "pgipesp", nil)
	srv, err := ipsecStartToolServer(ctx, l, lab.Server1, tool, lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ESP server output:\n%s", labtest.Tail(srv.Output(), 6000))
		}
		srv.Stop()
	})

	type client struct {
		node, addr, spi, token string
	}
	clients := []client{
		{lab.Lan1, lab.LAN1, "c0de0001", "lan1-" + fmt.Sprint(time.Now().UnixNano()%100000)},
		{lab.Lan2, lab.LAN2, "c0de0002", "lan2-" + fmt.Sprint(time.Now().UnixNano()%100000+1)},
	}
	// replySPI is what the server chose for each client SPI.
	replySPI := func(spi string) string {
		evs, err := srv.Events()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Event == "esp" && e.SPI == spi {
				return e.ReplySPI
			}
		}
		return ""
	}
	check := func(phase string, c client, res ipsecESPResult, count int) {
		t.Helper()
		want := replySPI(c.spi)
		if want == "" {
			t.Errorf("%s: %s: the server never received ESP with SPI %s", phase, c.node, c.spi)
			return
		}
		if res.Sent != count {
			t.Errorf("%s: %s sent %d of %d", phase, c.node, res.Sent, count)
		}
		got := map[string]bool{}
		for _, r := range res.Replies {
			if r.SPI != want || !strings.HasPrefix(r.Payload, "echo:"+c.token+":") {
				t.Errorf("%s: %s received ESP not meant for it: SPI %s payload %q (its reply SPI is %s, token %s)",
					phase, c.node, r.SPI, r.Payload, want, c.token)
				continue
			}
			got[r.Payload] = true
		}
		for i := 1; i <= count; i++ {
			if p := fmt.Sprintf("echo:%s:%d", c.token, i); !got[p] {
				t.Errorf("%s: %s: reply %q never arrived (got %+v)", phase, c.node, p, res.Replies)
			}
		}
	}

	// One host after the other: each first inbound SPI is unknown to
	// passgate and must go to the host whose ESP is unanswered.
	for _, c := range clients {
		var res ipsecESPResult
		if err := ipsecToolJSON(ctx, l, c.node, tool, &res, "esp", "--server", lab.Srv1, "--spi", c.spi,
			"--count", "3", "--token", c.token, "--timeout", "5"); err != nil {
			t.Fatal(err)
		}
		check("in turn", c, res, 3)
	}
	if t.Failed() {
		t.FailNow()
	}
	// Both at once, SPIs learned.
	var wg sync.WaitGroup
	results := make([]ipsecESPResult, len(clients))
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ipsecToolJSON(ctx, l, c.node, tool, &results[i], "esp", "--server", lab.Srv1, "--spi", c.spi,
				"--count", "10", "--token", c.token+"b", "--timeout", "8", "--interval", "0.05")
		}()
	}
	wg.Wait()
	for i, c := range clients {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		c.token += "b"
		check("together", c, results[i], 10)
	}

	// The server saw every packet from the NAT's address with the SPIs the
	// hosts chose: passgate translates addresses, never SPIs.
	evs, err := srv.Events()
	if err != nil {
		t.Fatal(err)
	}
	perSPI := map[string]int{}
	for _, e := range evs {
		if e.Event != "esp" {
			continue
		}
		if e.Src != lab.WANAddr {
			t.Errorf("server got ESP from %s, want the NAT's %s", e.Src, lab.WANAddr)
		}
		perSPI[e.SPI]++
	}
	for _, c := range clients {
		if perSPI[c.spi] != 13 {
			t.Errorf("server got %d ESP packets with SPI %s, want 13", perSPI[c.spi], c.spi)
		}
	}

	// The flow table shows an ESP flow per host.
	flows, err := pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		fs := ipsecFlowsFor(flows, "esp", c.addr, lab.Srv1)
		if len(fs) == 0 {
			t.Errorf("passgate shows no ESP flow for %s -> %s", c.addr, lab.Srv1)
			continue
		}
		var in, out uint64
		for _, f := range fs {
			in += f.PacketsIn
			out += f.PacketsOut
		}
		if in < 13 || out < 13 {
			t.Errorf("passgate's ESP flows for %s count %d packets out, %d in; want 13 each", c.addr, out, in)
		}
	}
}

// TestIPsecPassgateIKEPort500: two LAN hosts send IKEv2 from UDP source
// port 500 to one server at the same time (IKE_SA_INIT, then a request
// carrying both SPIs). The server must see source port 500 from the NAT's
// address for both, and each response must reach the host whose initiator
// SPI it carries.
func TestIPsecPassgateIKEPort500(t *testing.T) {
	ctx, l, tool, pg := ipsecWithPassgate(t, "pgipike", nil)
	srv, err := ipsecStartToolServer(ctx, l, lab.Server1, tool, lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("IKE server output:\n%s", labtest.Tail(srv.Output(), 6000))
		}
		srv.Stop()
	})
	type client struct{ node, addr, ispi string }
	clients := []client{
		{lab.Lan1, lab.LAN1, "1111aaaa2222bbbb"},
		{lab.Lan2, lab.LAN2, "3333cccc4444dddd"},
	}
	var wg sync.WaitGroup
	results := make([]ipsecIKEResult, len(clients))
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ipsecToolJSON(ctx, l, c.node, tool, &results[i], "ike", "--server", lab.Srv1, "--sport", "500",
				"--ispi", c.ispi, "--rounds", "2", "--timeout", "10")
		}()
	}
	wg.Wait()

	evs, err := srv.Events()
	if err != nil {
		t.Fatal(err)
	}
	serverRSPI := map[string]string{}
	for _, e := range evs {
		if e.Event != "ike" {
			if strings.HasPrefix(e.Event, "ike") {
				t.Errorf("server: unexpected %+v", e)
			}
			continue
		}
		if e.Src != lab.WANAddr || e.Sport != 500 {
			t.Errorf("server got IKE (initiator SPI %s) from %s:%d, want %s:500", e.ISPI, e.Src, e.Sport, lab.WANAddr)
		}
		serverRSPI[e.ISPI] = e.RSPI
	}
	for i, c := range clients {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		res := results[i]
		if len(res.Others) > 0 {
			t.Errorf("%s received IKE messages meant for someone else: %+v", c.node, res.Others)
		}
		if len(res.Replies) != 2 {
			t.Errorf("%s: got %d of 2 IKE responses (sent %d requests): %+v", c.node, len(res.Replies), res.Sent, res.Replies)
			continue
		}
		want, ok := serverRSPI[c.ispi]
		if !ok {
			t.Errorf("the server never saw initiator SPI %s of %s", c.ispi, c.node)
		}
		for j, r := range res.Replies {
			if r.Src != lab.Srv1 || r.Sport != 500 || r.ISPI != c.ispi || r.RSPI != want || r.ID != j {
				t.Errorf("%s: response %d is %+v, want from %s:500 with SPIs %s/%s", c.node, j, r, lab.Srv1, c.ispi, want)
			}
		}
	}

	flows, err := pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		fs := ipsecFlowsFor(flows, "udp", c.addr, lab.Srv1)
		ok := false
		for _, f := range fs {
			if f.Inside.Port() == 500 && f.Outside.Port() == 500 && f.Remote.Port() == 500 {
				ok = true
			}
		}
		if !ok {
			t.Errorf("passgate shows no IKE flow %s:500 -> %s:500 keeping outside port 500: %+v", c.addr, lab.Srv1, fs)
		}
	}
}

// TestIPsecPassgateAHDropped: AH cannot cross a NAT (it authenticates the
// IP addresses). passgate must drop it, count the drop and log why; the
// server receives nothing, while IKE from the same host still crosses.
func TestIPsecPassgateAHDropped(t *testing.T) {
	ctx, l, tool, pg := ipsecWithPassgate(t, "pgipah", nil)
	srv, err := ipsecStartToolServer(ctx, l, lab.Server1, tool, lab.Srv1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output:\n%s", labtest.Tail(srv.Output(), 6000))
		}
		srv.Stop()
	})

	// Control: the path works for IKE from this host.
	var ike ipsecIKEResult
	if err := ipsecToolJSON(ctx, l, lab.Lan1, tool, &ike, "ike", "--server", lab.Srv1, "--sport", "500",
		"--ispi", "5555eeee6666ffff", "--rounds", "1", "--timeout", "8"); err != nil {
		t.Fatal(err)
	}
	if len(ike.Replies) != 1 {
		t.Fatalf("control IKE exchange from lan1 failed: %+v", ike)
	}

	before, err := pg.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const count = 5
	var ah struct {
		Sent int `json:"sent"`
	}
	if err := ipsecToolJSON(ctx, l, lab.Lan1, tool, &ah, "ah", "--server", lab.Srv1, "--spi", "abcd0001", "--count", fmt.Sprint(count)); err != nil {
		t.Fatal(err)
	}
	if ah.Sent != count {
		t.Fatalf("sent %d AH packets, want %d", ah.Sent, count)
	}
	// The drop must be counted under the reason that says why, once
	// passgate has handled the packets (polled: a loaded machine takes a
	// while).
	after := before
	var counted uint64
	err = labtest.Poll(ctx, 15*time.Second, func() (bool, string) {
		st, err := pg.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		after = st
		counted = after.NAT.Drops["ah_cannot_cross_nat"] - before.NAT.Drops["ah_cannot_cross_nat"]
		return counted >= count, fmt.Sprintf("%d ah_cannot_cross_nat drops counted (drops: %v)", counted, after.NAT.Drops)
	})
	if err != nil {
		t.Errorf("passgate counted too few ah_cannot_cross_nat drops, want %d: %v", count, err)
	}
	time.Sleep(500 * time.Millisecond) // let anything that crossed reach the server

	evs, err := srv.Events()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Event == "ah" {
			t.Errorf("AH crossed the NAT: the server received %+v", e)
		}
	}
	pevs, err := pg.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	said := false
	for _, ev := range pevs {
		said = said || ev.Kind == "ah_dropped" && ev.Host == lab.LAN1 && strings.Contains(ev.Message, "cannot cross NAT")
	}
	if !said {
		t.Errorf("no ah_dropped event for %s saying AH cannot cross NAT: %+v", lab.LAN1, pevs)
	}
	if !regexp.MustCompile(`(?i)\bAH\b`).MatchString(pg.Log()) {
		t.Errorf("passgate's log does not say why AH was dropped (no mention of AH)")
	}
}
