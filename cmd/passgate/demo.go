package main

// passgate demo: a lab of network namespaces, passgate routing it, and real
// traffic with live output. Every identifier here starts with "demo" so this
// file never collides with the rest of package main.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"passgate/lab"
	"passgate/lab/vpnpeer"
)

// runDemo is `passgate demo`.
func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	prefix := fs.String("prefix", "pgdemo", "name prefix of the lab's namespaces (1-10 of [a-z0-9])")
	iperfSecs := fs.Int("iperf-seconds", 5, "length of the iperf3 run")
	noInstall := fs.Bool("no-install", false, "do not apt-get install missing tools (strongSwan and PPTP among them)")
	hold := fs.Bool("hold", false, "after the traffic, keep the lab and passgate running until Ctrl-C, with the admin page on https://127.0.0.1:8080/")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: passgate demo [flags]\n\n"+
			"Builds a lab of network namespaces (3 LAN hosts, a router, 2 servers),\n"+
			"runs passgate as the router and sends real traffic through it: ping,\n"+
			"HTTP and iperf3, then IPsec (strongSwan) from two LAN hosts to one server\n"+
			"at once, raw ESP from both, and a PPTP call, with the flow table saying\n"+
			"who holds what.\n"+
			"Needs root. Ctrl-C stops it and removes everything it made.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("passgate demo needs root to create network namespaces: run it with sudo")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the passgate binary: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d := &demoSession{out: os.Stdout, self: self, prefix: *prefix, iperfSecs: *iperfSecs, hold: *hold}
	err = d.run(ctx, !*noInstall)
	d.cleanup()
	if ctx.Err() != nil {
		d.say("\ninterrupted; everything the demo started is gone.")
		return nil
	}
	if err != nil {
		return err
	}
	if len(d.failed) > 0 {
		return fmt.Errorf("demo steps failed: %s", strings.Join(d.failed, "; "))
	}
	d.say("\nAll done. Everything the demo started is gone.")
	return nil
}

type demoSession struct {
	out       io.Writer
	outMu     sync.Mutex
	self      string
	prefix    string
	iperfSecs int
	hold      bool

	lab     *lab.Lab
	dir     string
	sock    string
	daemon  *demoProc
	procs   []*demoProc // everything started, stopped in reverse order
	charons []*vpnpeer.Charon
	tunnels map[string]demoTunnel // by LAN host
	esp     map[string]demoESP    // by LAN host
	failed  []string
}

// demoProc is a process the demo started; it is only ever ended by its PID.
type demoProc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	logFile string      // where its output goes, if a file
	buf     *demoBuffer // its output otherwise, if kept
}

func (p *demoProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process, then SIGKILL after grace, and reports
// whether SIGKILL was needed.
func (p *demoProc) stop(grace time.Duration) bool {
	if p.exited() {
		return false
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return true
	}
}

func (d *demoSession) say(format string, a ...any) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Fprintf(d.out, format+"\n", a...)
}

func (d *demoSession) section(n int, title string) {
	line := fmt.Sprintf("── %d. %s ", n, title)
	pad := 72 - len([]rune(line))
	if pad < 3 {
		pad = 3
	}
	d.say("\n%s%s", line, strings.Repeat("─", pad))
}

func (d *demoSession) fail(step string, err error) {
	d.failed = append(d.failed, step)
	d.say("   ✗ %s: %v", step, err)
}

// demoLineWriter writes each complete line to the session's output with a
// label in front, so concurrent programs stay readable.
type demoLineWriter struct {
	d     *demoSession
	label string
	buf   []byte
	keep  *bytes.Buffer // optional copy of everything written
}

func (w *demoLineWriter) Write(p []byte) (int, error) {
	if w.keep != nil {
		w.keep.Write(p)
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *demoLineWriter) emit(line string) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	w.d.say("   %-6s│ %s", w.label, line)
}

func (w *demoLineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// start starts name args... in node with its output to out, and records it
// so cleanup can stop it by PID.
func (d *demoSession) start(ctx context.Context, node string, out io.Writer, name string, args ...string) (*demoProc, error) {
	return d.startEnv(ctx, node, nil, out, name, args...)
}

// startEnv is start with env added to the process's environment.
func (d *demoSession) startEnv(ctx context.Context, node string, env []string, out io.Writer, name string, args ...string) (*demoProc, error) {
	cmd := d.lab.Cmd(ctx, node, name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", node, name, err)
	}
	p := &demoProc{name: node + " " + name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	d.procs = append(d.procs, p)
	return p, nil
}

// runLabelled runs name args... in node to completion, streaming its output.
func (d *demoSession) runLabelled(ctx context.Context, node, label string, keep *bytes.Buffer, name string, args ...string) error {
	w := &demoLineWriter{d: d, label: label, keep: keep}
	p, err := d.start(ctx, node, w, name, args...)
	if err != nil {
		return err
	}
	<-p.done
	w.flush()
	return p.err
}

func (d *demoSession) run(ctx context.Context, install bool) error {
	d.say("passgate demo: a NAT gateway in userspace, between three LAN hosts and two servers")
	d.say("")

	// What the demo needs, VPN ends included: the lines marked "demo" in
	// lab/packages.txt.
	tools := lab.BaseTools
	if missing := lab.Missing(tools...); len(missing) > 0 {
		if !install {
			return fmt.Errorf("missing Debian packages %v (install them, or drop --no-install)", missing)
		}
		d.say(" ▸ installing what the lab needs: %s", strings.Join(missing, " "))
		if err := lab.InstallMissing(ctx, &demoLineWriter{d: d, label: "apt"}, tools...); err != nil {
			return err
		}
	}

	var err error
	d.dir, err = os.MkdirTemp("", "passgate-demo-")
	if err != nil {
		return err
	}
	os.Chmod(d.dir, 0o755)

	t0 := time.Now()
	d.say(" ▸ building the lab (namespaces %s-*) ...", d.prefix)
	upCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	d.lab, err = lab.Up(upCtx, d.prefix)
	cancel()
	if err != nil {
		return err
	}
	d.say("   ready in %.1fs:", time.Since(t0).Seconds())
	d.say("")
	mid := fmt.Sprintf("─ lan0 %s [passgate] wan0 %s ─", lab.LANGateway, lab.WANAddr)
	gap := strings.Repeat(" ", len([]rune(mid)))
	d.say("     lan1 %-13s ─┐%s┌─ srv1 %s and %s", lab.LAN1, gap, lab.Srv1, lab.Srv1b)
	d.say("     lan2 %-13s ─┼%s┤", lab.LAN2, mid)
	d.say("     lan3 %-13s ─┘%s└─ srv2 %s", lab.LAN3, gap, lab.Srv2)
	d.say("")
	d.say("     The servers have no route back to the LAN: only NAT makes this work.")

	if err := d.startDaemon(ctx); err != nil {
		return err
	}

	steps := []struct {
		title string
		fn    func(context.Context) error
	}{
		{"ping: every LAN host to srv1 at once", d.stepPing},
		{"HTTP: lan1 downloads a file from srv1", d.stepHTTP},
		{fmt.Sprintf("iperf3: lan2 to srv1 for %d s, with the flow table live", d.iperfSecs), d.stepIperf},
		{"IPsec: lan1 and lan2 bring IKEv2 tunnels up to srv1 at once", d.stepIPsec},
		{"raw ESP: lan1 and lan2 send ESP without UDP to srv1, in turn", d.stepRawESP},
		{"PPTP: lan3 places a call to srv1", d.stepPPTP},
		{"VPN passthrough in passgate's flow table", d.stepVPNTable},
		{"passgate's counters", d.stepStatus},
	}
	for i, s := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.section(i+1, s.title)
		if err := s.fn(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.fail(s.title, err)
		}
		if d.daemon.exited() {
			log, _ := os.ReadFile(filepath.Join(d.dir, "passgate.log"))
			return fmt.Errorf("passgate stopped unexpectedly: %v\n%s", d.daemon.err, demoTail(log, 2000))
		}
	}
	if d.hold {
		d.section(len(steps)+1, "holding: the admin page, until Ctrl-C")
		return d.holdAdmin(ctx)
	}
	return nil
}

// holdAdmin keeps everything running and bridges 127.0.0.1:8080 on this
// machine to the admin page, which passgate serves on its LAN address only:
// each connection is carried by socat from lan1, so passgate sees an
// ordinary LAN client. The bridge carries bytes: TLS runs from the browser
// to passgate, whose self-signed certificate also names 127.0.0.1.
func (d *demoSession) holdAdmin(ctx context.Context) error {
	// socat is among lab.BaseTools (marked "demo" in lab/packages.txt):
	// run installed it.
	// socat reads ':' in an address as a separator, also inside SYSTEM's
	// command line, so the inner address escapes them.
	inner := fmt.Sprintf(`ip netns exec %s socat STDIO TCP\:%s\:8080`, d.lab.NS(lab.Lan1), lab.LANGateway)
	cmd := exec.Command("socat", "TCP-LISTEN:8080,bind=127.0.0.1,reuseaddr,fork", "SYSTEM:"+inner)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the admin bridge: %w", err)
	}
	p := &demoProc{name: "admin bridge", cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	d.procs = append(d.procs, p)
	var st struct {
		Admin struct {
			Fingerprint string `json:"cert_sha256"`
			CertFile    string `json:"cert_file"`
			SetupCode   string `json:"setup_code"`
		} `json:"admin"`
	}
	if out, err := d.pgctl(ctx, "status", "--json"); err == nil {
		json.Unmarshal([]byte(out), &st)
	}
	d.say("   Open https://127.0.0.1:8080/ in a browser on this machine. The certificate is")
	d.say("   passgate's own, self-signed: accept it if its SHA-256 fingerprint is")
	d.say("     %s", st.Admin.Fingerprint)
	if st.Admin.SetupCode != "" {
		d.say("   The first visit sets the admin password; it asks for the setup code %s", st.Admin.SetupCode)
		d.say("   (root sees it on passgate status; a LAN host without it cannot set the password).")
	}
	d.say("   Try NAT Passthrough, Port Forwarding, Connections.")
	d.say("   More traffic: sudo ip netns exec %s ping %s, or any command in %s-lan1..3.", d.lab.NS(lab.Lan1), lab.Srv1, d.prefix)
	d.say("   The flow table: sudo %s conntrack --control %s", d.self, d.sock)
	d.say("   Ctrl-C ends the demo and removes everything it made.")
	select {
	case <-ctx.Done():
	case <-d.daemon.done:
		return fmt.Errorf("passgate stopped: %v", d.daemon.err)
	}
	return ctx.Err()
}

func (d *demoSession) startDaemon(ctx context.Context) error {
	d.sock = filepath.Join(d.dir, "passgate.sock")
	cfg := filepath.Join(d.dir, "passgate.json")
	conf := fmt.Sprintf(`{
  "lan": {"interface": %q, "address": %q},
  "wan": {"interface": %q, "address": %q},
  "nat": {"filtering": "address-dependent",
          "timeouts": {"udp": "5m", "tcp_established": "2h4m", "tcp_transitory": "4m", "icmp": "60s"}},
  "port_forwards": [{"name": "web", "proto": "tcp", "outside_port": "8080", "host": %q, "inside_port": 80}],
  "dmz": "",
  "control_socket": %q
}
`, lab.LANIface, lab.LANCIDR, lab.WANIface, lab.WANCIDR, lab.LAN1, d.sock)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(d.dir, "passgate.log"))
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	d.say(" ▸ starting passgate in %s (config %s)", d.lab.NS(lab.Router), cfg)
	// The daemon must outlive ctx's cancellation long enough to be stopped
	// in order by cleanup, so it does not run under ctx.
	p, err := d.start(context.Background(), lab.Router, logf, d.self, "run",
		"--lan", lab.LANIface, "--lan-addr", lab.LANCIDR, "--wan", lab.WANIface, "--wan-addr", lab.WANCIDR,
		"--config", cfg, "--control", d.sock)
	if err != nil {
		return err
	}
	d.daemon = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p.exited() {
			log, _ := os.ReadFile(filepath.Join(d.dir, "passgate.log"))
			return fmt.Errorf("passgate run exited: %v\n%s", p.err, demoTail(log, 2000))
		}
		if _, err := d.pgctl(ctx, "status"); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.dir, "passgate.log"))
			return fmt.Errorf("passgate's control socket %s did not answer within 20 s\n%s", d.sock, demoTail(log, 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.say("   passgate is routing (pid %d, control socket %s)", p.cmd.Process.Pid, d.sock)
	d.say("   admin page and REST API: https://%s:8080/ from any LAN host, e.g.", lab.LANGateway)
	d.say("     sudo ip netns exec %s curl --cacert %s.tls.crt https://%s:8080/api/v1/session", d.lab.NS(lab.Lan1), cfg, lab.LANGateway)
	return nil
}

// pgctl runs `passgate CMD --control SOCK args...` and returns its stdout.
func (d *demoSession) pgctl(ctx context.Context, cmd string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := d.lab.Cmd(cctx, lab.Router, d.self, append([]string{cmd, "--control", d.sock}, args...)...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("passgate %s: %w %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (d *demoSession) stepPing(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(lab.LANHosts))
	for i, h := range lab.LANHosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.runLabelled(ctx, h.Node, h.Node, nil, "ping", "-n", "-c", "4", "-i", "0.5", "-W", "2", lab.Srv1)
		}()
	}
	wg.Wait()
	var bad []string
	for i, err := range errs {
		if err != nil {
			bad = append(bad, lab.LANHosts[i].Node)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("ping lost replies from %s", strings.Join(bad, ", "))
	}
	d.say("   ✓ all three hosts reach srv1 through one public address, %s", lab.WANAddr)
	return nil
}

func (d *demoSession) stepHTTP(ctx context.Context) error {
	web := filepath.Join(d.dir, "web")
	if err := os.MkdirAll(web, 0o755); err != nil {
		return err
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	want := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(web, "file.bin"), data, 0o644); err != nil {
		return err
	}
	srvLog := &bytes.Buffer{}
	var srvMu sync.Mutex
	srv, err := d.start(ctx, lab.Server1, &demoLockedWriter{w: srvLog, mu: &srvMu}, lab.Python, "-m", "http.server", "--bind", lab.Srv1, "--directory", web, "80")
	if err != nil {
		return err
	}
	defer srv.stop(3 * time.Second)
	if err := d.waitListen(ctx, lab.Server1, lab.Srv1+":80"); err != nil {
		return err
	}
	d.say("   srv1 serves an 8 MiB file with python3 -m http.server on %s:80", lab.Srv1)
	dest := filepath.Join(d.dir, "download.bin")
	var curlOut bytes.Buffer
	url := "http://" + lab.Srv1 + "/file.bin"
	err = d.runLabelled(ctx, lab.Lan1, lab.Lan1, &curlOut, "curl", "-sS", "--max-time", "30", "-o", dest,
		"-w", "fetched %{size_download} bytes in %{time_total} s (%{speed_download} bytes/s) from %{remote_ip}\n", url)
	if err != nil {
		return fmt.Errorf("curl %s: %w", url, err)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(got); sum != want {
		return fmt.Errorf("downloaded %d bytes with sha256 %x, want %d bytes with %x", len(got), sum[:8], len(data), want[:8])
	}
	d.say("   ✓ %d bytes, sha256 %x… matches", len(got), want[:8])
	srvMu.Lock()
	log := srvLog.String()
	srvMu.Unlock()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "GET /file.bin") {
			if f := strings.Fields(line); len(f) > 0 {
				d.say("   ✓ srv1 saw the request come from %s (its log: %s)", f[0], strings.TrimSpace(line))
			}
		}
	}
	return nil
}

// demoLockedWriter serialises writes to w.
type demoLockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *demoLockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *demoSession) waitListen(ctx context.Context, node, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := d.lab.Run(ctx, node, "ss", "-Hltn")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[3] == addr {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listening on %s", node, addr)
}

func (d *demoSession) stepIperf(ctx context.Context) error {
	srv, err := d.start(ctx, lab.Server1, nil, "iperf3", "-s", "-1", "-B", lab.Srv1)
	if err != nil {
		return err
	}
	defer srv.stop(3 * time.Second)
	if err := d.waitListen(ctx, lab.Server1, lab.Srv1+":5201"); err != nil {
		return err
	}
	// Some company for the iperf3 flows in the table: lan1 pings srv2.
	d.say("   meanwhile lan1 pings srv2 (%s) once a second: its flow shows in the table too", lab.Srv2)
	side1, err := d.start(ctx, lab.Lan1, nil, "ping", "-n", "-q", "-i", "1", "-c", strconv.Itoa(d.iperfSecs+1), lab.Srv2)
	if err != nil {
		return err
	}
	defer side1.stop(time.Second)

	w := &demoLineWriter{d: d, label: lab.Lan2}
	client, err := d.start(ctx, lab.Lan2, w, "iperf3", "-c", lab.Srv1, "-t", strconv.Itoa(d.iperfSecs), "--forceflush", "-f", "m")
	if err != nil {
		return err
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	limit := time.After(time.Duration(d.iperfSecs+30) * time.Second)
	start := time.Now()
loop:
	for {
		select {
		case <-client.done:
			break loop
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			table, err := d.pgctl(ctx, "conntrack")
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				d.say("   flows │ %v", err)
				continue
			}
			d.showTable(fmt.Sprintf("flow table after %.0f s", time.Since(start).Seconds()), table)
		case <-limit:
			return errors.New("iperf3 did not finish in time")
		}
	}
	w.flush()
	if client.err != nil {
		return fmt.Errorf("iperf3: %w", client.err)
	}
	d.say("   ✓ TCP bulk through passgate")
	return nil
}

// showTable prints a table from the CLI, at most 12 lines of it.
func (d *demoSession) showTable(title, table string) {
	d.say("   flows │ ── %s ──", title)
	sc := bufio.NewScanner(strings.NewReader(table))
	n := 0
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		n++
		if n > 12 {
			d.say("   flows │ …")
			break
		}
		d.say("   flows │ %s", sc.Text())
	}
	if n == 0 {
		d.say("   flows │ (empty)")
	}
}

func (d *demoSession) stepStatus(ctx context.Context) error {
	out, err := d.pgctl(ctx, "status")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		d.say("   %s", line)
	}
	table, err := d.pgctl(ctx, "conntrack")
	if err == nil {
		d.showTable("flow table at the end", table)
	}
	return nil
}

// cleanup ends every process the demo started, by PID, newest first except
// the daemon, which goes last but one (before the lab), then removes the lab.
func (d *demoSession) cleanup() {
	if d.lab == nil && d.dir == "" {
		return
	}
	d.say("\n ▸ cleaning up: stopping what the demo started, removing the lab")
	for i := len(d.charons) - 1; i >= 0; i-- {
		d.charons[i].Stop() // by PID; and its directory
	}
	for i := len(d.procs) - 1; i >= 0; i-- {
		if p := d.procs[i]; p != d.daemon {
			p.stop(3 * time.Second)
		}
	}
	if d.daemon != nil {
		d.daemon.stop(5 * time.Second)
		if d.daemon.err != nil && !demoTerminated(d.daemon.err) {
			d.say("   passgate exited with %v", d.daemon.err)
		}
	}
	if d.lab != nil {
		if err := d.lab.Down(); err != nil {
			d.say("   ✗ removing the lab: %v", err)
		}
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// demoTerminated reports whether err is a plain stop by SIGTERM or a zero
// exit.
func demoTerminated(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return true
		}
	}
	return false
}

func demoTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
