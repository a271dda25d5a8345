package admin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"passgate/config"
	"passgate/control"
)

// authedEndpoints are every call that needs authentication, with a body
// that would be valid.
var authedEndpoints = []struct {
	method, path string
	body         any
}{
	{"POST", "/api/v1/logout", nil},
	{"PUT", "/api/v1/password", PasswordRequest{OldPassword: "correct horse", Password: "battery staple"}},
	{"GET", "/api/v1/status", nil},
	{"GET", "/api/v1/flows", nil},
	{"GET", "/api/v1/events", nil},
	{"GET", "/api/v1/config", nil},
	{"PUT", "/api/v1/config", testConfig},
	{"GET", "/api/v1/passthrough", nil},
	{"GET", "/api/v1/passthrough/pptp", nil},
	{"PUT", "/api/v1/passthrough/pptp", `{"enabled":false}`},
	{"GET", "/api/v1/forwards", nil},
	{"POST", "/api/v1/forwards", `{"name":"ssh","proto":"tcp","outside_port":2222,"host":"192.168.50.11","inside_port":22}`},
	{"GET", "/api/v1/forwards/web", nil},
	{"PUT", "/api/v1/forwards/web", `{"name":"web","proto":"tcp","outside_port":8081,"host":"192.168.50.10","inside_port":80}`},
	{"DELETE", "/api/v1/forwards/web", nil},
	{"GET", "/api/v1/dmz", nil},
	{"PUT", "/api/v1/dmz", `{"host":"192.168.50.20"}`},
	{"GET", "/api/v1/tokens", nil},
	{"POST", "/api/v1/tokens", `{"name":"ci"}`},
	{"DELETE", "/api/v1/tokens/abcd", nil},
	{"GET", "/api/v1/mappings", nil},
	{"DELETE", "/api/v1/mappings/tcp/40000", nil},
}

func TestUnauthenticatedRefused(t *testing.T) {
	e := newEnv(t)
	e.loggedIn() // a password exists; this client has no session
	for _, ep := range authedEndpoints {
		c := e.client()
		r := c.do(ep.method, ep.path, ep.body)
		if r.code != http.StatusUnauthorized || !r.hasErr("", "authentication required") || r.hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s without a session: %d %s", ep.method, ep.path, r.code, r.body)
		}
		// A made-up cookie or token is no better.
		c.cookie = &http.Cookie{Name: SessionCookie, Value: "forged"}
		if r := c.do(ep.method, ep.path, ep.body); r.code != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged cookie: %d", ep.method, ep.path, r.code)
		}
		c.cookie, c.bearer = nil, TokenPrefix+"forged"
		if r := c.do(ep.method, ep.path, ep.body); r.code != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged token: %d", ep.method, ep.path, r.code)
		}
	}
	if _, n := e.gw.last(); n != 0 {
		t.Fatalf("unauthenticated calls reconfigured the gateway %d times", n)
	}
	if !strings.Contains(e.file(), `"outside_port": 8080`) {
		t.Fatalf("file changed:\n%s", e.file())
	}
}

func TestCSRFRequired(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	token := c.csrf
	for _, ep := range authedEndpoints {
		if ep.method == "GET" {
			continue
		}
		for _, bad := range []string{"", "wrong-token"} {
			c.csrf = bad
			r := c.do(ep.method, ep.path, ep.body)
			if r.code != http.StatusForbidden || !r.hasErr("", "CSRF") {
				t.Errorf("%s %s with CSRF token %q: %d %s", ep.method, ep.path, bad, r.code, r.body)
			}
		}
	}
	if _, n := e.gw.last(); n != 0 {
		t.Fatalf("CSRF-less calls reconfigured the gateway")
	}
	// GETs need no token.
	c.csrf = ""
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusOK {
		t.Fatalf("GET without CSRF: %d", r.code)
	}
	c.csrf = token
	if r := c.do("PUT", "/api/v1/passthrough/pptp", `{"enabled":false}`); r.code != http.StatusOK {
		t.Fatalf("with the token: %d %s", r.code, r.body)
	}
}

func TestCSRFFormField(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	ok := e.auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if CSRFToken(r) != c.csrf {
			t.Errorf("CSRFToken in the handler: %q", CSRFToken(r))
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	post := func(form string) int {
		req := httptest.NewRequest("POST", "/passthrough", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(c.cookie)
		rec := httptest.NewRecorder()
		ok.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post("csrf_token=" + c.csrf + "&pptp=off"); code != http.StatusNoContent {
		t.Errorf("form with token: %d", code)
	}
	if code := post("pptp=off"); code != http.StatusForbidden {
		t.Errorf("form without token: %d", code)
	}
	// Pages redirect to /login without a session.
	req := httptest.NewRequest("GET", "/status?x=1", nil)
	rec := httptest.NewRecorder()
	ok.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login?next=%2Fstatus%3Fx%3D1" {
		t.Errorf("page without session: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestSetupAndLogin(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	var si SessionInfo
	c.do("GET", "/api/v1/session", nil).decode(t, &si)
	if !si.SetupNeeded || si.Authenticated {
		t.Fatalf("session before setup: %+v", si)
	}
	// Before setup, login says to set a password first.
	if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "whatever1"}); r.code != http.StatusConflict || !r.hasErr("", "no password is set yet") {
		t.Fatalf("login before setup: %d %s", r.code, r.body)
	}
	// Bad setup bodies.
	code := `,"setup_code":"` + e.auth.SetupCode() + `"`
	for _, tc := range []struct {
		body, ct string
		code     int
		field    string
		msg      string
	}{
		{`{"password":"long enough"}`, "application/json", 403, "setup_code", "wrong or missing setup code"},
		{`{"password":"long enough","setup_code":"ABCD-EFGH-JKMN"}`, "application/json", 403, "setup_code", "wrong or missing setup code"},
		{`{"password":"short"` + code + `}`, "application/json", 400, "password", "at least 8 characters"},
		{`{"password":"` + strings.Repeat("x", 73) + `"` + code + `}`, "application/json", 400, "password", "at most 72 bytes"},
		{`{"password":12345678}`, "application/json", 400, "password", "expected a string"},
		{`{"password":"long enough","admin":true}`, "application/json", 400, "admin", "unknown field"},
		{`{"password":"long enough"`, "application/json", 400, "line 1, column 26", "invalid JSON"},
		{`{"password":"long enough"}`, "text/plain", 415, "", "Content-Type: application/json"},
		{`password=long+enough`, "application/x-www-form-urlencoded", 415, "", "must be JSON"},
	} {
		r := c.doCT("POST", "/api/v1/setup", tc.body, tc.ct)
		if r.code != tc.code || !r.hasErr(tc.field, tc.msg) {
			t.Errorf("setup %s (%s): %d %s", tc.body, tc.ct, r.code, r.body)
		}
	}
	if !e.auth.SetupNeeded() {
		t.Fatal("a bad setup set a password")
	}
	// The code as people type it: lower case, no dashes.
	typed := strings.ToLower(strings.ReplaceAll(e.auth.SetupCode(), "-", ""))
	r := c.do("POST", "/api/v1/setup", SetupRequest{Password: "correct horse", SetupCode: typed})
	if r.code != http.StatusCreated || c.cookie == nil {
		t.Fatalf("setup: %d %s", r.code, r.body)
	}
	if e.auth.SetupCode() != "" {
		t.Fatal("the setup code outlived the setup")
	}
	ck := c.cookie
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || !ck.Secure {
		t.Fatalf("cookie %+v", ck)
	}
	var lr LoginResponse
	r.decode(t, &lr)
	c.do("GET", "/api/v1/session", nil).decode(t, &si)
	if si.SetupNeeded || !si.Authenticated || si.Via != "session" || si.CSRFToken != lr.CSRFToken {
		t.Fatalf("session after setup: %+v", si)
	}
	// Setup again: refused.
	if r := e.client().do("POST", "/api/v1/setup", SetupRequest{Password: "attacker pw", SetupCode: typed}); r.code != http.StatusConflict {
		t.Fatalf("second setup: %d %s", r.code, r.body)
	}
	// The state file holds a bcrypt hash, mode 0600.
	fi, err := os.Stat(e.auth.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(e.auth.Path())
	if !strings.Contains(string(b), `"password_hash": "$2a$`) || strings.Contains(string(b), "correct horse") {
		t.Fatalf("state file:\n%s", b)
	}

	// Log in from another client; wrong password first.
	c2 := e.client()
	if r := c2.do("POST", "/api/v1/login", LoginRequest{Password: "wrong password"}); r.code != http.StatusUnauthorized || !r.hasErr("password", "wrong password") || c2.cookie != nil {
		t.Fatalf("wrong password: %d %s", r.code, r.body)
	}
	r = c2.do("POST", "/api/v1/login", LoginRequest{Password: "correct horse"})
	if r.code != http.StatusOK || c2.cookie == nil {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	r.decode(t, &lr)
	c2.csrf = lr.CSRFToken
	if r := c2.do("GET", "/api/v1/status", nil); r.code != http.StatusOK {
		t.Fatalf("status after login: %d", r.code)
	}
	// Logout ends the session.
	if r := c2.do("POST", "/api/v1/logout", nil); r.code != http.StatusNoContent || c2.cookie != nil {
		t.Fatalf("logout: %d %s", r.code, r.body)
	}
	c2.cookie = ck // even replaying the other session's cookie works only for that one
	if r := c2.do("GET", "/api/v1/status", nil); r.code != http.StatusOK {
		t.Fatalf("other session: %d", r.code)
	}
}

func TestSessionIdleExpiry(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	e.now = e.now.Add(SessionIdle - time.Minute)
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusOK {
		t.Fatalf("before expiry: %d", r.code)
	}
	e.now = e.now.Add(SessionIdle - time.Minute) // idle time counts from the last use
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusOK {
		t.Fatalf("used again before expiry: %d", r.code)
	}
	e.now = e.now.Add(SessionIdle + time.Second)
	if r := c.do("GET", "/api/v1/status", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("after 12 h idle: %d", r.code)
	}
}

func TestSecureCookieOverTLS(t *testing.T) {
	e := newEnv(t)
	e.loggedIn()
	req := httptest.NewRequest("POST", "https://192.168.50.1/api/v1/login", strings.NewReader(`{"password":"correct horse"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	cs := rec.Result().Cookies()
	if rec.Code != 200 || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("TLS login: %d %+v", rec.Code, cs)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	e.loggedIn()
	c := e.client()
	other := e.client()
	other.remote = "192.168.50.11:40000"
	for i := 1; i <= FreeLoginFailures; i++ {
		if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "guess " + strconv.Itoa(i)}); r.code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i, r.code, r.body)
		}
	}
	// The fifth failure starts the backoff: even the right password waits.
	r := c.do("POST", "/api/v1/login", LoginRequest{Password: "correct horse"})
	if r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") != "1" || !r.hasErr("", "too many failed logins") {
		t.Fatalf("rate limited: %d %q %s", r.code, r.hdr.Get("Retry-After"), r.body)
	}
	// Another address is not affected.
	if r := other.do("POST", "/api/v1/login", LoginRequest{Password: "correct horse"}); r.code != http.StatusOK {
		t.Fatalf("other client: %d %s", r.code, r.body)
	}
	// Each further failure doubles the wait: 1 s, 2 s, 4 s, 8 s.
	for i, want := range []int{2, 4, 8} {
		e.now = e.now.Add(time.Duration(want/2)*time.Second + time.Millisecond)
		if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "guess again"}); r.code != http.StatusUnauthorized {
			t.Fatalf("failure after wait %d: %d %s", i, r.code, r.body)
		}
		r := c.do("POST", "/api/v1/login", LoginRequest{Password: "correct horse"})
		if r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") != strconv.Itoa(want) {
			t.Fatalf("backoff %d: %d %q", i, r.code, r.hdr.Get("Retry-After"))
		}
	}
	e.now = e.now.Add(8 * time.Second)
	if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "correct horse"}); r.code != http.StatusOK {
		t.Fatalf("after the wait: %d %s", r.code, r.body)
	}
	// Success forgets the failures.
	c.cookie = nil
	if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "wrong one"}); r.code != http.StatusUnauthorized {
		t.Fatalf("after success: %d", r.code)
	}
	if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "correct horse"}); r.code != http.StatusOK {
		t.Fatalf("after success, one failure: %d", r.code)
	}
}

func TestReadEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	var st control.Status
	r := c.do("GET", "/api/v1/status", nil)
	r.decode(t, &st)
	if r.code != 200 || st.Version != "test" || st.NAT.PacketsOut != 10 {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	var flows []control.Flow
	c.do("GET", "/api/v1/flows", nil).decode(t, &flows)
	if len(flows) != 2 || flows[0].Proto != "tcp" {
		t.Fatalf("flows %+v", flows)
	}
	c.do("GET", "/api/v1/flows?proto=UDP", nil).decode(t, &flows)
	if len(flows) != 1 || flows[0].Proto != "udp" {
		t.Fatalf("flows udp %+v", flows)
	}
	c.do("GET", "/api/v1/flows?host=203.0.113.10", nil).decode(t, &flows)
	if len(flows) != 1 || flows[0].VPN != "pptp" {
		t.Fatalf("flows host %+v", flows)
	}
	c.do("GET", "/api/v1/flows?host=192.168.50.99&proto=tcp", nil).decode(t, &flows)
	if flows == nil || len(flows) != 0 {
		t.Fatalf("no match must be []: %+v", flows)
	}
	for q, field := range map[string]string{"host=nohost": "host", "proto=sctp": "proto", "hots=1.2.3.4": "hots"} {
		if r := c.do("GET", "/api/v1/flows?"+q, nil); r.code != 400 || len(r.errs()) != 1 || r.errs()[0].Field != field {
			t.Errorf("flows?%s: %d %s", q, r.code, r.body)
		}
	}
	if r := c.do("GET", "/api/v1/status?verbose=1", nil); r.code != 400 || !r.hasErr("verbose", "unknown query parameter") {
		t.Errorf("status?verbose: %d %s", r.code, r.body)
	}
	var evs []control.Event
	c.do("GET", "/api/v1/events", nil).decode(t, &evs)
	if len(evs) != 1 || evs[0].Kind != "passthrough_off" {
		t.Fatalf("events %v", evs)
	}
	var cfg config.Config
	c.do("GET", "/api/v1/config", nil).decode(t, &cfg)
	if cfg.LAN.Interface != "lan0" || len(cfg.PortForwards) != 1 || cfg.NAT.Timeouts.UDP != "" {
		t.Fatalf("config (file form) %+v", cfg)
	}
	// HEAD is GET without a body; unknown endpoints and methods are JSON errors.
	if r := c.do("HEAD", "/api/v1/status", nil); r.code != 200 || len(r.body) != 0 {
		t.Errorf("HEAD: %d %q", r.code, r.body)
	}
	if r := c.do("GET", "/api/v1/nothing", nil); r.code != 404 || !r.hasErr("", "no such endpoint") {
		t.Errorf("404: %d %s", r.code, r.body)
	}
	if r := c.do("DELETE", "/api/v1/status", nil); r.code != 405 || r.hdr.Get("Allow") != "GET" || !r.hasErr("", "not allowed") {
		t.Errorf("405: %d %v %s", r.code, r.hdr, r.body)
	}
}

func TestPutConfig(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	before := e.file()
	bad := []struct {
		name, body, field, msg string
	}{
		{"wrong type", `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"workers":"two"}`, "workers", "expected a whole number"},
		{"unknown field", `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"nat":{"filter":"x"}}`, "nat.filter", "unknown field"},
		{"port out of range", `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"port_forwards":[{"name":"a","proto":"tcp","outside_port":65536,"host":"192.168.50.10"}]}`, "port_forwards[0].outside_port", "65536 out of range 1-65535"},
		{"overlap", `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"port_forwards":[{"name":"a","proto":"tcp","outside_port":"8000-8100","host":"192.168.50.10"},{"name":"b","proto":"tcp","outside_port":8080,"host":"192.168.50.11"}]}`, "port_forwards[1].outside_port", `overlaps port_forwards[0] "a"`},
		{"restart only", `{"lan":{"interface":"lan0","address":"192.168.60.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"}}`, "lan.address", "changes only at restart"},
		{"admin on wan", `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"admin":{"listen":"203.0.113.1:8080"}}`, "admin.listen", "not the LAN address"},
		{"not an object", `[1,2]`, "(top level)", "expected an object"},
		{"trailing", `{} {}`, "line 1, column 5", "unexpected data"},
	}
	for _, b := range bad {
		r := c.do("PUT", "/api/v1/config", b.body)
		if r.code != 400 || !r.hasErr(b.field, b.msg) {
			t.Errorf("%s: %d %s", b.name, r.code, r.body)
		}
	}
	if e.file() != before {
		t.Fatal("a refused PUT changed the file")
	}
	if _, n := e.gw.last(); n != 0 {
		t.Fatal("a refused PUT reconfigured the gateway")
	}
	good := `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},
	  "passthrough":{"ipsec":false},"nat":{"timeouts":{"udp":"3m"}},"dmz":"192.168.50.20"}`
	r := c.do("PUT", "/api/v1/config", good)
	var cr ChangesResponse
	r.decode(t, &cr)
	want := []string{"IPsec passthrough: on -> off", "port forward web removed: tcp 8080 -> 192.168.50.10:80", "DMZ host: off -> 192.168.50.20", "nat.timeouts.udp: 5m -> 3m"}
	if r.code != 200 || strings.Join(cr.Changes, "|") != strings.Join(want, "|") {
		t.Fatalf("good PUT: %d %s", r.code, r.body)
	}
	applied, n := e.gw.last()
	if n != 1 || switchOf(applied.NAT.Helpers["ipsec"]) != "off" || applied.NAT.Timeouts.UDP != 3*time.Minute || len(applied.NAT.PortForwards) != 0 {
		t.Fatalf("applied %+v", applied)
	}
	if f := e.file(); !strings.Contains(f, `"ipsec": false`) || strings.Contains(f, "port_forwards") {
		t.Fatalf("file:\n%s", f)
	}
	if lg, _ := os.ReadFile(e.path + config.LastGoodSuffix); string(lg) != before {
		t.Fatalf("last good copy:\n%s", lg)
	}
	// The same again: nothing changes, nothing is applied.
	r = c.do("PUT", "/api/v1/config", good)
	r.decode(t, &cr)
	if r.code != 200 || len(cr.Changes) != 0 || string(r.body) == "" {
		t.Fatalf("same PUT: %d %s", r.code, r.body)
	}
	if _, n := e.gw.last(); n != 1 {
		t.Fatal("an unchanged PUT reconfigured the gateway")
	}
	if !strings.Contains(string(r.body), `"changes": []`) {
		t.Fatalf("changes must be [] not null: %s", r.body)
	}
}

func TestApplyAllOrNothing(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	before := e.file()
	// The gateway refuses: the file is put back.
	e.gw.fail = errBoom
	r := c.do("PUT", "/api/v1/passthrough/pptp", `{"enabled":false}`)
	if r.code != 500 || !r.hasErr("", "boom") {
		t.Fatalf("refused apply: %d %s", r.code, r.body)
	}
	if e.file() != before {
		t.Fatalf("file not restored:\n%s", e.file())
	}
	if p := e.svc.Config().Passthrough.PPTP; p != nil {
		t.Fatal("running configuration changed")
	}
	e.gw.fail = nil
	// The save fails (the directory is gone): nothing is applied.
	os.RemoveAll(e.dir)
	os.WriteFile(e.dir, []byte("not a directory"), 0o600)
	defer os.Remove(e.dir)
	r = c.do("PUT", "/api/v1/passthrough/pptp", `{"enabled":false}`)
	if r.code != 500 || !r.hasErr("", "nothing changed") {
		t.Fatalf("failed save: %d %s", r.code, r.body)
	}
	if _, n := e.gw.last(); n != 0 {
		t.Fatal("applied although the save failed")
	}
	if e.svc.Passthroughs()[1].On != true {
		t.Fatal("running configuration changed")
	}
}

func TestPassthroughEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	var list []Passthrough
	c.do("GET", "/api/v1/passthrough", nil).decode(t, &list)
	names := []string{}
	for _, p := range list {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "ipsec,pptp,l2tp,sip,rtsp,h323,ftp,tftp,pppoe" {
		t.Fatalf("names %v", names)
	}
	for _, p := range list {
		if p.Description == "" {
			t.Errorf("%s has no description", p.Name)
		}
		want := map[string]bool{"ipsec": true, "pptp": true, "l2tp": true, "ftp": true, "tftp": true}[p.Name]
		if !p.Available || p.On != want || p.Default != want {
			t.Errorf("%+v: want available, on and default %v", p, want)
		}
		if (p.Name == "sip" || p.Name == "rtsp" || p.Name == "h323") && (!strings.Contains(p.Description, "RFC 4787 (REQ-10)") || !strings.Contains(p.Description, "RFC 5382")) {
			t.Errorf("%s must say why it defaults off: %+v", p.Name, p)
		}
	}
	if !strings.HasPrefix(list[1].Description, "PPTP is obsolete and insecure: its MS-CHAPv2 authentication can be cracked; use it only for legacy servers") {
		t.Errorf("PPTP: %q", list[1].Description)
	}
	if !strings.Contains(list[0].Description, "AH cannot cross NAT") {
		t.Errorf("IPsec: %q", list[0].Description)
	}

	var pr PassthroughResponse
	r := c.do("PUT", "/api/v1/passthrough/pptp", `{"enabled":false}`)
	r.decode(t, &pr)
	if r.code != 200 || len(pr.Changes) != 1 || pr.Changes[0] != "PPTP passthrough: on -> off" || pr.Passthrough.On {
		t.Fatalf("pptp off: %d %s", r.code, r.body)
	}
	if applied, _ := e.gw.last(); switchOf(applied.NAT.Helpers["pptp"]) != "off" || switchOf(applied.NAT.Helpers["ipsec"]) != "default" {
		t.Fatalf("applied %+v", applied.NAT.Helpers)
	}
	if !strings.Contains(e.file(), `"pptp": false`) {
		t.Fatalf("file:\n%s", e.file())
	}
	var one Passthrough
	c.do("GET", "/api/v1/passthrough/pptp", nil).decode(t, &one)
	if one.On {
		t.Fatal("GET one after off")
	}
	for _, tc := range []struct {
		path, body string
		code       int
		field, msg string
	}{
		{"/api/v1/passthrough/pptp", `{"enabled":"no"}`, 400, "enabled", "expected true or false"},
		{"/api/v1/passthrough/pptp", `{}`, 400, "enabled", "required"},
		{"/api/v1/passthrough/pptp", `{"enabled":false,"now":true}`, 400, "now", "unknown field"},
		{"/api/v1/passthrough/gopher", `{"enabled":false}`, 404, "name", `no passthrough "gopher"`},
	} {
		r := c.do("PUT", tc.path, tc.body)
		if r.code != tc.code || !r.hasErr(tc.field, tc.msg) {
			t.Errorf("PUT %s %s: %d %s", tc.path, tc.body, r.code, r.body)
		}
	}
	// Off again: nothing changes.
	r = c.do("PUT", "/api/v1/passthrough/pptp", `{"enabled":false}`)
	r.decode(t, &pr)
	if r.code != 200 || len(pr.Changes) != 0 {
		t.Fatalf("off twice: %s", r.body)
	}
	// The helpers switch through nat.Config.Helpers, the relay through
	// its own call.
	r = c.do("PUT", "/api/v1/passthrough/sip", `{"enabled":true}`)
	r.decode(t, &pr)
	if r.code != 200 || pr.Changes[0] != "SIP helper: off -> on" || !pr.Passthrough.On {
		t.Fatalf("sip on: %d %s", r.code, r.body)
	}
	if applied, _ := e.gw.last(); switchOf(applied.NAT.Helpers["sip"]) != "on" {
		t.Fatalf("applied helpers %v", applied.NAT.Helpers)
	}
	r = c.do("PUT", "/api/v1/passthrough/ftp", `{"enabled":false}`)
	r.decode(t, &pr)
	if r.code != 200 || pr.Changes[0] != "FTP helper: on -> off" {
		t.Fatalf("ftp off: %d %s", r.code, r.body)
	}
	r = c.do("PUT", "/api/v1/passthrough/pppoe", `{"enabled":true}`)
	r.decode(t, &pr)
	if r.code != 200 || pr.Changes[0] != "PPPoE relay: off -> on" || len(e.gw.pppoe) != 1 || !e.gw.pppoe[0] {
		t.Fatalf("pppoe on: %d %s %v", r.code, r.body, e.gw.pppoe)
	}
	if f := e.file(); !strings.Contains(f, `"sip": true`) || !strings.Contains(f, `"ftp": false`) || !strings.Contains(f, `"pppoe": true`) {
		t.Fatalf("file:\n%s", f)
	}
	// Without the router's relay, PPPoE is shown as not available.
	svc, err := NewService(Options{Backend: e.gw, Reconfigure: e.gw.Reconfigure, Store: config.NewStore(e.path), Config: e.svc.Config()})
	if err != nil {
		t.Fatal(err)
	}
	if p := svc.Passthroughs()[8]; p.Name != "pppoe" || p.Available || p.On || !strings.HasPrefix(p.Warning, "Not available yet") {
		t.Fatalf("pppoe without a relay: %+v", p)
	}
	if _, err := svc.SetPassthrough("pppoe", true); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("pppoe without a relay: %v", err)
	}
}

func TestForwardEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	var list []config.PortForward
	c.do("GET", "/api/v1/forwards", nil).decode(t, &list)
	if len(list) != 1 || list[0].Name != "web" || list[0].OutsidePort != "8080" {
		t.Fatalf("list %+v", list)
	}
	r := c.do("POST", "/api/v1/forwards", `{"name":"game","proto":"udp","outside_port":"27000-27010","host":"192.168.50.11"}`)
	var fr ForwardResponse
	r.decode(t, &fr)
	if r.code != 201 || r.hdr.Get("Location") != "/api/v1/forwards/game" ||
		len(fr.Changes) != 1 || fr.Changes[0] != "port forward game added: udp 27000-27010 -> 192.168.50.11:27000-27010" {
		t.Fatalf("add: %d %s", r.code, r.body)
	}
	if applied, _ := e.gw.last(); len(applied.NAT.PortForwards) != 2 || applied.NAT.PortForwards[1].OutsideHi != 27010 {
		t.Fatalf("applied %+v", applied.NAT.PortForwards)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		field, msg         string
	}{
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":70000,"host":"192.168.50.10"}`, 400, "port_forwards[2].outside_port", "70000 out of range 1-65535"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":0,"host":"192.168.50.10"}`, 400, "port_forwards[2].outside_port", "0 out of range"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":22,"host":"192.168.50.10","inside_port":99999}`, 400, "port_forwards[2].inside_port", "99999 out of range 1-65535"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":22,"host":"192.168.50.10","inside_port":"22"}`, 400, "port_forwards[2].inside_port", "expected a whole number"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":"8000-8090","host":"192.168.50.12"}`, 400, "port_forwards[2].outside_port", `overlaps port_forwards[0] "web"`},
		{"POST", "/api/v1/forwards", `{"name":"web","proto":"tcp","outside_port":9000,"host":"192.168.50.12"}`, 400, "port_forwards[2].name", `"web" is already the name`},
		{"POST", "/api/v1/forwards", `{"proto":"tcp","outside_port":9000,"host":"192.168.50.12"}`, 400, "port_forwards[2].name", "required"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"icmp","outside_port":9000,"host":"192.168.50.12"}`, 400, "port_forwards[2].proto", "not tcp or udp"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":9000,"host":"203.0.113.5"}`, 400, "port_forwards[2].host", "not a host on the LAN"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":9000,"host":"192.168.50.12","port":1}`, 400, "port_forwards[2].port", "unknown field"},
		{"POST", "/api/v1/forwards", `{"name":"x","proto":"tcp","outside_port":9000,"host":"192.168.50.12"}x`, 400, "line 1, column 70", "unexpected data after the JSON object"},
		{"PUT", "/api/v1/forwards/web", `{"name":"web","proto":"udp","outside_port":27005,"host":"192.168.50.12"}`, 400, "port_forwards[1].outside_port", `27000-27010 overlaps port_forwards[0] "web" (udp 27005)`},
		{"PUT", "/api/v1/forwards/web", `{"name":"web","proto":"tcp","outside_port":"x","host":"192.168.50.12"}`, 400, "port_forwards[0].outside_port", `"x" is not a port number`},
		{"PUT", "/api/v1/forwards/nope", `{"name":"nope","proto":"tcp","outside_port":1,"host":"192.168.50.12"}`, 404, "", `port forward "nope": not found`},
		{"DELETE", "/api/v1/forwards/nope", ``, 404, "", "not found"},
		{"GET", "/api/v1/forwards/nope", ``, 404, "", "not found"},
	} {
		r := c.do(tc.method, tc.path, tc.body)
		if r.code != tc.code || !r.hasErr(tc.field, tc.msg) {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, r.code, r.body)
		}
	}
	if _, n := e.gw.last(); n != 1 {
		t.Fatalf("refused calls reconfigured the gateway (%d)", n)
	}
	// Update: move web to 8081 and rename it.
	r = c.do("PUT", "/api/v1/forwards/web", `{"name":"www","proto":"tcp","outside_port":8081,"host":"192.168.50.10","inside_port":80}`)
	r.decode(t, &fr)
	if r.code != 200 || strings.Join(fr.Changes, "|") != "port forward www added: tcp 8081 -> 192.168.50.10:80|port forward web removed: tcp 8080 -> 192.168.50.10:80" {
		t.Fatalf("update: %d %s", r.code, r.body)
	}
	// Update keeping the name (empty name in the body).
	r = c.do("PUT", "/api/v1/forwards/www", `{"proto":"tcp","outside_port":8082,"host":"192.168.50.10","inside_port":80}`)
	r.decode(t, &fr)
	if r.code != 200 || fr.Forward.Name != "www" || fr.Changes[0] != "port forward www changed: tcp 8081 -> 192.168.50.10:80 => tcp 8082 -> 192.168.50.10:80" {
		t.Fatalf("update same name: %d %s", r.code, r.body)
	}
	var one config.PortForward
	c.do("GET", "/api/v1/forwards/www", nil).decode(t, &one)
	if one.OutsidePort != "8082" {
		t.Fatalf("get one %+v", one)
	}
	r = c.do("DELETE", "/api/v1/forwards/game", nil)
	var cr ChangesResponse
	r.decode(t, &cr)
	if r.code != 200 || len(cr.Changes) != 1 || !strings.HasPrefix(cr.Changes[0], "port forward game removed") {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	// Names with spaces travel escaped.
	if r := c.do("POST", "/api/v1/forwards", `{"name":"my game","proto":"udp","outside_port":3000,"host":"192.168.50.11"}`); r.code != 201 || r.hdr.Get("Location") != "/api/v1/forwards/my%20game" {
		t.Fatalf("spaced name: %d %s %v", r.code, r.body, r.hdr)
	}
	if r := c.do("DELETE", "/api/v1/forwards/my%20game", nil); r.code != 200 {
		t.Fatalf("delete spaced: %d %s", r.code, r.body)
	}
	c.do("GET", "/api/v1/forwards", nil).decode(t, &list)
	if len(list) != 1 || list[0].Name != "www" {
		t.Fatalf("final list %+v", list)
	}
}

func TestDMZEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	r := c.do("GET", "/api/v1/dmz", nil)
	if r.code != 200 || strings.Join(strings.Fields(string(r.body)), "") != `{"host":""}` {
		t.Fatalf("get: %d %s", r.code, r.body)
	}
	var dr DMZResponse
	r = c.do("PUT", "/api/v1/dmz", `{"host":"192.168.50.20"}`)
	r.decode(t, &dr)
	if r.code != 200 || dr.Host != "192.168.50.20" || dr.Changes[0] != "DMZ host: off -> 192.168.50.20" {
		t.Fatalf("set: %d %s", r.code, r.body)
	}
	if applied, _ := e.gw.last(); applied.NAT.DMZ.String() != "192.168.50.20" {
		t.Fatalf("applied %v", applied.NAT.DMZ)
	}
	for body, want := range map[string][2]string{
		`{"host":"10.0.0.1"}`:     {"dmz", "not a host on the LAN"},
		`{"host":"192.168.50.1"}`: {"dmz", "not a host on the LAN"},
		`{"host":"x"}`:            {"dmz", "not an IPv4 address"},
		`{"host":5}`:              {"host", "expected a string"},
		`{}`:                      {"host", "required"},
		`{"host":"","on":true}`:   {"on", "unknown field"},
	} {
		if r := c.do("PUT", "/api/v1/dmz", body); r.code != 400 || !r.hasErr(want[0], want[1]) {
			t.Errorf("PUT dmz %s: %d %s", body, r.code, r.body)
		}
	}
	r = c.do("PUT", "/api/v1/dmz", `{"host":""}`)
	r.decode(t, &dr)
	if r.code != 200 || dr.Host != "" || dr.Changes[0] != "DMZ host: 192.168.50.20 -> off" {
		t.Fatalf("off: %d %s", r.code, r.body)
	}
}

func TestPasswordChange(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	bot := e.tokenClient("script")
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 200 {
		t.Fatalf("token before the change: %d", r.code)
	}
	if r := c.do("PUT", "/api/v1/password", PasswordRequest{OldPassword: "nope nope", Password: "new password"}); r.code != 400 || !r.hasErr("old_password", "wrong password") {
		t.Fatalf("wrong old: %d %s", r.code, r.body)
	}
	if r := c.do("PUT", "/api/v1/password", PasswordRequest{OldPassword: "correct horse", Password: "short"}); r.code != 400 || !r.hasErr("password", "at least 8") {
		t.Fatalf("short: %d %s", r.code, r.body)
	}
	if r := c.do("PUT", "/api/v1/password", PasswordRequest{OldPassword: "correct horse", Password: "battery staple"}); r.code != 200 {
		t.Fatalf("change: %d %s", r.code, r.body)
	}
	// Every session ended, every token revoked.
	if r := c.do("GET", "/api/v1/status", nil); r.code != 401 {
		t.Fatalf("session after change: %d", r.code)
	}
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 401 {
		t.Fatalf("token after the password change: %d", r.code)
	}
	if n := len(e.auth.Tokens()); n != 0 {
		t.Fatalf("%d tokens left after the password change", n)
	}
	c2 := e.client()
	if r := c2.do("POST", "/api/v1/login", LoginRequest{Password: "correct horse"}); r.code != 401 {
		t.Fatalf("old password: %d", r.code)
	}
	if r := c2.do("POST", "/api/v1/login", LoginRequest{Password: "battery staple"}); r.code != 200 {
		t.Fatalf("new password: %d %s", r.code, r.body)
	}
}

func TestAPITokens(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	var tr TokenResponse
	r := c.do("POST", "/api/v1/tokens", `{"name":"monitoring"}`)
	r.decode(t, &tr)
	if r.code != 201 || !strings.HasPrefix(tr.Token, TokenPrefix) || tr.ID == "" || tr.Name != "monitoring" {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	if b, _ := os.ReadFile(e.auth.Path()); strings.Contains(string(b), tr.Token) {
		t.Fatal("token stored in clear")
	}
	if r := c.do("POST", "/api/v1/tokens", `{"name":""}`); r.code != 400 || !r.hasErr("name", "1-64 printable") {
		t.Fatalf("empty name: %d %s", r.code, r.body)
	}
	bot := e.client()
	bot.bearer = tr.Token
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 200 {
		t.Fatalf("bearer GET: %d %s", r.code, r.body)
	}
	// A token is not an ambient credential: no CSRF token needed.
	if r := bot.do("PUT", "/api/v1/passthrough/l2tp", `{"enabled":false}`); r.code != 200 {
		t.Fatalf("bearer PUT: %d %s", r.code, r.body)
	}
	var si SessionInfo
	bot.do("GET", "/api/v1/session", nil).decode(t, &si)
	if !si.Authenticated || si.Via != "token" || si.CSRFToken != "" {
		t.Fatalf("session via token: %+v", si)
	}
	var list []TokenInfo
	c.do("GET", "/api/v1/tokens", nil).decode(t, &list)
	if len(list) != 1 || list[0].ID != tr.ID {
		t.Fatalf("list %+v", list)
	}
	if r := c.do("DELETE", "/api/v1/tokens/"+tr.ID, nil); r.code != 204 {
		t.Fatalf("revoke: %d %s", r.code, r.body)
	}
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 401 {
		t.Fatalf("revoked token: %d", r.code)
	}
	if r := c.do("DELETE", "/api/v1/tokens/"+tr.ID, nil); r.code != 404 {
		t.Fatalf("revoke twice: %d", r.code)
	}
	// Another scheme is not a session either.
	bot.bearer = ""
	if r := bot.doWithAuth("Basic YWRtaW46YWRtaW4="); r.code != 401 {
		t.Fatalf("basic auth: %d", r.code)
	}
}

// Tokens expire (90 days by default, or as asked), and at most MaxTokens
// live at once; expired ones make room.
func TestTokenExpiryAndLimit(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	var tr TokenResponse
	r := c.do("POST", "/api/v1/tokens", `{"name":"short lived","expires_days":2}`)
	r.decode(t, &tr)
	if r.code != 201 || !tr.Expires.Equal(e.now.Add(48*time.Hour).Truncate(time.Second)) {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	if r := c.do("POST", "/api/v1/tokens", `{"name":"x","expires_days":-1}`); r.code != 400 || !r.hasErr("expires_days", "") {
		t.Fatalf("negative lifetime: %d %s", r.code, r.body)
	}
	long, info, err := e.auth.CreateToken("default", 0, "")
	if err != nil || !info.Expires.Equal(e.now.Add(DefaultTokenTTL).Truncate(time.Second)) {
		t.Fatalf("default lifetime: %v %+v", err, info)
	}
	bot := e.client()
	bot.bearer = tr.Token
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 200 {
		t.Fatalf("fresh token: %d", r.code)
	}
	e.now = e.now.Add(48*time.Hour + time.Second)
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 401 {
		t.Fatalf("expired token: %d", r.code)
	}
	bot.bearer = long
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 200 {
		t.Fatalf("90-day token after 2 days: %d", r.code)
	}
	var list []TokenInfo
	bot.do("GET", "/api/v1/tokens", nil).decode(t, &list)
	if len(list) != 2 || !list[0].Expired || list[1].Expired {
		t.Fatalf("list %+v", list)
	}
	for i := 1; i < MaxTokens; i++ { // the expired one makes room
		if _, _, err := e.auth.CreateToken("n", 0, ""); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if r := bot.do("POST", "/api/v1/tokens", `{"name":"one too many"}`); r.code != 409 || !r.hasErr("", "too many API tokens") {
		t.Fatalf("over the limit: %d %s", r.code, r.body)
	}
	e.now = e.now.Add(DefaultTokenTTL)
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 401 {
		t.Fatalf("token after 90 days: %d", r.code)
	}
}

func (c *client) doWithAuth(h string) reply {
	req := httptest.NewRequest("GET", "http://192.168.50.1:8080/api/v1/status", nil)
	req.Header.Set("Authorization", h)
	rec := httptest.NewRecorder()
	c.e.h.ServeHTTP(rec, req)
	return reply{code: rec.Code, body: rec.Body.Bytes()}
}

func TestLocalAPI(t *testing.T) {
	e := newEnv(t)
	h := NewLocalAPI(e.svc, e.auth)
	call := func(method, path, body string) *httptest.ResponseRecorder {
		var req *http.Request
		if body != "" {
			req = httptest.NewRequest(method, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req = httptest.NewRequest(method, path, nil)
		}
		req.RemoteAddr = "@"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// No login, no CSRF on the root-only socket.
	if rec := call("PUT", "/api/v1/passthrough/pptp", `{"enabled":false}`); rec.Code != 200 {
		t.Fatalf("local PUT: %d %s", rec.Code, rec.Body)
	}
	// passwd: first setup, then a reset without the old password.
	if rec := call("PUT", "/api/v1/password", `{"password":"first password"}`); rec.Code != 200 || e.auth.SetupNeeded() {
		t.Fatalf("local passwd: %d %s", rec.Code, rec.Body)
	}
	if rec := call("PUT", "/api/v1/password", `{"password":"second password"}`); rec.Code != 200 {
		t.Fatalf("local reset: %d %s", rec.Code, rec.Body)
	}
	c := e.client()
	if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "second password"}); r.code != 200 {
		t.Fatalf("login after reset: %d %s", r.code, r.body)
	}
	if rec := call("GET", "/api/v1/session", ""); !strings.Contains(rec.Body.String(), `"via": "local"`) {
		t.Fatalf("local session: %s", rec.Body)
	}
}

func TestServerHandler(t *testing.T) {
	e := newEnv(t)
	get := func(host, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.Host = host
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return rec
	}
	rec := get("192.168.50.1:8080", "/")
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "admin UI not built") {
		t.Fatalf("placeholder: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("X-Frame-Options") != "DENY" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers %v", rec.Header())
	}
	for host, ok := range map[string]bool{
		"192.168.50.1:8080": true, "192.168.50.1": true, "[::1]:8080": true, "router": true, "router.lan:8080": true,
		"gw.home.arpa": true, "localhost:8080": true, "": true,
		"evil.example.com": false, "192.168.50.1.nip.io": false, "router.lan.evil.com:8080": false,
	} {
		if got := get(host, "/api/v1/session").Code; (got == 200) != ok {
			t.Errorf("Host %q: %d", host, got)
		}
	}
	// /metrics needs a token (Prometheus' bearer token), or a session.
	if rec := get("192.168.50.1:8080", "/metrics"); rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "Bearer") || strings.Contains(rec.Body.String(), "passgate_") {
		t.Fatalf("/metrics without a token: %d %s", rec.Code, rec.Body)
	}
	e.loggedIn()
	tok, _, err := e.auth.CreateToken("prometheus", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Host = "192.168.50.1:8080"
	req.Header.Set("Authorization", "Bearer "+tok)
	rec = httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	body := rec.Body.String()
	for _, want := range []string{
		`passgate_packets_total{direction="lan_to_wan"} 10`,
		`passgate_bytes_total{direction="wan_to_lan"} 900`,
		`passgate_drops_total{reason="pptp_passthrough_off"} 3`,
		`passgate_drops_total{reason="malformed"} 0`,
		`passgate_flows{proto="tcp"} 1`,
		`passgate_flows{proto="gre"} 0`,
		`passgate_vpn_sessions{proto="pptp"} 1`,
		`passgate_vpn_sessions{proto="ipsec"} 0`,
		`passgate_passthrough_enabled{proto="pptp"} 1`,
		`passgate_flow_table_used 2`,
		`passgate_flow_table_size 65536`,
		`passgate_dataplane_total{counter="rx_frames"} 20`,
		`passgate_socket_rx_drops_total{interface="lan0"} 1`,
		`passgate_build_info{version="test"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	// With a web handler, every non-API path goes to it.
	h := NewHandler(ServerOptions{Service: e.svc, Auth: e.auth, Web: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("web " + r.URL.Path))
	})})
	req = httptest.NewRequest("GET", "http://192.168.50.1:8080/passthrough", nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Body.String() != "web /passthrough" {
		t.Fatalf("web: %s", rec.Body)
	}
}

// With metrics_localhost, a scraper on 127.0.0.1 needs no token; others
// still do.
func TestMetricsLocalhost(t *testing.T) {
	e := newEnv(t)
	h := NewHandler(ServerOptions{Service: e.svc, Auth: e.auth, MetricsLocalhost: true})
	for remote, want := range map[string]int{"127.0.0.1:40000": 200, "192.168.50.10:40000": 401} {
		req := httptest.NewRequest("GET", "http://192.168.50.1:8080/metrics", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", remote, rec.Code, want)
		}
	}
}

// `passgate passwd` (ResetPassword, as root) revokes every token too.
func TestResetRevokesTokens(t *testing.T) {
	e := newEnv(t)
	e.loggedIn()
	bot := e.tokenClient("script")
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 200 {
		t.Fatalf("before: %d", r.code)
	}
	if err := e.auth.ResetPassword("reset by root"); err != nil {
		t.Fatal(err)
	}
	if r := bot.do("GET", "/api/v1/status", nil); r.code != 401 {
		t.Fatalf("token after passgate passwd: %d", r.code)
	}
}

func TestAuthStateReload(t *testing.T) {
	e := newEnv(t)
	e.loggedIn()
	// passgate passwd writing the state file while the daemon runs.
	other, err := NewAuth(e.auth.Path())
	if err != nil {
		t.Fatal(err)
	}
	other.cost = 4
	other.log = e.auth.log
	if err := other.ResetPassword("from the cli"); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	if r := c.do("POST", "/api/v1/login", LoginRequest{Password: "from the cli"}); r.code != 200 {
		t.Fatalf("login with the CLI's password: %d %s", r.code, r.body)
	}
	// A broken state file is refused at start.
	bad := filepath.Join(t.TempDir(), "x.auth")
	os.WriteFile(bad, []byte("{"), 0o600)
	if _, err := NewAuth(bad); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("broken state: %v", err)
	}
}

// Wrong setup codes: each refused with 403, then, from the same address,
// with 429 and a growing wait; the code never changes, so another LAN host
// sending wrong codes cannot make stale the one the owner read on the
// router (it did: 20 wrong codes made a new one).
func TestSetupCodeGuessing(t *testing.T) {
	e := newEnv(t)
	first := e.auth.SetupCode()
	if len(first) != 14 || strings.Count(first, "-") != 2 {
		t.Fatalf("setup code %q", first)
	}
	c := e.client()
	c.remote = "192.168.50.66:40000"
	for i := 0; i < 20; i++ {
		r := c.do("POST", "/api/v1/setup", SetupRequest{Password: "attacker pw", SetupCode: "AAAA-AAAA-AAAA"})
		want := http.StatusForbidden
		if i >= FreeLoginFailures {
			want = http.StatusTooManyRequests
		}
		if r.code != want {
			t.Fatalf("guess %d: %d %s", i, r.code, r.body)
		}
		if want == http.StatusTooManyRequests && r.hdr.Get("Retry-After") == "" {
			t.Fatalf("guess %d: no Retry-After", i)
		}
	}
	// Even the right code waits its turn from that address.
	if r := c.do("POST", "/api/v1/setup", SetupRequest{Password: "attacker pw", SetupCode: first}); r.code != http.StatusTooManyRequests {
		t.Fatalf("the right code from the guessing address: %d", r.code)
	}
	if e.auth.SetupCode() != first || !e.auth.SetupNeeded() {
		t.Fatal("guessing changed the setup code or set the password")
	}
	// The owner, on another address, with the code read before the attack.
	owner := e.client()
	if r := owner.do("POST", "/api/v1/setup", SetupRequest{Password: "owner password", SetupCode: strings.ToLower(first)}); r.code != http.StatusCreated {
		t.Fatalf("the owner's setup: %d %s", r.code, r.body)
	}
}

func TestMappingsEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	r := c.do("GET", "/api/v1/mappings", nil)
	var m control.Mappings
	r.decode(t, &m)
	if r.code != 200 || m.UPnP || len(m.Mappings) != 0 || !strings.Contains(string(r.body), `"mappings": []`) {
		t.Fatalf("get, none: %d %s", r.code, r.body)
	}
	e.gw.mu.Lock()
	e.gw.maps = []control.Mapping{{Proto: "udp", OutsidePort: 40001, Host: netip.MustParseAddr("192.168.50.11"), InsidePort: 6000, By: "pcp"}}
	e.gw.mu.Unlock()
	r = c.do("GET", "/api/v1/mappings", nil)
	r.decode(t, &m)
	if r.code != 200 || len(m.Mappings) != 1 || m.Mappings[0].OutsidePort != 40001 || m.Mappings[0].By != "pcp" {
		t.Fatalf("get: %d %s", r.code, r.body)
	}
	if r := c.do("DELETE", "/api/v1/mappings/udp/40002", nil); r.code != 404 || !strings.Contains(string(r.body), "no such mapping") {
		t.Fatalf("delete missing: %d %s", r.code, r.body)
	}
	if r := c.do("DELETE", "/api/v1/mappings/icmp/1", nil); r.code != 400 {
		t.Fatalf("delete icmp: %d %s", r.code, r.body)
	}
	r = c.do("DELETE", "/api/v1/mappings/udp/40001", nil)
	r.decode(t, &m)
	if r.code != 200 || len(m.Mappings) != 0 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if r := e.client().do("GET", "/api/v1/mappings", nil); r.code != 401 {
		t.Fatalf("without a session: %d", r.code)
	}
}
