//go:build lab

package afxdp_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"passgate/lab"
	"passgate/lab/labtest"
)

// The driver lab tests run passgate in a lab of prefix "pgxdp".
const labPrefix = "pgxdp"

const gateConfig = `{
  "lan":{"interface":"lan0","address":"192.168.50.1/24"},
  "wan":{"interface":"wan0","address":"203.0.113.1/24"},
  "admin":{"enabled":false}
}`

// udpEcho answers each datagram with its reversed bytes and the sender's
// address, so the client sees what crossed the NAT.
const udpEcho = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    b, a = s.recvfrom(2048)
    s.sendto(b[::-1] + (" from %s:%d" % a).encode(), a)
`

const udpClient = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for i in range(3):
    s.sendto(b"passgate-xdp", (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recvfrom(2048)[0].decode()); sys.exit(0)
    except socket.timeout:
        pass
sys.exit("no answer")
`

func TestMain(m *testing.M) { labtest.Main(m) }

type env struct {
	t   *testing.T
	ctx context.Context
	l   *lab.Lab
	dir string
	bin string
}

func setup(t *testing.T) *env {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	bin := labtest.Passgate(t) // built before the lab's clock starts
	l := labtest.Up(t, labPrefix, 3*time.Minute)
	dir := t.TempDir()
	for name, text := range map[string]string{"echo.py": udpEcho, "client.py": udpClient} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, ctx: ctx, l: l, dir: dir, bin: bin}
	echo := labtest.StartT(t, l, lab.Server1, "/usr/bin/python3", filepath.Join(dir, "echo.py"), lab.Srv1, "9000")
	if err := echo.WaitLine("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	web := labtest.StartT(t, l, lab.Server1, "/usr/bin/python3", "-m", "http.server", "--bind", lab.Srv1, "--directory", dir, "8000")
	if err := labtest.WaitListen(l, lab.Server1, "tcp", lab.Srv1, 8000, 10*time.Second, web); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) gate(name, driver string) (*labtest.Gate, error) {
	return labtest.StartGate(e.ctx, e.l, labtest.GateOptions{
		Bin: e.bin, Dir: e.dir, Name: name, Config: gateConfig, Args: []string{"--driver", driver},
	})
}

// forwards checks ping, an HTTP download and a UDP exchange from lan1 to
// srv1 through passgate, and that srv1 saw them from the WAN address.
func (e *env) forwards(g *labtest.Gate) {
	t := e.t
	t.Helper()
	out, _ := labtest.Run(e.l, 15*time.Second, lab.Lan1, "ping", labtest.PingArgs(3, lab.Srv1, 2*time.Second)...)
	if n := labtest.PingAnswered(out, lab.Srv1, 3); n < 2 {
		t.Errorf("ping lan1 -> srv1: %d of 3 answered\n%s", n, out)
	}
	body, err := labtest.Run(e.l, 15*time.Second, lab.Lan1, "curl", "-sS", "--max-time", "10",
		fmt.Sprintf("http://%s:8000/echo.py", lab.Srv1))
	if err != nil || body != udpEcho {
		t.Errorf("curl through passgate: %v: got %d bytes, want the %d of echo.py", err, len(body), len(udpEcho))
	}
	got, err := labtest.Run(e.l, 15*time.Second, lab.Lan1, "/usr/bin/python3", filepath.Join(e.dir, "client.py"), lab.Srv1, "9000")
	if want := "pdx-etagssap from " + lab.WANAddr + ":"; err != nil || !strings.HasPrefix(got, want) {
		t.Errorf("UDP through passgate: %v: %q, want it to start %q", err, got, want)
	}
	st, err := g.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dataplane["forwarded"] < 10 || st.NAT.Flows < 2 {
		t.Errorf("forwarded %d frames with %d flows, want at least 10 and 2", st.Dataplane["forwarded"], st.NAT.Flows)
	}
}

// xdpOn reports the XDP program lan0 has in the router namespace, as ip
// link shows it ("" for none).
func (e *env) xdpOn(dev string) string {
	out, err := labtest.Run(e.l, 10*time.Second, lab.Router, "ip", "-d", "link", "show", "dev", dev)
	if err != nil {
		e.t.Fatalf("ip link: %v", err)
	}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "xdp") {
			return f
		}
	}
	return ""
}

// TestLabDrivers runs the basic forwarding through passgate on each
// driver; with AF_XDP the program is on both interfaces in native mode
// (veth has native XDP) while passgate runs and gone when it stopped.
func TestLabDrivers(t *testing.T) {
	e := setup(t)
	for _, d := range []string{"afxdp", "afpacket"} {
		t.Run(d, func(t *testing.T) {
			e.t = t
			g, err := e.gate("pg-"+d, d)
			if err != nil {
				t.Fatal(err)
			}
			st, err := g.Status(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Driver != d {
				t.Fatalf("driver %q, want %q", st.Driver, d)
			}
			if d == "afxdp" {
				// veth runs XDP natively but has no AF_XDP zero-copy.
				if st.XDPMode != "native/native, copy" {
					t.Errorf("XDP mode %q, want native/native, copy on veth", st.XDPMode)
				}
				for _, dev := range []string{lab.LANIface, lab.WANIface} {
					if x := e.xdpOn(dev); x != "xdp" {
						t.Errorf("%s shows %q while passgate runs, want native xdp", dev, x)
					}
				}
			}
			e.forwards(g)
			st, _ = g.Status(e.ctx)
			for k, v := range st.Losses {
				if v != 0 && !strings.HasSuffix(k, "_dropped") {
					t.Errorf("lost %d frames: %s", v, k)
				}
			}
			if killed := g.Stop(); killed {
				t.Errorf("passgate needed SIGKILL\n%s", g.Log())
			}
			for _, dev := range []string{lab.LANIface, lab.WANIface} {
				if x := e.xdpOn(dev); x != "" {
					t.Errorf("%s still has %q after passgate stopped", dev, x)
				}
			}
			if t.Failed() {
				t.Logf("passgate log:\n%s", g.Log())
			}
		})
	}
}

// TestLabSIGKILL: passgate's XDP program is held by a bpf_link, so the
// kernel detaches it with the killed process, and the next start takes
// AF_XDP again.
func TestLabSIGKILL(t *testing.T) {
	e := setup(t)
	g, err := e.gate("pg-kill", "afxdp")
	if err != nil {
		t.Fatal(err)
	}
	if x := e.xdpOn(lab.LANIface); x != "xdp" {
		t.Fatalf("lan0 shows %q while passgate runs", x)
	}
	if err := g.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := g.Proc.Wait(10 * time.Second); err == nil {
		t.Log("passgate exited cleanly after SIGKILL?")
	}
	// The link goes with the last descriptor; the kernel frees it just
	// after the process is reaped.
	err = labtest.Poll(e.ctx, 5*time.Second, func() (bool, string) {
		x := e.xdpOn(lab.LANIface) + e.xdpOn(lab.WANIface)
		return x == "", x
	})
	if err != nil {
		t.Fatalf("XDP program left after SIGKILL: %v", err)
	}
	// The nftables fence a killed passgate leaves is replaced at start,
	// and AF_XDP attaches again (named: auto takes AF_PACKET on veth).
	g, err = e.gate("pg-kill2", "afxdp")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	st, err := g.Status(e.ctx)
	if err != nil || st.Driver != "afxdp" || st.DriverFallback != "" {
		t.Fatalf("restart after SIGKILL: %v, driver %q fallback %q", err, st.Driver, st.DriverFallback)
	}
	e.forwards(g)
}

// TestLabAutoFallback: another program's XDP program on lan0 (attached
// here, in native mode, through a bpf_link as any XDP application would)
// keeps passgate's from attaching: afxdp refuses to start. auto, on the
// lab's veths, takes AF_PACKET without trying XDP (docs/DESIGN.md
// "Drivers"), says why in status and the log and forwards beside it; the
// foreign program is left in place. (On a NIC, auto would try AF_XDP and
// fall back for the foreign program, the same way.)
func TestLabAutoFallback(t *testing.T) {
	e := setup(t)
	foreign := attachForeign(t, e.l.NS(lab.Router), lab.LANIface)
	defer foreign.Close()
	if x := e.xdpOn(lab.LANIface); x != "xdp" {
		t.Fatalf("foreign program not attached: %q", x)
	}

	if g, err := e.gate("pg-strict", "afxdp"); err == nil {
		g.Stop()
		t.Fatal("--driver afxdp started over a foreign XDP program")
	} else if !strings.Contains(err.Error(), "already has an XDP program") {
		t.Errorf("--driver afxdp failed for another reason: %v", err)
	}

	g, err := e.gate("pg-auto", "auto")
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Driver != "afpacket" || !strings.Contains(st.DriverFallback, "is a veth") {
		t.Fatalf("driver %q, fallback %q; want afpacket because lan0 is a veth", st.Driver, st.DriverFallback)
	}
	cli, err := g.CLI(e.ctx, "status")
	if err != nil || !strings.Contains(string(cli), "driver afpacket (auto fell back: ") {
		t.Errorf("passgate status does not show the fallback: %v\n%s", err, cli)
	}
	if !strings.Contains(g.Log(), "using AF_PACKET") {
		t.Errorf("the fallback is not logged:\n%s", g.Log())
	}
	// No program of passgate's is left on wan0 from the attempt.
	if x := e.xdpOn(lab.WANIface); x != "" {
		t.Errorf("wan0 has %q after the fallback", x)
	}
	e.forwards(g)
	g.Stop()
	if x := e.xdpOn(lab.LANIface); x != "xdp" {
		t.Errorf("the foreign program is gone after passgate stopped: %q", x)
	}
}

// attachForeign attaches an XDP_PASS program to dev in network namespace
// ns, from a thread moved there for the call.
func attachForeign(t *testing.T, ns, dev string) link.Link {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "foreign_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	type result struct {
		l   link.Link
		err error
	}
	ch := make(chan result)
	go func() {
		// The thread goes back to its own namespace before the goroutine
		// ends. Left in ns, it would be discarded with the goroutine, except
		// when it is the process's main thread, which the runtime keeps:
		// the test process would then show in `ip netns pids` of the
		// router's namespace, and the lab's teardown would SIGTERM it (as
		// CI once saw). If going back fails, the thread stays locked and
		// the runtime discards it (or, the main thread, wedges it).
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer unix.Close(orig)
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		var r result
		if ifi, err := netInterface(dev); err != nil {
			r.err = err
		} else {
			r.l, r.err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi, Flags: link.XDPDriverMode})
		}
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			r.err = errors.Join(r.err, fmt.Errorf("back to the test's namespace: %w", err))
		} else {
			runtime.UnlockOSThread()
		}
		ch <- r
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(errors.Join(errors.New("attaching the foreign XDP program"), r.err))
	}
	return r.l
}

// netInterface is dev's index in the calling thread's namespace.
func netInterface(dev string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("%s: %w", dev, err)
	}
	return int(ifr.Uint32()), nil
}
