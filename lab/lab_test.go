//go:build lab

package lab_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	. "passgate/lab"
	"passgate/lab/labtest"
)

// upLab brings a lab up for one test and removes it when the test ends.
func upLab(t *testing.T, prefix string) *Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := Up(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	return l
}

// TestLabKernelNAT checks the topology with the kernel's own NAT: the LAN
// reaches the servers only through it, the servers cannot reach the LAN, and
// Down removes every namespace.
func TestLabKernelNAT(t *testing.T) {
	const prefix = "pglt"
	l := upLab(t, prefix)

	if got := namespacesWithPrefix(t, prefix); len(got) != len(Nodes) {
		t.Fatalf("namespaces after up: %v, want %d", got, len(Nodes))
	}

	// Topology facts the userspace router relies on.
	if got := strings.TrimSpace(labtest.RunT(t, l, 10*time.Second, Router, "sysctl", "-n", "net.ipv4.ip_forward")); got != "0" {
		t.Errorf("router ip_forward = %s after up, want 0", got)
	}
	for _, n := range []struct{ node, dev string }{{Router, LANIface}, {Router, WANIface}, {Lan1, HostIface}, {Server1, HostIface}} {
		feat := labtest.RunT(t, l, 10*time.Second, n.node, "ethtool", "-k", n.dev)
		for _, f := range []string{"rx-checksumming", "tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload", "generic-receive-offload"} {
			if !strings.Contains(feat, f+": off") {
				t.Errorf("%s %s: %s not off", n.node, n.dev, f)
			}
		}
		if mtu := strings.TrimSpace(labtest.RunT(t, l, 10*time.Second, n.node, "cat", "/sys/class/net/"+n.dev+"/mtu")); mtu != "1500" {
			t.Errorf("%s %s: mtu %s, want 1500", n.node, n.dev, mtu)
		}
	}
	if addrs := labtest.RunT(t, l, 10*time.Second, Server1, "ip", "-4", "-br", "addr", "show", "eth0"); !strings.Contains(addrs, Srv1+"/24") || !strings.Contains(addrs, Srv1b+"/24") {
		t.Errorf("srv1 addresses: %s", addrs)
	}

	// Without NAT the LAN reaches nothing beyond the router.
	if out, err := labtest.Run(l, 10*time.Second, Lan1, "ping", "-c", "1", "-W", "1", Srv1); err == nil {
		t.Errorf("lan1 reached srv1 with the kernel NAT off:\n%s", out)
	}

	// The servers have no route to the LAN, whatever the router does.
	for _, srv := range []string{Server1, Server2} {
		if routes := labtest.RunT(t, l, 10*time.Second, srv, "ip", "-4", "route", "show"); strings.Contains(routes, "default") || strings.Contains(routes, "192.168.50.") {
			t.Errorf("%s has routes beyond the WAN:\n%s", srv, routes)
		}
		if out, err := labtest.Run(l, 10*time.Second, srv, "ip", "route", "get", LAN1); err == nil {
			t.Errorf("%s has a route to the LAN: %s", srv, out)
		}
	}

	if err := l.KernelNAT(true); err != nil {
		t.Fatal(err)
	}
	out, _ := labtest.Run(l, 20*time.Second, Lan1, "ping", labtest.PingArgs(3, Srv1, 10*time.Second)...)
	if labtest.PingAnswered(out, Srv1, 3) != 3 {
		t.Errorf("ping lan1 -> srv1 through the kernel NAT:\n%s", out)
	}
	for _, srv := range []string{Server1, Server2} {
		if out, err := labtest.Run(l, 10*time.Second, srv, "ping", "-c", "1", "-W", "1", LAN1); err == nil {
			t.Errorf("%s reached lan1 through the kernel NAT:\n%s", srv, out)
		}
	}

	root := newWebRoot(t, "blob", 300_000, 1)
	web := startHTTP(t, l, Server1, Srv1, 8000, root.dir)
	body := curlBody(t, l, Lan1, "http://"+Srv1+":8000/blob")
	checkBody(t, "lan1 curl srv1 through the kernel NAT", body, root)
	web.Stop()
	// http.server logs each request with the client's address: the NAT's.
	if log := web.Stderr.String(); !strings.Contains(log, WANAddr+" - - ") || strings.Contains(log, "192.168.50.") {
		t.Errorf("srv1 did not see the router's WAN address as the client:\n%s", log)
	}

	if err := l.KernelNAT(false); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(labtest.RunT(t, l, 10*time.Second, Router, "sysctl", "-n", "net.ipv4.ip_forward")); got != "0" {
		t.Errorf("router ip_forward = %s after kernelnat off, want 0", got)
	}
	if out, err := labtest.Run(l, 10*time.Second, Router, "nft", "list", "table", "ip", "passgate_kernelnat"); err == nil {
		t.Errorf("kernel NAT table still present after off:\n%s", out)
	}

	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if got := namespacesWithPrefix(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after down: %v", got)
	}
	if err := l.Down(); err != nil {
		t.Errorf("second down: %v", err)
	}
}

// TestLabLock checks that a second Up of a prefix in use waits for the lock
// rather than tearing the first lab down, and that lab.sh down of an absent
// prefix succeeds.
func TestLabLock(t *testing.T) {
	const prefix = "pglt2"
	l := upLab(t, prefix)

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if l2, err := Up(ctx, prefix); err == nil {
		l2.Down()
		t.Fatal("second Up of a prefix in use succeeded")
	}
	if got := namespacesWithPrefix(t, prefix); len(got) != len(Nodes) {
		t.Fatalf("first lab disturbed by the second Up: namespaces %v", got)
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}

	// lab.sh itself: down of a prefix that is not there, twice.
	script := t.TempDir() + "/lab.sh"
	if err := os.WriteFile(script, Script, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		cmd := exec.Command("bash", script, "down")
		cmd.Env = append(os.Environ(), "PG_PREFIX=pglt3")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("lab.sh down of an absent prefix: %v\n%s", err, out)
		}
	}
	if _, err := Up(context.Background(), "Bad-Prefix"); err == nil {
		t.Error("Up accepted an invalid prefix")
	}
}
