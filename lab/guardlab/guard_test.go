//go:build lab

package guardlab

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

// The tests share one lab (prefix pggd, built on first use and removed in
// TestMain); each starts a passgate daemon of its own with the limits it
// needs. They never skip.
var shared = labtest.Shared{Prefix: "pggd"}

func TestMain(m *testing.M) { labtest.Main(m, shared.Down) }

func getLab(t *testing.T) *lab.Lab {
	t.Helper()
	labtest.Passgate(t) // built before the lab's clock starts
	return shared.Get(t)
}

func tool(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/guard.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// server starts one of guard.py's servers in node and waits for it.
func server(t *testing.T, l *lab.Lab, node string, args ...string) {
	t.Helper()
	p := labtest.StartT(t, l, node, lab.Python, append([]string{tool(t)}, args...)...)
	if err := p.WaitLine("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// run runs one of guard.py's clients in node and decodes its JSON answer
// (the last line of its output).
func run(t *testing.T, l *lab.Lab, d time.Duration, node string, v any, args ...string) {
	t.Helper()
	out, err := labtest.Stdout(l, d, node, lab.Python, append([]string{tool(t)}, args...)...)
	if err != nil {
		t.Fatalf("guard.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("guard.py %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// gate starts passgate with natJSON's fields in "nat" and extra top-level
// fields (`"name": value` each).
func gate(t *testing.T, l *lab.Lab, natJSON string, extra ...string) *labtest.Gate {
	t.Helper()
	return labtest.StartLabGateT(t, l, append([]string{`"nat": {` + natJSON + `}`}, extra...)...)
}

func status(t *testing.T, g *labtest.Gate) *control.Status {
	t.Helper()
	st, err := g.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestForgedSourceFlood: lan1 sends 4000 UDP datagrams from forged LAN
// addresses (150 of them, so each stays far below the per-host limit of
// 512) into a table of 2048; lan2 must still open 20 new flows and get
// their answers. Before flows were charged to the source MAC, the forged
// sources filled the table and lan2 got none.
func TestForgedSourceFlood(t *testing.T) {
	l := getLab(t)
	g := gate(t, l, `"max_flows": 2048, "max_flows_per_host": 512`)
	server(t, l, lab.Server1, "udp-echo", lab.Srv1, "9")
	var sent struct{ Sent int }
	run(t, l, time.Minute, lab.Lan1, &sent, "udp-forged", lab.Srv1, "9", "4000", "192.168.50")
	time.Sleep(time.Second) // the last of the flood through
	st := status(t, g)
	t.Logf("after %d forged datagrams: %d flows, drops %v, guards %v", sent.Sent, st.NAT.Flows, labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.NAT.Guards))
	var probe struct{ Answered int }
	run(t, l, time.Minute, lab.Lan2, &probe, "udp-probe", lab.Srv1, "9", "20")
	st = status(t, g)
	t.Logf("lan2: %d of 20 answered; %d flows, drops %v, guards %v", probe.Answered, st.NAT.Flows, labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.NAT.Guards))
	if probe.Answered < 19 {
		t.Fatalf("lan2 got %d of 20 answers while lan1 flooded with forged sources", probe.Answered)
	}
	if st.NAT.Flows > 512+20 {
		t.Fatalf("%d flows: the forging host holds more than its share of 512", st.NAT.Flows)
	}
	if st.NAT.Drops["mac_limit"]+st.NAT.Guards["early_drop_mac_share"] == 0 {
		t.Fatalf("the flood met no per-MAC limit: drops %v, guards %v", labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.NAT.Guards))
	}
}

// TestSynFloodForwardedPort: srv1 sends 2000 SYNs from forged WAN
// addresses to a port forwarded to lan1, whose own share is 256 flows;
// lan1 must still connect out, and srv2 still connect in. Before inbound
// flows had their rule's share, the half-open flood was charged to lan1
// and locked it out both ways.
func TestSynFloodForwardedPort(t *testing.T) {
	l := getLab(t)
	g := gate(t, l, `"max_flows": 4096, "max_flows_per_host": 256`,
		fmt.Sprintf(`"port_forwards": [{"name": "web", "proto": "tcp", "outside_port": 8080, "host": %q, "inside_port": 8080}]`, lab.LAN1))
	server(t, l, lab.Lan1, "tcp-echo", "0.0.0.0", "8080")
	server(t, l, lab.Server1, "tcp-echo", lab.Srv1, "80")
	var sent struct{ Sent int }
	run(t, l, time.Minute, lab.Server1, &sent, "syn-flood", lab.WANAddr, "8080", "2000", "203.0.113")
	time.Sleep(time.Second)
	st := status(t, g)
	t.Logf("after %d SYNs: %d flows, drops %v, guards %v", sent.Sent, st.NAT.Flows, labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.NAT.Guards))
	var out, in struct {
		Connected int
		Errors    []string
	}
	run(t, l, time.Minute, lab.Lan1, &out, "tcp-probe", lab.Srv1, "80", "10", "3")
	run(t, l, time.Minute, lab.Server2, &in, "tcp-probe", lab.WANAddr, "8080", "5", "3")
	st = status(t, g)
	t.Logf("lan1 out: %d of 10 %v; srv2 in: %d of 5 %v; drops %v, guards %v", out.Connected, out.Errors, in.Connected, in.Errors, labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.NAT.Guards))
	if out.Connected < 10 {
		t.Fatalf("lan1 connected out %d of 10 times under a SYN flood to its forwarded port: %v", out.Connected, out.Errors)
	}
	if in.Connected < 4 {
		t.Fatalf("srv2 connected in %d of 5 times under the flood: %v", in.Connected, in.Errors)
	}
	if st.NAT.Guards["early_drop_rule_share"] == 0 {
		t.Fatalf("no half-open flow was dropped early: guards %v", st.NAT.Guards)
	}
}

// TestBlindRST: while lan1 holds a TCP connection to srv1, srv1 sends an
// RST with a random sequence number to lan1's public port; the connection
// must still carry a line 14 s later, past the 10 s closed-TCP timeout.
// Before, that RST marked the flow closed and its next segment was dropped.
func TestBlindRST(t *testing.T) { blindRST(t, "rst") }

// TestBlindACKThenRST: the same with an ACK segment first, its sequence
// number and acknowledgement made up, and the RST at that sequence number.
// The connection is offloaded by then (on by default): the data plane,
// which recorded every segment's edges for the engine to judge the RST by
// (nat.Engine.OffloadResync), took the ACK's, so the RST was exact and
// ended the connection; it now records a segment only if its
// acknowledgement is near the last, as the engine learns.
func TestBlindACKThenRST(t *testing.T) { blindRST(t, "ack-rst") }

func blindRST(t *testing.T, attack string) {
	l := getLab(t)
	g := gate(t, l, "")
	server(t, l, lab.Server1, "tcp-echo", lab.Srv1, "7000")
	hold := labtest.StartT(t, l, lab.Lan1, lab.Python, tool(t), "tcp-hold", lab.Srv1, "7000", "14")
	var local int
	if err := hold.WaitFor(10*time.Second, "the first exchange", func() bool {
		for _, line := range strings.Split(hold.Output(), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "exchanged" {
				local, _ = strconv.Atoi(f[1])
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	flows, err := g.Flows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pub := 0
	for _, f := range flows {
		if f.Proto == "tcp" && f.Inside.Port() == uint16(local) {
			pub = int(f.Outside.Port())
		}
	}
	if pub == 0 {
		t.Fatalf("no flow for lan1's port %d: %+v", local, flows)
	}
	var rst struct{ Seq uint32 }
	run(t, l, 10*time.Second, lab.Server1, &rst, attack, lab.Srv1, "7000", lab.WANAddr, strconv.Itoa(pub))
	time.Sleep(500 * time.Millisecond)
	flows, _ = g.Flows(context.Background())
	for _, f := range flows {
		if f.Proto == "tcp" && f.Inside.Port() == uint16(local) {
			t.Logf("after the RST (seq %d): %s, expires in %.0f s", rst.Seq, f.State, f.ExpiresSec)
		}
	}
	if err := hold.Wait(40 * time.Second); err != nil {
		t.Fatalf("tcp-hold: %v\n%s", err, hold.Output())
	}
	lines := strings.Split(strings.TrimSpace(hold.Output()), "\n")
	var res struct{ Second string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("tcp-hold: %v\n%s", err, hold.Output())
	}
	st := status(t, g)
	t.Logf("second exchange: %s; drops %v, guards %v", res.Second, labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.NAT.Guards))
	if res.Second != "ok" {
		t.Fatalf("the connection did not survive a blind RST past the closed timeout: %s", res.Second)
	}
	if st.NAT.Guards["rst_out_of_window_passed"]+st.NAT.Guards["rst_in_window_passed"] == 0 {
		t.Fatalf("the RST was not counted: guards %v", st.NAT.Guards)
	}
}

// TestIPIDFragments: lan1 and lan2 each send srv1 one UDP datagram of
// 2400 bytes in three fragments, both with IP ID 4242, lan2's first
// fragment between lan1's first and the rest. Both reach srv1 from the
// one public address: without a new ID for each (RFC 7857 section 10),
// srv1's kernel took lan2's fragments for pieces of lan1's datagram and
// only lan1's arrived.
func TestIPIDFragments(t *testing.T) {
	l := getLab(t)
	g := gate(t, l, `"max_flows": 1024`)
	p := labtest.StartT(t, l, lab.Server1, lab.Python, tool(t), "udp-collect", lab.Srv1, "9000", "2", "10")
	if err := p.WaitLine("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	labtest.StartT(t, l, lab.Lan2, lab.Python, tool(t), "udp-frags", lab.LAN2, "5000", lab.Srv1, "9000", "4242", "b2", "2400", "0.5")
	var sent struct{ Sent int }
	run(t, l, 30*time.Second, lab.Lan1, &sent, "udp-frags", lab.LAN1, "5000", lab.Srv1, "9000", "4242", "a1", "2400", "0")
	if err := p.Wait(15 * time.Second); err != nil {
		t.Fatalf("udp-collect: %v\n%s", err, p.Output())
	}
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	var got struct{ Got []string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("udp-collect: %v: %s", err, p.Output())
	}
	st := status(t, g)
	t.Logf("lan1 sent %d fragments; srv1 got %v; drops %v", sent.Sent, got.Got, labtest.NonZero(st.NAT.Drops))
	if want := []string{"a1*2400", "b2*2400"}; strings.Join(got.Got, " ") != strings.Join(want, " ") {
		t.Fatalf("srv1 got %v, want %v (both datagrams whole)", got.Got, want)
	}
}

// TestBlindRSTAfterWithdrawal: lan1 holds an idle TCP connection to
// srv1, offloaded. Its packets do not go through passgate's neighbour
// table, so two minutes on lan1's entry is forgotten and the flow's
// offload withdrawn (it goes back once lan1 is resolved again). The
// engine took the flow's sequence numbers as unseen for as long as it
// had been offloaded, withdrawn or not: srv1's one RST with a random
// sequence number marked the idle connection closed (4 min, then its
// next segment dropped). Now the withdrawal hands the engine the edges
// the data plane saw, and the RST is out of the window.
func TestBlindRSTAfterWithdrawal(t *testing.T) {
	l := getLab(t)
	// The offload on whatever the pass's default (test.sh's second pass
	// turns it off): the fault is in handing an offloaded flow back.
	g := labtest.StartLabGateArgsT(t, l, []string{"--offload=true"}, `"nat": {}`)
	server(t, l, lab.Server1, "tcp-echo", lab.Srv1, "7001")
	hold := labtest.StartT(t, l, lab.Lan1, lab.Python, tool(t), "tcp-hold", lab.Srv1, "7001", "600")
	local := 0
	if err := hold.WaitFor(10*time.Second, "the first exchange", func() bool {
		for _, line := range strings.Split(hold.Output(), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "exchanged" {
				local, _ = strconv.Atoi(f[1])
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	flow := func() control.Flow {
		t.Helper()
		flows, err := g.Flows(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			if f.Proto == "tcp" && f.Inside.Port() == uint16(local) {
				return f
			}
		}
		t.Fatalf("no flow for lan1's port %d: %+v", local, flows)
		return control.Flow{}
	}
	pub := int(flow().Outside.Port())
	// Installed by the next sync, within some 10 ms of the exchange.
	st := status(t, g)
	for end := time.Now().Add(3 * time.Second); st.Dataplane["offload_flows"] == 0 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		st = status(t, g)
	}
	c0 := st.Dataplane
	if c0["offload_flows"] == 0 {
		t.Fatalf("the connection was not offloaded: %v", labtest.NonZero(c0))
	}
	deadline := time.Now().Add(200 * time.Second)
	for {
		st = status(t, g)
		if st.Dataplane["offload_removed"] > c0["offload_removed"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle connection's offload was not withdrawn in 200 s: %v", labtest.NonZero(st.Dataplane))
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("withdrawn: %v", labtest.NonZero(st.Dataplane))
	var rst struct{ Seq uint32 }
	run(t, l, 10*time.Second, lab.Server1, &rst, "rst", lab.Srv1, "7001", lab.WANAddr, strconv.Itoa(pub))
	time.Sleep(500 * time.Millisecond)
	f := flow()
	st = status(t, g)
	t.Logf("after the RST (seq %d): %s, expires in %.0f s; guards %v", rst.Seq, f.State, f.ExpiresSec, labtest.NonZero(st.NAT.Guards))
	if f.State != "established" || f.ExpiresSec < 3600 {
		t.Fatalf("a blind RST after the offload was withdrawn: %s, expires in %.0f s", f.State, f.ExpiresSec)
	}
	if st.NAT.Guards["rst_out_of_window_passed"]+st.NAT.Guards["rst_in_window_passed"] == 0 {
		t.Fatalf("the RST was not counted: guards %v", st.NAT.Guards)
	}
}
