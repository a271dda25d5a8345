//go:build lab

package pppoelab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
	"passgate/packet"
	"passgate/pppoe"
)

// TestPPPoERelay: rp-pppoe's pppoe-server on srv1 and the pppoe client on
// lan1 and lan2 at once, through passgate with "passthrough":{"pppoe":true}.
//
//   - Discovery (`pppoe -A`, PADI and PADO only): each client sees the
//     PADO naming the AC, from the router's LAN MAC.
//   - Sessions (`pppoe -I eth0` under the pppd stand-in): both open, with
//     distinct session ids, and PPP frames cross both ways in each; the
//     captures show every relayed PADI leaving from the router's WAN MAC
//     with a Relay-Session-Id naming its LAN host (tcpdump's own dissector
//     agrees), the AC's PADS carrying it back, and the host's PADS without
//     it.
//   - A PADT from the AC (`pppoe -k` on srv1) ends lan2's session: lan2's
//     pppoe receives it and exits. A PADT from the host (lan1's pppoe on
//     SIGTERM) ends lan1's: the server's session process ends. passgate's
//     status then shows no session left.
//   - Restarted with the default configuration (relay off), discovery from
//     lan1 gets no answer and nothing reaches the WAN; the drops are
//     counted.
func TestPPPoERelay(t *testing.T) {
	ctx, e := setup(t, "pgpo", 4*time.Minute)
	hosts := []string{lab.Lan1, lab.Lan2}
	rtrLAN := e.mac(ctx, lab.Router, lab.LANIface)
	rtrWAN := e.mac(ctx, lab.Router, lab.WANIface)
	acMAC := e.mac(ctx, lab.Server1, lab.HostIface)
	hostMAC := map[string]packet.MAC{}
	hostOf := map[packet.MAC]string{}
	for _, h := range hosts {
		hostMAC[h] = e.mac(ctx, h, lab.HostIface)
		hostOf[hostMAC[h]] = h
	}
	t.Logf("router LAN %s, WAN %s; AC %s; lan1 %s, lan2 %s", rtrLAN, rtrWAN, acMAC, hostMAC[lab.Lan1], hostMAC[lab.Lan2])

	wanCap := e.startCapture(ctx, lab.Server1, lab.HostIface, "srv1")
	lanCap := map[string]*capture{}
	for _, h := range hosts {
		lanCap[h] = e.startCapture(ctx, h, lab.HostIface, h)
	}
	pg := e.startPassgate(ctx, "passgate-on", `{"pppoe":true}`)
	srv := e.startServer(ctx)

	// Discovery only, both hosts at once.
	disc := discoverAll(ctx, e, hosts)
	for _, h := range hosts {
		out := disc[h]
		if !strings.Contains(out, "Access-Concentrator: "+acName) {
			t.Fatalf("%s: pppoe -A saw no PADO from %s:\n%s\npassgate counters: %v", h, acName, out, labtest.NonZero(pg.pppoeCounters(ctx)))
		}
		// The host sees the router as its AC.
		if !strings.Contains(out, "AC-Ethernet-Address: "+rtrLAN.String()) {
			t.Errorf("%s: the PADO did not come from the router's LAN MAC %s:\n%s", h, rtrLAN, out)
		}
		t.Logf("%s discovery:\n%s", h, strings.TrimSpace(out))
	}

	// Sessions, both at once.
	clients := map[string]*client{}
	for _, h := range hosts {
		clients[h] = e.startClient(h)
	}
	pairs := map[string]string{}
	err := labtest.Poll(ctx, 40*time.Second, func() (bool, string) {
		clear(pairs)
		all := ends(srv.frameLog, clients[lab.Lan1].frameLog, clients[lab.Lan2].frameLog)
		used := map[string]string{}
		for _, h := range hosts {
			if done, err := clients[h].proc.Ended(); done {
				return false, fmt.Sprintf("%s's client exited: %v", h, err)
			}
			c, s := all[h], serverEndOf(all, h)
			if c == nil || s == nil {
				return false, fmt.Sprintf("no (single) server end heard %s yet", h)
			}
			if other, dup := used[s.name]; dup {
				return false, fmt.Sprintf("server end %s serves both %s and %s", s.name, other, h)
			}
			used[s.name] = h
			if c.from[s.name] < 5 || c.echoedBy[s.name] < 5 || s.from[h] < 5 || s.echoedBy[h] < 5 {
				return false, fmt.Sprintf("%s <-> %s: client heard %d frames and %d echoes, server end heard %d and %d; want 5 each",
					h, s.name, c.from[s.name], c.echoedBy[s.name], s.from[h], s.echoedBy[h])
			}
			pairs[h] = s.name
		}
		return true, ""
	})
	if err != nil {
		t.Fatalf("two PPPoE sessions through passgate: %v\n%s", err, e.describe(srv, clients, pg))
	}
	t.Logf("sessions: %v", pairs)
	if n := pg.pppoeCounters(ctx)["pppoe_sessions"]; n != 2 {
		t.Errorf("passgate shows %v PPPoE sessions, want 2", n)
	}

	// Each host's session id, as the host saw it in its PADS.
	sid := map[string]uint16{}
	for _, h := range hosts {
		fs, err := readPcap(lanCap[h].path) // still capturing
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.typ == pppoe.EtherTypeDiscovery && f.code == pppoe.CodePADS && f.dst == hostMAC[h] && f.sid != 0 {
				sid[h] = f.sid
			}
		}
		if sid[h] == 0 {
			t.Fatalf("%s: no PADS with a session id in its capture", h)
		}
	}
	if sid[lab.Lan1] == sid[lab.Lan2] {
		t.Fatalf("both sessions have id %d", sid[lab.Lan1])
	}
	t.Logf("session ids: lan1 %d, lan2 %d", sid[lab.Lan1], sid[lab.Lan2])

	// A PADT from the AC ends lan2's session.
	kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	out, err := e.lab.Run(kctx, lab.Server1, pppoeClient, "-I", lab.HostIface, "-k", "-e", fmt.Sprintf("%d:%s", sid[lab.Lan2], rtrWAN))
	cancel()
	if err != nil {
		t.Fatalf("pppoe -k on srv1: %v\n%s", err, out)
	}
	err = labtest.Poll(ctx, 15*time.Second, func() (bool, string) {
		done, _ := clients[lab.Lan2].proc.Ended()
		return done, "lan2's pppoe still running after the AC's PADT"
	})
	if err != nil {
		t.Errorf("%v\npppoe on lan2: %s", err, labtest.Tail(readFile(clients[lab.Lan2].childLog), 1000))
	}
	// pppoe says why it ended: "PADT: Generic-Error: RP-PPPoE: Session
	// killed manually".
	if said := readFile(clients[lab.Lan2].childLog); !strings.Contains(said, "PADT") {
		t.Errorf("lan2's pppoe did not report the AC's PADT: %s", labtest.Tail(said, 600))
	} else {
		t.Logf("lan2's pppoe on the AC's PADT: %s", strings.TrimSpace(labtest.Tail(said, 300)))
	}

	// A PADT from lan1 (its pppoe sends one on SIGTERM) ends lan1's session
	// at the AC.
	clients[lab.Lan1].proc.Stop()
	err = labtest.Poll(ctx, 15*time.Second, func() (bool, string) {
		s := ends(srv.frameLog)[pairs[lab.Lan1]]
		return s != nil && s.exit != "", "the server end of lan1's session is still running"
	})
	if err != nil {
		t.Errorf("%v\n%s", err, e.describe(srv, clients, pg))
	}
	c := pg.pppoeCounters(ctx)
	t.Logf("passgate PPPoE counters: %v", labtest.NonZero(c))
	if c["pppoe_sessions"] != 0 || c["pppoe_sessions_opened"] != 2 || c["pppoe_sessions_closed_by_ac"] < 1 || c["pppoe_sessions_closed_by_host"] < 1 {
		t.Errorf("after both PADTs: sessions %v, opened %v, closed by the AC %v, by a host %v; want 0, 2, >=1, >=1",
			c["pppoe_sessions"], c["pppoe_sessions_opened"], c["pppoe_sessions_closed_by_ac"], c["pppoe_sessions_closed_by_host"])
	}

	// What the wire showed.
	// The last frames each check needs: srv1 saw lan1's PADT (the server
	// end exited on it), lan2 the AC's (its pppoe exited on it).
	hasPADT := func(src, dst packet.MAC, sid uint16) func([]frame) bool {
		return func(fs []frame) bool {
			for _, f := range fs {
				if f.typ == pppoe.EtherTypeDiscovery && f.code == pppoe.CodePADT && f.src == src && (dst == packet.MAC{} || f.dst == dst) && f.sid == sid {
					return true
				}
			}
			return false
		}
	}
	checkWAN(t, wanCap.frames(t, hasPADT(rtrWAN, packet.MAC{}, sid[lab.Lan1])), rtrWAN, acMAC, hostMAC, hostOf, sid)
	for _, h := range hosts {
		var last func([]frame) bool
		if h == lab.Lan2 {
			last = hasPADT(rtrLAN, hostMAC[h], sid[h])
		}
		checkLAN(t, h, lanCap[h].frames(t, last), rtrLAN, hostMAC[h], sid[h], h == lab.Lan2)
	}
	text, err := tcpdumpText(ctx, wanCap.path)
	if err != nil {
		t.Fatal(err)
	}
	padiLines := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "PADI") {
			padiLines++
			// tcpdump prints a tag's value in hex, or quoted when most of
			// its bytes are printable, which a random Relay-Session-Id
			// sometimes is.
			hasRelayID := strings.Contains(line, "Relay-Session-ID 0x") || strings.Contains(line, `Relay-Session-ID "`)
			if !strings.HasPrefix(strings.Fields(line + " x x")[1], rtrWAN.String()) || !hasRelayID {
				t.Errorf("tcpdump on srv1: a PADI not from the router's WAN MAC with a Relay-Session-Id: %s", line)
			}
		}
	}
	if padiLines == 0 {
		t.Errorf("tcpdump on srv1 shows no PADI:\n%s", labtest.Tail(text, 2000))
	}
	if t.Failed() {
		var disc []string
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "PPPoE D") {
				disc = append(disc, line)
			}
		}
		t.Logf("tcpdump on srv1, discovery:\n%s", strings.Join(disc, "\n"))
	}

	// Switched off (the default): no answer to discovery.
	pg.Proc.Stop()
	offCap := e.startCapture(ctx, lab.Server1, lab.HostIface, "srv1-off")
	pgOff := e.startPassgate(ctx, "passgate-default", "")
	out = discoverAll(ctx, e, []string{lab.Lan1})[lab.Lan1]
	if strings.Contains(out, "Access-Concentrator") || !strings.Contains(out, "Timeout waiting for PADO") {
		t.Errorf("relay off: pppoe -A on lan1 said:\n%s", out)
	}
	for _, f := range offCap.frames(t, nil) {
		// lan2's session lives on at the AC (its PADT came from pppoe -k,
		// not the AC's session process): only the router matters here.
		if f.src != acMAC {
			t.Errorf("relay off: srv1 saw %s from %s", pppoe.CodeName(f.code), f.src)
		}
	}
	if n := pgOff.pppoeCounters(ctx)["pppoe_drop_relay_off"]; n < 1 {
		t.Errorf("relay off: no drops counted (pppoe_drop_relay_off %v)", n)
	} else {
		t.Logf("relay off: pppoe -A on lan1 timed out; passgate dropped %v PPPoE frames", n)
	}
}

// discoverAll runs `pppoe -I eth0 -A` (send a PADI, print each PADO) on
// every host at once and returns what each printed. Without an answer it
// gives up after about 15 s.
func discoverAll(ctx context.Context, e *env, hosts []string) map[string]string {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]string{}
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			b, err := e.lab.Cmd(cctx, h, pppoeClient, "-I", lab.HostIface, "-A").CombinedOutput()
			s := string(b)
			if err != nil {
				s += "\n(" + err.Error() + ")"
			}
			mu.Lock()
			out[h] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// checkWAN checks srv1's capture: nothing from a LAN host's own MAC; every
// PADI from the router's WAN MAC with one Relay-Session-Id that names a LAN
// host; a PADS for each host's session (found by that id) with the id the
// host saw; session frames both ways in each session; the PADT lan1 sent.
func checkWAN(t *testing.T, fs []frame, rtrWAN, acMAC packet.MAC, hostMAC map[string]packet.MAC, hostOf map[packet.MAC]string, sid map[string]uint16) {
	t.Helper()
	named := map[string][]byte{}
	padsSid := map[string]uint16{}
	toAC, fromAC := map[uint16]int{}, map[uint16]int{}
	padt := map[uint16]bool{}
	for _, f := range fs {
		if f.src != rtrWAN && f.src != acMAC {
			t.Errorf("srv1 saw %s from %s: neither the router nor the AC", pppoe.CodeName(f.code), f.src)
			continue
		}
		if f.typ == pppoe.EtherTypeSession {
			if f.src == rtrWAN && f.dst == acMAC {
				toAC[f.sid]++
			} else if f.src == acMAC && f.dst == rtrWAN {
				fromAC[f.sid]++
			}
			continue
		}
		rid, hasRID := f.tag(pppoe.TagRelaySessionID)
		switch {
		case f.code == pppoe.CodePADI:
			if f.src != rtrWAN || f.dst != packet.Broadcast {
				t.Errorf("PADI %s > %s, want from the router's WAN MAC to broadcast", f.src, f.dst)
			}
			n := 0
			for _, tg := range f.tags {
				if tg.Type == pppoe.TagRelaySessionID {
					n++
				}
			}
			h := hostIn(rid, hostOf)
			if n != 1 || h == "" {
				t.Errorf("relayed PADI with %d Relay-Session-Id tags, value % x naming no LAN host", n, rid)
				continue
			}
			if prev, ok := named[h]; ok && !bytes.Equal(prev, rid) {
				t.Errorf("%s's PADIs carry different ids: % x and % x", h, prev, rid)
			}
			named[h] = rid
		case f.code == pppoe.CodePADS && f.src == acMAC && f.sid != 0:
			if h := hostIn(rid, hostOf); hasRID && h != "" {
				padsSid[h] = f.sid
			} else {
				t.Errorf("PADS for session %d without a Relay-Session-Id naming a LAN host (% x)", f.sid, rid)
			}
		case f.code == pppoe.CodePADT && f.src == rtrWAN:
			padt[f.sid] = true
		}
	}
	for h := range hostMAC {
		if named[h] == nil {
			t.Errorf("no relayed PADI for %s", h)
		}
		if padsSid[h] != sid[h] {
			t.Errorf("%s: the AC's PADS gave session %d, the host saw %d", h, padsSid[h], sid[h])
		}
		s := sid[h]
		if toAC[s] < 5 || fromAC[s] < 5 {
			t.Errorf("%s: session %d carried %d frames to the AC and %d back, want 5 each way", h, s, toAC[s], fromAC[s])
		}
		t.Logf("srv1: %s's session %d: %d frames to the AC, %d back; Relay-Session-Id %x", h, s, toAC[s], fromAC[s], named[h])
	}
	if bytes.Equal(named[lab.Lan1], named[lab.Lan2]) {
		t.Errorf("both hosts' PADIs carry the same Relay-Session-Id")
	}
	if !padt[sid[lab.Lan1]] {
		t.Errorf("srv1 saw no PADT for lan1's session %d from the router", sid[lab.Lan1])
	}
}

// hostIn is the LAN host whose MAC a Relay-Session-Id of this relay
// carries (its last 6 of 12 bytes), or "".
func hostIn(rid []byte, hostOf map[packet.MAC]string) string {
	if len(rid) != pppoe.RelayIDLen {
		return ""
	}
	return hostOf[packet.MAC(rid[6:12])]
}

// checkLAN checks a LAN host's capture: discovery answers from the
// router's LAN MAC, the PADS with the session id and without the relay's
// tag toward the WAN, session frames both ways, and (wantPADT) the AC's
// PADT relayed.
func checkLAN(t *testing.T, h string, fs []frame, rtrLAN, me packet.MAC, sid uint16, wantPADT bool) {
	t.Helper()
	var pado, pads, padt, up, down int
	for _, f := range fs {
		switch {
		case f.typ == pppoe.EtherTypeSession && f.sid == sid && f.src == me && f.dst == rtrLAN:
			up++
		case f.typ == pppoe.EtherTypeSession && f.sid == sid && f.src == rtrLAN && f.dst == me:
			down++
		case f.typ == pppoe.EtherTypeDiscovery && f.dst == me:
			if f.src != rtrLAN {
				t.Errorf("%s: %s from %s, want the router's LAN MAC", h, pppoe.CodeName(f.code), f.src)
			}
			switch f.code {
			case pppoe.CodePADO:
				pado++
				if v, _ := f.tag(pppoe.TagACName); string(v) != acName {
					t.Errorf("%s: PADO with AC-Name %q", h, v)
				}
			case pppoe.CodePADS:
				if f.sid == sid {
					pads++
				}
				if _, ok := f.tag(pppoe.TagRelaySessionID); ok {
					t.Errorf("%s: the PADS still carries a Relay-Session-Id", h)
				}
			case pppoe.CodePADT:
				if f.sid == sid {
					padt++
				}
			}
		}
	}
	t.Logf("%s: %d PADO, %d PADS, %d PADT; session %d: %d frames up, %d down", h, pado, pads, padt, sid, up, down)
	if pado < 2 || pads != 1 || up < 5 || down < 5 {
		t.Errorf("%s: want a PADO for each discovery, one PADS and 5 session frames each way", h)
	}
	if wantPADT && padt == 0 {
		t.Errorf("%s: the AC's PADT never arrived", h)
	}
}

func (e *env) describe(srv *server, clients map[string]*client, pg *passgate) string {
	var b strings.Builder
	paths := []string{srv.frameLog}
	for _, c := range clients {
		paths = append(paths, c.frameLog)
	}
	for name, x := range ends(paths...) {
		fmt.Fprintf(&b, "%s: sent %d, from %v, echoed by %v, exit %q\n", name, x.sent, x.from, x.echoedBy, x.exit)
	}
	for h, c := range clients {
		fmt.Fprintf(&b, "pppoe on %s: %s\n", h, strings.TrimSpace(labtest.Tail(readFile(c.childLog), 600)))
	}
	fmt.Fprintf(&b, "pppoe-server: %s\n", strings.TrimSpace(labtest.Tail(srv.proc.Output(), 600)))
	if st, err := pg.status(context.Background()); err == nil {
		fmt.Fprintf(&b, "passgate data plane counters: %v\n", st.Dataplane)
	}
	fmt.Fprintf(&b, "passgate log: %s\n", labtest.Tail(pg.Proc.Output(), 1500))
	return b.String()
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}
