//go:build lab

package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"passgate/dataplane/router"
	"passgate/lab"
	"passgate/lab/labtest"
	"passgate/nat"
)

// The lab test runs the router for real: the test binary re-executes
// itself inside the lab's router namespace (TestMain sees PGRT_HELPER) and
// the test drives traffic between the lab's hosts. Namespaces carry the
// prefix "pgrt".

const labPrefix = "pgrt"

func TestMain(m *testing.M) {
	if os.Getenv("PGRT_HELPER") == "router" {
		os.Exit(helperRouter())
	}
	labtest.Main(m)
}

// helperRouter runs the router on the lab's interfaces until SIGTERM.
func helperRouter() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := nat.Config{
		LANAddr: netip.MustParsePrefix(lab.LANCIDR),
		WANAddr: netip.MustParsePrefix(lab.WANCIDR),
	}
	cfg.Timeouts.UDP = 30 * time.Second
	err := router.Run(ctx, router.Options{
		Driver: labtest.Driver(), Offload: labtest.Offload(),
		LAN: lab.LANIface, WAN: lab.WANIface, NAT: cfg, Workers: 2, Logger: log,
		Ready: func(*router.Router) { fmt.Println("READY") },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "router:", err)
		return 1
	}
	return 0
}

type labEnv struct {
	t   *testing.T
	l   *lab.Lab
	dir string
}

func upLab(t *testing.T) *labEnv {
	l := labtest.Up(t, labPrefix, 3*time.Minute)
	e := &labEnv{t: t, l: l, dir: t.TempDir()}
	for name, src := range map[string]string{"udpecho.py": udpEcho, "udpclient.py": udpClient, "tcpserver.py": tcpServer, "tcpclient.py": tcpClient} {
		if err := os.WriteFile(filepath.Join(dir(e), name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func dir(e *labEnv) string { return e.dir }

// start runs a long-lived process in node; it is stopped at cleanup.
func (e *labEnv) start(node, name string, args ...string) *labtest.Proc {
	e.t.Helper()
	return labtest.StartWithT(e.t, e.l, node, labtest.Options{Combined: true}, name, args...)
}

func (e *labEnv) run(timeout time.Duration, node, name string, args ...string) (string, error) {
	return labtest.Run(e.l, timeout, node, name, args...)
}

// startRouter runs the router helper in the router namespace and waits
// for it to forward.
func (e *labEnv) startRouter() (*labtest.Proc, *labtest.Buffer) {
	e.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		e.t.Fatal(err)
	}
	c := labtest.StartWithT(e.t, e.l, lab.Router, labtest.Options{Env: []string{"PGRT_HELPER=router"}}, exe, "-test.run=^$")
	if err := c.WaitLine("READY", 20*time.Second); err != nil {
		e.t.Fatalf("router not ready: %v", err)
	}
	return c, c.Stderr
}

func TestLab(t *testing.T) {
	e := upLab(t)
	rtr, logs := e.startRouter()
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("router log:\n%s", logs)
		}
	}()

	// netdev with AF_XDP, ip with AF_PACKET (router.Router.FenceTable).
	if out, err := e.run(10*time.Second, lab.Router, "nft", "list", "ruleset"); err != nil ||
		!strings.Contains(out, "table netdev passgate") && !strings.Contains(out, "table ip passgate") || !strings.Contains(out, `"lan0"`) {
		t.Fatalf("fence not installed: %v\n%s", err, out)
	}

	// No packet socket of every ethertype (ETH_P_ALL, a tap that sees
	// every frame, offloaded ones included, before tc ingress): each is
	// bound to its own, IPv4's (AF_PACKET), ARP's and, with AF_PACKET,
	// the two PPPoE ones.
	t.Run("sockets bound to their ethertypes", func(t *testing.T) {
		out, err := e.run(10*time.Second, lab.Router, "cat", "/proc/net/packet")
		if err != nil {
			t.Fatal(err)
		}
		protos := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 3 {
				protos[f[3]]++
			}
		}
		t.Logf("packet sockets by protocol: %v", protos)
		if protos["0003"] != 0 || protos["0806"] != 2 {
			t.Errorf("packet sockets by protocol %v: want none of ETH_P_ALL (0003), one of ARP (0806) per interface", protos)
		}
		if protos["0800"] != 0 && (protos["8863"] != 2 || protos["8864"] != 2) {
			t.Errorf("packet sockets by protocol %v: want one of each PPPoE ethertype per interface", protos)
		}
	})
	t.Run("ping through", func(t *testing.T) {
		// The first echo waits in the neighbour queue while the router
		// resolves the server: none may be lost.
		// -w: wait for late replies rather than count them lost (ping
		// gives the last one only 0.2 s otherwise); an echo that was lost
		// still shows as unanswered, as ping then sends more.
		out, err := e.run(20*time.Second, lab.Lan1, "ping", labtest.PingArgs(3, lab.Srv1, 10*time.Second)...)
		if n := labtest.PingAnswered(out, lab.Srv1, 3); n != 3 {
			t.Fatalf("%d of 3 echoes answered: %v\n%s", n, err, out)
		}
	})
	t.Run("ping router", func(t *testing.T) {
		for _, dst := range []string{lab.LANGateway} {
			if out, err := e.run(20*time.Second, lab.Lan2, "ping", "-n", "-c", "2", "-i", "0.2", "-w", "10", dst); err != nil {
				t.Fatalf("%s: %v\n%s", dst, err, out)
			}
		}
	})
	t.Run("udp", func(t *testing.T) {
		srv := e.start(lab.Server1, "/usr/bin/python3", filepath.Join(e.dir, "udpecho.py"), "9000")
		out, err := e.run(30*time.Second, lab.Lan1, "/usr/bin/python3", filepath.Join(e.dir, "udpclient.py"), lab.Srv1, "9000", "41000")
		if err != nil {
			t.Fatalf("%v\n%s\nserver: %s", err, out, srv.Output())
		}
		// The server saw the router's WAN address, with the port preserved.
		if got := strings.TrimSpace(out); got != "203.0.113.1:41000 hello" {
			t.Fatalf("echo %q", got)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		srv := e.start(lab.Server1, "/usr/bin/python3", filepath.Join(e.dir, "tcpserver.py"), "9001")
		out, err := e.run(60*time.Second, lab.Lan3, "/usr/bin/python3", filepath.Join(e.dir, "tcpclient.py"), lab.Srv1, "9001", "4000000")
		if err != nil {
			t.Fatalf("%v\n%s\nserver: %s", err, out, srv.Output())
		}
		lines := strings.Fields(out)
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "203.0.113.1:") || lines[1] != "4000000" {
			t.Fatalf("tcp client got %q", out)
		}
	})
	t.Run("partial checksums", func(t *testing.T) {
		// With checksum offload on, lan2's frames reach the router with only
		// the pseudo-header sum in place (TP_STATUS_CSUMNOTREADY); the
		// servers' kernels drop what the router does not complete.
		// The switch's port toward the router must offload too, or the
		// bridge completes the checksum on the way.
		rlan := labPrefix + "-rlan"
		for _, c := range [][]string{{lab.Lan2, "eth0"}, {lab.Switch, rlan}} {
			if out, err := e.run(10*time.Second, c[0], "ethtool", "-K", c[1], "tx", "on", "tso", "off", "gso", "off"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			defer e.run(10*time.Second, c[0], "ethtool", "-K", c[1], "tx", "off")
		}
		srv := e.start(lab.Server2, "/usr/bin/python3", filepath.Join(e.dir, "udpecho.py"), "9000")
		out, err := e.run(30*time.Second, lab.Lan2, "/usr/bin/python3", filepath.Join(e.dir, "udpclient.py"), lab.Srv2, "9000", "42000")
		if err != nil || strings.TrimSpace(out) != "203.0.113.1:42000 hello" {
			t.Fatalf("udp: %v %q\nserver: %s", err, out, srv.Output())
		}
		srv = e.start(lab.Server2, "/usr/bin/python3", filepath.Join(e.dir, "tcpserver.py"), "9001")
		out, err = e.run(60*time.Second, lab.Lan2, "/usr/bin/python3", filepath.Join(e.dir, "tcpclient.py"), lab.Srv2, "9001", "1000000")
		if f := strings.Fields(out); err != nil || len(f) != 2 || f[1] != "1000000" {
			t.Fatalf("tcp: %v %q\nserver: %s", err, out, srv.Output())
		}
	})
	t.Run("kernel fenced off", func(t *testing.T) {
		// Unsolicited TCP to the WAN address: the kernel would answer
		// RST ("refused"); fenced off, nothing answers.
		out, err := e.run(20*time.Second, lab.Server2, "/usr/bin/python3", "-c", `
import socket
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("203.0.113.1", 22)); print("connected")
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
`)
		if err != nil || strings.TrimSpace(out) != "timeout" {
			t.Fatalf("unsolicited connect: %q %v", out, err)
		}
	})

	// With AF_PACKET and the tc offload, the IPv4 frames passgate
	// handles on the WAN side are marked another host's by the tc
	// program, so the kernel's IP layer drops them before the fence's
	// prerouting hook: its drop counter stays near 0 (what it still
	// counts is IPv4 the program does not mark, not addressed to this
	// host alone: an IGMP report, 40 bytes, in some runs), where before
	// it counted every one of them (61 in a run).
	t.Run("missed frames dropped before the fence", func(t *testing.T) {
		out, err := e.run(10*time.Second, lab.Router, "nft", "list", "chain", "ip", "passgate", "wan_ingress")
		if labtest.Driver() == "afxdp" {
			// AF_XDP takes every frame before the kernel's IP layer: no
			// nft fence, so nothing to mark.
			if err == nil {
				t.Errorf("an nft ip fence with AF_XDP:\n%s", out)
			}
			return
		}
		if err != nil {
			t.Fatalf("no ip fence (driver %s): %v", labtest.Driver(), err)
		}
		var n, bytes int
		if i := strings.Index(out, "counter packets "); i < 0 {
			t.Fatalf("no counter in\n%s", out)
		} else if _, err := fmt.Sscanf(out[i:], "counter packets %d bytes %d", &n, &bytes); err != nil {
			t.Fatalf("%v in\n%s", err, out)
		}
		t.Logf("WAN fence drops: %d packets (offload %v)", n, labtest.Offload())
		if labtest.Offload() && n > 5 {
			t.Errorf("the fence dropped %d packets on the WAN side: the tc program did not mark them\n%s", n, out)
		}
	})

	// SIGTERM: clean exit, fence removed.
	if err := rtr.Terminate(15 * time.Second); err != nil {
		t.Fatalf("router exit: %v\n%s", err, logs)
	}
	out, err := e.run(10*time.Second, lab.Router, "nft", "list", "tables")
	if err != nil || strings.Contains(out, "passgate") {
		t.Fatalf("fence left behind: %v\n%s", err, out)
	}
}

const udpEcho = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(4096)
    s.sendto(("%s:%d " % a).encode() + d, a)
`

const udpClient = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[3])))
s.settimeout(0.5)
for i in range(20):
    s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
    try:
        d, a = s.recvfrom(4096)
        print(d.decode())
        sys.exit(0)
    except socket.timeout:
        pass
sys.exit("no answer")
`

const tcpServer = `
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
while True:
    c, a = s.accept()
    c.sendall(("%s:%d\n" % a).encode())
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.sendall(("%d\n" % n).encode())
    c.close()
`

const tcpClient = `
import socket, sys, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(20):
    try:
        c = socket.create_connection((host, port), timeout=5)
        break
    except (ConnectionRefusedError, socket.timeout):
        time.sleep(0.3)
else:
    sys.exit("cannot connect")
c.settimeout(20)
f = c.makefile("rb")
print(f.readline().decode().strip())
chunk = bytes(range(256)) * 256
sent = 0
while sent < size:
    n = min(len(chunk), size - sent)
    c.sendall(chunk[:n])
    sent += n
c.shutdown(socket.SHUT_WR)
print(f.readline().decode().strip())
`
