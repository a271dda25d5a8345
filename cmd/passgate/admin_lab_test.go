//go:build lab

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// TestLabAdmin runs `passgate run` with its admin server in the lab
// (namespaces "pgad-*") and uses it as a person, a script or an attacker on
// the LAN would, with real curl: plain HTTP only gets a redirect to https;
// another LAN host (lan2) cannot set the first password without the setup
// code that root reads on `passgate status`; the owner (lan1) sets it with
// the code, calls the API with the session cookie and the CSRF token,
// switches PPTP passthrough off and sees a LAN host's TCP SYN to srv1:1723
// no longer get through while other TCP still does, then switches it back
// on with the CLI. /metrics needs a token; a token is dead after `passgate
// passwd`. The admin port must not answer on the WAN side, and it opens
// only after the fence is in place.
func TestLabAdmin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l := labtest.Up(t, "pgad", 4*time.Minute)

	dir := t.TempDir()
	sock := filepath.Join(dir, "pg.sock")
	py := filepath.Join(dir, "tcp.py")
	os.WriteFile(py, []byte(pyTCP), 0o644)

	exe, _ := os.Executable()
	g := labtest.StartGateT(ctx, t, l, labtest.GateOptions{
		Bin: exe, Dir: dir, Name: "pg", Sock: sock, Env: []string{"PASSGATE_TEST_MAIN=1"}, Wait: 30 * time.Second,
		Config: fmt.Sprintf(`{
  "lan": {"interface": "lan0", "address": "192.168.50.1/24"},
  "wan": {"interface": "wan0", "address": "203.0.113.1/24"},
  "workers": 1,
  "control_socket": %q
}
`, sock),
	})
	logs := g.Proc.Stdout
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("passgate log:\n%s", logs.String())
		}
	}()
	// The admin server starts once the router forwards (it logs just after).
	for _, want := range []string{`msg="admin server listening" url=https://192.168.50.1:8080/`, "no admin password is set yet", "setup_code=", "cert_sha256="} {
		if err := g.Proc.WaitFor(5*time.Second, want, func() bool { return strings.Contains(logs.String(), want) }); err != nil {
			t.Fatalf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// The fence is in place before the admin server listens.
	if f, a := strings.Index(logs.String(), "kernel fenced off"), strings.Index(logs.String(), "admin server listening"); f < 0 || a < f {
		t.Fatalf("the admin server listened before the fence was in place (fence at %d, listen at %d):\n%s", f, a, logs.String())
	}
	// Root reads the setup code and the certificate on passgate status.
	code, o, e := runCLI("status", "--json", "--control", sock)
	var st struct {
		Admin struct {
			URL         string `json:"url"`
			Fingerprint string `json:"cert_sha256"`
			CertFile    string `json:"cert_file"`
			SetupCode   string `json:"setup_code"`
		} `json:"admin"`
	}
	if code != 0 || json.Unmarshal([]byte(o), &st) != nil || st.Admin.SetupCode == "" || len(st.Admin.Fingerprint) != 95 {
		t.Fatalf("status: %d %s %s", code, o, e)
	}
	if !strings.Contains(logs.String(), "cert_sha256="+st.Admin.Fingerprint) {
		t.Fatalf("the log's fingerprint is not passgate status' %s", st.Admin.Fingerprint)
	}
	if code, o, _ := runCLI("status", "--control", sock); code != 0 || !strings.Contains(o, "setup code "+st.Admin.SetupCode) || !strings.Contains(o, st.Admin.Fingerprint) {
		t.Fatalf("status for people: %d\n%s", code, o)
	}
	// The fence's lan_ingress chain, in table netdev or ip passgate by driver.
	if out, err := l.Run(ctx, lab.Router, "nft", "list", "ruleset"); err != nil ||
		!strings.Contains(out, "chain lan_ingress") || !strings.Contains(out, "ip daddr 192.168.50.1 tcp dport 8080") {
		t.Fatalf("fence lacks the admin accept: %v\n%s", err, out)
	}

	// A listener on srv1 for PPTP's port and an ordinary one.
	listener := labtest.StartWithT(t, l, lab.Server1, labtest.Options{Combined: true}, lab.Python, py, "listen", "1723", "80")
	heard := listener.Stdout
	// Each port binds in its own thread, after "listening" may be printed:
	// wait for the sockets themselves (connect below tries once).
	for _, port := range []int{1723, 80} {
		if err := labtest.WaitListen(l, lab.Server1, "tcp", "0.0.0.0", port, 15*time.Second, listener); err != nil {
			t.Fatal(err)
		}
	}

	const base = "https://192.168.50.1:8080"
	jar := filepath.Join(dir, "cookies")
	cacert := st.Admin.CertFile
	// curl runs on a node and returns the HTTP status and the body; each
	// node has its own cookies.
	curl := func(node string, args ...string) (int, string) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		jar := jar + "-" + node
		all := append([]string{"-sS", "--max-time", "5", "--cacert", cacert, "-b", jar, "-c", jar, "-o", "-", "-w", "\n%{http_code}"}, args...)
		out, _ := l.Cmd(c, node, "curl", all...).CombinedOutput()
		s := strings.TrimRight(string(out), "\n")
		i := strings.LastIndexByte(s, '\n')
		code, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return 0, s
		}
		if i < 0 {
			return code, ""
		}
		return code, s[:i]
	}
	connect := func(port string) bool {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return l.Cmd(c, lab.Lan1, lab.Python, py, "connect", lab.Srv1, port, "3").Run() == nil
	}
	count := func(port string) int { return strings.Count(heard.String(), "port "+port+" ") }
	waitHeard := func(port string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); count(port) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("srv1 heard %d connections on %s, want %d:\n%s", count(port), port, n, heard.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Plain HTTP on the admin port gets a redirect to https, nothing else.
	if code, body := curl(lab.Lan1, "-D", "-", "http://192.168.50.1:8080/status?x=1"); code != 308 || !strings.Contains(body, "Location: https://192.168.50.1:8080/status?x=1") {
		t.Fatalf("plain HTTP: %d %s", code, body)
	}
	if code, body := curl(lab.Lan1, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"password":"plain text"}`, "http://192.168.50.1:8080/api/v1/setup"); code != 308 {
		t.Fatalf("plain HTTP setup: %d %s", code, body)
	}
	// Before any password: only session, setup and login answer.
	code, body := curl(lab.Lan1, base+"/api/v1/session")
	if code != 200 || !strings.Contains(body, `"setup_needed": true`) {
		t.Fatalf("session: %d %s", code, body)
	}
	if code, body := curl(lab.Lan1, base+"/api/v1/status"); code != 401 {
		t.Fatalf("status without login: %d %s", code, body)
	}
	// The web page (package admin/web) is served for everything else.
	if code, body := curl(lab.Lan1, "-L", base+"/"); code != 200 || strings.Contains(body, "admin UI not built") || !strings.Contains(body, "<form") {
		t.Fatalf("admin page: %d %s", code, body)
	}
	// Another LAN host tries to take the new gateway: without the setup
	// code, or with a guess, it is refused and no password is set.
	for _, bodyJSON := range []string{`{"password":"attacker password"}`, `{"password":"attacker password","setup_code":"AAAA-BBBB-CCCC"}`} {
		code, body := curl(lab.Lan2, "-X", "POST", "-H", "Content-Type: application/json", "-d", bodyJSON, base+"/api/v1/setup")
		if code != 403 || !strings.Contains(body, "setup_code") {
			t.Fatalf("setup from lan2 without the code: %d %s", code, body)
		}
		t.Logf("setup from lan2 with %s: HTTP %d", bodyJSON, code)
	}
	if code, body := curl(lab.Lan2, "-X", "POST", "--data-urlencode", "password=attacker password", "--data-urlencode", "confirm=attacker password", "-H", "Origin: "+base, base+"/setup"); code != 422 {
		t.Fatalf("setup page from lan2 without the code: %d %s", code, body)
	}
	if code, body := curl(lab.Lan2, base+"/api/v1/session"); code != 200 || !strings.Contains(body, `"setup_needed": true`) {
		t.Fatalf("after lan2's tries: %d %s", code, body)
	}
	code, body = curl(lab.Lan1, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"password":"lab admin password","setup_code":"`+st.Admin.SetupCode+`"}`, base+"/api/v1/setup")
	var lr struct {
		CSRFToken string `json:"csrf_token"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &lr) != nil || lr.CSRFToken == "" {
		t.Fatalf("setup: %d %s", code, body)
	}
	// Log out and in again, as a person would.
	if code, body := curl(lab.Lan1, "-X", "POST", "-H", "X-CSRF-Token: "+lr.CSRFToken, base+"/api/v1/logout"); code != 204 {
		t.Fatalf("logout: %d %s", code, body)
	}
	code, body = curl(lab.Lan1, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"password":"lab admin password"}`, base+"/api/v1/login")
	if code != 200 || json.Unmarshal([]byte(body), &lr) != nil || lr.CSRFToken == "" {
		t.Fatalf("login: %d %s", code, body)
	}
	code, body = curl(lab.Lan1, base+"/api/v1/status")
	if code != 200 || !strings.Contains(body, `"name": "lan0"`) || !strings.Contains(body, `"pptp": true`) {
		t.Fatalf("status: %d %s", code, body)
	}

	// PPTP's port passes while the passthrough is on.
	if !connect("1723") {
		t.Fatalf("TCP to srv1:1723 failed with PPTP passthrough on\n%s", heard.String())
	}
	waitHeard("1723", 1)

	// Without the CSRF token the change is refused.
	code, body = curl(lab.Lan1, "-X", "PUT", "-H", "Content-Type: application/json", "-d", `{"enabled":false}`, base+"/api/v1/passthrough/pptp")
	if code != 403 {
		t.Fatalf("PUT without CSRF: %d %s", code, body)
	}
	code, body = curl(lab.Lan1, "-X", "PUT", "-H", "Content-Type: application/json", "-H", "X-CSRF-Token: "+lr.CSRFToken,
		"-d", `{"enabled":false}`, base+"/api/v1/passthrough/pptp")
	if code != 200 || !strings.Contains(body, "PPTP passthrough: on -> off") {
		t.Fatalf("PUT pptp off: %d %s", code, body)
	}
	if b, _ := os.ReadFile(g.Config); !strings.Contains(string(b), `"pptp": false`) {
		t.Fatalf("not saved:\n%s", b)
	}
	// Now a SYN to 1723 gets nowhere, while other TCP still does.
	if connect("1723") {
		t.Fatal("TCP to srv1:1723 connected with PPTP passthrough off")
	}
	if count("1723") != 1 {
		t.Fatalf("srv1's listener on 1723 heard a connection with PPTP passthrough off:\n%s", heard.String())
	}
	if !connect("80") {
		t.Fatal("TCP to srv1:80 failed with PPTP passthrough off")
	}
	waitHeard("80", 1)
	code, body = curl(lab.Lan1, base+"/api/v1/events")
	if code != 200 || !strings.Contains(body, "PPTP passthrough is switched off") {
		t.Fatalf("events: %d %s", code, body)
	}
	// /metrics: refused without a token, served with one (as Prometheus
	// sends it).
	if code, body := curl(lab.Lan2, base+"/metrics"); code != 401 || strings.Contains(body, "passgate_") {
		t.Fatalf("metrics without a token: %d\n%s", code, body)
	}
	code, body = curl(lab.Lan1, "-X", "POST", "-H", "Content-Type: application/json", "-H", "X-CSRF-Token: "+lr.CSRFToken, "-d", `{"name":"prometheus"}`, base+"/api/v1/tokens")
	var tr struct {
		Token string `json:"token"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &tr) != nil || tr.Token == "" {
		t.Fatalf("token: %d %s", code, body)
	}
	code, body = curl(lab.Lan2, "-H", "Authorization: Bearer "+tr.Token, base+"/metrics")
	if code != 200 || !strings.Contains(body, `passgate_passthrough_enabled{proto="pptp"} 0`) || strings.Contains(body, `passgate_drops_total{reason="pptp_passthrough_off"} 0`) {
		t.Fatalf("metrics: %d\n%s", code, body)
	}

	// The CLI over the control socket sees the same and switches it back.
	code, o, e = runCLI("passthrough", "--control", sock)
	if code != 0 || !strings.Contains(o, "pptp   PPTP         off") {
		t.Fatalf("passthrough list: %d\n%s%s", code, o, e)
	}
	if code, o, e := runCLI("passthrough", "pptp", "on", "--control", sock); code != 0 || !strings.Contains(o, "PPTP passthrough: off -> on") {
		t.Fatalf("passthrough pptp on: %d %q %q", code, o, e)
	}
	if !connect("1723") {
		t.Fatal("TCP to srv1:1723 failed after PPTP passthrough was switched back on")
	}
	waitHeard("1723", 2)

	// passgate passwd on the router: every session ends and the token is
	// dead.
	stdin = strings.NewReader("a new lab password\n")
	code, o, e = runCLI("passwd", "--control", sock)
	stdin = os.Stdin
	if code != 0 || !strings.Contains(o, "every API token revoked") {
		t.Fatalf("passwd: %d %s %s", code, o, e)
	}
	if code, body := curl(lab.Lan2, "-H", "Authorization: Bearer "+tr.Token, base+"/api/v1/status"); code != 401 {
		t.Fatalf("the token after passgate passwd: %d %s", code, body)
	}
	if code, _ := curl(lab.Lan2, "-H", "Authorization: Bearer "+tr.Token, base+"/metrics"); code != 401 {
		t.Fatalf("/metrics with the token after passgate passwd: %d", code)
	}
	if code, _ := curl(lab.Lan1, base+"/api/v1/status"); code != 401 {
		t.Fatalf("the session after passgate passwd: %d", code)
	}

	// The admin port is not reachable from the WAN side: neither on the
	// WAN address nor, routed through the gateway, on the LAN address.
	if code, body := curl(lab.Server1, "--max-time", "3", "https://203.0.113.1:8080/api/v1/session"); code != 0 {
		t.Fatalf("admin port answered on the WAN address: %d %s", code, body)
	}
	if _, err := l.Run(ctx, lab.Server1, "ip", "route", "add", "192.168.50.0/24", "via", lab.WANAddr); err != nil {
		t.Fatal(err)
	}
	if code, body := curl(lab.Server1, "--max-time", "3", base+"/api/v1/session"); code != 0 {
		t.Fatalf("admin port answered from the WAN through the gateway: %d %s", code, body)
	}
	// ... while it still does from the LAN.
	if code, _ := curl(lab.Lan2, base+"/api/v1/session"); code != 200 {
		t.Fatalf("admin from lan2: %d", code)
	}

	if err := g.Proc.Terminate(15 * time.Second); err != nil {
		t.Fatalf("passgate exit: %v", err)
	}
}

// pyTCP: listen PORT... prints "port P from ADDR" per connection;
// connect HOST PORT TIMEOUT exits 0 if the connection opens.
const pyTCP = `
import socket, sys, threading
if sys.argv[1] == "listen":
    def serve(port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(port)))
        s.listen(16)
        while True:
            c, a = s.accept()
            print("port %s from %s:%d" % (port, a[0], a[1]), flush=True)
            c.close()
    ts = [threading.Thread(target=serve, args=(p,), daemon=True) for p in sys.argv[2:]]
    for t in ts:
        t.start()
    print("listening", flush=True)
    for t in ts:
        t.join()
else:
    try:
        socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=float(sys.argv[4])).close()
    except OSError as e:
        sys.exit("connect: %s" % e)
`
