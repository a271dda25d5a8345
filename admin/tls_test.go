package admin

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestSelfSignedCert(t *testing.T) {
	dir := t.TempDir()
	cf, kf := CertPaths(filepath.Join(dir, "passgate.json"))
	c, err := LoadOrCreateCert(cf, kf, netip.MustParseAddr("192.168.50.1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(kf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	leaf := c.TLS.Leaf
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key %T", leaf.PublicKey)
	}
	sum := sha256.Sum256(leaf.Raw)
	if c.Fingerprint != Fingerprint(sum[:]) || len(c.Fingerprint) != 95 {
		t.Fatalf("fingerprint %s", c.Fingerprint)
	}
	if err := leaf.VerifyHostname("192.168.50.1"); err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCert(cf, kf, netip.MustParseAddr("192.168.50.1"), nil)
	if err != nil || again.Fingerprint != c.Fingerprint {
		t.Fatalf("second start made another certificate: %v %s %s", err, again.Fingerprint, c.Fingerprint)
	}
	// The user's own certificate (admin.tls_cert, admin.tls_key).
	own, err := LoadCert(cf, kf)
	if err != nil || own.SelfSigned || own.Fingerprint != c.Fingerprint {
		t.Fatalf("LoadCert: %v %+v", err, own)
	}
	// A new LAN address: a new certificate that names it.
	moved, err := LoadOrCreateCert(cf, kf, netip.MustParseAddr("10.0.0.1"), nil)
	if err != nil || moved.Fingerprint == c.Fingerprint || moved.TLS.Leaf.VerifyHostname("10.0.0.1") != nil {
		t.Fatalf("after the address changed: %v %s", err, moved.Fingerprint)
	}
	if _, err := LoadCert(cf, filepath.Join(dir, "missing.key")); err == nil {
		t.Fatal("a missing key loaded")
	}
}

// serveTLS runs the admin listener over a test handler on 127.0.0.1.
func serveTLS(t *testing.T, max int) (addr string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	cf, kf := CertPaths(filepath.Join(dir, "p.json"))
	c, err := LoadOrCreateCert(cf, kf, netip.MustParseAddr("127.0.0.1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	tl := NewTLSOnlyListener(ln, c.TLSConfig(), max, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls "+r.URL.Path) }))
	go func() { done <- Serve(ctx, tl, h, log) }()
	t.Cleanup(func() { cancel(); <-done })
	pool = x509.NewCertPool()
	pool.AddCert(c.TLS.Leaf)
	return ln.Addr().String(), pool
}

func TestPlainHTTPRedirected(t *testing.T) {
	addr, pool := serveTLS(t, 8)
	raw := func(req string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		b, _ := io.ReadAll(c)
		return string(b)
	}
	got := raw("GET /status?x=1 HTTP/1.1\r\nHost: 192.168.50.1:8080\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 308 ") || !strings.Contains(got, "\r\nLocation: https://192.168.50.1:8080/status?x=1\r\n") || strings.Contains(got, "tls /") {
		t.Fatalf("plain HTTP:\n%s", got)
	}
	// A Host that is someone else's name: the redirect keeps to the address
	// the client reached.
	got = raw("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n")
	if !strings.Contains(got, "\r\nLocation: https://"+addr+"/\r\n") {
		t.Fatalf("foreign Host:\n%s", got)
	}
	if got := raw("\x00garbage\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Fatalf("garbage:\n%s", got)
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := cl.Get("https://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "tls /status" || res.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("https: %s %v", b, res.Header)
	}
}

// With max connections open, another waits (in the kernel's backlog) until
// one closes.
func TestAdminConnectionCap(t *testing.T) {
	addr, pool := serveTLS(t, 2)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond) // both accepted
	got := make(chan string, 1)
	go func() {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		io.WriteString(c, "GET /third HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	select {
	case s := <-got:
		t.Fatalf("a third connection was served past the cap of 2: %q", s)
	case <-time.After(500 * time.Millisecond):
	}
	held[0].Close()
	select {
	case s := <-got:
		if !strings.HasPrefix(s, "HTTP/1.1 200") {
			t.Fatalf("third: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not served after one closed")
	}
	held[1].Close()
}

// One client's /metrics requests are answered metricsGap apart; another
// client is not held up; a queue longer than maxWait is refused.
func TestMetricsPacer(t *testing.T) {
	p := newPacer(50*time.Millisecond, 200*time.Millisecond)
	ctx := context.Background()
	start := time.Now()
	for range 4 {
		if !p.wait(ctx, "a") {
			t.Fatal("refused within maxWait")
		}
	}
	if d := time.Since(start); d < 140*time.Millisecond {
		t.Fatalf("4 requests answered in %v, want at least 3 gaps", d)
	}
	t0 := time.Now()
	if !p.wait(ctx, "b") || time.Since(t0) > 20*time.Millisecond {
		t.Fatal("another client waited")
	}
	for range 10 {
		go p.wait(ctx, "c")
	}
	time.Sleep(10 * time.Millisecond)
	if p.wait(ctx, "c") {
		t.Fatal("a queue past maxWait was not refused")
	}
}

func TestCachedGatherer(t *testing.T) {
	n := 0
	now := time.Unix(100, 0)
	g := &cachedGatherer{g: gatherFunc(func() { n++ }), ttl: time.Second, now: func() time.Time { return now }}
	g.Gather()
	g.Gather()
	now = now.Add(999 * time.Millisecond)
	g.Gather()
	if n != 1 {
		t.Fatalf("gathered %d times within the TTL", n)
	}
	now = now.Add(time.Millisecond)
	g.Gather()
	if n != 2 {
		t.Fatalf("gathered %d times after the TTL", n)
	}
}

type gatherFunc func()

func (f gatherFunc) Gather() ([]*dto.MetricFamily, error) { f(); return nil, nil }
