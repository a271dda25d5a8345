//go:build lab

package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"passgate/lab"
	"passgate/lab/labtest"
)

// The browser test: Debian's chromium, headless, driven by chromedp, against
// the real daemon (`passgate run`) in the lab. Chromium runs in the lab's
// lan1 namespace (`ip netns exec`), talking to chromedp over the
// --remote-debugging-pipe file descriptors, so it needs no port and reaches
// the admin page exactly as a LAN host does: https://192.168.50.1:8080/,
// with the self-signed certificate passgate made. Chromium takes it
// pinned by its public key's SHA-256 (--ignore-certificate-errors-spki-list,
// read from `passgate status --json`), curl by --cacert.
//
// Namespaces carry the prefix "pgweb". Screenshots of every page go to
// $PG_ARTIFACTS (default artifacts/screens in the repository root).

const (
	browserPrefix = "pgweb"
	adminURL      = "https://" + lab.LANGateway + ":8080"
	chromiumPath  = "/usr/bin/chromium"
	testPassword  = "correct horse battery"
	webMarker     = "passgate-browser-test: lan1 web server"
	ikeSPI        = "1122334455667788" // lan3's IKE initiator SPI
	espSPI        = "c0ffee01"         // and its ESP SPI
)

// labPy is the helper the test runs in the lab's hosts.
//
//	listen PORT...            accept on each port, print "accept PORT PEER",
//	                          send "hello", hold the connection until closed
//	ike HOST SPI [ESPSPI]     send an IKE_SA_INIT header with initiator SPI
//	                          (hex) from UDP 500 to HOST:500, then a raw ESP
//	                          packet with ESPSPI: an IPsec passthrough flow
//	hold HOST PORT SECS       connect, print "ok", keep the connection
//	                          SECS seconds without a word
//	connect HOST PORT SECS [HOLD]
//	                          connect with a timeout; print "ok GREETING" and
//	                          exit 0, or "fail ERROR" and exit 1; keep the
//	                          connection HOLD seconds first
const labPy = `import socket, struct, sys, threading, time
mode = sys.argv[1]
if mode == "listen":
    def handle(c):
        try:
            c.sendall(b"hello\n")
            while c.recv(4096):
                pass
        except OSError:
            pass
        finally:
            c.close()
    def serve(port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(port)))
        s.listen(64)
        while True:
            c, a = s.accept()
            print("accept %s %s:%d" % (port, a[0], a[1]), flush=True)
            threading.Thread(target=handle, args=(c,), daemon=True).start()
    for p in sys.argv[2:]:
        threading.Thread(target=serve, args=(p,), daemon=True).start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)
elif mode == "ike":
    host, spi = sys.argv[2], int(sys.argv[3], 16)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 500))
    s.sendto(struct.pack("!QQBBBBII", spi, 0, 33, 0x20, 34, 0x08, 0, 28), (host, 500))
    if len(sys.argv) > 4:
        r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        r.sendto(struct.pack("!II", int(sys.argv[4], 16), 1) + bytes(16), (host, 0))
    print("sent", flush=True)
elif mode == "hold":
    host, port, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    s = socket.create_connection((host, port), timeout=5)
    print("ok", flush=True)
    time.sleep(secs)
    s.close()
elif mode == "connect":
    host, port, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    hold = float(sys.argv[5]) if len(sys.argv) > 5 else 0
    s = socket.socket()
    s.settimeout(secs)
    try:
        s.connect((host, port))
        data = s.recv(100)
    except OSError as e:
        print("fail", e, flush=True)
        sys.exit(1)
    print("ok", data.decode().strip(), flush=True)
    time.sleep(hold)
    s.close()
`

// stopGrace is how long a process the test started has to end on SIGTERM.
const stopGrace = 10 * time.Second

// stopAtCleanup stops p when the test ends, by its PID: SIGTERM, then
// SIGKILL (an error) if it is still there after stopGrace.
func stopAtCleanup(t *testing.T, p *labtest.Proc) {
	t.Cleanup(func() {
		if p.Stop() {
			t.Errorf("%s did not stop on SIGTERM; killed it", p.Name)
		}
	})
}

// startIn starts args in node, its output combined, until the test ends.
func startIn(t *testing.T, l *lab.Lab, node string, args ...string) *labtest.Proc {
	t.Helper()
	p, err := labtest.StartWith(l, node, labtest.Options{Combined: true, Grace: stopGrace}, args[0], args[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, p)
	return p
}

// repoRoot is the directory holding go.mod.
func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// TestMain is the lab's: root and lab/packages.txt (chromium among
// them), or the package fails.
func TestMain(m *testing.M) { labtest.Main(m) }

func TestBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	shots := os.Getenv("PG_ARTIFACTS")
	if shots == "" {
		shots = filepath.Join(repoRoot(t), "artifacts", "screens")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bin := labtest.Passgate(t)

	l := labtest.Up(t, browserPrefix, 5*time.Minute)

	// The daemon, with the admin page on the LAN address.
	cfg := fmt.Sprintf(`{
  "lan": {"interface": %q, "address": %q},
  "wan": {"interface": %q, "address": %q},
  "admin": {"listen": "%s:8080"},
  "workers": 1
}
`, lab.LANIface, lab.LANCIDR, lab.WANIface, lab.WANCIDR, lab.LANGateway)
	g, err := labtest.StartGate(ctx, l, labtest.GateOptions{Bin: bin, Dir: dir, Config: cfg, Sock: filepath.Join(dir, "run", "passgate.sock"), Grace: stopGrace})
	if err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, g.Proc)
	rtr := g.Proc
	defer func() {
		if t.Failed() {
			t.Logf("passgate log:\n%s", rtr.Output())
		}
	}()

	// What root sees on the router: the setup code and the certificate.
	var admin struct {
		URL       string `json:"url"`
		SPKI      string `json:"spki_sha256"`
		CertFile  string `json:"cert_file"`
		SetupCode string `json:"setup_code"`
	}
	for end := time.Now().Add(30 * time.Second); admin.SetupCode == ""; time.Sleep(250 * time.Millisecond) {
		out, _ := exec.CommandContext(ctx, bin, "status", "--json", "--control", filepath.Join(dir, "run", "passgate.sock")).Output()
		var st struct {
			Admin *struct {
				URL       string `json:"url"`
				SPKI      string `json:"spki_sha256"`
				CertFile  string `json:"cert_file"`
				SetupCode string `json:"setup_code"`
			} `json:"admin"`
		}
		if json.Unmarshal(out, &st) == nil && st.Admin != nil {
			admin = *st.Admin
		}
		if time.Now().After(end) {
			t.Fatalf("passgate status shows no setup code: %s", out)
		}
	}
	cacert := admin.CertFile

	py := filepath.Join(dir, "lab.py")
	if err := os.WriteFile(py, []byte(labPy), 0o644); err != nil {
		t.Fatal(err)
	}
	www := filepath.Join(dir, "www")
	os.MkdirAll(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte("<!doctype html><title>lan1</title><p>"+webMarker+"</p>\n"), 0o644)

	srv1 := startIn(t, l, lab.Server1, lab.Python, py, "listen", "1723", "80")
	startIn(t, l, lab.Lan1, lab.Python, "-m", "http.server", "80", "--bind", lab.LAN1, "--directory", www)

	run := func(node string, args ...string) (string, error) {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return l.Run(c, node, args[0], args[1:]...)
	}
	// eventually retries f for up to d.
	eventually := func(what string, d time.Duration, f func() error) {
		t.Helper()
		var err error
		for end := time.Now().Add(d); ; time.Sleep(250 * time.Millisecond) {
			if err = f(); err == nil {
				return
			}
			if rtr.Exited() {
				t.Fatalf("%s: passgate exited: %v\n%s", what, err, rtr.Output())
			}
			if time.Now().After(end) {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	eventually("the admin page answering on the LAN", 30*time.Second, func() error {
		out, err := run(lab.Lan1, "curl", "-sS", "--cacert", cacert, "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", adminURL+"/login")
		if err != nil {
			return err
		}
		if out != "200" && out != "303" {
			return fmt.Errorf("GET /login: HTTP %s", out)
		}
		return nil
	})
	eventually("srv1 listening", 10*time.Second, func() error {
		if !strings.Contains(srv1.Output(), "listening") {
			return errors.New("not yet")
		}
		return nil
	})
	connect := func(port string, secs string) (string, error) {
		return run(lab.Lan2, lab.Python, py, "connect", lab.Srv1, port, secs)
	}
	accepts := func(port string) int { return strings.Count(srv1.Output(), "accept "+port+" ") }

	// PPTP passthrough is on by default: the control connection gets through.
	eventually("a PPTP control connection with passthrough on", 15*time.Second, func() error {
		_, err := connect("1723", "3")
		return err
	})
	if accepts("1723") == 0 {
		t.Fatalf("srv1 saw no connection on 1723:\n%s", srv1.Output())
	}
	// A connection that stays open, for the Connections page.
	startIn(t, l, lab.Lan2, lab.Python, py, "connect", lab.Srv1, "80", "5", "600")

	// The browser, in lan1's namespace.
	ns := l.NS(lab.Lan1)
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	var chromeOut labtest.Buffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The page needs no name lookups; without this chromium's own
		// background lookups fill the flow table.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE "+lab.LANGateway),
		// passgate's self-signed certificate, pinned by its public key.
		chromedp.Flag("ignore-certificate-errors-spki-list", admin.SPKI),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&chromeOut),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip execs chromium, so the PID chromedp waits for and kills
			// is chromium's own; the pipe's descriptors pass through.
			cmd.Args = append([]string{"ip", "netns", "exec", ns, cmd.Path}, cmd.Args[1:]...)
			cmd.Path = ipPath
			if cmd.SysProcAttr == nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{}
			}
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		}),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	defer func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", chromeOut.String())
		}
	}()
	// Start the browser on bctx itself: the first run's context owns it,
	// and the steps below run under shorter-lived contexts.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium in %s: %v", ns, err)
	}

	step := 0
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			// A click that submits a form may still be swapping the page
			// when the wait before us succeeded on the old one; the
			// screenshot then finds no page attached for a moment.
			var b []byte
			var err error
			for try := 0; try < 10; try++ {
				if b, err = chromedp.FullScreenshot(100)(ctx, tg); err == nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil {
				return fmt.Errorf("screenshot %s: %w", name, err)
			}
			step++
			p := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name))
			t.Logf("screenshot %s", p)
			return os.WriteFile(p, b, 0o644)
		})
	}
	id := func(s string) chromedp.CSS { return chromedp.CSS("#" + s) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			// Keep what the browser shows, to see why.
			lc, cancel2 := context.WithTimeout(bctx, 10*time.Second)
			defer cancel2()
			loc, _ := chromedp.Run(lc, chromedp.Location())
			body, _ := chromedp.Run(lc, chromedp.Text(chromedp.CSS("body")))
			if b, err := chromedp.Run(lc, chromedp.FullScreenshot(100)); err == nil {
				os.WriteFile(filepath.Join(shots, "failed.png"), b, 0o644)
			}
			t.Fatalf("%s: %v\npage %s:\n%s", what, err, loc, body)
		}
	}
	// tryText and tryChecked return the error instead of failing: a page
	// that reloads itself can lose the node between the query and the read.
	tryText := func(sel string) (string, error) {
		c, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		return chromedp.Run(c, chromedp.Text(id(sel)))
	}
	tryChecked := func(sel string) (bool, error) {
		c, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		return chromedp.Run(c, chromedp.JavascriptAttribute[bool](id(sel), "checked"))
	}
	text := func(sel string) string {
		t.Helper()
		s, err := tryText(sel)
		if err != nil {
			t.Fatalf("text of #%s: %v", sel, err)
		}
		return s
	}
	checked := func(sel string) bool {
		t.Helper()
		v, err := tryChecked(sel)
		if err != nil {
			t.Fatalf("#%s checked: %v", sel, err)
		}
		return v
	}

	// First run: every page leads to the setup page; set the password.
	do("first-run setup page",
		chromedp.Navigate(adminURL+"/"),
		chromedp.WaitVisible(id("setup-password")),
		shot("setup"),
		// Without the right setup code, no password is set.
		chromedp.SendKeys(id("setup-code"), "AAAA-BBBB-CCCC"),
		chromedp.SendKeys(id("setup-password"), testPassword),
		chromedp.SendKeys(id("setup-confirm"), testPassword),
		chromedp.Click(id("setup-save")),
		chromedp.WaitVisible(id("setup-code-error")),
		shot("setup-wrong-code"),
		chromedp.SetValue(id("setup-code"), admin.SetupCode),
		chromedp.SetValue(id("setup-password"), "short"),
		chromedp.SetValue(id("setup-confirm"), "short"),
		chromedp.Click(id("setup-save")),
		chromedp.WaitVisible(id("setup-password-error")),
		shot("setup-refused"),
		chromedp.SetValue(id("setup-code"), admin.SetupCode),
		chromedp.SetValue(id("setup-password"), testPassword),
		chromedp.SetValue(id("setup-confirm"), testPassword),
		chromedp.Click(id("setup-save")),
		chromedp.WaitVisible(id("interfaces")),
	)
	// Log out and in again with the new password.
	do("log out",
		chromedp.Click(id("logout")),
		chromedp.WaitVisible(id("login-password")),
		chromedp.SendKeys(id("login-password"), "wrong password"),
		chromedp.Click(id("login")),
		chromedp.WaitVisible(id("login-password-error")),
		shot("login-wrong-password"),
		chromedp.SetValue(id("login-password"), testPassword),
		chromedp.Click(id("login")),
		chromedp.WaitVisible(id("interfaces")),
		shot("status"),
	)
	if s := text("if-" + lab.LANIface); !strings.Contains(s, lab.LANCIDR) {
		t.Errorf("status page: LAN interface row %q lacks %s", s, lab.LANCIDR)
	}

	// NAT Passthrough: untick PPTP, Apply, see the change.
	do("NAT Passthrough page",
		chromedp.Click(id("nav-passthrough")),
		chromedp.WaitVisible(id("pptp")),
		shot("passthrough"),
	)
	if !checked("pptp") || !checked("ipsec") || !checked("l2tp") {
		t.Fatal("passthrough page: IPsec, PPTP and L2TP should start ticked")
	}
	if s := text("row-pptp"); !strings.Contains(s, "Obsolete") || !strings.Contains(strings.ToLower(s), "insecure") {
		t.Errorf("PPTP row not marked obsolete and insecure: %q", s)
	}
	do("untick PPTP and apply",
		chromedp.Click(id("pptp")),
		chromedp.Click(id("apply")),
		chromedp.WaitVisible(id("changes")),
		shot("passthrough-applied"),
	)
	if s := text("changes"); !strings.Contains(s, "PPTP") || !strings.Contains(s, "off") {
		t.Fatalf("the applied page shows %q, want the PPTP change", s)
	}
	if checked("pptp") {
		t.Error("PPTP still ticked after Apply")
	}

	// The REST API with the browser's session says PPTP is off.
	var session string
	{
		c, cancel := context.WithTimeout(bctx, 20*time.Second)
		res, err := chromedp.Call(c, network.GetCookies, network.GetCookiesParams{URLs: []string{adminURL + "/"}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, ck := range res.Cookies {
			if ck.Name == "passgate_session" {
				session = ck.Value
				if !ck.HTTPOnly || !ck.Secure {
					t.Errorf("the session cookie is not HttpOnly and Secure: %+v", ck)
				}
			}
		}
		if session == "" {
			t.Fatalf("no session cookie in the browser: %+v", res.Cookies)
		}
	}
	out, err := run(lab.Lan1, "curl", "-sS", "--cacert", cacert, "--max-time", "5", "-H", "Cookie: passgate_session="+session, adminURL+"/api/v1/passthrough")
	if err != nil {
		t.Fatal(err)
	}
	var pts []struct {
		Name      string `json:"name"`
		On        bool   `json:"on"`
		Available bool   `json:"available"`
	}
	if err := json.Unmarshal([]byte(out), &pts); err != nil {
		t.Fatalf("GET /api/v1/passthrough: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, p := range pts {
		seen[p.Name] = p.On
	}
	if on, ok := seen["pptp"]; !ok || on || !seen["ipsec"] || !seen["l2tp"] {
		t.Fatalf("GET /api/v1/passthrough after unticking PPTP: %s", out)
	}
	// The page shows the same switches; the helpers not built yet are
	// disabled and say so rather than pretending.
	for _, p := range pts {
		if checked(p.Name) != p.On {
			t.Errorf("the page shows %s ticked=%v, the API says on=%v", p.Name, !p.On, p.On)
		}
		if !p.Available && !strings.Contains(text("row-"+p.Name), "not available yet") {
			t.Errorf("%s is not available but its row does not say so: %q", p.Name, text("row-"+p.Name))
		}
	}

	// The router's behaviour: a PPTP control connection from lan2 no longer
	// gets through, and srv1's listener sees nothing; port 80 still works.
	before := accepts("1723")
	if out, err := connect("1723", "3"); err == nil {
		t.Errorf("TCP 1723 from lan2 got through with PPTP passthrough off: %s", out)
	}
	if out, err := connect("80", "5"); err != nil {
		t.Errorf("TCP 80 from lan2 with PPTP passthrough off: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	if n := accepts("1723"); n != before {
		t.Errorf("srv1 saw %d new connections on 1723 with PPTP passthrough off:\n%s", n-before, srv1.Output())
	}

	// Port Forwarding: a bad rule is refused at its fields, then the good
	// one is added and reached from the WAN side.
	do("Port Forwarding page",
		chromedp.Click(id("nav-forwarding")),
		chromedp.WaitVisible(id("forward-form")),
		shot("forwarding"),
		chromedp.SendKeys(id("fw-name"), "lan1-web"),
		chromedp.SetValue(id("fw-proto"), "tcp"),
		chromedp.SendKeys(id("fw-outside"), "70000"),
		chromedp.SendKeys(id("fw-host"), "192.168.99.10"),
		chromedp.SendKeys(id("fw-inside"), "80"),
		chromedp.Click(id("fw-save")),
		chromedp.WaitVisible(id("fw-outside-error")),
		chromedp.WaitVisible(id("fw-host-error")),
		shot("forwarding-refused"),
		chromedp.SetValue(id("fw-outside"), "8081"),
		chromedp.SetValue(id("fw-host"), lab.LAN1),
		chromedp.Click(id("fw-save")),
		chromedp.WaitVisible(id("changes")),
		chromedp.WaitVisible(id("fwd-lan1-web")),
		shot("forwarding-added"),
	)
	if s := text("changes"); !strings.Contains(s, "lan1-web") {
		t.Errorf("the added rule's page shows %q", s)
	}
	eventually("curl from srv2 through the new rule", 15*time.Second, func() error {
		out, err := run(lab.Server2, "curl", "-sS", "--max-time", "3", "http://"+lab.WANAddr+":8081/")
		if err != nil {
			return err
		}
		if !strings.Contains(out, webMarker) {
			return fmt.Errorf("got %q", out)
		}
		return nil
	})

	// A forwarded connection that stays open, for the filtered Connections
	// page below: the curls' flows leave the table 10 s after they closed,
	// and the browser steps until then can take longer on a slow machine.
	held := startIn(t, l, lab.Server2, lab.Python, py, "hold", lab.WANAddr, "8081", "600")
	eventually("a held connection through the new rule", 15*time.Second, func() error {
		if out := held.Output(); !strings.Contains(out, "ok") {
			if held.Exited() {
				t.Fatalf("held connection from srv2 through the new rule: %v\n%s", held.Err(), out)
			}
			return errors.New("not connected yet")
		}
		return nil
	})

	// An IPsec passthrough flow from lan3, for the VPN ids column.
	if out, err := run(lab.Lan3, lab.Python, py, "ike", lab.Srv1, ikeSPI, espSPI); err != nil {
		t.Fatalf("IKE from lan3: %v %s", err, out)
	}

	// Connections (the open connection and the forwarded one), Events (the
	// blocked PPTP connection), and the Status page once more.
	do("Connections page",
		chromedp.Click(id("nav-connections")),
		chromedp.WaitVisible(id("flows")),
		shot("connections"),
	)
	if s := text("flows"); !strings.Contains(s, ikeSPI) || !strings.Contains(s, "IPsec") {
		t.Errorf("the connections page lacks the IPsec flow with IKE SPI %s:\n%s", ikeSPI, s)
	} else if !strings.Contains(s, espSPI) {
		t.Logf("the connections page shows no ESP flow with SPI %s:\n%s", espSPI, s)
	}
	do("Connections filtered",
		chromedp.SendKeys(id("filter-host"), lab.LAN1),
		chromedp.SetValue(id("filter-proto"), "tcp"),
		chromedp.Click(id("filter")),
		// The old page also has #flows: wait for the filtered one.
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			for {
				if loc, err := chromedp.Location()(ctx, tg); err == nil && strings.Contains(loc, "host=") {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("waiting for the filtered page: %w", ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
			}
		}),
		chromedp.WaitVisible(id("flows")),
		shot("connections-filtered"),
	)
	if s := text("flows"); !strings.Contains(s, lab.LAN1+":80") {
		t.Errorf("the connections page filtered by lan1 lacks the forwarded flow:\n%s", s)
	}
	do("Events page",
		chromedp.Click(id("nav-events")),
		chromedp.WaitVisible(id("events")),
		shot("events"),
	)
	if s := text("events"); !strings.Contains(s, "1723") && !strings.Contains(strings.ToLower(s), "pptp") {
		t.Errorf("the events page does not show the blocked PPTP connection:\n%s", s)
	}
	do("Status page", chromedp.Click(id("nav-status")), chromedp.WaitVisible(id("interfaces")), shot("status-after"))
	// Auto-refresh (the page's only script): once ticked, the uptime moves
	// without a reload.
	up := text("uptime")
	do("tick auto-refresh", chromedp.Click(id("auto-refresh")))
	eventually("the status page refreshing itself", 20*time.Second, func() error {
		now, err := tryText("uptime")
		if err != nil {
			return fmt.Errorf("reading the uptime: %w", err)
		}
		if now == up {
			return fmt.Errorf("uptime still %q", now)
		}
		on, err := tryChecked("auto-refresh")
		if err != nil {
			return fmt.Errorf("reading the auto-refresh box: %w", err)
		}
		if !on {
			return errors.New("auto-refresh unticked by the refresh")
		}
		return nil
	})
	do("untick auto-refresh", chromedp.Click(id("auto-refresh")))
	do("Password page", chromedp.Click(id("nav-password")), chromedp.WaitVisible(id("password-form")), shot("password"))
	// A read token made on the page (read is preselected): it reads the
	// API and is refused a change, with a 403 naming its scope.
	do("make a read token",
		chromedp.SendKeys(id("token-name"), "grafana"),
		chromedp.SetValue(id("token-days"), "30"),
		chromedp.Click(id("token-create")),
		chromedp.WaitVisible(id("new-token")), shot("read-token"))
	readToken := text("new-token")
	if got := text("tokens"); !strings.Contains(got, "grafana") || !strings.Contains(got, "read") {
		t.Fatalf("token list after making a read token: %q", got)
	}
	curlToken := func(args ...string) string {
		t.Helper()
		out, err := run(lab.Lan1, append([]string{"curl", "-sS", "--cacert", cacert, "--max-time", "5", "-H", "Authorization: Bearer " + readToken}, args...)...)
		if err != nil {
			t.Fatalf("curl %v: %v %s", args, err, out)
		}
		return out
	}
	if code := curlToken("-o", "/dev/null", "-w", "%{http_code}", adminURL+"/api/v1/status"); code != "200" {
		t.Errorf("read token, GET status: HTTP %s", code)
	}
	if out := curlToken("-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/json", "-d", `{"enabled":false}`, adminURL+"/api/v1/passthrough/pptp"); !strings.HasSuffix(out, "403") || !strings.Contains(out, `scope is \"read\"`) {
		t.Errorf("read token, PUT passthrough: %s", out)
	}

	// The admin page is not served on the WAN side.
	if out, err := run(lab.Server2, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://"+lab.WANAddr+":8080/login"); err == nil {
		t.Errorf("the admin page answered on the WAN address: HTTP %s", out)
	}
}
