package admin

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DNS rebinding: a page on another site that points its own name at the
// router gets 421; the router's address, 127.0.0.1:8080 (demo --hold),
// local names and names no one can register pass. A Host with characters
// no hostname has ("evil.example?.lan") is not a local name: the plain
// HTTP redirect would otherwise send the browser to evil.example.
func TestHostCheck(t *testing.T) {
	e := newEnv(t)
	for host, want := range map[string]bool{
		"192.168.50.1:8080": true, "192.168.50.1": true, "127.0.0.1:8080": true, "[::1]:8080": true,
		"router": true, "router.lan:8080": true, "gw.home.arpa": true, "localhost:8080": true, "Router.LAN.": true,
		"evil.example": false, "evil.example:8080": false, "192.168.50.1.nip.io": false, "lan": true,
		"evil.example?.lan": false, "evil.example#.lan": false, "evil.example/.lan": false, "evil.example\\.lan": false,
		"user@evil.example.lan": false, "evil.example%2f.lan": false, "a b.lan": false,
	} {
		if got := hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
		req := httptest.NewRequest("GET", "/api/v1/session", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if (rec.Code != http.StatusMisdirectedRequest) != want {
			t.Errorf("Host %q: %d", host, rec.Code)
		}
	}
	local := &net.TCPAddr{IP: net.IPv4(192, 168, 50, 1), Port: 8080}
	for _, host := range []string{"evil.example?.lan", "evil.example#.lan"} {
		req, err := http.ReadRequest(bufioReader("GET /status HTTP/1.1\r\nHost: " + host + "\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := redirectResponse(req, local); !strings.Contains(got, "\r\nLocation: https://192.168.50.1:8080/status\r\n") {
			t.Errorf("Host %q redirected:\n%s", host, got)
		}
	}
}

// A plain HTTP request's header is read with a bound: a client streaming
// an endless header line is answered and closed at once, not buffered
// for the whole sniff timeout (64 of them at LAN speed would take GBs).
func TestPlainHTTPHeaderBounded(t *testing.T) {
	addr, _ := serveTLS(t, 8)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
		chunk := strings.Repeat("a", 64<<10)
		for range 64 { // 4 MiB, no end of line
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, 512)
	n, err := c.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server still reads an endless plain HTTP header after 3 s")
	}
	if n > 0 && !strings.HasPrefix(string(b[:n]), "HTTP/1.1 4") {
		t.Fatalf("answer: %q", b[:n])
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// Root resets the admin password by removing the auth file and setting a
// new one (passgate passwd writing the file): every session ends, also
// when passgate noticed the removal before the new file came.
func TestSessionsEndOnAuthFileReset(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	if r := c.do("GET", "/api/v1/status", nil); r.code != 200 {
		t.Fatalf("status: %d", r.code)
	}
	if err := os.Remove(e.auth.Path()); err != nil {
		t.Fatal(err)
	}
	if !e.auth.SetupNeeded() {
		t.Fatal("no setup needed without the auth file")
	}
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("a session of the removed password still works: %d", r.code)
	}
	other, err := NewAuth(e.auth.Path())
	if err != nil {
		t.Fatal(err)
	}
	other.cost = e.auth.cost
	if err := other.ResetPassword("new root pw"); err != nil {
		t.Fatal(err)
	}
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("a session from before the reset works after it: %d", r.code)
	}
}

// passgate passwd writing the auth file while the daemon runs ends the
// sessions at their next request, not at the next login or token check.
func TestSessionEndsWhenPasswdWritesFile(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	other, err := NewAuth(e.auth.Path())
	if err != nil {
		t.Fatal(err)
	}
	other.cost = e.auth.cost
	e.now = e.now.Add(time.Second) // a new mtime
	if err := other.ResetPassword("from the cli"); err != nil {
		t.Fatal(err)
	}
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("the session survived passgate passwd: %d", r.code)
	}
}

// The self-signed certificate is a CA (so curl --cacert and browsers can
// take it as their anchor); someone who trusts it must not thereby trust
// whatever its key signs: name constraints hold it to the router's own
// addresses, and an old certificate without them is made again.
func TestSelfSignedCertConstrained(t *testing.T) {
	dir := t.TempDir()
	cf, kf := CertPaths(filepath.Join(dir, "p.json"))
	lan := netip.MustParseAddr("192.168.50.1")
	c, err := LoadOrCreateCert(cf, kf, lan, nil)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.TLS.Leaf)
	if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "192.168.50.1"}); err != nil {
		t.Fatalf("the certificate itself: %v", err)
	}
	key := c.TLS.PrivateKey.(*ecdsa.PrivateKey)
	for _, tmpl := range []*x509.Certificate{
		{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bank.example"}, DNSNames: []string{"bank.example"}},
		{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "10.0.0.1"}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}},
	} {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, c.TLS.Leaf, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		name := tmpl.Subject.CommonName
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err == nil {
			t.Errorf("a certificate for %s signed by the admin key verifies under the admin certificate", name)
		}
	}
	// One made before the constraints: made again.
	certPEM, keyPEM := oldUnconstrainedCert(t, lan, key)
	os.WriteFile(cf, certPEM, 0o644)
	os.WriteFile(kf, keyPEM, 0o600)
	c2, err := LoadOrCreateCert(cf, kf, lan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c2.TLS.Leaf.PermittedIPRanges) == 0 || !c2.TLS.Leaf.PermittedDNSDomainsCritical {
		t.Fatalf("an unconstrained self-signed certificate was kept: %+v", c2.TLS.Leaf.PermittedIPRanges)
	}
}

func oldUnconstrainedCert(t *testing.T, ip netip.Addr, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "passgate " + ip.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), ip.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// One LAN host opening connections that send nothing cannot take every
// admin connection: it gets its share (perAddrLimit), the rest of its
// connections are closed at once, and another host is still served.
func TestAdminConnectionsPerAddress(t *testing.T) {
	addr, pool := serveTLS(t, 16)
	share := perAddrLimit(16)
	if share >= 16 || share < 6 {
		t.Fatalf("perAddrLimit(16) = %d", share)
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	closed := 0
	for range 16 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed != 16-share {
		t.Errorf("%d of 16 silent connections from one address closed, want %d", closed, 16-share)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	start := time.Now()
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("another host after %v: %v", time.Since(start), err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "GET /owner HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("another host: %q %v", line, err)
	}
}

// The user's own certificate for a real name (router.example.com): the
// Host check takes the names it was issued for, and only those.
func TestHostCheckCertNames(t *testing.T) {
	names := []string{"router.example.com", "*.home.example.net"}
	for host, want := range map[string]bool{
		"router.example.com": true, "Router.Example.COM:8080": true, "gw.home.example.net": true,
		"evil.example.com": false, "home.example.net": false, "a.b.home.example.net": false, ".home.example.net": false,
		"router.example.com.evil.example": false,
	} {
		if got := hostAllowed(host, names...); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	e := newEnv(t)
	h := NewHandler(ServerOptions{Service: e.svc, Auth: e.auth, Hosts: names})
	for host, want := range map[string]int{"router.example.com": 200, "evil.example": http.StatusMisdirectedRequest} {
		req := httptest.NewRequest("GET", "/api/v1/session", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
	local := &net.TCPAddr{IP: net.IPv4(192, 168, 50, 1), Port: 8080}
	req, _ := http.ReadRequest(bufioReader("GET /x HTTP/1.1\r\nHost: router.example.com:8080\r\n\r\n"))
	if got := redirectResponse(req, local, names...); !strings.Contains(got, "\r\nLocation: https://router.example.com:8080/x\r\n") {
		t.Errorf("redirect:\n%s", got)
	}
}

// Two setups with the right code at once: one sets the password, the
// other is refused (409), and the code is gone after.
func TestSetupRace(t *testing.T) {
	e := newEnv(t)
	code := e.auth.SetupCode()
	codes := make(chan int, 2)
	for i := range 2 {
		go func() {
			c := e.client()
			c.remote = fmt.Sprintf("192.168.50.%d:4000", 20+i)
			codes <- c.do("POST", "/api/v1/setup", SetupRequest{Password: fmt.Sprintf("password %d!", i), SetupCode: code}).code
		}()
	}
	a, b := <-codes, <-codes
	if min(a, b) != http.StatusCreated || max(a, b) != http.StatusConflict {
		t.Fatalf("two setups: %d and %d", a, b)
	}
	if e.auth.SetupCode() != "" {
		t.Fatal("a setup code after setup")
	}
	c := e.client()
	if r := c.do("POST", "/api/v1/setup", SetupRequest{Password: "third password", SetupCode: code}); r.code != http.StatusConflict {
		t.Fatalf("the code again after setup: %d", r.code)
	}
}

// Guessing the current password on the password change (a stolen session
// or API token trying to learn the password, which outlives both) is
// limited per address as logins are.
func TestPasswordChangeGuessingLimited(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	for i := range FreeLoginFailures + 3 {
		r := c.do("PUT", "/api/v1/password", PasswordRequest{OldPassword: fmt.Sprintf("guess %d", i), Password: "attacker password"})
		want := http.StatusBadRequest
		if i >= FreeLoginFailures {
			want = http.StatusTooManyRequests
		}
		if r.code != want {
			t.Fatalf("guess %d: %d %s", i, r.code, r.body)
		}
	}
	e.now = e.now.Add(MaxLoginBackoff)
	if r := c.do("PUT", "/api/v1/password", PasswordRequest{OldPassword: "correct horse", Password: "a new password"}); r.code != 200 {
		t.Fatalf("the right password after the wait: %d %s", r.code, r.body)
	}
}

// Nothing the admin server answers with a login behind it is kept by a
// cache: /metrics with a token, a redirect, an error page, every answer
// but the static assets says no-store.
func TestNoStore(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	r := c.do("POST", "/api/v1/tokens", TokenRequest{Name: "prometheus"})
	var tr TokenResponse
	r.decode(t, &tr)
	m := e.client()
	m.bearer = tr.Token
	for _, x := range []struct {
		c    *client
		path string
	}{{m, "/metrics"}, {e.client(), "/metrics"}, {c, "/api/v1/status"}, {c, "/"}, {e.client(), "/status"}} {
		r := x.c.do("GET", x.path, nil)
		if got := r.hdr.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s (%d): Cache-Control %q", x.path, r.code, got)
		}
	}
}

// A LAN host failing TLS handshakes in a loop does not fill the log: the
// http server's "TLS handshake error" lines go to debug.
func TestHandshakeErrorsNotLogged(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir := t.TempDir()
	cf, kf := CertPaths(filepath.Join(dir, "p.json"))
	cert, err := LoadOrCreateCert(cf, kf, netip.MustParseAddr("127.0.0.1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, NewTLSOnlyListener(ln, cert.TLSConfig(), 8, log), http.NotFoundHandler(), log)
	}()
	defer func() { cancel(); <-done }()
	for range 50 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("\x16\x03\x01\x00\x05hello"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(buf.String(), "handshake error"); n > 0 {
		t.Fatalf("%d handshake errors logged at info or above:\n%.500s", n, buf.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A session kept busy (a status page left open refreshes itself) still
// ends SessionMaxAge after the login.
func TestSessionMaxAge(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	for h := 1; h < 24; h++ {
		e.now = e.now.Add(time.Hour)
		if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusOK {
			t.Fatalf("after %d h in use: %d", h, r.code)
		}
	}
	e.now = e.now.Add(time.Hour + time.Second)
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("a session in use for 24 h still works: %d", r.code)
	}
}
