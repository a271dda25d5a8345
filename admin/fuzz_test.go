package admin

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzUnauthenticated sends what anyone on the LAN can send before logging
// in (setup, login, session, /metrics, a protected call) with any method,
// cookie, Authorization header, Content-Type and body, to a gateway with no
// password yet. Nothing may panic or answer 5xx, no guess sets the
// password or gets a session, and the protected calls stay refused.
// Seeds: testdata/fuzz/FuzzUnauthenticated.
func FuzzUnauthenticated(f *testing.F) {
	f.Add(uint8(0), "POST", "", "", "application/json", []byte(`{"password":"long enough","setup_code":"AAAA-BBBB-CCCC"}`))
	f.Add(uint8(1), "POST", "passgate_session=x", "", "application/json", []byte(`{"password":"long enough"}`))
	f.Add(uint8(2), "GET", "passgate_session=\x00; passgate_session=", "Bearer pgt_x", "", []byte(nil))
	f.Add(uint8(3), "GET", "", "Bearer ", "", []byte(nil))
	f.Add(uint8(4), "PUT", "a=b", "Basic YTpi", "application/json; charset=utf-8", []byte(`{"enabled":false}`))
	e := newEnv(f)
	// No pacing of /metrics: the fuzzer is one client asking fast.
	e.h = NewHandler(ServerOptions{Service: e.svc, Auth: e.auth, Logger: e.svc.log, metricsGap: time.Nanosecond})
	paths := []string{"/api/v1/setup", "/api/v1/login", "/api/v1/session", "/metrics", "/api/v1/passthrough/pptp", "/api/v1/tokens"}
	f.Fuzz(func(t *testing.T, which uint8, method, cookie, authz, ctype string, body []byte) {
		path := paths[int(which)%len(paths)]
		if method == "" || strings.ContainsAny(method, " \t\r\n/()<>@,;:\\\"[]?={}") {
			method = "POST"
		}
		req := httptest.NewRequest("GET", "http://192.168.50.1:8080"+path, bytes.NewReader(body))
		req.Method = method
		req.RemoteAddr = "192.168.50.66:40000"
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		if !e.auth.SetupNeeded() {
			t.Fatalf("%s %s %q set the password without the setup code", method, path, body)
		}
		for _, c := range rec.Result().Cookies() {
			if c.Name == SessionCookie && c.Value != "" {
				t.Fatalf("%s %s: a session without a password", method, path)
			}
		}
		switch path {
		case "/metrics", "/api/v1/passthrough/pptp", "/api/v1/tokens":
			if rec.Code < 300 || strings.Contains(rec.Body.String(), "passgate_packets_total") {
				t.Fatalf("%s %s let through: %d %s", method, path, rec.Code, rec.Body)
			}
		}
	})
}
