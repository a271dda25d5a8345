//go:build lab

package lab_test

// Integration tests: the real passgate daemon in the router namespace of a
// lab (prefix pgit), real traffic from the LAN hosts to the servers.
//
// The daemon contract they rely on:
//
//	passgate run --lan lan0 --lan-addr 192.168.50.1/24 --wan wan0 --wan-addr 203.0.113.1/24 \
//	    --config FILE --control SOCKET        (stops on SIGTERM)
//	passgate status    --control SOCKET        (exit 0 once the daemon serves)
//	passgate conntrack --control SOCKET --json (the live flow table)
//
// `conntrack --json` prints a JSON array of flows, decoded into
// control.Flow. A flow "mentions" a port when its inside, outside or remote
// endpoint has it.
//
// The tests run in file order and share one lab and one daemon;
// TestNATFlowTableEmpties comes last. They never skip: without root, or
// without a daemon that builds and starts, they fail.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/control"
	. "passgate/lab"
	"passgate/lab/labtest"
)

const itPrefix = "pgit"

// Ports of the servers shared by the integration tests.
const (
	httpPort       = 80   // srv1 and lan1 http.server
	udpEchoPort    = 7    // srv1
	udpReflectPort = 9000 // srv1 and srv2
	tcpReflectPort = 9001 // srv1
	iperfPort0     = 5201 // srv1: 5201, 5202, 5203 for lan1, lan2, lan3
	forwardPort    = 8080 // router WAN tcp 8080 -> lan1:80
)

var (
	pgBin string // passgate, built by labtest
	itTmp string // a directory for the whole package run

	itOnce  sync.Once
	itReady bool
	itLab   *Lab
	itSock  string
	itPG    *labtest.Gate // the daemon
	itProcs labtest.Group // servers shared by the tests
	itBlob  webRoot       // srv1's file
	itWeb1  *labtest.Proc // srv1's http.server, whose log names each client
	itMark  string        // lan1's marker page
)

func TestMain(m *testing.M) { labtest.Main(m, teardownIntegration) }

func teardownIntegration() {
	if itPG != nil {
		itPG.Stop()
	}
	itProcs.StopAll()
	if itLab != nil {
		if err := itLab.Down(); err != nil {
			fmt.Fprintln(os.Stderr, "integration lab down:", err)
		}
	}
}

// integration returns the shared lab with passgate running, setting both up
// on first use. Any test that finds the daemon dead fails with its log.
func integration(t *testing.T) *Lab {
	t.Helper()
	itOnce.Do(func() { setupIntegration(t) })
	if !itReady {
		t.Fatal("integration setup failed (see the first integration test's output)")
	}
	if itPG.Proc.Exited() {
		t.Fatalf("passgate exited: %v\n%s", itPG.Proc.Err(), daemonLog())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("passgate log (tail):\n%s", daemonLog())
		}
	})
	return itLab
}

func daemonLog() string {
	if itPG == nil {
		return ""
	}
	return itPG.Proc.Tail(4000)
}

// shared starts a server for the whole package run.
func shared(t *testing.T, l *Lab, node, name string, args ...string) *labtest.Proc {
	t.Helper()
	p, err := labtest.Start(l, node, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return itProcs.Add(p)
}

// itConfig is the daemon's configuration for the tests.
func itConfig() string {
	return fmt.Sprintf(`{
  "lan": {"interface": "lan0", "address": "192.168.50.1/24"},
  "wan": {"interface": "wan0", "address": "203.0.113.1/24"},
  "nat": {
    "filtering": "address-dependent",
    "allow_short_timeouts": true,
    "timeouts": {"udp": "5s", "tcp_established": "30s", "tcp_transitory": "5s", "tcp_closed": "5s", "icmp": "5s"}
  },
  "port_forwards": [
    {"name": "web", "proto": "tcp", "outside_port": "%d", "host": "%s", "inside_port": %d}
  ],
  "dmz": "",
  "control_socket": %q
}
`, forwardPort, LAN1, httpPort, itSock)
}

func setupIntegration(t *testing.T) {
	pgBin = labtest.Passgate(t)
	itTmp = filepath.Join(labtest.Dir(), "integration")
	if err := os.Mkdir(itTmp, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := Up(ctx, itPrefix)
	if err != nil {
		t.Fatal(err)
	}
	itLab = l

	// Servers. Their files live in itTmp: a test's TempDir would vanish
	// with the first test.
	itBlob, err = makeWebRoot(filepath.Join(itTmp, "srv1-web"), "blob", 2<<20, 42)
	if err != nil {
		t.Fatal(err)
	}
	lan1Web := filepath.Join(itTmp, "lan1-web")
	itMark = fmt.Sprintf("lan1 port-forward marker %d\n", rand.Int64())
	if err := os.MkdirAll(lan1Web, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lan1Web, "marker"), []byte(itMark), 0o644); err != nil {
		t.Fatal(err)
	}
	itWeb1 = shared(t, l, Server1, Python, "-m", "http.server", "--bind", Srv1, "--directory", itBlob.dir, strconv.Itoa(httpPort))
	lan1Srv := shared(t, l, Lan1, Python, "-m", "http.server", "--bind", LAN1, "--directory", lan1Web, strconv.Itoa(httpPort))
	tool := nettool(t)
	for _, s := range []struct {
		node string
		args []string
	}{
		{Server1, []string{tool, "udp-echo", Srv1, strconv.Itoa(udpEchoPort)}},
		{Server1, []string{tool, "udp-reflect", Srv1, strconv.Itoa(udpReflectPort)}},
		{Server2, []string{tool, "udp-reflect", Srv2, strconv.Itoa(udpReflectPort)}},
		{Server1, []string{tool, "tcp-reflect", Srv1, strconv.Itoa(tcpReflectPort)}},
	} {
		must(t, shared(t, l, s.node, Python, s.args...).WaitLine("ready", 10*time.Second))
	}
	// A server that exits fails the wait at once, with its output.
	must(t, labtest.WaitListen(l, Server1, "tcp", Srv1, httpPort, 10*time.Second, itWeb1))
	must(t, labtest.WaitListen(l, Lan1, "tcp", LAN1, httpPort, 10*time.Second, lan1Srv))

	// The daemon.
	itSock = filepath.Join(itTmp, "passgate.sock")
	pg, err := labtest.StartGate(ctx, l, labtest.GateOptions{
		Bin: pgBin, Dir: itTmp, Config: itConfig(), Sock: itSock,
		Args: []string{"--lan", LANIface, "--lan-addr", LANCIDR, "--wan", WANIface, "--wan-addr", WANCIDR},
	})
	if err != nil {
		t.Fatal(err)
	}
	itPG = pg
	itReady = true
}

// flowTable reads `passgate conntrack --json` and returns the flows.
func flowTable(t *testing.T, l *Lab) []control.Flow {
	t.Helper()
	raw := stdoutOf(t, l, 10*time.Second, Router, pgBin, "conntrack", "--control", itSock, "--json")
	var flows []control.Flow
	if err := json.Unmarshal([]byte(raw), &flows); err != nil {
		t.Fatalf("passgate conntrack --json: %v\n%s", err, raw)
	}
	return flows
}

// mentionsPort reports whether a flow's inside, outside or remote endpoint
// has the port. Counters that happen to equal it do not count.
func mentionsPort(flows []control.Flow, port int) bool {
	for _, f := range flows {
		for _, ap := range []netip.AddrPort{f.Inside, f.Outside, f.Remote} {
			if int(ap.Port()) == port {
				return true
			}
		}
	}
	return false
}

func TestMentionsPort(t *testing.T) {
	for _, c := range []struct {
		in   string
		port int
		has  bool
	}{
		{`[]`, 1, false},
		{`[{"proto": "udp", "inside": "192.168.50.10:41000", "outside": "203.0.113.1:41000", "remote": "203.0.113.10:7", "packets_out": 4002}]`, 4002, false},
		{`[{"proto": "udp", "inside": "192.168.50.10:41000", "outside": "203.0.113.1:4003", "remote": "203.0.113.10:7"}]`, 4003, true},
		{`[{"proto": "tcp", "inside": "192.168.50.10:4004", "outside": "203.0.113.1:41000", "remote": "203.0.113.10:80"}]`, 4004, true},
		{`[{"proto": "tcp", "inside": "192.168.50.10:41000", "outside": "203.0.113.1:41000", "remote": "203.0.113.10:4005"}]`, 4005, true},
	} {
		var flows []control.Flow
		if err := json.Unmarshal([]byte(c.in), &flows); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := mentionsPort(flows, c.port); got != c.has {
			t.Errorf("mentionsPort(%s, %d) = %v, want %v", c.in, c.port, got, c.has)
		}
	}
}

// TestNATConcurrentTraffic: all three LAN hosts at once download a file,
// run iperf3, echo UDP and ping through passgate: twelve activities started
// together (goroutines, not t.Parallel, which -parallel would throttle).
func TestNATConcurrentTraffic(t *testing.T) {
	l := integration(t)

	// One iperf3 server per host: an iperf3 server serves one test at a time.
	servers := make([]*labtest.Proc, len(LANHosts))
	for i := range LANHosts {
		port := iperfPort0 + i
		servers[i] = labtest.StartT(t, l, Server1, "iperf3", "-s", "-1", "-B", Srv1, "-p", strconv.Itoa(port), "-J")
		must(t, labtest.WaitListen(l, Server1, "tcp", Srv1, port, 10*time.Second, nil))
	}

	type activity struct {
		name string
		fn   func() error
	}
	var acts []activity
	for i, h := range LANHosts {
		iperfPort := iperfPort0 + i
		acts = append(acts,
			activity{h.Node + " curl", func() error {
				body, err := tryCurl(l, h.Node, fmt.Sprintf("http://%s:%d/%s", Srv1, httpPort, itBlob.name))
				if err != nil {
					return err
				}
				return itBlob.check(h.Node+" curl srv1", body)
			}},
			activity{h.Node + " iperf3", func() error {
				_, err := labtest.Run(l, 40*time.Second, h.Node, "iperf3", "-c", Srv1, "-p", strconv.Itoa(iperfPort), "-t", "3", "--connect-timeout", "5000", "-J")
				return err
			}},
			activity{h.Node + " udp-echo", func() error {
				for _, size := range []int{1, 64, 512, 1400, 1472} {
					payload := randomHex(size)
					var res struct {
						Reply *string `json:"reply"`
					}
					if err := tryNettoolJSON(l, 20*time.Second, h.Node, &res, "udp-send", Srv1, strconv.Itoa(udpEchoPort), payload, "2"); err != nil {
						return err
					}
					if res.Reply == nil {
						return fmt.Errorf("udp echo of %d bytes: no reply", size)
					}
					if *res.Reply != payload {
						return fmt.Errorf("udp echo of %d bytes: reply differs (%d bytes back)", size, len(*res.Reply)/2)
					}
				}
				return nil
			}},
			activity{h.Node + " ping", func() error {
				// Under three iperf3 runs a reply can take long: wait
				// for it (labtest.PingArgs) rather than count it lost.
				out, _ := labtest.Run(l, 30*time.Second, h.Node, "ping", labtest.PingArgs(5, Srv1, 20*time.Second)...)
				if n := labtest.PingAnswered(out, Srv1, 5); n < 4 {
					return fmt.Errorf("ping srv1: %d of 5 echoes answered by %s\n%s", n, Srv1, out)
				}
				return nil
			}},
		)
	}
	errs := make([]error, len(acts))
	took := make([]time.Duration, len(acts))
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for i, a := range acts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			t0 := time.Now()
			errs[i] = a.fn()
			took[i] = time.Since(t0)
		}()
	}
	close(begin)
	wg.Wait()
	for i, a := range acts {
		if errs[i] != nil {
			t.Errorf("%s: %v", a.name, errs[i])
		} else {
			t.Logf("%s: ok in %v", a.name, took[i].Round(time.Millisecond))
		}
	}

	for i, h := range LANHosts {
		srv := servers[i]
		must(t, srv.Wait(20*time.Second))
		var res struct {
			Start struct {
				Connected []struct {
					RemoteHost string `json:"remote_host"`
				} `json:"connected"`
			} `json:"start"`
			End struct {
				SumReceived struct {
					Bytes int64 `json:"bytes"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(srv.Stdout.String()), &res); err != nil {
			t.Errorf("%s iperf3 server JSON: %v\n%s", h.Node, err, srv.Stdout.String())
			continue
		}
		if res.End.SumReceived.Bytes <= 0 {
			t.Errorf("%s iperf3: server received %d bytes", h.Node, res.End.SumReceived.Bytes)
		}
		if len(res.Start.Connected) == 0 {
			t.Errorf("%s iperf3: server saw no connection", h.Node)
		}
		for _, c := range res.Start.Connected {
			if c.RemoteHost != WANAddr {
				t.Errorf("%s iperf3: server saw client %s, want %s", h.Node, c.RemoteHost, WANAddr)
			}
		}
		t.Logf("%s iperf3: server received %d bytes in 3 s", h.Node, res.End.SumReceived.Bytes)
	}

	// The bulk of it took the engine's fast path (the workers in parallel
	// under its read lock) or, with flow offload, the kernel without
	// passgate: only what opens, closes or needs a helper takes the write
	// lock.
	var st control.Status
	raw := stdoutOf(t, l, 10*time.Second, Router, pgBin, "status", "--control", itSock, "--json")
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("passgate status --json: %v\n%s", err, raw)
	}
	off := st.Dataplane["offload_packets"]
	fast, all := st.Dataplane["forwarded_fast_path"]+off, st.Dataplane["forwarded"]+off
	if all == 0 || fast*10 < all*9 {
		t.Errorf("fast path and offload took %d of %d forwarded frames, want at least 90%%", fast, all)
	}
	t.Logf("fast path and offload: %d of %d forwarded frames (%d offloaded)", fast, all, off)
}

// TestNATTraceroute: hop 1 is the router's LAN address (passgate sends
// time-exceeded), hop 2 the server (its port-unreachable translated back).
func TestNATTraceroute(t *testing.T) {
	l := integration(t)
	// -w 5,0,0: wait up to 5 s for each probe, and never less because
	// another probe was answered quickly (traceroute's default shortens a
	// hop's wait to 10 times a later hop's round trip, a few ms here).
	out := labtest.RunT(t, l, 60*time.Second, Lan2, "traceroute", "-n", "-q1", "-m3", "-w", "5,0,0", Srv2)
	hops := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hops[n] = f[1]
			}
		}
	}
	if hops[1] != LANGateway || hops[2] != Srv2 {
		t.Errorf("traceroute lan2 -> srv2: hop 1 %q (want %s), hop 2 %q (want %s)\n%s", hops[1], LANGateway, hops[2], Srv2, out)
	}
	if _, ok := hops[3]; ok && hops[2] == Srv2 {
		t.Errorf("traceroute went on past the destination:\n%s", out)
	}
}

// TestNATPortForward: srv2 reaches lan1's web server through WAN tcp 8080.
func TestNATPortForward(t *testing.T) {
	l := integration(t)
	body := curlBody(t, l, Server2, fmt.Sprintf("http://%s:%d/marker", WANAddr, forwardPort))
	if string(body) != itMark {
		t.Errorf("srv2 -> %s:%d got %q, want lan1's marker %q", WANAddr, forwardPort, body, itMark)
	}
}

// TestNATHairpin: lan3 reaches lan1's web server through the router's WAN
// address and the port forward.
func TestNATHairpin(t *testing.T) {
	l := integration(t)
	body := curlBody(t, l, Lan3, fmt.Sprintf("http://%s:%d/marker", WANAddr, forwardPort))
	if string(body) != itMark {
		t.Errorf("lan3 -> %s:%d (hairpin) got %q, want lan1's marker %q", WANAddr, forwardPort, body, itMark)
	}
}

// TestNATUnsolicitedInbound: UDP and TCP from srv1 to an unmapped port of the
// router reach no LAN host and create no flow.
func TestNATUnsolicitedInbound(t *testing.T) {
	l := integration(t)
	// Below the LAN hosts' ephemeral range (32768-60999), so no mapping that
	// preserved a host's source port can hold it.
	var port int
	for tries := 0; ; tries++ {
		port = 20000 + rand.IntN(10000)
		if !mentionsPort(flowTable(t, l), port) {
			break
		}
		if tries > 20 {
			t.Fatal("no free port found")
		}
	}
	var listeners []*labtest.Proc
	for _, h := range LANHosts {
		// Long enough to outlast the probes below (up to 3 s of UDP, 2 s
		// of TCP) even when the listeners and tools start slowly.
		p := labtest.StartT(t, l, h.Node, Python, nettool(t), "listen", strconv.Itoa(port), "12")
		must(t, p.WaitLine("ready", 10*time.Second))
		listeners = append(listeners, p)
	}
	var udp struct {
		Reply *string `json:"reply"`
	}
	nettoolJSON(t, l, 20*time.Second, Server1, &udp, "udp-send", WANAddr, strconv.Itoa(port), randomHex(32), "1")
	if udp.Reply != nil {
		t.Errorf("srv1 UDP to %s:%d got an answer %q", WANAddr, port, *udp.Reply)
	}
	var tcp struct {
		Result string `json:"result"`
	}
	nettoolJSON(t, l, 20*time.Second, Server1, &tcp, "tcp-connect", WANAddr, strconv.Itoa(port), "2")
	if tcp.Result == "connected" {
		t.Errorf("srv1 TCP connect to %s:%d succeeded", WANAddr, port)
	}
	if flows := flowTable(t, l); mentionsPort(flows, port) {
		t.Errorf("flow table holds an entry for unsolicited port %d: %v", port, flows)
	}
	for i, p := range listeners {
		must(t, p.Wait(25*time.Second))
		var got struct {
			UDP []string `json:"udp"`
			TCP []string `json:"tcp"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(p.Stdout.String(), "ready\n")), &got); err != nil {
			t.Fatalf("%s listener: %v\n%s", LANHosts[i].Node, err, p.Stdout.String())
		}
		if len(got.UDP)+len(got.TCP) > 0 {
			t.Errorf("%s received unsolicited traffic on port %d: udp %v tcp %v", LANHosts[i].Node, port, got.UDP, got.TCP)
		}
	}
}

// TestNATEndpointIndependentMapping: one UDP socket on lan1 talking to two
// servers is seen by both from the same public address and port.
func TestNATEndpointIndependentMapping(t *testing.T) {
	l := integration(t)
	var res struct {
		Local []any              `json:"local"`
		Seen  map[string]*string `json:"seen"`
	}
	nettoolJSON(t, l, 20*time.Second, Lan1, &res, "udp-eim", strconv.Itoa(udpReflectPort), Srv1, Srv2)
	s1, s2 := res.Seen[Srv1], res.Seen[Srv2]
	if s1 == nil || s2 == nil {
		t.Fatalf("no reflection from a server: %+v", res)
	}
	f1, f2 := strings.Fields(*s1), strings.Fields(*s2)
	if len(f1) != 2 || len(f2) != 2 {
		t.Fatalf("bad reflections %q %q", *s1, *s2)
	}
	if f1[0] != WANAddr || f2[0] != WANAddr {
		t.Errorf("servers saw %s and %s, want %s", f1[0], f2[0], WANAddr)
	}
	if f1[1] != f2[1] {
		t.Errorf("mapping depends on the destination: srv1 saw port %s, srv2 saw port %s", f1[1], f2[1])
	}
	if len(res.Local) == 2 && fmt.Sprint(res.Local[1]) != f1[1] {
		t.Logf("source port %v not preserved (mapped to %s)", res.Local[1], f1[1])
	}
}

// TestNATSourceAddress: whatever the protocol and LAN host, servers see
// 203.0.113.1.
func TestNATSourceAddress(t *testing.T) {
	l := integration(t)
	dump := labtest.StartT(t, l, Server1, "tcpdump", "-l", "-n", "-i", HostIface, "-c", "6", "icmp[icmptype] == icmp-echo")
	must(t, dump.WaitFor(10*time.Second, `"listening on" on stderr`, func() bool { return strings.Contains(dump.Stderr.String(), "listening on") }))
	for _, h := range LANHosts {
		var u struct {
			Reply *string `json:"reply"`
		}
		nettoolJSON(t, l, 20*time.Second, h.Node, &u, "udp-send", Srv1, strconv.Itoa(udpReflectPort), "00", "2")
		if u.Reply == nil {
			t.Errorf("%s: no UDP reflection", h.Node)
		} else if b, _ := decodeHex(*u.Reply); !strings.HasPrefix(string(b), WANAddr+" ") {
			t.Errorf("%s: srv1 saw UDP from %q, want %s", h.Node, b, WANAddr)
		}
		var tc struct {
			Data string `json:"data"`
		}
		nettoolJSON(t, l, 20*time.Second, h.Node, &tc, "tcp-read", Srv1, strconv.Itoa(tcpReflectPort))
		if !strings.HasPrefix(tc.Data, WANAddr+" ") {
			t.Errorf("%s: srv1 saw TCP from %q, want %s", h.Node, tc.Data, WANAddr)
		}
		if out, _ := labtest.Run(l, 20*time.Second, h.Node, "ping", labtest.PingArgs(2, Srv1, 10*time.Second)...); labtest.PingAnswered(out, Srv1, 2) != 2 {
			t.Errorf("%s: ping srv1:\n%s", h.Node, out)
		}
	}
	must(t, dump.Wait(15*time.Second))
	n := 0
	for _, line := range strings.Split(dump.Stdout.String(), "\n") {
		if !strings.Contains(line, "ICMP echo request") {
			continue
		}
		n++
		if !strings.Contains(line, " IP "+WANAddr+" > "+Srv1+": ") {
			t.Errorf("srv1 saw an echo request not from %s: %s", WANAddr, line)
		}
	}
	if n != 6 {
		t.Errorf("srv1 saw %d echo requests, want 6:\n%s", n, dump.Stdout.String())
	}
	// Every HTTP request srv1 served so far, from every test.
	gets := 0
	for _, line := range strings.Split(itWeb1.Stderr.String(), "\n") {
		if !strings.Contains(line, `"GET `) {
			continue
		}
		gets++
		if !strings.HasPrefix(line, WANAddr+" - - ") {
			t.Errorf("srv1's web server saw a client other than %s: %s", WANAddr, line)
		}
	}
	if gets == 0 {
		t.Errorf("srv1's web server logged no request (run with TestNATConcurrentTraffic)")
	}
}

func decodeHex(s string) ([]byte, error) { return hex.DecodeString(s) }

// TestNATFlowTableEmpties: after traffic, every flow leaves the table once
// its timeout (5 s here, 30 s for established TCP) has passed. Keep it last.
func TestNATFlowTableEmpties(t *testing.T) {
	l := integration(t)
	if out, _ := labtest.Run(l, 20*time.Second, Lan1, "ping", labtest.PingArgs(2, Srv2, 10*time.Second)...); labtest.PingAnswered(out, Srv2, 2) != 2 {
		t.Errorf("lan1 ping srv2:\n%s", out)
	}
	var u struct {
		Reply *string `json:"reply"`
	}
	nettoolJSON(t, l, 20*time.Second, Lan2, &u, "udp-send", Srv1, strconv.Itoa(udpEchoPort), "abcd", "2")
	if u.Reply == nil || *u.Reply != "abcd" {
		t.Errorf("lan2 udp echo: %v", u.Reply)
	}
	checkBody(t, "lan3 curl srv1", curlBody(t, l, Lan3, fmt.Sprintf("http://%s:%d/%s", Srv1, httpPort, itBlob.name)), itBlob)
	if flows := flowTable(t, l); len(flows) == 0 {
		t.Fatal("flow table empty right after traffic")
	} else {
		t.Logf("%d flows right after traffic", len(flows))
	}
	deadline := time.Now().Add(75 * time.Second)
	for {
		flows := flowTable(t, l)
		if len(flows) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow table not empty 75 s after the last traffic (timeouts 5 s, tcp established 30 s): %d flows\n%+v", len(flows), flows)
		}
		time.Sleep(time.Second)
	}
}
