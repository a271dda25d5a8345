//go:build lab

package vpnlab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// The IPsec lab tests. Lab prefixes start with "pgip". They need root and
// never skip (labtest.Main fails the package without root or a package).

// ipsecSetup brings a lab up under prefix (torn down at cleanup) and
// writes the crafted-packet tool.
// The returned context bounds the whole test.
func ipsecSetup(t *testing.T, prefix string, budget time.Duration) (context.Context, *lab.Lab, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	t.Cleanup(cancel)
	l, err := lab.Up(ctx, prefix)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	tool, err := ipsecWriteTool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ctx, l, tool
}

// ipsecTunnels is a strongSwan server on srv1 and one client per LAN host.
type ipsecTunnels struct {
	srv     *ipsecCharon
	clients map[string]*ipsecCharon // by node
	order   []string
}

// ipsecStartTunnels starts the responder on srv1 and an initiator on each
// of hosts, then initiates every client at once. Charon logs are printed
// if the test fails; every charon is stopped by PID at cleanup.
func ipsecStartTunnels(t *testing.T, ctx context.Context, l *lab.Lab, hosts ...string) *ipsecTunnels {
	t.Helper()
	return ipsecStartTunnelsKeepAlive(t, ctx, l, nil, hosts...)
}

// ipsecStartTunnelsKeepAlive is ipsecStartTunnels with each initiator's
// NAT-T keepalive interval taken from keepAlive by node (ipsecKeepAlive
// for a node it does not name; "0s" for none).
func ipsecStartTunnelsKeepAlive(t *testing.T, ctx context.Context, l *lab.Lab, keepAlive map[string]string, hosts ...string) *ipsecTunnels {
	t.Helper()
	addrs := map[string]string{}
	for _, h := range lab.LANHosts {
		addrs[h.Node] = h.Addr
	}
	tun := &ipsecTunnels{clients: map[string]*ipsecCharon{}}
	logOnFailure := func(c *ipsecCharon) {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("charon log of %s (pid %d):\n%s", c.Node, c.PID(), labtest.Tail(c.Log(), 6000))
			}
			c.Stop()
		})
	}
	var err error
	tun.srv, err = ipsecStartResponder(ctx, l, lab.Server1, lab.Srv1)
	if err != nil {
		t.Fatalf("responder: %v", err)
	}
	logOnFailure(tun.srv)
	for _, h := range hosts {
		ka, ok := keepAlive[h]
		if !ok {
			ka = ipsecKeepAlive
		}
		c, err := ipsecStartInitiator(ctx, l, h, addrs[h], lab.Srv1, h+".passgate.lab", ka)
		if err != nil {
			t.Fatalf("initiator %s: %v", h, err)
		}
		logOnFailure(c)
		tun.clients[h] = c
		tun.order = append(tun.order, h)
	}
	ictx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = tun.clients[h].Initiate(ictx, ipsecChildName)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("initiate from %s: %v", hosts[i], err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return tun
}

// ipsecOneSA returns the only IKE SA of c, failing the test otherwise.
func ipsecOneSA(t *testing.T, ctx context.Context, c *ipsecCharon) ipsecIKESA {
	t.Helper()
	sas, err := c.ListSAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 1 {
		t.Fatalf("%s: want 1 IKE SA, got %d: %+v", c.Node, len(sas), sas)
	}
	return sas[0]
}

// ipsecCheckChild asserts an installed, UDP-encapsulated ESP CHILD_SA that
// carried at least minPackets each way.
func ipsecCheckChild(t *testing.T, who string, sa ipsecIKESA, minPackets uint64) ipsecChildSA {
	t.Helper()
	if sa.State != "ESTABLISHED" {
		t.Errorf("%s: IKE SA state %q, want ESTABLISHED", who, sa.State)
	}
	if len(sa.Children) != 1 {
		t.Errorf("%s: want 1 CHILD_SA, got %+v", who, sa.Children)
		return ipsecChildSA{}
	}
	ch := sa.Children[0]
	if ch.State != "INSTALLED" || ch.Protocol != "ESP" || ch.Mode != "TUNNEL" {
		t.Errorf("%s: CHILD_SA state %q protocol %q mode %q, want INSTALLED ESP TUNNEL", who, ch.State, ch.Protocol, ch.Mode)
	}
	if !ch.Encap {
		t.Errorf("%s: CHILD_SA not UDP-encapsulated: no NAT-T", who)
	}
	if ch.SPIIn == "" || ch.SPIOut == "" || ch.SPIIn == ch.SPIOut {
		t.Errorf("%s: SPIs in %q out %q", who, ch.SPIIn, ch.SPIOut)
	}
	if ch.PacketsIn < minPackets || ch.PacketsOut < minPackets || ch.BytesIn == 0 || ch.BytesOut == 0 {
		t.Errorf("%s: CHILD_SA carried %d packets/%d bytes in, %d packets/%d bytes out; want at least %d packets each way",
			who, ch.PacketsIn, ch.BytesIn, ch.PacketsOut, ch.BytesOut, minPackets)
	}
	return ch
}

// ipsecCheckTunnels pings the server's inner address through every
// client's tunnel at once, and each client's virtual IP from the server,
// then asserts on both ends' SAs: established, installed, NAT detected,
// UDP-encapsulated on port 4500, the SPIs of each client matching one
// server SA, and bytes both ways. It returns the server's SAs.
func ipsecCheckTunnels(t *testing.T, ctx context.Context, l *lab.Lab, tun *ipsecTunnels) []ipsecIKESA {
	t.Helper()
	const pings = 5
	vips := map[string]string{}
	for _, h := range tun.order {
		sa := ipsecOneSA(t, ctx, tun.clients[h])
		if len(sa.LocalVIPs) != 1 {
			t.Fatalf("%s: want one virtual IP, got %v", h, sa.LocalVIPs)
		}
		vips[h] = sa.LocalVIPs[0]
	}
	seen := map[string]string{}
	for h, v := range vips {
		if o, dup := seen[v]; dup {
			t.Fatalf("%s and %s got the same virtual IP %s", h, o, v)
		}
		seen[v] = h
	}

	// Traffic through every tunnel at once, both directions.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, h := range tun.order {
		wg.Add(2)
		go func() {
			defer wg.Done()
			n, out := ipsecPing(ctx, l, h, ipsecInnerServer, pings)
			if n != pings {
				mu.Lock()
				t.Errorf("%s: ping %s through the tunnel: %d of %d answered\n%s", h, ipsecInnerServer, n, pings, out)
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			n, out := ipsecPing(ctx, l, lab.Server1, vips[h], pings)
			if n != pings {
				mu.Lock()
				t.Errorf("srv1: ping %s (%s) through the tunnel: %d of %d answered\n%s", vips[h], h, n, pings, out)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	clientChild := map[string]ipsecChildSA{}
	for _, h := range tun.order {
		sa := ipsecOneSA(t, ctx, tun.clients[h])
		who := h
		if !sa.NATLocal || !sa.NATAny {
			t.Errorf("%s: NAT not detected (nat-local %v, nat-any %v)", who, sa.NATLocal, sa.NATAny)
		}
		if sa.RemoteHost != lab.Srv1 || sa.RemotePort != 4500 || sa.LocalPort != 4500 {
			t.Errorf("%s: IKE SA %s[%d] -> %s[%d], want NAT-T on 4500 to %s", who, sa.LocalHost, sa.LocalPort, sa.RemoteHost, sa.RemotePort, lab.Srv1)
		}
		clientChild[h] = ipsecCheckChild(t, who, sa, 2*pings)
	}

	sas, err := tun.srv.ListSAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != len(tun.order) {
		t.Fatalf("srv1: want %d IKE SAs, got %d: %+v", len(tun.order), len(sas), sas)
	}
	endpoints := map[string]bool{}
	for _, sa := range sas {
		who := fmt.Sprintf("srv1 SA with %s (%s[%d])", sa.RemoteID, sa.RemoteHost, sa.RemotePort)
		if !sa.NATRemote {
			t.Errorf("%s: peer's NAT not detected", who)
		}
		if sa.RemoteHost != lab.WANAddr {
			t.Errorf("%s: peer address %s, want the NAT's %s", who, sa.RemoteHost, lab.WANAddr)
		}
		ep := fmt.Sprintf("%s:%d", sa.RemoteHost, sa.RemotePort)
		if endpoints[ep] {
			t.Errorf("srv1: two SAs share the outside endpoint %s", ep)
		}
		endpoints[ep] = true
		ch := ipsecCheckChild(t, who, sa, 2*pings)
		host := strings.TrimSuffix(sa.RemoteID, ".passgate.lab")
		cc, ok := clientChild[host]
		if !ok {
			t.Errorf("%s: unknown peer identity %q", who, sa.RemoteID)
			continue
		}
		if ch.SPIIn != cc.SPIOut || ch.SPIOut != cc.SPIIn {
			t.Errorf("%s: SPIs in %s out %s do not pair with %s's in %s out %s", who, ch.SPIIn, ch.SPIOut, host, cc.SPIIn, cc.SPIOut)
		}
		if !slices.Equal(sa.RemoteVIPs, []string{vips[host]}) {
			t.Errorf("%s: remote virtual IPs %v, want [%s]", who, sa.RemoteVIPs, vips[host])
		}
	}
	return sas
}

// TestIPsecStrongSwanKernelNAT proves the harness against the reference:
// with the kernel's own NAT in the router, two LAN hosts bring IKEv2
// tunnels up to srv1 at once; NAT is detected, ESP goes UDP-encapsulated
// on 4500, and pings cross both tunnels both ways.
func TestIPsecStrongSwanKernelNAT(t *testing.T) {
	ctx, l, _ := ipsecSetup(t, "pgipk", 100*time.Second)
	if err := l.KernelNAT(true); err != nil {
		t.Fatal(err)
	}
	tun := ipsecStartTunnels(t, ctx, l, lab.Lan1, lab.Lan2)
	ipsecCheckTunnels(t, ctx, l, tun)
}
