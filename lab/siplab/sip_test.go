//go:build lab

// Package siplab runs a real SIP call through passgate's SIP helper in the
// namespace lab: sipp's uac_pcap on lan1 calls `sipp -sn uas -rtp_echo`
// on srv1, and the test asserts the call completes, RTP reaches the server
// from the router's public address and the echo comes back to lan1, and
// passgate's flow table shows the SIP flow (helper "sip") and, the call
// having ended with BYE, no RTP flow left. A second run with the helper off shows
// the private address in the SDP srv1 receives, so the test can tell.
//
// It needs root and Debian's sip-tester and tcpdump; it never skips.
package siplab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

const (
	sippPcapDir = "/usr/share/sip-tester" // holds g711a.pcap
	uasMedia    = 6000                    // sipp's -mp default: the echo port
)

// start runs a process in node with dir as its working directory, its
// output combined; the caller stops it.
func start(l *lab.Lab, node, dir string, name string, args ...string) (*labtest.Proc, error) {
	return labtest.StartWith(l, node, labtest.Options{Dir: dir, Combined: true}, name, args...)
}

// startPassgate runs passgate in the router namespace with the SIP helper
// switched.
func startPassgate(ctx context.Context, t *testing.T, l *lab.Lab, bin, dir string, sip bool) *labtest.Gate {
	t.Helper()
	sock := filepath.Join(dir, fmt.Sprintf("pg-%v.sock", sip))
	cfg := map[string]any{
		"lan":     map[string]any{"interface": lab.LANIface, "address": lab.LANCIDR},
		"wan":     map[string]any{"interface": lab.WANIface, "address": lab.WANCIDR},
		"helpers": map[string]any{"sip": sip},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	pg, err := labtest.StartGate(ctx, l, labtest.GateOptions{Bin: bin, Dir: dir, Name: fmt.Sprintf("passgate-%v", sip), Config: string(b), Sock: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := pg.CLI(context.Background(), "conntrack", "--json")
			t.Logf("passgate (helper %v) flow table:\n%s\nlog:\n%s", sip, out, pg.Proc.Tail(6000))
		}
		pg.Stop()
	})
	return pg
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// capture is tcpdump writing UDP traffic of a node's eth0 to a file.
type capture struct {
	p    *labtest.Proc
	file string
	l    *lab.Lab
	node string
}

func startCapture(ctx context.Context, t *testing.T, l *lab.Lab, node, dir string) *capture {
	t.Helper()
	file := filepath.Join(dir, node+".pcap")
	p, err := labtest.StartWith(l, node, labtest.Options{Dir: dir, Combined: true, Signal: syscall.SIGINT},
		"tcpdump", "-i", lab.HostIface, "-n", "-U", "-s", "0", "-w", file, "udp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	if err := p.WaitOutput("listening on", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return &capture{p: p, file: file, l: l, node: node}
}

// text stops the capture and returns tcpdump's reading of it, payloads
// in ASCII.
func (c *capture) text(ctx context.Context, t *testing.T) string {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last packets be written
	c.p.Stop()
	out, err := exec.CommandContext(ctx, "tcpdump", "-r", c.file, "-n", "-A").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v\n%s", c.file, err, out)
	}
	return string(out)
}

// count counts the UDP packets of a tcpdump -n reading from src to dst
// ("a.b.c.d.port"; a port of "*" matches any). The capture holds only UDP;
// what follows the addresses is not matched, because tcpdump names the
// protocol after a port it knows ("SIP", "VXLAN", ...) instead of "UDP",
// and the public port passgate picks for the media could be such a port.
func count(text, src, dst string) int {
	re := regexp.MustCompile(`(?m)^[0-9:.]+ IP ` + regexp.QuoteMeta(src) + ` > ` + strings.ReplaceAll(regexp.QuoteMeta(dst), `\*`, `\d+`) + `: `)
	return len(re.FindAllStringIndex(text, -1))
}

// sdpOf returns the c= address and m=audio port of the first INVITE in a
// tcpdump -A reading.
func sdpOf(t *testing.T, text string) (string, int) {
	t.Helper()
	i := strings.Index(text, "INVITE sip:")
	if i < 0 {
		t.Fatalf("no INVITE captured:\n%s", labtest.Tail(text, 3000))
	}
	rest := text[i:]
	c := regexp.MustCompile(`c=IN IP4 ([0-9.]+)`).FindStringSubmatch(rest)
	m := regexp.MustCompile(`m=audio ([0-9]+) `).FindStringSubmatch(rest)
	if c == nil || m == nil {
		t.Fatalf("no SDP in the INVITE:\n%s", labtest.Tail(rest, 3000))
	}
	port, _ := strconv.Atoi(m[1])
	return c[1], port
}

// call runs sipp's uac_pcap on lan1 to the uas on srv1 and returns its
// error and final statistics screen.
func call(ctx context.Context, l *lab.Lab, dir string) (string, error) {
	screen := filepath.Join(dir, "uac-screen.log")
	os.Remove(screen)
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := l.Cmd(cctx, lab.Lan1, "sipp", "-sn", "uac_pcap", lab.Srv1+":5060", "-i", lab.LAN1, "-p", "5060",
		"-m", "1", "-nostdin", "-timeout", "45s", "-trace_screen", "-screen_file", screen)
	cmd.Dir = dir // pcap/g711a.pcap is found from here
	out, err := cmd.CombinedOutput()
	s, _ := os.ReadFile(screen)
	if err != nil {
		return string(s), fmt.Errorf("sipp uac: %w\n%s", err, labtest.Tail(string(out), 3000))
	}
	return string(s), nil
}

// successful reads the "Successful call" cumulative count of sipp's
// statistics screen.
func successful(screen string) int {
	m := regexp.MustCompile(`Successful call\s*\|\s*\d+\s*\|\s*(\d+)`).FindAllStringSubmatch(screen, -1)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// occupy sends a datagram from each of host's ports to srv2, so those
// public ports are host's mappings (UDP timeout: 5 minutes).
func occupy(ctx context.Context, t *testing.T, l *lab.Lab, node, addr string, ports ...int) {
	t.Helper()
	var ps []string
	for _, p := range ports {
		ps = append(ps, strconv.Itoa(p))
	}
	script := `import socket, sys
for p in sys.argv[2:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(p)))
    s.sendto(b"x", ("` + lab.Srv2 + `", 9))
    s.close()
`
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := l.Run(octx, node, "/usr/bin/python3", append([]string{"-c", script, addr}, ps...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestMain(m *testing.M) { labtest.Main(m) }

func TestSIPCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(labtest.Dir(), "pgsip-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if err := os.Symlink(sippPcapDir, filepath.Join(dir, "pcap")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pcap", "g711a.pcap")); err != nil {
		t.Fatal(err)
	}
	bin := labtest.Passgate(t)

	uctx, ucancel := context.WithTimeout(ctx, 2*time.Minute)
	l, err := lab.Up(uctx, "pgsip")
	ucancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err := l.KernelNAT(false); err != nil {
		t.Fatal(err)
	}
	uas, err := start(l, lab.Server1, dir, "sipp", "-sn", "uas", "-rtp_echo", "-i", lab.Srv1, "-p", "5060", "-nostdin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sipp uas output:\n%s", labtest.Tail(uas.Output(), 3000))
		}
		uas.Stop()
	})
	// Its signalling port and the media port it echoes on, before any call.
	for _, port := range []int{5060, uasMedia} {
		if err := labtest.WaitListen(l, lab.Server1, "udp", lab.Srv1, port, 15*time.Second, uas); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("helper on", func(t *testing.T) {
		pg := startPassgate(ctx, t, l, bin, dir, true)
		// lan2 takes public ports 5060, 6000 and 6001 first, so lan1's
		// signalling and media ports are remapped and the helper must
		// write the new ones.
		occupy(ctx, t, l, lab.Lan2, lab.LAN2, 5060, 6000, 6001)
		srv := startCapture(ctx, t, l, lab.Server1, dir)
		lan := startCapture(ctx, t, l, lab.Lan1, dir)
		screen, err := call(ctx, l, dir)
		if err != nil {
			t.Fatalf("%v\nscreen:\n%s", err, labtest.Tail(screen, 3000))
		}
		if n := successful(screen); n != 1 {
			t.Fatalf("successful calls %d, want 1:\n%s", n, labtest.Tail(screen, 3000))
		}
		srvText := srv.text(ctx, t)
		lanText := lan.text(ctx, t)
		addr, pubMedia := sdpOf(t, srvText)
		if addr != lab.WANAddr {
			t.Fatalf("srv1 got SDP c=%s, want %s", addr, lab.WANAddr)
		}
		if pubMedia == uasMedia || pubMedia%2 != 0 {
			t.Fatalf("srv1 got m=audio %d: want a remapped even port (6000 is lan2's)", pubMedia)
		}
		_, lanMedia := sdpOf(t, lanText)
		rtpIn := count(srvText, fmt.Sprintf("%s.%d", lab.WANAddr, pubMedia), fmt.Sprintf("%s.%d", lab.Srv1, uasMedia))
		rtpBack := count(lanText, fmt.Sprintf("%s.%d", lab.Srv1, uasMedia), fmt.Sprintf("%s.%d", lab.LAN1, lanMedia))
		t.Logf("SDP at srv1: c=%s m=audio %d (lan1's own port %d); RTP at srv1 from %s:%d: %d packets; echoed RTP at lan1: %d packets",
			addr, pubMedia, lanMedia, lab.WANAddr, pubMedia, rtpIn, rtpBack)
		if rtpIn < 50 || rtpBack < 50 {
			t.Fatalf("RTP to srv1 %d, echoed back %d packets: want both >= 50", rtpIn, rtpBack)
		}

		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		flows, err := pg.Client.Flows(fctx, control.FlowFilter{})
		fcancel()
		if err != nil {
			t.Fatal(err)
		}
		var sigFlow, rtpFlow *control.Flow
		for i, f := range flows {
			switch {
			case f.Proto == "udp" && f.Inside == netip.MustParseAddrPort(lab.LAN1+":5060") && f.Remote.Port() == 5060:
				sigFlow = &flows[i]
			case f.Proto == "udp" && f.Inside.Port() == uint16(lanMedia) && f.Remote.Addr() == netip.MustParseAddr(lab.Srv1):
				rtpFlow = &flows[i]
			}
		}
		if sigFlow == nil || sigFlow.Helper != "sip" {
			t.Fatalf("SIP flow %+v: want helper sip", sigFlow)
		}
		via := fmt.Sprintf("Via: SIP/2.0/UDP %s:%d", lab.WANAddr, sigFlow.Outside.Port())
		contact := fmt.Sprintf("Contact: sip:sipp@%s:%d", lab.WANAddr, sigFlow.Outside.Port())
		if !strings.Contains(srvText, via) || !strings.Contains(srvText, contact) {
			t.Fatalf("srv1's INVITE lacks %q or Contact %q:\n%s", via, contact, head(srvText[strings.Index(srvText, "INVITE sip:"):], 1500))
		}
		// The RTP crossed at the port written into the SDP (counted above
		// on both ends); uac_pcap ends with BYE, and the call's media
		// flows end with the call.
		if rtpFlow != nil {
			t.Fatalf("RTP flow %+v still in the table after the BYE: the helper should end it with the call", rtpFlow)
		}
		t.Logf("flows: SIP %s -> %s via %s helper=%s; no RTP flow left after the BYE",
			sigFlow.Inside, sigFlow.Remote, sigFlow.Outside, sigFlow.Helper)
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := pg.Client.Status(sctx)
		scancel()
		if err != nil {
			t.Fatal(err)
		}
		h := st.NAT.Helpers["sip"]
		t.Logf("sip helper counters: %+v", h)
		if !h.On || h.Flows == 0 || h.Rewrites == 0 || h.Expectations < 2 || h.Unparsed != 0 {
			t.Fatalf("sip helper counters %+v: want on, rewrites, RTP and RTCP expectations, nothing unparsed", h)
		}
		pg.Stop()
	})

	t.Run("helper off", func(t *testing.T) {
		pg := startPassgate(ctx, t, l, bin, dir, false)
		srv := startCapture(ctx, t, l, lab.Server1, dir)
		_, err := call(ctx, l, dir) // the call may or may not complete
		text := srv.text(ctx, t)
		addr, port := sdpOf(t, text)
		t.Logf("helper off: SDP at srv1 c=%s m=audio %d; sipp: %v", addr, port, err)
		if addr != lab.LAN1 {
			t.Fatalf("with the helper off srv1 got SDP c=%s, want the private %s", addr, lab.LAN1)
		}
		pg.Stop()
	})
}
