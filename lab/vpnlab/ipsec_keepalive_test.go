//go:build lab

package vpnlab

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

// ipsecNATTFlows returns passgate's NAT-T flows of a LAN host with srv1:
// UDP from addr:4500 to srv1:4500.
func ipsecNATTFlows(flows []control.Flow, addr string) []control.Flow {
	var out []control.Flow
	for _, f := range ipsecFlowsFor(flows, "udp", addr, lab.Srv1) {
		if f.Inside.Port() == 4500 && f.Remote.Port() == 4500 {
			out = append(out, f)
		}
	}
	return out
}

// ipsecSAOf returns the IKE SA among sas whose peer is node's initiator.
func ipsecSAOf(sas []ipsecIKESA, node string) (ipsecIKESA, bool) {
	for _, sa := range sas {
		if sa.RemoteID == node+".passgate.lab" {
			return sa, true
		}
	}
	return ipsecIKESA{}, false
}

// ipsecKeepAlivesSent counts the NAT-T keepalives a charon logged sending.
func ipsecKeepAlivesSent(c *ipsecCharon) int {
	return strings.Count(c.Log(), "sending keep alive to ")
}

var pingTransmitted = regexp.MustCompile(`(\d+) packets transmitted`)

// ipsecPingSent is how many echoes ping's output says it sent.
func ipsecPingSent(out string) int {
	m := pingTransmitted.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// ipsecKeepAliveBytes is the IP length of a NAT-T keepalive: IPv4 and UDP
// headers and the single 0xFF byte (RFC 3948 section 2.3).
const ipsecKeepAliveBytes = 20 + 8 + 1

// TestIPsecPassgateNATTKeepalive: an idle NAT-T tunnel survives passgate's
// UDP timeout thanks to charon's keepalives, and without them it breaks.
// passgate runs with a 6 s UDP timeout. Two LAN hosts bring strongSwan
// tunnels up to srv1 at once: lan1 sends NAT-T keepalives every 2 s, lan2
// none (keep_alive = 0s; DPD is off everywhere, so nothing else crosses an
// idle tunnel). After pings both ways through both tunnels, no traffic
// crosses either tunnel for over three UDP timeouts, while passgate's flow
// table is sampled. Then:
//
//   - lan1: its NAT-T flow was in the table in every sample, with the same
//     outside port, aged through the whole idle time (never re-created),
//     counting outbound packets of exactly a keepalive's size and nothing
//     inbound; as many as charon logged sending. srv1 pings lan1's virtual
//     IP at once (the direction that needs the mapping) and lan1 pings
//     srv1's inner address: every echo answered, srv1 still sending to the
//     same outside port.
//   - lan2 (the control): charon sent no keepalive, its flow left the
//     table once its UDP timeout ran out and did not come back, and srv1's
//     pings to its virtual IP went out of srv1's SA, were dropped by
//     passgate as unsolicited, and never reached lan2's SA.
func TestIPsecPassgateNATTKeepalive(t *testing.T) {
	const (
		udpTimeout = 6 * time.Second
		keepAlive  = 2 * time.Second
		idle       = 3*udpTimeout + time.Second
	)
	ctx, l, _, pg := ipsecWithPassgate(t, "pgipka", map[string]any{
		"nat": map[string]any{
			"allow_short_timeouts": true,
			"timeouts":             map[string]any{"udp": udpTimeout.String()},
		},
	})

	type host struct {
		node, addr, vip string
		flow            control.Flow // its NAT-T flow when the idle time began
		child           ipsecChildSA // its CHILD_SA then
		c               *ipsecCharon
	}
	kept := &host{node: lab.Lan1, addr: lab.LAN1}
	lost := &host{node: lab.Lan2, addr: lab.LAN2}
	tun := ipsecStartTunnelsKeepAlive(t, ctx, l, map[string]string{kept.node: keepAlive.String(), lost.node: "0s"}, kept.node, lost.node)
	srvSAs := ipsecCheckTunnels(t, ctx, l, tun)
	if t.Failed() {
		t.FailNow()
	}

	// Where things stand when the tunnels fall idle.
	flows, err := pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idleStart := time.Now()
	for _, h := range []*host{kept, lost} {
		h.c = tun.clients[h.node]
		fs := ipsecNATTFlows(flows, h.addr)
		if len(fs) != 1 {
			t.Fatalf("passgate shows %d NAT-T flows %s:4500 -> %s:4500, want 1: %+v", len(fs), h.addr, lab.Srv1, fs)
		}
		h.flow = fs[0]
		sa, ok := ipsecSAOf(srvSAs, h.node)
		if !ok {
			t.Fatalf("srv1 has no IKE SA with %s", h.node)
		}
		if sa.RemoteHost != lab.WANAddr || sa.RemotePort != int(h.flow.Outside.Port()) {
			t.Fatalf("srv1 sees %s at %s:%d, but passgate's flow maps it to %s", h.node, sa.RemoteHost, sa.RemotePort, h.flow.Outside)
		}
		csa := ipsecOneSA(t, ctx, h.c)
		h.vip, h.child = csa.LocalVIPs[0], csa.Children[0]
	}
	if kept.flow.Outside.Port() == lost.flow.Outside.Port() {
		t.Fatalf("lan1 and lan2 share the outside endpoint %s", kept.flow.Outside)
	}
	keptSent0 := ipsecKeepAlivesSent(kept.c)
	t.Logf("idle from now for %v: %s NAT-T flow %s -> outside %s (expires in %.1fs), %s %s -> outside %s (expires in %.1fs)",
		idle, kept.node, kept.flow.Inside, kept.flow.Outside, kept.flow.ExpiresSec, lost.node, lost.flow.Inside, lost.flow.Outside, lost.flow.ExpiresSec)

	// Idle: sample the flow table twice a second. lan1's flow must be there
	// every time, unchanged but for its outbound count; lan2's must stay
	// quiet until it goes, and stay gone.
	samples, lostGoneAfter := 0, time.Duration(0)
	keptMissed, keptFirstMiss := 0, ""
	lostOdd, lostFirstOdd := 0, ""
	for time.Since(idleStart) < idle {
		time.Sleep(500 * time.Millisecond)
		flows, err := pg.Flows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Since(idleStart)
		samples++
		miss := ""
		switch fs := ipsecNATTFlows(flows, kept.addr); {
		case len(fs) != 1:
			miss = fmt.Sprintf("gone after %.1fs idle (flows: %+v)", at.Seconds(), fs)
		case fs[0].Outside != kept.flow.Outside || fs[0].PacketsIn != kept.flow.PacketsIn:
			miss = fmt.Sprintf("changed after %.1fs idle: %+v, was %+v", at.Seconds(), fs[0], kept.flow)
		}
		if miss != "" {
			keptMissed++
			if keptFirstMiss == "" {
				keptFirstMiss = miss
			}
		}
		odd := ""
		switch fs := ipsecNATTFlows(flows, lost.addr); {
		case len(fs) == 0 && lostGoneAfter == 0:
			lostGoneAfter = at
		case len(fs) > 0 && lostGoneAfter != 0:
			odd = fmt.Sprintf("back after %.1fs idle, having expired: %+v", at.Seconds(), fs)
		case len(fs) > 0 && (fs[0].PacketsOut != lost.flow.PacketsOut || fs[0].PacketsIn != lost.flow.PacketsIn):
			odd = fmt.Sprintf("carrying traffic after %.1fs idle: %+v, was %+v", at.Seconds(), fs[0], lost.flow)
		}
		if odd != "" {
			lostOdd++
			if lostFirstOdd == "" {
				lostFirstOdd = odd
			}
		}
	}
	idled := time.Since(idleStart)
	if keptMissed > 0 {
		t.Errorf("%s's NAT-T flow, kept by keepalives every %v, was not as it was in %d of %d samples: first %s",
			kept.node, keepAlive, keptMissed, samples, keptFirstMiss)
	}
	if lostOdd > 0 {
		t.Errorf("%s's NAT-T flow, with no keepalives, was %d of %d samples: first %s", lost.node, lostOdd, samples, lostFirstOdd)
	}

	// After the idle time, before any traffic.
	flows, err = pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keptSent := ipsecKeepAlivesSent(kept.c) - keptSent0
	var keepalives uint64
	if fs := ipsecNATTFlows(flows, kept.addr); len(fs) != 1 {
		t.Errorf("after %v idle: %s's NAT-T flow is gone: %+v", idled, kept.node, fs)
	} else {
		f := fs[0]
		keepalives = f.PacketsOut - kept.flow.PacketsOut
		bytes := f.BytesOut - kept.flow.BytesOut
		if f.Outside != kept.flow.Outside {
			t.Errorf("%s's NAT-T flow moved from outside %s to %s", kept.node, kept.flow.Outside, f.Outside)
		}
		if grew := f.AgeSec - kept.flow.AgeSec; grew < idled.Seconds()-1 {
			t.Errorf("%s's NAT-T flow aged %.1fs over %v idle: it was made anew, not kept", kept.node, grew, idled)
		}
		if f.PacketsIn != kept.flow.PacketsIn {
			t.Errorf("%s's NAT-T flow counted %d packets in while idle, want none", kept.node, f.PacketsIn-kept.flow.PacketsIn)
		}
		if least := uint64(idle / keepAlive / 2); keepalives < least {
			t.Errorf("%s's NAT-T flow counted %d packets out in %v idle, want at least %d keepalives (one per %v)", kept.node, keepalives, idled, least, keepAlive)
		}
		if bytes != keepalives*ipsecKeepAliveBytes {
			t.Errorf("%s's NAT-T flow counted %d packets and %d bytes out while idle: not all %d-byte keepalives", kept.node, keepalives, bytes, ipsecKeepAliveBytes)
		}
		if d := int(keepalives) - keptSent; d < -2 || d > 2 {
			t.Errorf("passgate counted %d packets out on %s's NAT-T flow while idle, charon logged %d keepalives sent", keepalives, kept.node, keptSent)
		}
		t.Logf("%s: flow %s -> outside %s kept through %v idle (%d samples, age %.1fs -> %.1fs): %d keepalives counted by passgate (%d bytes), %d logged by charon",
			kept.node, f.Inside, f.Outside, idled, samples, kept.flow.AgeSec, f.AgeSec, keepalives, bytes, keptSent)
	}
	if n := ipsecKeepAlivesSent(lost.c); n != 0 {
		t.Errorf("%s's charon (keep_alive = 0s) logged %d keepalives sent", lost.node, n)
	}
	if fs := ipsecNATTFlows(flows, lost.addr); len(fs) != 0 || lostGoneAfter == 0 {
		t.Errorf("after %v idle: %s's NAT-T flow, with no keepalives, is still there: %+v", idled, lost.node, fs)
	} else {
		// It goes when its deadline passes (the sample after, at most
		// 0.5 s later, and passgate reaps every 0.2 s), not before.
		due := time.Duration(lost.flow.ExpiresSec * float64(time.Second))
		if lostGoneAfter < due-500*time.Millisecond || lostGoneAfter > due+3*time.Second {
			t.Errorf("%s's NAT-T flow went after %.1fs idle, but was due to expire after %.1fs", lost.node, lostGoneAfter.Seconds(), due.Seconds())
		}
		t.Logf("%s (control): flow %s -> outside %s expired, seen gone after %.1fs idle (due after %.1fs)",
			lost.node, lost.flow.Inside, lost.flow.Outside, lostGoneAfter.Seconds(), due.Seconds())
	}
	// Nothing crossed either tunnel while idle.
	for _, h := range []*host{kept, lost} {
		ch := ipsecOneSA(t, ctx, h.c).Children
		if len(ch) != 1 || ch[0].SPIIn != h.child.SPIIn || ch[0].PacketsIn != h.child.PacketsIn || ch[0].PacketsOut != h.child.PacketsOut {
			t.Errorf("%s's CHILD_SA changed while idle: %+v, was %+v", h.node, ch, h.child)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// srv1 pings both virtual IPs first: that direction needs the mapping
	// (lan1's own traffic would make a new one). Then lan1 pings srv1.
	st0, err := pg.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const pings = 3
	var wg sync.WaitGroup
	var keptN, lostN int
	var keptOut, lostOut string
	wg.Add(2)
	go func() {
		defer wg.Done()
		keptN, keptOut = ipsecPing(ctx, l, lab.Server1, kept.vip, pings)
	}()
	go func() {
		defer wg.Done()
		// Few seconds: the replies cannot come.
		lostOut, _ = l.Run(ctx, lab.Server1, "ping", "-n", "-c", strconv.Itoa(pings), "-i", "0.2", "-w", "3", lost.vip)
		lostN = labtest.PingAnswered(lostOut, lost.vip, pings)
	}()
	wg.Wait()
	if keptN != pings {
		t.Errorf("srv1: ping %s (%s) after %v idle: %d of %d answered\n%s", kept.vip, kept.node, idled, keptN, pings, keptOut)
	}
	if n, out := ipsecPing(ctx, l, kept.node, ipsecInnerServer, pings); n != pings {
		t.Errorf("%s: ping %s after %v idle: %d of %d answered\n%s", kept.node, ipsecInnerServer, idled, n, pings, out)
	}
	lostSent := ipsecPingSent(lostOut)
	if lostN != 0 || lostSent == 0 {
		t.Errorf("srv1: ping %s (%s, no keepalives) after %v idle: %d of %d echoes sent answered, want none\n%s", lost.vip, lost.node, idled, lostN, lostSent, lostOut)
	}

	// What crossed: lan1's pings on its one flow, srv1 still sending to its
	// outside port; srv1's ESP for lan2 sent, dropped, never received.
	flows, err = pg.Flows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st1, err := pg.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sas, err := tun.srv.ListSAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fs := ipsecNATTFlows(flows, kept.addr); len(fs) != 1 || fs[0].Outside != kept.flow.Outside || fs[0].PacketsIn < kept.flow.PacketsIn+2*pings {
		t.Errorf("%s's NAT-T flow after the pings: %+v; want outside %s with %d packets in more than its %d", kept.node, fs, kept.flow.Outside, 2*pings, kept.flow.PacketsIn)
	}
	if sa, ok := ipsecSAOf(sas, kept.node); !ok || sa.RemoteHost != lab.WANAddr || sa.RemotePort != int(kept.flow.Outside.Port()) {
		t.Errorf("srv1's IKE SA with %s after the idle time: %+v; want the peer still at %s", kept.node, sa, kept.flow.Outside)
	} else if !t.Failed() {
		t.Logf("%s: after the idle time, srv1 -> %s and %s -> %s each %d of %d answered; srv1 still sends to %s:%d",
			kept.node, kept.vip, kept.node, ipsecInnerServer, pings, pings, sa.RemoteHost, sa.RemotePort)
	}
	if fs := ipsecNATTFlows(flows, lost.addr); len(fs) != 0 {
		t.Errorf("srv1's ESP made %s a NAT-T flow again: %+v", lost.node, fs)
	}
	sa0, _ := ipsecSAOf(srvSAs, lost.node)
	if sa, ok := ipsecSAOf(sas, lost.node); !ok || len(sa.Children) != 1 || len(sa0.Children) != 1 {
		t.Errorf("srv1 lost its SA with %s: %+v", lost.node, sas)
	} else if sent := sa.Children[0].PacketsOut - sa0.Children[0].PacketsOut; sent < uint64(lostSent) {
		t.Errorf("srv1's CHILD_SA with %s sent %d packets since the idle time began; the %d echoes did not all leave srv1", lost.node, sent, lostSent)
	}
	if dropped := st1.NAT.Drops["unsolicited_inbound"] - st0.NAT.Drops["unsolicited_inbound"]; dropped < uint64(lostSent) {
		t.Errorf("passgate counted %d unsolicited_inbound drops for srv1's %d echoes to %s (drops: %v)", dropped, lostSent, lost.node, st1.NAT.Drops)
	} else {
		t.Logf("%s (control): srv1 sent %d echoes to %s through its SA, passgate dropped %d as unsolicited, none answered", lost.node, lostSent, lost.vip, dropped)
	}
	if ch := ipsecOneSA(t, ctx, lost.c).Children; len(ch) != 1 || ch[0].PacketsIn != lost.child.PacketsIn {
		t.Errorf("%s's CHILD_SA received packets after its mapping expired: %+v, had %d in", lost.node, ch, lost.child.PacketsIn)
	}
	if pg.Exited() {
		t.Fatal("passgate exited during the test")
	}
}
