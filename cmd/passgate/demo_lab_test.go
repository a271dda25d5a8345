//go:build lab

package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
	"passgate/lab/vpnpeer"
)

// The demo's lab tests run the built binary's `passgate demo` (without
// installing anything) and read what it printed. Prefixes: pgdmo (the whole
// demo) and pgdmi (interrupted).

// demoTestBinary is passgate for a demo test (labtest builds it once per
// package run).
func demoTestBinary(t *testing.T) string {
	t.Helper()
	return labtest.Passgate(t)
}

// demoLeftovers lists what a demo run with prefix left behind: its
// namespaces, and processes running the binary (passgate run, the pppd
// stand-ins) or any of pids.
func demoLeftovers(t *testing.T, prefix, bin string, pids []int) []string {
	t.Helper()
	var left []string
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, prefix+"-") {
			left = append(left, "namespace "+strings.Fields(line)[0])
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), bin) {
			left = append(left, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if !strings.Contains(string(b), ") Z ") { // a zombie is ended; init reaps it
				left = append(left, "pid "+strconv.Itoa(pid)+": "+string(b))
			}
		}
	}
	return left
}

// TestDemoVPN runs the whole demo: it succeeds in under a minute; two LAN
// hosts hold IPsec tunnels to srv1 at once, with distinct ESP SPI pairs
// that srv1 has too (swapped), distinct IKE initiator SPIs that passgate's
// flow table shows from the shared outside port 500, and pings answered
// through both; their raw ESP shows in passgate's table as two distinct SPI
// pairs, the inbound one what srv1 chose; lan3's PPTP call crosses with a call id pair in passgate's
// table; nothing is left behind.
func TestDemoVPN(t *testing.T) {
	bin := demoTestBinary(t)
	const prefix = "pgdmo"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, bin, "demo", "--prefix", prefix, "--no-install", "--iperf-seconds", "3").CombinedOutput()
	took := time.Since(t0)
	text := string(out)
	if err != nil {
		t.Fatalf("passgate demo: %v\n%s", err, text)
	}
	t.Logf("passgate demo took %v", took.Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("output:\n%s", text)
	}
	if took > time.Minute {
		t.Errorf("the demo took %v, want under a minute", took)
	}
	if !strings.Contains(text, "All done. Everything the demo started is gone.") {
		t.Errorf("no closing line:\n%s", text)
	}

	// ESP SPIs, with the NAT-T flow's outside port as srv1 sees it.
	esp := regexp.MustCompile(`holds │ (lan\d) (\S+): NAT-T outside port (\d+) \(srv1 sees (\d+)\), ESP spi out ([0-9a-f]{8}) in ([0-9a-f]{8})`)
	pairs := map[string]string{} // "out/in" -> host
	ports := map[string]string{}
	for _, m := range esp.FindAllStringSubmatch(text, -1) {
		host, pair := m[1], m[5]+"/"+m[6]
		if m[3] != m[4] {
			t.Errorf("%s: NAT-T outside port %s in passgate's table, srv1 sees %s", host, m[3], m[4])
		}
		if m[5] == m[6] {
			t.Errorf("%s: ESP SPIs out and in are both %s", host, m[5])
		}
		if other, dup := pairs[pair]; dup {
			t.Errorf("%s and %s hold the same ESP SPIs %s", host, other, pair)
		}
		if other, dup := ports[m[3]]; dup {
			t.Errorf("%s and %s share the NAT-T outside port %s", host, other, m[3])
		}
		pairs[pair], ports[m[3]] = host, host
	}
	hosts := map[string]bool{}
	for _, h := range pairs {
		hosts[h] = true
	}
	if len(pairs) != 2 || !hosts[lab.Lan1] || !hosts[lab.Lan2] {
		t.Errorf("want two ESP SPI pairs, one held by lan1 and one by lan2, got %v\n%s", pairs, text)
	}
	for _, h := range []string{lab.Lan1, lab.Lan2} {
		swapped := regexp.MustCompile(`srv1  │ sees ` + h + `\.passgate\.lab at ` + regexp.QuoteMeta(lab.WANAddr) + `:\d+ with the same SPIs, swapped`)
		if !swapped.MatchString(text) {
			t.Errorf("srv1 does not hold %s's SPIs, swapped, from %s", h, lab.WANAddr)
		}
		ping := regexp.MustCompile(`✓ ` + h + `: (\d+)/(\d+) pings to ` + regexp.QuoteMeta(vpnpeer.InnerServer) + ` answered through its tunnel`)
		if m := ping.FindStringSubmatch(text); m == nil || m[1] != m[2] || m[1] == "0" {
			t.Errorf("%s: no pings answered through its tunnel (%v)", h, m)
		}
	}

	// Raw ESP: passgate's own ESP flows, one per host, with the SPI the
	// host sent and the one srv1 chose for its answers.
	raw := regexp.MustCompile(`holds │ (lan\d) \S+: raw ESP to ` + regexp.QuoteMeta(lab.Srv1) + `, ESP spi out ([0-9a-f]{8}) in ([0-9a-f]{8}) \(srv1 chose ([0-9a-f]{8})\)`)
	raws := raw.FindAllStringSubmatch(text, -1)
	if len(raws) != 2 || raws[0][1] == raws[1][1] || raws[0][2] == raws[1][2] || raws[0][3] == raws[1][3] {
		t.Errorf("want two hosts with their own raw ESP SPI pairs in passgate's table, got %v", raws)
	}
	for _, m := range raws {
		if m[3] != m[4] || m[2] == m[3] {
			t.Errorf("%s: passgate's inbound SPI %s, srv1 chose %s (outbound %s)", m[1], m[3], m[4], m[2])
		}
	}

	// IKE: one initiator SPI per host, passgate's and charon's alike, both
	// from outside port 500.
	ike := regexp.MustCompile(`holds │ (lan\d) \S+: IPsec to ` + regexp.QuoteMeta(lab.Srv1) + `, IKE initiator SPI ([0-9a-f]{16}) \(= its charon's\) on outside port 500;`)
	ikes := ike.FindAllStringSubmatch(text, -1)
	if len(ikes) != 2 || ikes[0][1] == ikes[1][1] || ikes[0][2] == ikes[1][2] {
		t.Errorf("want two hosts with their own IKE initiator SPIs from outside port 500, got %v", ikes)
	}

	// PPTP: lan3's call, with the call ids passgate's GRE flow has.
	call := regexp.MustCompile(`holds │ lan3 \S+: PPTP call to ` + regexp.QuoteMeta(lab.Srv1) + `, call id (\d+) inside -> (\d+) outside, server's call id (\d+)`)
	if m := call.FindStringSubmatch(text); m == nil {
		t.Errorf("no PPTP call held by lan3 in passgate's table")
	} else {
		t.Logf("lan3's PPTP call: id %s inside, %s outside, server's %s", m[1], m[2], m[3])
	}
	if !regexp.MustCompile(`✓ lan3's call is up in \S+: srv1's end srv1-\d+ received \d+ of its frames, lan3 got \d+ echoes back`).MatchString(text) {
		t.Errorf("lan3's PPP frames did not cross both ways")
	}
	if left := demoLeftovers(t, prefix, bin, nil); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestDemoInterrupted stops the demo with SIGINT (Ctrl-C) while the VPN
// ends run: it exits 0 saying so, every process that ran in the lab's
// namespaces has ended, and the namespaces are gone.
func TestDemoInterrupted(t *testing.T) {
	bin := demoTestBinary(t)
	const prefix = "pgdmi"
	cmd := exec.Command(bin, "demo", "--prefix", prefix, "--no-install", "--iperf-seconds", "1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	sc := bufio.NewScanner(stdout)
	var pids []int
	for sc.Scan() {
		text.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "✓ lan3's call is up") {
			// Everything runs: the tunnels, the call, passgate. Note
			// every process in the lab, then interrupt.
			for _, node := range lab.Nodes {
				out, _ := exec.Command("ip", "netns", "pids", prefix+"-"+node).Output()
				for _, f := range strings.Fields(string(out)) {
					if pid, err := strconv.Atoi(f); err == nil {
						pids = append(pids, pid)
					}
				}
			}
			cmd.Process.Signal(os.Interrupt)
			break
		}
	}
	for sc.Scan() {
		text.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	if len(pids) == 0 {
		t.Fatalf("the demo never reached the PPTP call (or ran no process): %v\n%s", err, text.String())
	}
	if err != nil {
		t.Errorf("interrupted demo exited with %v, want 0\n%s", err, text.String())
	}
	if !strings.Contains(text.String(), "interrupted; everything the demo started is gone.") {
		t.Errorf("no interrupted line:\n%s", text.String())
	}
	t.Logf("%d processes ran in the lab when interrupted", len(pids))
	if left := demoLeftovers(t, prefix, bin, pids); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
