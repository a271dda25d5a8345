// Package labtest is the harness the namespace-lab tests share, so each test
// package keeps only its scenario. Those tests are built with the lab tag
// (`go test -tags lab`, which test.sh sets); plain `go test ./...` leaves
// them out. It owns:
//
//   - Main, every lab test package's TestMain: root and the packages of
//     lab/packages.txt, or the package fails (it never skips nor
//     installs); Dir, the package run's temporary directory; and
//     Passgate, the passgate binary, built once per package run;
//   - Buffer, a goroutine-safe output buffer for a process writing while a
//     test reads;
//   - Proc and Group: processes a test starts in a lab node, remembered by
//     the PID this package started (ip netns exec execs, so that PID is the
//     program's own), waited for, and stopped with a signal (SIGTERM unless
//     told otherwise) and, after a grace period, SIGKILL. Nothing here
//     signals a process it did not start, nor looks processes up by name;
//   - Run, Stdout and WaitListen: commands in a node bounded by a timeout,
//     and waiting for a listening socket;
//   - GoBuild: building this module's other commands;
//   - Gate: `passgate run --config FILE --control SOCK` in the router
//     namespace, started and waited for until it forwards and its control
//     socket answers, read through passgate/control's Client.
//
// Every wait is bounded: by a duration given to it, or by a default when
// none is (WaitDelay for a process's output pipes, the grace before
// SIGKILL, 20 s for a daemon to come up, 10 s for a control request).
package labtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
)

// Buffer is a bytes.Buffer safe for a process writing while a test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail is at most the last n bytes of s, marked "..." when cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Defaults of the waits that take no duration.
const (
	DefaultGrace    = 5 * time.Second  // between Stop's signal and SIGKILL
	pipeWaitDelay   = 5 * time.Second  // for output pipes after an exit
	DefaultGateWait = 20 * time.Second // for passgate to come up
	requestTimeout  = 10 * time.Second // for one control request or CLI run
)

// Options are how Start runs a process; the zero value is stdout and
// stderr in two Buffers, SIGTERM then SIGKILL after DefaultGrace.
type Options struct {
	Dir      string         // working directory
	Env      []string       // added to the test's environment
	Combined bool           // stdout and stderr into one Buffer (Stdout)
	LogFile  string         // output appended to this file instead of Buffers
	Signal   syscall.Signal // Stop's first signal; SIGTERM if 0
	Grace    time.Duration  // Stop's wait before SIGKILL; DefaultGrace if 0
}

// Proc is a process a test started in a lab node.
type Proc struct {
	Name    string
	Stdout  *Buffer // nil with a LogFile
	Stderr  *Buffer // Stdout itself when Combined; nil with a LogFile
	LogFile string  // where the output goes, if a file

	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	once   sync.Once
	signal syscall.Signal
	grace  time.Duration
	killed bool
}

// Start runs name args... in node with the zero Options. The process
// outlives any context: end it with Stop.
func Start(l *lab.Lab, node, name string, args ...string) (*Proc, error) {
	return StartWith(l, node, Options{}, name, args...)
}

// StartWith runs name args... in node as o says.
func StartWith(l *lab.Lab, node string, o Options, name string, args ...string) (*Proc, error) {
	return StartCmd(node+": "+name+" "+strings.Join(args, " "), l.Cmd(context.Background(), node, name, args...), o)
}

// StartCmd starts cmd, not yet started and made without a context, as o
// says; name is for messages.
func StartCmd(name string, cmd *exec.Cmd, o Options) (*Proc, error) {
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{}), signal: o.Signal, grace: o.Grace}
	if p.signal == 0 {
		p.signal = syscall.SIGTERM
	}
	if p.grace == 0 {
		p.grace = DefaultGrace
	}
	if o.Dir != "" {
		cmd.Dir = o.Dir
	}
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	var logf *os.File
	switch {
	case o.LogFile != "":
		f, err := os.OpenFile(o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		logf, p.LogFile = f, o.LogFile
		cmd.Stdout, cmd.Stderr = f, f
	case o.Combined:
		p.Stdout = &Buffer{}
		p.Stderr = p.Stdout
		cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	default:
		p.Stdout, p.Stderr = &Buffer{}, &Buffer{}
		cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	}
	// A child that keeps the output pipe open must not hold Wait forever.
	cmd.WaitDelay = pipeWaitDelay
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// StartT is Start for a test: it fails the test if the process cannot
// start, and the test's cleanup stops it.
func StartT(t testing.TB, l *lab.Lab, node, name string, args ...string) *Proc {
	t.Helper()
	return StartWithT(t, l, node, Options{}, name, args...)
}

// StartWithT is StartWith for a test, as StartT.
func StartWithT(t testing.TB, l *lab.Lab, node string, o Options, name string, args ...string) *Proc {
	t.Helper()
	p, err := StartWith(l, node, o, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (Wait's error); nil while it runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Ended reports whether the process has ended, and how.
func (p *Proc) Ended() (bool, error) {
	if !p.Exited() {
		return false, nil
	}
	return true, p.err
}

// Signal sends sig to the process's PID, unless it has exited.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Stop ends the process by its PID: its stop signal, then SIGKILL after
// the grace period, and waits for it. It reports whether SIGKILL was
// needed. Later calls only report.
func (p *Proc) Stop() (killed bool) {
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		_ = p.cmd.Process.Signal(p.signal)
		select {
		case <-p.done:
		case <-time.After(p.grace):
			p.killed = true
			_ = p.cmd.Process.Kill()
			<-p.done // bounded: SIGKILL, then WaitDelay for the pipes
		}
	})
	return p.killed
}

// Terminate sends SIGTERM and waits up to d for the process to exit: the
// error is how it exited, or that it did not within d (it is then stopped
// with SIGKILL).
func (p *Proc) Terminate(d time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop on SIGTERM within %v", p.Name, d)
	}
}

// Wait waits up to d for the process to exit by itself; if it does not,
// it is stopped and the error says so.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		p.Stop()
		return fmt.Errorf("%s did not finish within %v\n%s", p.Name, d, p.Output())
	}
}

// Output is what the process wrote so far: its log file, or stdout then
// stderr.
func (p *Proc) Output() string {
	switch {
	case p.LogFile != "":
		b, _ := os.ReadFile(p.LogFile)
		return string(b)
	case p.Stdout == p.Stderr:
		return p.Stdout.String()
	default:
		return p.Stdout.String() + p.Stderr.String()
	}
}

// Tail is the end of Output, at most n bytes.
func (p *Proc) Tail(n int) string { return Tail(p.Output(), n) }

// WaitFor polls cond every 20 ms for up to d. It fails early if the
// process exits first; what names the awaited thing in the error.
func (p *Proc) WaitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited (%v) before %s\n%s", p.Name, p.err, what, Tail(p.Output(), 6000))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %v\n%s", p.Name, what, d, Tail(p.Output(), 6000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitLine waits up to d for a line of stdout (of the log file, with one)
// that is line, spaces trimmed.
func (p *Proc) WaitLine(line string, d time.Duration) error {
	return p.WaitFor(d, fmt.Sprintf("line %q", line), func() bool {
		out := p.Output()
		if p.Stdout != nil {
			out = p.Stdout.String()
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.TrimSpace(l) == line {
				return true
			}
		}
		return false
	})
}

// WaitOutput waits up to d for text to appear in Output.
func (p *Proc) WaitOutput(text string, d time.Duration) error {
	return p.WaitFor(d, fmt.Sprintf("%q", text), func() bool { return strings.Contains(p.Output(), text) })
}

// Group is the processes of one test, stopped together.
type Group struct {
	mu    sync.Mutex
	procs []*Proc
}

// Add remembers p for StopAll and returns it.
func (g *Group) Add(p *Proc) *Proc {
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return p
}

// StopAll stops every process added, newest first.
func (g *Group) StopAll() {
	g.mu.Lock()
	procs := g.procs
	g.procs = nil
	g.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
}

// Run runs a command in node, bounded by d, and returns its combined
// output.
func Run(l *lab.Lab, d time.Duration, node, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.Run(ctx, node, name, args...)
}

// RunT is Run for a test: an error fails the test.
func RunT(t testing.TB, l *lab.Lab, d time.Duration, node, name string, args ...string) string {
	t.Helper()
	out, err := Run(l, d, node, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Stdout runs a command in node, bounded by d, and returns its stdout
// alone; the error carries its stderr.
func Stdout(l *lab.Lab, d time.Duration, node, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := l.Cmd(ctx, node, name, args...)
	cmd.WaitDelay = pipeWaitDelay
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %s %s: %v\nstderr: %s", node, name, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// WaitListen waits up to d until node has a listening socket on addr:port
// (proto "tcp" or "udp"). If p is not nil and exits first, it fails early.
func WaitListen(l *lab.Lab, node, proto, addr string, port int, d time.Duration, p *Proc) error {
	flag := "-Hltn"
	if proto == "udp" {
		flag = "-Hlun"
	}
	want := fmt.Sprintf("%s:%d", addr, port)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		out, _ := Run(l, 5*time.Second, node, "ss", flag)
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[3] == want {
				return nil
			}
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listening on %s/%s within %v", node, want, proto, d)
}

// Poll is lab.Poll.
func Poll(ctx context.Context, d time.Duration, cond func() (bool, string)) error {
	return lab.Poll(ctx, d, cond)
}

// Up brings a lab up for a test, bounded by d, and takes it down when the
// test ends (after the cleanups registered later, such as StartT's).
func Up(t testing.TB, prefix string, d time.Duration) *lab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	l, err := lab.Up(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// GoBuild builds the main package pkg (an import path of this module) into
// out. The working directory must be inside the module (go test runs in
// the package's).
func GoBuild(ctx context.Context, pkg, out string) error {
	// go test puts its GOROOT's bin first on the tests' PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, pkg)
	cmd.WaitDelay = pipeWaitDelay
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// PassgateBinEnv names a prebuilt passgate for Passgate to return instead
// of building one (to debug the tests, or to test a release).
const PassgateBinEnv = "PASSGATE_TEST_BIN"

// buildPassgate builds passgate/cmd/passgate into dir/passgate, or returns
// $PASSGATE_TEST_BIN when that is set.
func buildPassgate(ctx context.Context, dir string) (string, error) {
	if bin := os.Getenv(PassgateBinEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("$%s: %w", PassgateBinEnv, err)
		}
		return bin, nil
	}
	bin := filepath.Join(dir, "passgate")
	return bin, GoBuild(ctx, "passgate/cmd/passgate", bin)
}

// DriverEnv names the environment variable that picks the packet driver
// every lab test runs passgate with (passgate run --driver): auto (the
// default: AF_PACKET on the lab's veths), afxdp or afpacket. The lab suite
// runs whole on either driver:
// PASSGATE_DRIVER=afxdp go test -tags lab ./...
const DriverEnv = "PASSGATE_DRIVER"

// OffloadEnv names the environment variable that switches flow offload
// for every lab test (passgate run --offload=VALUE): true (the default,
// as passgate's) or false, which keeps established flows in passgate's
// workers.
const OffloadEnv = "PASSGATE_OFFLOAD"

// Offload is whether the lab tests run passgate with flow offload, from
// OffloadEnv: on unless it says false.
func Offload() bool {
	v, err := strconv.ParseBool(os.Getenv(OffloadEnv))
	return err != nil || v
}

// Driver is the driver the lab tests use, from DriverEnv; "auto" if unset.
// An unknown value is passed on, and passgate refuses it.
func Driver() string {
	if d := os.Getenv(DriverEnv); d != "" {
		return d
	}
	return "auto"
}

// GateOptions say how StartGate runs passgate.
type GateOptions struct {
	Bin    string // the passgate binary (or a test binary acting as one)
	Dir    string // where NAME.json, NAME.sock and NAME.log go
	Name   string // base of those names; "passgate" if empty
	Config string // the configuration file's text
	Sock   string // the control socket; Dir/NAME.sock if empty
	// Args are added after the driver's and offload's: --driver Driver()
	// unless Args name one, --offload=Offload() unless Args hold an
	// --offload.
	Args []string
	// Env is added to the environment; LogFile sends the output to
	// Dir/NAME.log instead of a Buffer.
	Env     []string
	LogFile bool
	Wait    time.Duration // for it to come up; DefaultGateWait if 0
	Grace   time.Duration // Stop's wait before SIGKILL; DefaultGrace if 0
}

// Gate is passgate running in the lab's router namespace.
type Gate struct {
	Bin    string
	Config string // the configuration file
	Sock   string // the control socket
	Proc   *Proc
	Client *control.Client
}

// StartGate writes o.Config to Dir/NAME.json and runs
//
//	passgate run --config FILE --control SOCK ARGS...
//
// in the router namespace, then waits until it logs that it forwards and
// its control socket answers. If it does not, it is stopped and the error
// carries its log.
func StartGate(ctx context.Context, l *lab.Lab, o GateOptions) (*Gate, error) {
	if o.Name == "" {
		o.Name = "passgate"
	}
	if o.Sock == "" {
		o.Sock = filepath.Join(o.Dir, o.Name+".sock")
	}
	if o.Wait == 0 {
		o.Wait = DefaultGateWait
	}
	g := &Gate{Bin: o.Bin, Config: filepath.Join(o.Dir, o.Name+".json"), Sock: o.Sock, Client: control.NewClient(o.Sock)}
	if err := os.WriteFile(g.Config, []byte(o.Config), 0o600); err != nil {
		return nil, err
	}
	po := Options{Env: o.Env, Combined: true, Grace: o.Grace}
	if o.LogFile {
		po = Options{Env: o.Env, LogFile: filepath.Join(o.Dir, o.Name+".log"), Grace: o.Grace}
	}
	args := []string{"run", "--config", g.Config, "--control", g.Sock}
	if !slices.Contains(o.Args, "--driver") {
		args = append(args, "--driver", Driver())
	}
	if !slices.ContainsFunc(o.Args, func(a string) bool { return strings.HasPrefix(a, "--offload") }) {
		args = append(args, "--offload="+strconv.FormatBool(Offload()))
	}
	args = append(args, o.Args...)
	p, err := StartWith(l, lab.Router, po, o.Bin, args...)
	if err != nil {
		return nil, err
	}
	g.Proc = p
	wctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	var last error
	for {
		// The control socket answers once the sockets are open; the fence
		// and the workers come just after: wait for "forwarding" too.
		if strings.Contains(p.Output(), "msg=forwarding") {
			if _, last = g.Status(wctx); last == nil {
				return g, nil
			}
		}
		if p.Exited() {
			return nil, fmt.Errorf("passgate run exited at start: %v\nconfig: %s\n%s", p.err, o.Config, p.Tail(6000))
		}
		select {
		case <-wctx.Done():
			p.Stop()
			return nil, fmt.Errorf("passgate not forwarding with its control socket %s answering within %v (%v)\n%s", g.Sock, o.Wait, last, p.Tail(6000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartGateT is StartGate for a test: it fails the test if passgate does
// not come up, stops it at cleanup, and logs its output's tail if the test
// failed.
func StartGateT(ctx context.Context, t testing.TB, l *lab.Lab, o GateOptions) *Gate {
	t.Helper()
	g, err := StartGate(ctx, l, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("passgate log (tail):\n%s", g.Proc.Tail(6000))
		}
		g.Stop()
	})
	return g
}

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, requestTimeout)
}

// Status reads the daemon's status over the control socket.
func (g *Gate) Status(ctx context.Context) (*control.Status, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return g.Client.Status(ctx)
}

// Flows reads the whole flow table.
func (g *Gate) Flows(ctx context.Context) ([]control.Flow, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return g.Client.Flows(ctx, control.FlowFilter{})
}

// Events reads the router's event log.
func (g *Gate) Events(ctx context.Context) ([]control.Event, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return g.Client.Events(ctx)
}

// CLI runs `passgate ARGS... --control SOCK` here (the socket is a file,
// reachable from any namespace) and returns its stdout; the error carries
// its stderr.
func (g *Gate) CLI(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.Bin, append(args, "--control", g.Sock)...)
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("passgate %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// CLIJSON runs CLI with --json and decodes its answer into v.
func (g *Gate) CLIJSON(ctx context.Context, v any, args ...string) error {
	out, err := g.CLI(ctx, append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("passgate %s --json: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Log is passgate's output so far.
func (g *Gate) Log() string { return g.Proc.Output() }

// Stop ends passgate by its PID; it reports whether SIGKILL was needed.
func (g *Gate) Stop() bool { return g.Proc.Stop() }

// PingArgs are ping's arguments for count echoes to dst, 0.2 s apart,
// waiting up to wait in all. With -w ping waits for late replies until
// count have come back (without it, it waits for the last one only
// max(2 RTT, interval) after sending it, which a loaded machine can miss),
// sending more echoes meanwhile; PingAnswered tells which of the first
// count were answered.
func PingArgs(count int, dst string, wait time.Duration) []string {
	return []string{"-n", "-c", strconv.Itoa(count), "-i", "0.2", "-w", strconv.Itoa(int(wait.Seconds())), dst}
}

var pingReply = regexp.MustCompile(`(?m)bytes from ([0-9.]+): icmp_seq=(\d+) `)

// PingAnswered is how many of echoes 1..count ping's output shows
// answered by from.
func PingAnswered(out, from string, count int) int {
	seen := map[int]bool{}
	for _, m := range pingReply.FindAllStringSubmatch(out, -1) {
		if n, _ := strconv.Atoi(m[2]); m[1] == from && n >= 1 && n <= count {
			seen[n] = true
		}
	}
	return len(seen)
}

// PcapFrames returns the frames of a classic pcap file with Ethernet link
// type, as the tests' captures write them. A record cut short (the
// capture was stopped while writing) ends the list.
func PcapFrames(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: no pcap header", path)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("%s: link type %d, want Ethernet", path, lt)
	}
	var frames [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		frames = append(frames, b[off:off+n])
		off += n
	}
	return frames, nil
}
