//go:build lab

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

// The lab tests' TestMain is labtest.Main (root and lab/packages.txt, or
// the package fails); main_test.go's TestMain calls it.
func init() { labMain = func(m *testing.M) { labtest.Main(m) } }

// TestLabCLI runs `passgate run` in the lab's router namespace (this test
// binary re-executed as passgate) and reads it with status and conntrack
// over the control socket. Namespaces carry the prefix "pgrtc".
func TestLabCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := labtest.Up(t, "pgrtc", 3*time.Minute)

	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "pg.sock")
	echo := filepath.Join(dir, "echo.py")
	os.WriteFile(echo, []byte(pyServers), 0o644)

	exe, _ := os.Executable()
	// --workers on the command line overrides the file's 4.
	g := labtest.StartGateT(ctx, t, l, labtest.GateOptions{
		Bin: exe, Dir: dir, Name: "pg", Sock: sock, Env: []string{"PASSGATE_TEST_MAIN=1"}, Args: []string{"--workers", "1"},
		Config: `{
	  "lan":{"interface":"lan0","address":"192.168.50.1/24"},
	  "wan":{"interface":"wan0","address":"203.0.113.1/24"},
	  "nat":{"allow_short_timeouts":true,"timeouts":{"udp":"30s"}},
	  "port_forwards":[{"name":"web","proto":"tcp","outside_port":8080,"host":"192.168.50.10","inside_port":80}],
	  "workers":4
	}`,
	})
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("passgate log:\n%s", g.Log())
		}
	}()
	st, err := g.Status(ctx)
	if err != nil {
		t.Fatalf("passgate not answering: %v\n%s", err, g.Log())
	}
	// AF_PACKET: one worker pair for IPv4, and per interface a worker
	// each for ARP, PPPoE discovery and PPPoE session, each worker with a
	// receive socket bound to its ethertype and two transmit sockets.
	// AF_XDP: one socket and worker per queue (veth: one) and an ARP
	// worker per interface, whatever --workers says.
	wantWorkers, wantSockets := 8, 24
	if st.Driver == "afxdp" {
		wantWorkers, wantSockets = 4, 4
	}
	if d := labtest.Driver(); d != "auto" && st.Driver != d {
		t.Errorf("driver %q, want %q", st.Driver, d)
	}
	if st.Workers != wantWorkers || len(st.Interfaces) != 2 || st.Interfaces[1].Name != "wan0" || len(st.Sockets) != wantSockets {
		t.Fatalf("status %+v", st)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", fi.Mode(), err)
	}

	run := func(node string, args ...string) string {
		t.Helper()
		return labtest.RunT(t, l, 30*time.Second, node, args[0], args[1:]...)
	}
	start := func(node string, args ...string) { labtest.StartT(t, l, node, args[0], args[1:]...) }

	// Outbound UDP, then the flow shows in conntrack.
	start(lab.Server1, "/usr/bin/python3", echo, "udp", "9000")
	if out := run(lab.Lan1, "/usr/bin/python3", echo, "udpclient", lab.Srv1, "9000", "41000"); strings.TrimSpace(out) != "203.0.113.1:41000" {
		t.Fatalf("udp echo %q", out)
	}
	// Port forward: the server reaches lan1's port 80 through 8080.
	start(lab.Lan1, "/usr/bin/python3", echo, "tcp", "80")
	if out := run(lab.Server2, "/usr/bin/python3", echo, "tcpclient", lab.WANAddr, "8080"); !strings.HasPrefix(strings.TrimSpace(out), lab.Srv2+":") {
		t.Fatalf("port forward: lan1 saw %q", out)
	}

	code, o, e := runCLI("conntrack", "--control", sock, "--proto", "udp")
	if code != 0 || !strings.Contains(o, "192.168.50.10:41000") || !strings.Contains(o, "203.0.113.10:9000") || !strings.Contains(o, "1 flows") {
		t.Fatalf("conntrack udp: %d\n%s%s", code, o, e)
	}
	code, o, e = runCLI("conntrack", "--control", sock, "--json", "--host", lab.Srv2)
	var flows []control.Flow
	if code != 0 || json.Unmarshal([]byte(o), &flows) != nil || len(flows) == 0 {
		t.Fatalf("conntrack json: %d %s %s", code, o, e)
	}
	// The client may have tried before lan1 listened (RST): one flow per try.
	for _, f := range flows {
		if f.Proto != "tcp" || f.Inside.String() != "192.168.50.10:80" || f.Outside.Port() != 8080 || f.Origin != "port-forward" {
			t.Fatalf("conntrack json: unexpected flow %+v", f)
		}
	}
	code, o, e = runCLI("status", "--control", sock)
	for _, want := range []string{"lan0", "wan0", "203.0.113.1/24", "SOCKETS", "lan -> wan"} {
		if code != 0 || !strings.Contains(o, want) {
			t.Fatalf("status lacks %q: %d\n%s%s", want, code, o, e)
		}
	}
	code, o, _ = runCLI("status", "--control", sock, "--json")
	if code != 0 || json.Unmarshal([]byte(o), &st) != nil || st.NAT.PacketsOut == 0 || st.NAT.PacketsIn == 0 || st.Dataplane["forwarded"] == 0 {
		t.Fatalf("status json: %s", o)
	}
	if st.Interfaces[0].ARP.Resolved == 0 || st.Interfaces[1].ARP.Resolved == 0 {
		t.Errorf("no neighbours resolved: %+v", st.Interfaces)
	}

	// A second instance refuses the same control socket, leaving the
	// first one alone.
	code, _, e = runCLI("run", "--lan", "lan0", "--lan-addr", "192.168.50.1/24", "--wan", "wan0", "--wan-addr", "203.0.113.1/24", "--control", sock)
	if code != 1 || !strings.Contains(e, "in use") {
		t.Fatalf("second instance: %d %s", code, e)
	}

	if err := g.Proc.Terminate(15 * time.Second); err != nil {
		t.Fatalf("passgate exit: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
	if out := run(lab.Router, "nft", "list", "tables"); strings.Contains(out, "passgate") {
		t.Errorf("nftables table left behind:\n%s", out)
	}
}

// pyServers: udp PORT | udpclient HOST PORT LOCALPORT | tcp PORT |
// tcpclient HOST PORT. Servers answer with the address they saw.
const pyServers = `
import socket, sys, time
mode = sys.argv[1]
if mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    while True:
        d, a = s.recvfrom(4096)
        s.sendto(("%s:%d" % a).encode(), a)
elif mode == "udpclient":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[4])))
    s.settimeout(0.5)
    for i in range(20):
        s.sendto(b"x", (sys.argv[2], int(sys.argv[3])))
        try:
            print(s.recvfrom(4096)[0].decode()); sys.exit(0)
        except socket.timeout:
            pass
    sys.exit("no answer")
elif mode == "tcp":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen(8)
    while True:
        c, a = s.accept()
        c.sendall(("%s:%d\n" % a).encode())
        c.close()
elif mode == "tcpclient":
    for i in range(30):
        try:
            c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=1)
            break
        except (ConnectionRefusedError, socket.timeout, OSError):
            time.sleep(0.3)
    else:
        sys.exit("cannot connect")
    print(c.makefile().readline().strip())
`
