package admin

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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
