//go:build lab

package pppoelab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
	"passgate/packet"
	"passgate/pppoe"
)

// Programs of Debian's pppoe package (rp-pppoe).
const (
	pppoeClient = "/usr/sbin/pppoe"
	pppoeServer = "/usr/sbin/pppoe-server"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// env is one test's lab, working directory and background processes.
type env struct {
	t    *testing.T
	lab  *lab.Lab
	dir  string
	stub string // the pppd stand-in
	pg   string // passgate

	procs labtest.Group
}

// setup builds the stand-in, takes the package's passgate and brings the
// lab up; everything ends with the test, processes (by PID) before the
// lab.
func setup(t *testing.T, prefix string, timeout time.Duration) (context.Context, *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	e := &env{t: t, dir: t.TempDir()}
	e.stub = e.path("pppstub")
	e.pg = labtest.Passgate(t)
	if err := labtest.GoBuild(ctx, "passgate/lab/vpnlab/pppstub", e.stub); err != nil {
		t.Fatal(err)
	}
	e.lab = labtest.Up(t, prefix, timeout)
	t.Cleanup(e.procs.StopAll) // runs before Down
	return ctx, e
}

func (e *env) path(name string) string { return filepath.Join(e.dir, name) }

func (e *env) mac(ctx context.Context, node, dev string) packet.MAC {
	e.t.Helper()
	s, err := e.lab.MAC(ctx, node, dev)
	if err != nil {
		e.t.Fatal(err)
	}
	hw, err := parseMAC(s)
	if err != nil {
		e.t.Fatalf("%s %s: %v", node, dev, err)
	}
	return hw
}

func parseMAC(s string) (packet.MAC, error) {
	var m packet.MAC
	var b [6]int
	if _, err := fmt.Sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]); err != nil {
		return m, fmt.Errorf("MAC %q: %w", s, err)
	}
	for i := range b {
		m[i] = byte(b[i])
	}
	return m, nil
}

// start runs name args... in node (ip netns exec execs it, so the PID is
// the program's own), output to logName in the test's directory; the
// test's end stops it.
func (e *env) start(node, logName, name string, args ...string) *labtest.Proc {
	e.t.Helper()
	p, err := labtest.StartWith(e.lab, node, labtest.Options{LogFile: e.path(logName)}, name, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.procs.Add(p)
}

// --- passgate ---

type passgate struct {
	*labtest.Gate
	e *env
}

// startPassgate runs passgate in the router namespace with a configuration
// file: the lab's interfaces and addresses plus passthrough (a JSON object,
// "" for none), and waits until its control socket answers.
func (e *env) startPassgate(ctx context.Context, name, passthrough string) *passgate {
	e.t.Helper()
	cfg := fmt.Sprintf(`{"lan":{"interface":%q,"address":%q},"wan":{"interface":%q,"address":%q}`,
		lab.LANIface, lab.LANCIDR, lab.WANIface, lab.WANCIDR)
	if passthrough != "" {
		cfg += `,"passthrough":` + passthrough
	}
	cfg += "}\n"
	g, err := labtest.StartGate(ctx, e.lab, labtest.GateOptions{
		Bin: e.pg, Dir: e.dir, Name: name, Config: cfg, LogFile: true, Args: []string{"--log-level", "debug"},
	})
	if err != nil {
		e.t.Fatalf("passgate %s: %v", name, err)
	}
	e.procs.Add(g.Proc)
	return &passgate{Gate: g, e: e}
}

// status is `passgate status --json`.
func (g *passgate) status(ctx context.Context) (*control.Status, error) {
	var st control.Status
	return &st, g.CLIJSON(ctx, &st, "status")
}

// pppoeCounters are the data plane's "pppoe_*" counters.
func (g *passgate) pppoeCounters(ctx context.Context) map[string]uint64 {
	g.e.t.Helper()
	st, err := g.status(ctx)
	if err != nil {
		g.e.t.Fatal(err)
	}
	m := map[string]uint64{}
	for k, v := range st.Dataplane {
		if strings.HasPrefix(k, "pppoe_") {
			m[k] = v
		}
	}
	return m
}

// --- rp-pppoe ---

// standIn is the "pppd" pppoe-server runs for each session (-q):
//
//	pppd pty 'pppoe -n -I eth0 -e SESSION:MAC -S ...' file OPTIONS LOCAL:REMOTE nodetach ...
//
// It runs the pty command on a raw pty under the stand-in's client mode,
// which speaks HDLC on the master, logging every frame.
const standIn = `#!/bin/sh
pty=
while [ $# -gt 0 ]; do
	if [ "$1" = pty ] && [ $# -ge 2 ]; then pty=$2; shift; fi
	shift
done
if [ -z "$pty" ]; then echo "pppd stand-in: no pty option" >&2; exit 1; fi
exec '%s' client --name 'srv-%%p' --log '%s' --child-log '%s' --interval 200ms --lifetime 3m -- /bin/sh -c "exec $pty"
`

// acName is the access concentrator's name.
const acName = "pgpo-ac"

type server struct {
	frameLog string
	proc     *labtest.Proc
}

// startServer runs pppoe-server on srv1's eth0 and waits until its
// discovery socket is open.
func (e *env) startServer(ctx context.Context) *server {
	e.t.Helper()
	s := &server{frameLog: e.path("server-frames.log")}
	script := e.path("pppd-stand-in.sh")
	text := fmt.Sprintf(standIn, e.stub, s.frameLog, e.path("server-pppoe.log"))
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		e.t.Fatal(err)
	}
	s.proc = e.start(lab.Server1, "pppoe-server.log", pppoeServer, "-F", "-I", lab.HostIface,
		"-C", acName, "-S", "isp", "-q", script, "-L", "10.67.0.1", "-R", "10.67.0.10", "-N", "16")
	err := labtest.Poll(ctx, 10*time.Second, func() (bool, string) {
		if done, err := s.proc.Ended(); done {
			return true, fmt.Sprintf("pppoe-server exited: %v", err)
		}
		out, _ := e.lab.Run(ctx, lab.Server1, "ss", "-0", "-p", "-H")
		return strings.Contains(out, "pppoe-server"), "no packet socket of pppoe-server yet: " + out
	})
	if done, perr := s.proc.Ended(); done || err != nil {
		e.t.Fatalf("pppoe-server: %v %v\n%s", err, perr, s.proc.Output())
	}
	return s
}

// client is `pppoe -I eth0` under the stand-in on a LAN host.
type client struct {
	name     string
	frameLog string
	childLog string
	proc     *labtest.Proc
}

func (e *env) startClient(node string) *client {
	c := &client{name: node, frameLog: e.path("client-" + node + "-frames.log"), childLog: e.path("client-" + node + "-pppoe.log")}
	c.proc = e.start(node, "client-"+node+".log", e.stub, "client", "--name", node,
		"--log", c.frameLog, "--child-log", c.childLog, "--interval", "200ms", "--lifetime", "3m",
		"--", pppoeClient, "-I", lab.HostIface)
	return c
}

// --- the stand-in's frame logs ---

// end is what one stand-in logged: "NAME SENT TOKEN", "NAME RECV TOKEN",
// "NAME RECV echo TOKEN by OTHER", "NAME EXIT reason".
type end struct {
	name     string
	sent     int
	from     map[string]int // tokens received, by their sender
	echoedBy map[string]int // own tokens echoed, by the echoing end
	exit     string
}

var logLine = regexp.MustCompile(`^\S+ (\S+) (SENT|RECV|EXIT|START) ?(.*)$`)

// ends parses frame logs.
func ends(paths ...string) map[string]*end {
	out := map[string]*end{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			m := logLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			e := out[m[1]]
			if e == nil {
				e = &end{name: m[1], from: map[string]int{}, echoedBy: map[string]int{}}
				out[m[1]] = e
			}
			switch m[2] {
			case "SENT":
				e.sent++
			case "EXIT":
				e.exit = m[3]
			case "RECV":
				if rest, ok := strings.CutPrefix(m[3], "echo "); ok {
					if i := strings.LastIndex(rest, " by "); i >= 0 {
						e.echoedBy[rest[i+4:]]++
					}
				} else if i := strings.LastIndex(m[3], " #"); i >= 0 {
					e.from[m[3][:i]]++
				}
			}
		}
	}
	return out
}

// serverEndOf is the server-side stand-in that heard client, if exactly
// one did.
func serverEndOf(all map[string]*end, client string) *end {
	var found *end
	for name, e := range all {
		if strings.HasPrefix(name, "srv-") && e.from[client] > 0 {
			if found != nil {
				return nil
			}
			found = e
		}
	}
	return found
}

// --- captures ---

type capture struct {
	path string
	proc *labtest.Proc
}

// startCapture runs tcpdump on iface in node for PPPoE frames and waits
// until it listens. -U and --immediate-mode write each frame at once.
func (e *env) startCapture(ctx context.Context, node, iface, name string) *capture {
	e.t.Helper()
	c := &capture{path: e.path(name + ".pcap")}
	c.proc = e.start(node, name+".tcpdump.log", "tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root",
		"-s", "0", "-w", c.path, "ether proto 0x8863 or ether proto 0x8864")
	err := labtest.Poll(ctx, 10*time.Second, func() (bool, string) {
		if done, err := c.proc.Ended(); done {
			return true, fmt.Sprintf("tcpdump exited: %v", err)
		}
		return strings.Contains(c.proc.Output(), "listening on"), "tcpdump not listening yet"
	})
	if done, _ := c.proc.Ended(); done || err != nil {
		e.t.Fatalf("tcpdump in %s: %v: %s", node, err, c.proc.Output())
	}
	return c
}

// frames stops the capture and reads it. tcpdump writes a frame some time
// after it crossed (longer on a loaded machine), so with cond it first
// waits, up to 15 s, until what was written satisfies cond (the last frame
// the test knows crossed is there); then a moment more for stragglers.
func (c *capture) frames(t *testing.T, cond func([]frame) bool) []frame {
	t.Helper()
	if cond != nil {
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if fs, err := readPcap(c.path); err == nil && cond(fs) {
				break
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	c.proc.Stop()
	fs, err := readPcap(c.path)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// frame is a PPPoE frame from a capture.
type frame struct {
	dst, src packet.MAC
	typ      uint16
	code     uint8
	sid      uint16
	tags     []pppoe.Tag // discovery only
}

func (f frame) tag(typ uint16) ([]byte, bool) {
	for _, t := range f.tags {
		if t.Type == typ {
			return t.Value, true
		}
	}
	return nil, false
}

// readPcap reads the PPPoE frames of a classic pcap file with Ethernet
// link type, parsed with the relay's own views (a frame they reject is an
// error: everything on the wire must be well-formed).
func readPcap(path string) ([]frame, error) {
	raws, err := labtest.PcapFrames(path)
	if err != nil {
		return nil, err
	}
	var out []frame
	for _, raw := range raws {
		eth, ok := packet.ParseEther(raw)
		if !ok || (eth.Type() != pppoe.EtherTypeDiscovery && eth.Type() != pppoe.EtherTypeSession) {
			continue
		}
		p, err := pppoe.Parse(eth.Payload())
		if err != nil {
			return nil, fmt.Errorf("%s: % x: %w", path, raw, err)
		}
		f := frame{dst: eth.Dst(), src: eth.Src(), typ: eth.Type(), code: p.Code(), sid: p.SessionID()}
		if f.typ == pppoe.EtherTypeDiscovery {
			it := pppoe.Tags(p.Payload())
			for it.Next() {
				t := it.Tag()
				f.tags = append(f.tags, pppoe.Tag{Type: t.Type, Value: append([]byte(nil), t.Value...)})
			}
			if it.Err() != nil {
				return nil, fmt.Errorf("%s: tags of % x: %w", path, raw, it.Err())
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// tcpdumpText is tcpdump's own reading of a capture (-e: with MACs, -v:
// with PPPoE tags).
func tcpdumpText(ctx context.Context, path string) (string, error) {
	out, err := exec.CommandContext(ctx, "tcpdump", "-r", path, "-nn", "-e", "-v").Output()
	return string(out), err
}
