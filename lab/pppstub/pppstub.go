// Package pppstub stands in for pppd in the passgate lab, where the kernel
// has no PPP. It speaks just enough PPP over async HDLC (with FCS-16) to
// prove that frames cross a PPTP or L2TP tunnel: it sends numbered LCP
// Echo-Requests carrying a unique token ("lan1 #5"), answers every
// Echo-Request it receives with an Echo-Reply carrying "echo TOKEN by NAME",
// and logs every frame it sends and receives, one line each:
//
//	NAME SENT lan1 #5
//	NAME RECV srv1-4242 #3
//	NAME RECV echo lan1 #5 by srv1-4242
//
// Main runs it with the command line's arguments; the vpnlab tests build it
// as a command (passgate/lab/vpnlab/pppstub) and `passgate demo` runs it as
// `passgate pppstub`. Modes:
//
//	pppstub client [flags] -- PROGRAM ARGS...
//	    open a pseudo-terminal in raw mode, start PROGRAM with the slave as
//	    its stdin and stdout (as pppd's pty option does for
//	    `pptp SERVER --nolaunchpppd`), and speak HDLC on the master.
//	    PROGRAM runs in a process group of its own, ended with it.
//	pppstub [ANY PPPD OPTIONS...]
//	    pppd mode, for pptpd's ppp option and xl2tpd's pppd: every argument
//	    is ignored (and logged), HDLC is spoken on stdin and stdout, and the
//	    settings come from the environment: PPPSTUB_NAME ("%p" becomes the
//	    PID), PPPSTUB_LOG (append), PPPSTUB_INTERVAL, PPPSTUB_COUNT,
//	    PPPSTUB_LIFETIME. A file PPPSTUB_ENV (default /run/pppstub.env) of
//	    KEY=VALUE lines is read first, for parents that clear the
//	    environment.
//
// The first frame goes out at once: pptpctrl reads GRE only after its pty
// side has written, as pppd always does with its first LCP packet.
package pppstub

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LCP codes used by the stub.
const (
	lcpEchoRequest = 9
	lcpEchoReply   = 10
	lcpProto       = 0xc021
	stubMagic      = 0x50505354 // "PPST"
)

// pppMessage is one of the stub's LCP echo frames.
type pppMessage struct {
	Code byte
	ID   byte
	Text string
}

// encode returns the PPP frame: address, control, protocol, LCP packet.
func (m pppMessage) encode() []byte {
	b := make([]byte, 0, 12+len(m.Text))
	b = append(b, 0xff, 0x03)
	b = binary.BigEndian.AppendUint16(b, lcpProto)
	b = append(b, m.Code, m.ID)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(m.Text)))
	b = binary.BigEndian.AppendUint32(b, stubMagic)
	return append(b, m.Text...)
}

// parsePPPMessage decodes one of the stub's frames.
func parsePPPMessage(f []byte) (pppMessage, bool) {
	if len(f) < 12 || f[0] != 0xff || f[1] != 0x03 || binary.BigEndian.Uint16(f[2:]) != lcpProto {
		return pppMessage{}, false
	}
	code, id := f[4], f[5]
	if code != lcpEchoRequest && code != lcpEchoReply {
		return pppMessage{}, false
	}
	n := int(binary.BigEndian.Uint16(f[6:]))
	if n < 8 || 4+n > len(f) {
		return pppMessage{}, false
	}
	return pppMessage{Code: code, ID: id, Text: string(f[12 : 4+n])}, true
}

type settings struct {
	name     string
	logPath  string
	interval time.Duration
	count    int
	lifetime time.Duration
	childLog string
}

// Main runs the stand-in with args (the command line without the program
// name): client mode when the first is "client", pppd mode otherwise.
func Main(args []string) error {
	if len(args) > 0 && args[0] == "client" {
		return runClient(args[1:])
	}
	return runPPPD(args)
}

func expandName(s string) string {
	return strings.ReplaceAll(s, "%p", strconv.Itoa(os.Getpid()))
}

// runPPPD is pppd mode: HDLC on stdin/stdout, settings from the environment.
func runPPPD(args []string) error {
	envFile := os.Getenv("PPPSTUB_ENV")
	if envFile == "" {
		envFile = "/run/pppstub.env"
	}
	fileEnv := readEnvFile(envFile)
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		if v, ok := fileEnv[k]; ok && v != "" {
			return v
		}
		return def
	}
	s := settings{
		name:    expandName(get("PPPSTUB_NAME", "pppd-%p")),
		logPath: get("PPPSTUB_LOG", ""),
	}
	var err error
	if s.interval, err = time.ParseDuration(get("PPPSTUB_INTERVAL", "200ms")); err != nil {
		return fmt.Errorf("PPPSTUB_INTERVAL: %w", err)
	}
	if s.lifetime, err = time.ParseDuration(get("PPPSTUB_LIFETIME", "3m")); err != nil {
		return fmt.Errorf("PPPSTUB_LIFETIME: %w", err)
	}
	if s.count, err = strconv.Atoi(get("PPPSTUB_COUNT", "0")); err != nil {
		return fmt.Errorf("PPPSTUB_COUNT: %w", err)
	}
	lg, err := openLog(s.logPath, s.name)
	if err != nil {
		return err
	}
	lg.printf("START pid %d ppid %d mode pppd args %q", os.Getpid(), os.Getppid(), args)
	if isTTY(0) {
		if err := makeRaw(0); err != nil {
			lg.printf("ERROR raw stdin: %v", err)
		}
	}
	p := &peer{s: s, log: lg, in: os.Stdin, out: os.Stdout}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	reason := p.run(sigs, nil)
	lg.printf("EXIT %s; %s", reason, p.stats())
	return nil
}

func readEnvFile(path string) map[string]string {
	m := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && !strings.HasPrefix(k, "#") {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// runClient starts PROGRAM on a raw pty and speaks HDLC on the master.
func runClient(args []string) error {
	fs := flag.NewFlagSet("pppstub client", flag.ContinueOnError)
	name := fs.String("name", "client-%p", "token prefix of this end (%p: PID)")
	logPath := fs.String("log", "", "frame log (appended; default stderr)")
	childLog := fs.String("child-log", "", "where PROGRAM's stderr goes (default: the frame log's stream)")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between numbered frames")
	count := fs.Int("count", 0, "numbered frames to send (0: until stopped)")
	lifetime := fs.Duration("lifetime", 3*time.Minute, "exit after this long whatever happens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("client: want -- PROGRAM ARGS")
	}
	s := settings{name: expandName(*name), logPath: *logPath, interval: *interval, count: *count, lifetime: *lifetime, childLog: *childLog}
	lg, err := openLog(s.logPath, s.name)
	if err != nil {
		return err
	}
	master, slave, err := openPTY()
	if err != nil {
		return err
	}
	defer master.Close()
	if err := makeRaw(int(slave.Fd())); err != nil {
		return fmt.Errorf("raw pty: %w", err)
	}
	var stderr io.Writer = os.Stderr
	if s.childLog != "" {
		f, err := os.OpenFile(s.childLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		stderr = f
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Catch signals before the child exists, so none is missed.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		return err
	}
	slave.Close()
	lg.printf("START pid %d mode client child %d: %q", os.Getpid(), cmd.Process.Pid, fs.Args())
	childDone := make(chan struct{})
	var childErr error
	go func() {
		childErr = cmd.Wait()
		close(childDone)
	}()
	p := &peer{s: s, log: lg, in: master, out: master}
	reason := p.run(sigs, childDone)
	// End the child's whole process group (pptp forks a call manager).
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-childDone:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-childDone
	}
	// Stragglers of the group (a call manager still closing).
	time.Sleep(100 * time.Millisecond)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	lg.printf("EXIT %s; child: %v; %s", reason, childErr, p.stats())
	return nil
}

// stubLog writes whole lines with one write each, so several stubs can
// append to one file.
type stubLog struct {
	mu   sync.Mutex
	w    io.Writer
	name string
}

func openLog(path, name string) (*stubLog, error) {
	if path == "" {
		return &stubLog{w: os.Stderr, name: name}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &stubLog{w: f, name: name}, nil
}

func (l *stubLog) printf(format string, a ...any) {
	line := fmt.Sprintf("%s %s %s\n", time.Now().Format("15:04:05.000"), l.name, fmt.Sprintf(format, a...))
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}

// peer is one end of the PPP link.
type peer struct {
	s   settings
	log *stubLog
	in  io.Reader
	out io.Writer

	wmu      sync.Mutex
	dec      hdlcDecoder // owned by the reader
	sent     atomic.Int64
	received atomic.Int64
	badFCS   atomic.Int64
}

func (p *peer) stats() string {
	return fmt.Sprintf("sent %d, received %d, bad FCS %d", p.sent.Load(), p.received.Load(), p.badFCS.Load())
}

func (p *peer) send(m pppMessage) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.out.Write(hdlcEncode(nil, m.encode()))
	return err
}

// run sends and receives until the link ends, a signal arrives, done
// closes or the lifetime passes, and says which.
func (p *peer) run(sigs <-chan os.Signal, done <-chan struct{}) string {
	readDone := make(chan error, 1)
	go func() { readDone <- p.readLoop() }()

	tick := time.NewTicker(p.s.interval)
	defer tick.Stop()
	life := time.NewTimer(p.s.lifetime)
	defer life.Stop()
	n := 0
	sendNext := func() error {
		if p.s.count > 0 && n >= p.s.count {
			return nil
		}
		n++
		tok := fmt.Sprintf("%s #%d", p.s.name, n)
		if err := p.send(pppMessage{Code: lcpEchoRequest, ID: byte(n), Text: tok}); err != nil {
			return err
		}
		p.sent.Add(1)
		p.log.printf("SENT %s", tok)
		return nil
	}
	if err := sendNext(); err != nil {
		return "write: " + err.Error()
	}
	for {
		select {
		case <-tick.C:
			if err := sendNext(); err != nil {
				return "write: " + err.Error()
			}
		case err := <-readDone:
			return "read: " + err.Error()
		case sig := <-sigs:
			return "signal " + sig.String()
		case <-done:
			return "child exited"
		case <-life.C:
			return "lifetime over"
		}
	}
}

func (p *peer) readLoop() error {
	buf := make([]byte, 4096)
	for {
		n, err := p.in.Read(buf)
		if n > 0 {
			p.dec.Feed(buf[:n], p.handle)
			p.badFCS.Store(int64(p.dec.BadFCS))
		}
		if err != nil {
			return err
		}
	}
}

func (p *peer) handle(f []byte) {
	p.received.Add(1)
	m, ok := parsePPPMessage(f)
	if !ok {
		proto := uint16(0)
		if len(f) >= 4 {
			proto = binary.BigEndian.Uint16(f[2:])
		}
		p.log.printf("RECV-OTHER proto %#04x len %d % x", proto, len(f), f[:min(len(f), 24)])
		return
	}
	p.log.printf("RECV %s", m.Text)
	if m.Code == lcpEchoRequest {
		reply := pppMessage{Code: lcpEchoReply, ID: m.ID, Text: "echo " + m.Text + " by " + p.s.name}
		if err := p.send(reply); err != nil {
			p.log.printf("ERROR reply: %v", err)
		}
	}
}

func isTTY(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// makeRaw puts a terminal in raw mode, as cfmakeraw(3) does.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// openPTY returns a new pseudo-terminal's master and slave.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}
