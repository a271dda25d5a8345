package web

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/admin"
	"passgate/config"
	"passgate/control"
)

// fakeService is an in-memory admin.Service: it validates like the real
// one in the ways the pages show (field errors named by config path).
type fakeService struct {
	mu     sync.Mutex
	cfg    config.Config
	pass   []admin.Passthrough
	flows  []control.Flow
	events []control.Event
	calls  []string
	filter control.FlowFilter
	refuse map[string]error // SetPassthrough fails for these
	maps   control.Mappings
}

func newFakeService() *fakeService {
	return &fakeService{
		cfg: config.Config{
			PortForwards: []config.PortForward{{Name: "web", Proto: "tcp", OutsidePort: "8080", Host: "192.168.50.10", InsidePort: 80}},
		},
		pass: []admin.Passthrough{
			{Name: "ipsec", Label: "IPsec", Description: "IKE, NAT-T and ESP for IPsec VPN clients.", Available: true, On: true, Default: true},
			{Name: "pptp", Label: "PPTP", Description: "TCP 1723 and GRE for PPTP clients.", Available: true, On: true, Default: true, Warning: "PPTP is obsolete and insecure."},
			{Name: "l2tp", Label: "L2TP", Description: "UDP 1701.", Available: true, On: true, Default: true},
			{Name: "sip", Label: "SIP", Available: false, On: true},
			{Name: "rtsp", Label: "RTSP", Available: false},
			{Name: "h323", Label: "H.323", Available: false},
			{Name: "ftp", Label: "FTP", Available: false},
			{Name: "pppoe", Label: "PPPoE relay", Available: false},
		},
		flows: []control.Flow{
			{Proto: "tcp", Inside: netip.MustParseAddrPort("192.168.50.10:40000"), Outside: netip.MustParseAddrPort("203.0.113.1:40000"), Remote: netip.MustParseAddrPort("203.0.113.10:80"), State: "established", Origin: "lan", PacketsOut: 12, BytesOut: 2048},
			{Proto: "udp", Inside: netip.MustParseAddrPort("192.168.50.11:4500"), Outside: netip.MustParseAddrPort("203.0.113.1:4500"), Remote: netip.MustParseAddrPort("203.0.113.10:4500"), State: "assured", Origin: "lan", VPN: "ipsec", IKESPIs: []string{"8a1b2c3d4e5f6071"}, ESPSPIOut: "c0ffee01", ESPSPIIn: "c0ffee02"},
			{Proto: "tcp", Inside: netip.MustParseAddrPort("192.168.50.12:41000"), Outside: netip.MustParseAddrPort("203.0.113.1:41000"), Remote: netip.MustParseAddrPort("203.0.113.10:1723"), State: "established", Origin: "lan", VPN: "pptp", CallIDInside: 7, CallIDOutside: 1007, CallIDServer: 99},
			{Proto: "udp", Inside: netip.MustParseAddrPort("192.168.50.10:1701"), Outside: netip.MustParseAddrPort("203.0.113.1:1701"), Remote: netip.MustParseAddrPort("203.0.113.20:1701"), State: "assured", Origin: "lan", VPN: "l2tp", TunnelIDs: []uint16{4242, 17}},
		},
		events: []control.Event{
			{Time: time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC), Kind: "drop", Host: "192.168.50.11", Peer: "203.0.113.10:1723", Message: "older: PPTP passthrough is off"},
			{Time: time.Date(2025, 1, 1, 11, 0, 0, 0, time.UTC), Kind: "drop", Peer: "203.0.113.20:5555", Message: "newer: unsolicited inbound", Suppressed: 3},
		},
	}
}

func (s *fakeService) Status() control.Status {
	return control.Status{
		Version: "test", Started: time.Now().Add(-90 * time.Minute), UptimeSec: 5400, Workers: 2,
		Interfaces: []control.Interface{
			{Role: "lan", Name: "lan0", Address: "192.168.50.1/24", MAC: "02:00:00:00:00:01", MTU: 1500},
			{Role: "wan", Name: "wan0", Address: "203.0.113.1/24", MAC: "02:00:00:00:00:02", MTU: 1500},
		},
		NAT: control.NATStats{
			PacketsOut: 1234567, PacketsIn: 7654321, BytesOut: 5 << 20, BytesIn: 3 << 30,
			Drops: map[string]uint64{"unsolicited_inbound": 42, "pptp_passthrough_off": 3, "malformed": 0},
			Flows: 4, FlowsByProto: map[string]int{"tcp": 2, "udp": 2},
			VPNSessions: map[string]int{"ipsec": 1, "pptp": 1, "l2tp": 1},
		},
		Passthrough: map[string]bool{"ipsec": true, "pptp": true, "l2tp": true},
	}
}

func (s *fakeService) Flows(f control.FlowFilter) []control.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filter = f
	var out []control.Flow
	for _, fl := range s.flows {
		if f.Match(fl) {
			out = append(out, fl)
		}
	}
	return out
}

func (s *fakeService) Events() []control.Event { return s.events }

func (s *fakeService) Mappings() control.Mappings { return s.maps }

func (s *fakeService) DeleteMapping(proto, port string) error {
	for i, m := range s.maps.Mappings {
		if m.Proto == proto && fmt.Sprint(m.OutsidePort) == port {
			s.maps.Mappings = append(s.maps.Mappings[:i], s.maps.Mappings[i+1:]...)
			s.calls = append(s.calls, "delete mapping "+proto+" "+port)
			return nil
		}
	}
	return fmt.Errorf("%s %s: %w", proto, port, control.ErrNoMapping)
}

func (s *fakeService) Config() config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cfg
	c.PortForwards = slices.Clone(c.PortForwards)
	return c
}

func (s *fakeService) Passthroughs() []admin.Passthrough {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pass)
}

func (s *fakeService) SetPassthrough(name string, on bool) (admin.Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf("passthrough %s %v", name, on))
	if err := s.refuse[name]; err != nil {
		return nil, err
	}
	for i := range s.pass {
		if s.pass[i].Name == name {
			if !s.pass[i].Available {
				return nil, config.Errors{{Field: "passthrough." + name, Msg: "not available yet"}}
			}
			if s.pass[i].On == on {
				return nil, nil
			}
			s.pass[i].On = on
			return admin.Changes{fmt.Sprintf("passthrough.%s: %s -> %s", name, onOff(!on), onOff(on))}, nil
		}
	}
	return nil, config.Errors{{Field: "passthrough." + name, Msg: "unknown passthrough"}}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// validate checks a rule roughly as config.Validate does, naming fields
// by their path in the file.
func (s *fakeService) validate(i int, pf config.PortForward, skip string) config.Errors {
	var es config.Errors
	at := func(f, msg string) {
		es = append(es, &config.FieldError{Field: fmt.Sprintf("port_forwards[%d].%s", i, f), Msg: msg})
	}
	if pf.Name == "" {
		at("name", "required")
	}
	if pf.Proto != "tcp" && pf.Proto != "udp" {
		at("proto", fmt.Sprintf("%q: must be tcp or udp", pf.Proto))
	}
	lo, hi, ok := strings.Cut(string(pf.OutsidePort), "-")
	if !ok {
		hi = lo
	}
	a, e1 := strconv.Atoi(lo)
	b, e2 := strconv.Atoi(hi)
	if e1 != nil || e2 != nil || a < 1 || b > 65535 || a > b {
		at("outside_port", fmt.Sprintf("%q out of range 1-65535", pf.OutsidePort))
	}
	if ad, err := netip.ParseAddr(pf.Host); err != nil || !netip.MustParsePrefix("192.168.50.0/24").Contains(ad) {
		at("host", fmt.Sprintf("%q is not an address on the LAN", pf.Host))
	}
	if pf.InsidePort < 0 || pf.InsidePort > 65535 {
		at("inside_port", fmt.Sprintf("%d out of range 1-65535", pf.InsidePort))
	}
	for _, o := range s.cfg.PortForwards {
		if o.Name != skip && o.Name == pf.Name {
			at("name", fmt.Sprintf("%q is already used", pf.Name))
		}
		if o.Name != skip && o.Proto == pf.Proto && o.OutsidePort == pf.OutsidePort {
			at("outside_port", fmt.Sprintf("overlaps rule %q", o.Name))
		}
	}
	return es
}

func (s *fakeService) AddForward(pf config.PortForward) (admin.Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "add "+pf.Name)
	if es := s.validate(len(s.cfg.PortForwards), pf, ""); es != nil {
		return nil, es
	}
	s.cfg.PortForwards = append(s.cfg.PortForwards, pf)
	return admin.Changes{"port_forwards: added " + pf.Name}, nil
}

func (s *fakeService) UpdateForward(name string, pf config.PortForward) (admin.Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "update "+name)
	i := slices.IndexFunc(s.cfg.PortForwards, func(o config.PortForward) bool { return o.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("port forward %q: %w", name, admin.ErrNotFound)
	}
	if es := s.validate(i, pf, name); es != nil {
		return nil, es
	}
	s.cfg.PortForwards[i] = pf
	return admin.Changes{"port_forwards: changed " + name}, nil
}

func (s *fakeService) DeleteForward(name string) (admin.Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "delete "+name)
	i := slices.IndexFunc(s.cfg.PortForwards, func(o config.PortForward) bool { return o.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("port forward %q: %w", name, admin.ErrNotFound)
	}
	s.cfg.PortForwards = slices.Delete(s.cfg.PortForwards, i, i+1)
	return admin.Changes{"port_forwards: removed " + name}, nil
}

func (s *fakeService) SetDMZ(host string) (admin.Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "dmz "+host)
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, config.Errors{{Field: "dmz", Msg: fmt.Sprintf("%q is not an IPv4 address", host)}}
		}
	}
	old := s.cfg.DMZ
	s.cfg.DMZ = host
	return admin.Changes{fmt.Sprintf("dmz: %q -> %q", old, host)}, nil
}

// newAuth is the real admin.Auth with its state in a temporary
// directory, with password pw already set unless it is empty.
func newAuth(t testing.TB, pw string) *admin.Auth {
	t.Helper()
	a, err := admin.NewAuth(filepath.Join(t.TempDir(), "auth.json"))
	if err != nil {
		t.Fatal(err)
	}
	a.SetLogger(slog.New(slog.DiscardHandler))
	if pw != "" {
		if err := a.Setup(nil, a.SetupCode(), pw); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// client is a browser stand-in: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	srv  *httptest.Server
	c    *http.Client
	csrf string
}

func newClient(t *testing.T, h http.Handler) *client {
	// TLS, as the admin server: the session cookie is Secure.
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &client{t: t, srv: srv, c: &http.Client{
		Transport:     srv.Client().Transport,
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

func (c *client) do(req *http.Request) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil && len(m[1]) > 0 {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) get(path string) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.srv.URL+path, nil)
	return c.do(req)
}

// post sends a form with the CSRF token last seen on a page, unless the
// form sets csrf_token itself.
func (c *client) post(path string, form url.Values) (int, string, http.Header) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf_token"]; !ok && c.csrf != "" {
		form.Set("csrf_token", c.csrf)
	}
	req, _ := http.NewRequest("POST", c.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func setup(t *testing.T) (*client, *fakeService, *admin.Auth) {
	svc, auth := newFakeService(), newAuth(t, "correct horse")
	c := newClient(t, newHandler(svc, auth, admin.CSRFToken))
	c.get("/login")
	if code, _, hd := c.post("/login", url.Values{"password": {"correct horse"}}); code != http.StatusSeeOther || hd.Get("Location") != "/status" {
		t.Fatalf("login: %d %v", code, hd)
	}
	if code, _, _ := c.get("/status"); code != http.StatusOK || c.csrf == "" {
		t.Fatalf("status after login: %d, csrf %q", code, c.csrf)
	}
	return c, svc, auth
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
	if t.Failed() {
		t.Logf("%s:\n%s", what, body)
		t.FailNow()
	}
}

func TestFirstRunSetup(t *testing.T) {
	auth := newAuth(t, "")
	c := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))

	// No password yet: every way in leads to /setup.
	code, _, hd := c.get("/status")
	if code != http.StatusSeeOther || !strings.HasPrefix(hd.Get("Location"), "/login") {
		t.Fatalf("status without session: %d %q", code, hd.Get("Location"))
	}
	if code, _, hd = c.get("/login"); code != http.StatusSeeOther || hd.Get("Location") != "/setup" {
		t.Fatalf("login before setup: %d %q", code, hd.Get("Location"))
	}
	if code, _, hd = c.post("/login", url.Values{"password": {""}}); code != http.StatusSeeOther || hd.Get("Location") != "/setup" {
		t.Fatalf("login post before setup: %d %q", code, hd.Get("Location"))
	}
	code, body, _ := c.get("/setup")
	mustContain(t, "setup page", body, `id="setup-code"`, `<label for="setup-code">`, `id="setup-password"`, `<label for="setup-password">`, `id="setup-confirm"`, `id="setup-save"`, "no default", "passgate status")
	if code != http.StatusOK {
		t.Fatalf("setup: %d", code)
	}
	setupCode := auth.SetupCode()

	// Without the setup code, or with a wrong one, nothing is set: a LAN
	// host cannot take the gateway before its owner.
	for _, sc := range []string{"", "AAAA-BBBB-CCCC"} {
		code, body, _ = c.post("/setup", url.Values{"setup_code": {sc}, "password": {"attacker pw"}, "confirm": {"attacker pw"}})
		if code != http.StatusUnprocessableEntity {
			t.Fatalf("setup with code %q: %d", sc, code)
		}
		mustContain(t, "setup without the code", body, `id="setup-code-error"`, "setup code")
	}
	if !auth.SetupNeeded() {
		t.Fatal("a setup without the code set the password")
	}

	// Mismatch, then a password the service refuses: errors at the field.
	code, body, _ = c.post("/setup", url.Values{"setup_code": {setupCode}, "password": {"longenough1"}, "confirm": {"longenough2"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("setup mismatch: %d", code)
	}
	mustContain(t, "setup mismatch", body, `id="setup-confirm-error"`, "the two passwords differ", `aria-invalid="true"`)
	code, body, _ = c.post("/setup", url.Values{"setup_code": {setupCode}, "password": {"short"}, "confirm": {"short"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("setup short: %d", code)
	}
	mustContain(t, "setup short", body, `id="setup-password-error"`, "at least 8 characters")
	if !auth.SetupNeeded() {
		t.Fatal("a refused setup set the password")
	}

	code, _, hd = c.post("/setup", url.Values{"setup_code": {setupCode}, "password": {"correct horse"}, "confirm": {"correct horse"}})
	if code != http.StatusSeeOther || hd.Get("Location") != "/status" {
		t.Fatalf("setup: %d %q", code, hd.Get("Location"))
	}
	if code, body, _ = c.get("/status"); code != http.StatusOK {
		t.Fatalf("status after setup: %d", code)
	}
	mustContain(t, "status after setup", body, `id="interfaces"`)

	// Setup is over: it cannot be used to replace the password.
	if code, _, hd = c.get("/setup"); code != http.StatusSeeOther || hd.Get("Location") != "/login" {
		t.Fatalf("setup again: %d %q", code, hd.Get("Location"))
	}
	c2 := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))
	c2.post("/setup", url.Values{"setup_code": {setupCode}, "password": {"attacker pw"}, "confirm": {"attacker pw"}})
	if code, _, _ := c2.post("/login", url.Values{"password": {"attacker pw"}}); code != http.StatusUnauthorized {
		t.Fatalf("setup replaced the password: login with the new one gave %d", code)
	}
}

func TestLoginLogout(t *testing.T) {
	auth := newAuth(t, "correct horse")
	c := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))
	code, body, _ := c.get("/login?next=/events")
	if code != http.StatusOK {
		t.Fatalf("login page: %d", code)
	}
	mustContain(t, "login page", body, `<label for="login-password">`, `id="login"`, `name="next" value="/events"`)

	code, body, _ = c.post("/login", url.Values{"password": {"nope"}, "next": {"/events"}})
	if code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	mustContain(t, "wrong password", body, `id="login-password-error"`, "wrong password")

	// The redirect after login stays on this site, also as a browser reads
	// the Location: WHATWG URL parsing drops tabs and newlines anywhere and
	// takes a backslash for a slash, so "/<TAB>/evil.example" is
	// "//evil.example", another site.
	for next, want := range map[string]string{
		"/events": "/events", "/events?x=1#top": "/events?x=1#top", "//evil.example/": "/status", "https://evil.example/": "/status",
		"/\\evil": "/status", "": "/status", "/\t/evil.example": "/status", "/\n/evil.example": "/status", "/\r\n/evil.example": "/status",
		"\t//evil.example": "/status", "/ /evil.example": "/status", "/%2F/evil.example": "/status", "/\u00a0/evil.example": "/status",
		"/login?next=//evil.example": "/status", "javascript:alert(1)": "/status", "events": "/status",
	} {
		c2 := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))
		code, _, hd := c2.post("/login", url.Values{"password": {"correct horse"}, "next": {next}})
		loc := hd.Get("Location")
		if code != http.StatusSeeOther || loc != want {
			t.Errorf("next %q: %d %q, want %q", next, code, loc, want)
		}
		browserLoc := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(loc)
		base, _ := url.Parse(c2.srv.URL + "/login")
		if u, err := url.Parse(browserLoc); err != nil || base.ResolveReference(u).Host != base.Host {
			t.Errorf("next %q: a browser would go to %q, off this site", next, browserLoc)
		}
	}

	c.post("/login", url.Values{"password": {"correct horse"}})
	if code, _, _ = c.get("/status"); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	// Logout needs the token too.
	if code, _, _ = c.post("/logout", url.Values{"csrf_token": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("logout with a forged token: %d", code)
	}
	if code, _, hd := c.post("/logout", nil); code != http.StatusSeeOther || hd.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", code, hd.Get("Location"))
	}
	if code, _, _ = c.get("/status"); code != http.StatusSeeOther {
		t.Fatalf("status after logout: %d", code)
	}
}

// TestPagesRender checks every page: the menu, its key elements, that
// each state-changing form carries the CSRF token, and that each visible
// input has a label.
func TestPagesRender(t *testing.T) {
	c, _, _ := setup(t)
	pages := map[string][]string{
		"/status": {`id="uptime">1h 30m</dd>`, `id="interfaces"`, `id="if-lan0"`, "192.168.50.1/24", "203.0.113.1/24",
			`id="packets-out">1,234,567<`, "3.0 GiB", `id="flow-count">4<`, `id="vpn-pptp"`, "A session is one VPN tunnel", `id="drop-count">45<`,
			"Unsolicited inbound", "PPTP passthrough is off"},
		"/passthrough": {`id="pptp"`, `id="apply"`, "Obsolete · insecure", "PPTP is obsolete and insecure.",
			`id="sip" name="sip" value="on" disabled`, "not available yet", "PPPoE relay", "H.323", "FTP", "RTSP"},
		"/forwarding":  {`id="forwards"`, `id="fwd-web"`, `id="forward-form"`, `action="/forwarding/add"`, `id="dmz-host"`, `id="dmz-now">off<`},
		"/connections": {`id="flows"`, `id="filter-host"`, `id="filter-proto"`, "4 flows.", "8a1b2c3d4e5f6071", "c0ffee01", "c0ffee02", "<code>1007</code>", "4242, 17"},
		"/events":      {`id="events"`, "older: PPTP passthrough is off", "and 3 more like it"},
		"/password":    {`id="pw-old"`, `id="pw-new"`, `id="pw-confirm"`},
	}
	formRE := regexp.MustCompile(`(?s)<form[^>]*>.*?</form>`)
	inputRE := regexp.MustCompile(`<(?:input|select)[^>]*\bid="([^"]+)"[^>]*>`)
	for path, wants := range pages {
		code, body, hd := c.get(path)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", path, code)
		}
		if ct := hd.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: content type %q", path, ct)
		}
		if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		mustContain(t, path, body, append(wants, `aria-current="page"`, `href="/static/style.css"`, `id="logout"`, `<h1>`)...)
		for _, f := range formRE.FindAllString(body, -1) {
			if strings.Contains(f, `method="post"`) && !strings.Contains(f, `name="csrf_token" value="`+c.csrf+`"`) {
				t.Errorf("%s: a form without the CSRF token:\n%s", path, f)
			}
		}
		for _, m := range inputRE.FindAllStringSubmatch(body, -1) {
			if strings.Contains(m[0], `type="hidden"`) || m[1] == "auto-refresh" {
				continue
			}
			if !strings.Contains(body, `<label for="`+m[1]+`">`) {
				t.Errorf("%s: input #%s has no label", path, m[1])
			}
		}
	}
	// Events newest first.
	_, body, _ := c.get("/events")
	if strings.Index(body, "newer:") > strings.Index(body, "older:") {
		t.Error("events are not newest first")
	}
	// / leads to the status page.
	if code, _, hd := c.get("/"); code != http.StatusSeeOther || hd.Get("Location") != "/status" {
		t.Errorf("/: %d %q", code, hd.Get("Location"))
	}
	if code, _, _ := c.get("/nonexistent"); code != http.StatusNotFound {
		t.Errorf("/nonexistent: %d", code)
	}
}

func TestEventsFolded(t *testing.T) {
	c, svc, _ := setup(t)
	at := func(s int) time.Time { return time.Date(2025, 1, 1, 12, 0, s, 0, time.UTC) }
	gre := func(s int, n uint64) control.Event {
		return control.Event{Time: at(s), Kind: "gre_without_control", Peer: "203.0.113.10", Message: "GRE from 203.0.113.10 to this router with call id 7 belongs to no PPTP call: dropped", Suppressed: n}
	}
	svc.events = []control.Event{
		{Time: at(0), Kind: "pptp_call_end", Host: "192.168.50.12", Peer: "203.0.113.10", Message: "PPTP call ended"},
		gre(1, 0), gre(2, 4), gre(3, 5), gre(4, 4),
		{Time: at(5), Kind: "passthrough_off", Host: "192.168.50.12", Peer: "203.0.113.10", Message: "PPTP blocked"},
		gre(6, 3),
	}
	_, body, _ := c.get("/events")
	// The run of four is one row: the newest, with the 3 other rows and
	// the 13 the rate limit left out of all four (16), since the oldest;
	// the one after the other event stays apart, with its own 3.
	if n := strings.Count(body, "belongs to no PPTP call"); n != 2 {
		t.Errorf("%d GRE rows, want 2:\n%s", n, body)
	}
	mustContain(t, "folded", body, "(and 16 more like it since <time", "(and 3 more like it not shown)", "PPTP blocked", "PPTP call ended")
	if i, j := strings.Index(body, "16 more"), strings.Index(body, "PPTP blocked"); i < j {
		t.Error("the folded row is not after the newer event")
	}
}

func TestUnauthenticated(t *testing.T) {
	svc, auth := newFakeService(), newAuth(t, "correct horse")
	c := newClient(t, newHandler(svc, auth, admin.CSRFToken))
	for _, p := range []string{"/status", "/passthrough", "/forwarding", "/connections", "/events", "/password"} {
		if code, _, hd := c.get(p); code != http.StatusSeeOther || !strings.HasPrefix(hd.Get("Location"), "/login") {
			t.Errorf("GET %s without a session: %d %q", p, code, hd.Get("Location"))
		}
	}
	for _, p := range []string{"/passthrough", "/forwarding/add", "/forwarding/update", "/forwarding/delete", "/forwarding/dmz", "/password", "/logout"} {
		if code, _, _ := c.post(p, url.Values{"pptp": {"on"}, "name": {"web"}}); code != http.StatusSeeOther && code != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d", p, code)
		}
	}
	if len(svc.calls) != 0 {
		t.Errorf("service called without a session: %v", svc.calls)
	}
	// The login page and the assets need no session.
	if code, body, _ := c.get("/static/style.css"); code != http.StatusOK || !strings.Contains(body, ".side") {
		t.Errorf("style.css: %d", code)
	}
}

func TestCSRFRequired(t *testing.T) {
	c, svc, _ := setup(t)
	for _, tok := range []string{"", "forged"} {
		form := url.Values{"csrf_token": {tok}, "ipsec": {"on"}, "l2tp": {"on"}} // pptp unticked
		if code, _, _ := c.post("/passthrough", form); code != http.StatusForbidden {
			t.Errorf("passthrough with token %q: %d", tok, code)
		}
		form = url.Values{"csrf_token": {tok}, "name": {"x"}, "proto": {"tcp"}, "outside_port": {"9000"}, "host": {"192.168.50.10"}}
		if code, _, _ := c.post("/forwarding/add", form); code != http.StatusForbidden {
			t.Errorf("add with token %q: %d", tok, code)
		}
		if code, _, _ := c.post("/forwarding/delete", url.Values{"csrf_token": {tok}, "name": {"web"}}); code != http.StatusForbidden {
			t.Errorf("delete with token %q: %d", tok, code)
		}
		if code, _, _ := c.post("/forwarding/dmz", url.Values{"csrf_token": {tok}, "dmz": {"192.168.50.10"}}); code != http.StatusForbidden {
			t.Errorf("dmz with token %q: %d", tok, code)
		}
	}
	if len(svc.calls) != 0 {
		t.Errorf("service called without the CSRF token: %v", svc.calls)
	}
}

// TestCrossSite: a form posted from another site is refused before it
// reaches anything, the first-run setup included.
func TestCrossSite(t *testing.T) {
	auth := newAuth(t, "")
	c := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "http://evil.example"},
	} {
		form := url.Values{"password": {"attacker pw"}, "confirm": {"attacker pw"}}
		req, _ := http.NewRequest("POST", c.srv.URL+"/setup", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if code, _, _ := c.do(req); code != http.StatusForbidden {
			t.Errorf("cross-site setup with %v: %d", hdr, code)
		}
	}
	if !auth.SetupNeeded() {
		t.Fatal("a cross-site post set the password")
	}
	// The same post from the page itself goes through.
	req, _ := http.NewRequest("POST", c.srv.URL+"/setup", strings.NewReader(url.Values{"setup_code": {auth.SetupCode()}, "password": {"correct horse"}, "confirm": {"correct horse"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", c.srv.URL)
	if code, _, _ := c.do(req); code != http.StatusSeeOther || auth.SetupNeeded() {
		t.Fatalf("same-origin setup: %d", code)
	}
	// No directory listing of the assets; an oversized form is refused.
	if code, _, _ := c.get("/static/"); code != http.StatusNotFound {
		t.Errorf("/static/: %d", code)
	}
	if code, _, _ := c.post("/login", url.Values{"password": {strings.Repeat("x", maxForm)}}); code == http.StatusSeeOther {
		t.Errorf("oversized login form accepted")
	}
}

func TestPassthroughApply(t *testing.T) {
	c, svc, _ := setup(t)
	c.get("/passthrough")
	// Untick PPTP; the disabled SIP box cannot be sent by a browser, but a
	// crafted form asking for it is ignored too.
	code, body, _ := c.post("/passthrough", url.Values{"ipsec": {"on"}, "l2tp": {"on"}, "sip": {"on"}})
	if code != http.StatusOK {
		t.Fatalf("apply: %d\n%s", code, body)
	}
	if !slices.Equal(svc.calls, []string{"passthrough pptp false"}) {
		t.Fatalf("calls %v", svc.calls)
	}
	mustContain(t, "apply", body, `id="result" class="notice ok"`, `<ul id="changes"><li>passthrough.pptp: on -&gt; off</li></ul>`)
	if strings.Contains(body, `id="pptp" name="pptp" value="on" checked`) {
		t.Error("pptp still shown ticked after switching it off")
	}
	// Apply again unchanged: nothing called, "Nothing changed".
	svc.calls = nil
	_, body, _ = c.post("/passthrough", url.Values{"ipsec": {"on"}, "l2tp": {"on"}})
	if len(svc.calls) != 0 {
		t.Errorf("calls %v", svc.calls)
	}
	mustContain(t, "apply unchanged", body, `<p id="changes">Nothing changed`)
	// Two at once: PPTP back on, IPsec off.
	_, body, _ = c.post("/passthrough", url.Values{"pptp": {"on"}, "l2tp": {"on"}})
	mustContain(t, "apply two", body, "passthrough.ipsec: on -&gt; off", "passthrough.pptp: off -&gt; on")
}

func TestPassthroughRefused(t *testing.T) {
	c, svc, _ := setup(t)
	svc.refuse = map[string]error{"l2tp": config.Errors{{Field: "passthrough.l2tp", Msg: "cannot be switched now"}}}
	c.get("/passthrough")
	// PPTP and L2TP off: PPTP takes, L2TP is refused; the page says both.
	code, body, _ := c.post("/passthrough", url.Values{"ipsec": {"on"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("refused apply: %d\n%s", code, body)
	}
	mustContain(t, "refused apply", body, `class="notice error"`, "Not applied", "Some changes took effect before the error",
		"passthrough.pptp: on -&gt; off", "passthrough.l2tp: cannot be switched now")
	// A failure that is not a validation error (the store could not save).
	svc.refuse = map[string]error{"ipsec": errors.New("save: disk full")}
	code, body, _ = c.post("/passthrough", url.Values{})
	if code != http.StatusInternalServerError {
		t.Fatalf("failed apply: %d", code)
	}
	mustContain(t, "failed apply", body, "The running configuration is unchanged.", "save: disk full")
}

func TestForwarding(t *testing.T) {
	c, svc, _ := setup(t)
	c.get("/forwarding")

	// Add a good rule.
	code, body, _ := c.post("/forwarding/add", url.Values{"name": {"cam"}, "proto": {"udp"}, "outside_port": {"9000-9010"}, "host": {"192.168.50.12"}, "inside_port": {""}})
	if code != http.StatusOK {
		t.Fatalf("add: %d\n%s", code, body)
	}
	mustContain(t, "add", body, "port_forwards: added cam", `id="fwd-cam"`, "<code>9000-9010</code>", "same as outside")
	if pf := svc.cfg.PortForwards[1]; pf.Proto != "udp" || pf.OutsidePort != "9000-9010" || pf.Host != "192.168.50.12" || pf.InsidePort != 0 {
		t.Fatalf("added %+v", pf)
	}
	// A range to another first port shows the whole inside range.
	_, body, _ = c.post("/forwarding/add", url.Values{"name": {"games"}, "proto": {"tcp"}, "outside_port": {"65000-65535"}, "host": {"192.168.50.12"}, "inside_port": {"1000"}})
	mustContain(t, "add range", body, `id="fwd-games"`, "<code>65000-65535</code>", "<td>1000-1535</td>")
	if code, body, _ = c.post("/forwarding/delete", url.Values{"name": {"games"}}); code != http.StatusOK {
		t.Fatalf("delete games: %d\n%s", code, body)
	}

	// Bad input: errors next to the fields, the typed values kept.
	code, body, _ = c.post("/forwarding/add", url.Values{"name": {"web"}, "proto": {"tcp"}, "outside_port": {"70000"}, "host": {"10.0.0.5"}, "inside_port": {"80"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("bad add: %d", code)
	}
	mustContain(t, "bad add", body, `class="notice error"`,
		`id="fw-name-error">&#34;web&#34; is already used<`,
		`id="fw-outside-error">&#34;70000&#34; out of range 1-65535<`,
		`id="fw-host-error">&#34;10.0.0.5&#34; is not an address on the LAN<`,
		`name="outside_port" value="70000"`, `name="host" value="10.0.0.5"`)
	if strings.Contains(body, `id="fw-inside-error"`) {
		t.Error("error shown on a good field")
	}
	// An inside port that is not a number never reaches the service.
	svc.calls = nil
	_, body, _ = c.post("/forwarding/add", url.Values{"name": {"x"}, "proto": {"tcp"}, "outside_port": {"9100"}, "host": {"192.168.50.10"}, "inside_port": {"eighty"}})
	mustContain(t, "inside not a number", body, `id="fw-inside-error"`, "is not a port number")
	if len(svc.calls) != 0 {
		t.Errorf("calls %v", svc.calls)
	}
	// Overlap with another rule.
	_, body, _ = c.post("/forwarding/add", url.Values{"name": {"web2"}, "proto": {"tcp"}, "outside_port": {"8080"}, "host": {"192.168.50.11"}})
	mustContain(t, "overlap", body, `id="fw-outside-error">overlaps rule &#34;web&#34;<`)

	// Edit: the form comes prefilled and posts to update.
	code, body, _ = c.get("/forwarding?edit=web")
	if code != http.StatusOK {
		t.Fatalf("edit page: %d", code)
	}
	mustContain(t, "edit page", body, `action="/forwarding/update"`, `name="original" value="web"`, `name="inside_port" value="80"`, `Edit rule “web”`)
	code, body, _ = c.post("/forwarding/update", url.Values{"original": {"web"}, "name": {"web"}, "proto": {"tcp"}, "outside_port": {"8081"}, "host": {"192.168.50.10"}, "inside_port": {"80"}})
	if code != http.StatusOK || svc.cfg.PortForwards[0].OutsidePort != "8081" {
		t.Fatalf("update: %d %+v\n%s", code, svc.cfg.PortForwards, body)
	}
	mustContain(t, "update", body, "port_forwards: changed web", `action="/forwarding/add"`)
	// A bad edit stays an edit.
	_, body, _ = c.post("/forwarding/update", url.Values{"original": {"web"}, "name": {"web"}, "proto": {"sctp"}, "outside_port": {"8081"}, "host": {"192.168.50.10"}})
	mustContain(t, "bad update", body, `id="fw-proto-error"`, `action="/forwarding/update"`, `name="original" value="web"`)
	if code, _, _ = c.get("/forwarding?edit=nosuch"); code != http.StatusNotFound {
		t.Errorf("edit of a missing rule: %d", code)
	}

	// Delete.
	code, body, _ = c.post("/forwarding/delete", url.Values{"name": {"cam"}})
	if code != http.StatusOK || len(svc.cfg.PortForwards) != 1 {
		t.Fatalf("delete: %d %+v", code, svc.cfg.PortForwards)
	}
	mustContain(t, "delete", body, "port_forwards: removed cam")
	if code, body, _ = c.post("/forwarding/delete", url.Values{"name": {"cam"}}); code != http.StatusNotFound {
		t.Errorf("delete again: %d", code)
	}
	mustContain(t, "delete again", body, `port forward &#34;cam&#34;: not found`)

	// DMZ: a bad address is shown at the DMZ field, a good one applied.
	code, body, _ = c.post("/forwarding/dmz", url.Values{"dmz": {"192.168.50"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("bad dmz: %d", code)
	}
	mustContain(t, "bad dmz", body, `id="dmz-host-error">&#34;192.168.50&#34; is not an IPv4 address<`, `name="dmz" value="192.168.50"`)
	if strings.Contains(body, `id="fw-host-error"`) {
		t.Error("DMZ error shown on the rule form")
	}
	_, body, _ = c.post("/forwarding/dmz", url.Values{"dmz": {"192.168.50.12"}})
	mustContain(t, "dmz", body, `id="dmz-now">192.168.50.12<`)
	_, body, _ = c.post("/forwarding/dmz", url.Values{"dmz": {""}})
	mustContain(t, "dmz off", body, `id="dmz-now">off<`)
}

func TestConnectionsFilter(t *testing.T) {
	c, svc, _ := setup(t)
	code, body, _ := c.get("/connections?host=192.168.50.11&proto=udp")
	if code != http.StatusOK {
		t.Fatalf("filter: %d", code)
	}
	if svc.filter.Host != netip.MustParseAddr("192.168.50.11") || svc.filter.Proto != "udp" {
		t.Fatalf("filter passed %+v", svc.filter)
	}
	mustContain(t, "filtered", body, "1 flow matches the filter", "c0ffee01", `<option value="udp" selected>`, `value="192.168.50.11"`)
	if strings.Contains(body, "4242") {
		t.Error("a flow outside the filter is shown")
	}
	code, body, _ = c.get("/connections?host=not-an-ip&proto=sctp")
	if code != http.StatusBadRequest {
		t.Fatalf("bad filter: %d", code)
	}
	mustContain(t, "bad filter", body, `id="filter-host-error"`, `id="filter-proto-error"`, "Not filtered")
	// No table pretends the bad filter matched nothing.
	if strings.Contains(body, "match the filter") || strings.Contains(body, `id="flows"`) {
		t.Error("a bad filter shows an empty table as if it had been applied")
	}
	// A filter changes nothing: no word of a configuration.
	if strings.Contains(body, "Not applied") || strings.Contains(body, "running configuration") {
		t.Error("a bad filter is reported as a configuration change not applied")
	}
	// Nothing matches.
	_, body, _ = c.get("/connections?proto=gre")
	mustContain(t, "empty", body, "No connections match the filter")
}

func TestPasswordChange(t *testing.T) {
	c, _, _ := setup(t)
	c.get("/password")
	code, body, _ := c.post("/password", url.Values{"old": {"wrong pw"}, "password": {"new password"}, "confirm": {"new password"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("wrong old: %d", code)
	}
	mustContain(t, "wrong old", body, `id="pw-old-error">current password: wrong password<`)
	_, body, _ = c.post("/password", url.Values{"old": {"correct horse"}, "password": {"new password"}, "confirm": {"other"}})
	mustContain(t, "mismatch", body, `id="pw-confirm-error"`)
	_, body, _ = c.post("/password", url.Values{"old": {"correct horse"}, "password": {"short"}, "confirm": {"short"}})
	mustContain(t, "short", body, `id="pw-new-error">the password must be at least 8 characters long<`)
	code, _, hd := c.post("/password", url.Values{"old": {"correct horse"}, "password": {"new password"}, "confirm": {"new password"}})
	if code != http.StatusSeeOther || hd.Get("Location") != "/login?changed=1" {
		t.Fatalf("change: %d %q", code, hd.Get("Location"))
	}
	// The change ended the session; the new password works.
	if code, _, _ = c.get("/status"); code != http.StatusSeeOther {
		t.Fatalf("status after the change: %d", code)
	}
	_, body, _ = c.get("/login?changed=1")
	mustContain(t, "login after change", body, "The password was changed")
	if code, _, _ = c.post("/login", url.Values{"password": {"new password"}}); code != http.StatusSeeOther {
		t.Fatalf("login with the new password: %d", code)
	}
}

// The password page lists the API tokens and revokes one; the page says a
// password change revokes them all, and it does.
func TestTokensOnPasswordPage(t *testing.T) {
	c, _, auth := setup(t)
	_, info, err := auth.CreateToken("prometheus", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := auth.CreateToken("backup script", 0, ""); err != nil {
		t.Fatal(err)
	}
	code, body, _ := c.get("/password")
	mustContain(t, "password page", body, `id="tokens"`, `id="token-`+info.ID+`"`, "prometheus", "backup script", `action="/password/revoke"`, "revokes every API token", "revokes them all")
	if code != http.StatusOK {
		t.Fatalf("password page: %d", code)
	}
	if code, _, _ := c.post("/password/revoke", url.Values{"id": {info.ID}, "csrf_token": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("revoke with a forged CSRF token: %d", code)
	}
	code, body, _ = c.post("/password/revoke", url.Values{"id": {info.ID}})
	if code != http.StatusOK || strings.Contains(body, `id="token-`+info.ID+`"`) || !strings.Contains(body, "backup script") {
		t.Fatalf("revoke: %d\n%s", code, body)
	}
	if code, _, _ := c.post("/password/revoke", url.Values{"id": {"nosuchid"}}); code != http.StatusNotFound {
		t.Fatalf("revoke unknown: %d", code)
	}
	if code, _, _ := c.post("/password", url.Values{"old": {"correct horse"}, "password": {"new password"}, "confirm": {"new password"}}); code != http.StatusSeeOther {
		t.Fatalf("change: %d", code)
	}
	if n := len(auth.Tokens()); n != 0 {
		t.Fatalf("%d tokens left after the password change", n)
	}
}

func TestLoginRateLimited(t *testing.T) {
	auth := newAuth(t, "correct horse")
	c := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))
	var code int
	var body string
	var hd http.Header
	for i := 0; i <= admin.FreeLoginFailures; i++ {
		c.post("/login", url.Values{"password": {"guess" + strconv.Itoa(i)}})
	}
	// The last failure set a wait: the right password is refused until it ends.
	code, body, hd = c.post("/login", url.Values{"password": {"correct horse"}})
	if code != http.StatusTooManyRequests || hd.Get("Retry-After") == "" {
		t.Fatalf("rate limit: %d %v", code, hd)
	}
	mustContain(t, "rate limited", body, "too many failed logins", `id="login-password-error"`)
}

// TestNoExternalFetches: the page loads nothing from another origin.
func TestNoExternalFetches(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(src|href|url)\s*[=(]\s*["']?\s*(https?:)?//`)
	err := fs.WalkDir(content, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := content.ReadFile(p)
		if m := ext.Find(b); m != nil {
			t.Errorf("%s refers to another origin: %s", p, m)
		}
		if strings.Contains(string(b), "@import") {
			t.Errorf("%s imports", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := setup(t)
	for _, a := range []string{"/static/style.css", "/static/app.js", "/static/favicon.svg"} {
		if code, _, hd := c.get(a); code != http.StatusOK || hd.Get("Content-Type") == "" {
			t.Errorf("%s: %d %q", a, code, hd.Get("Content-Type"))
		}
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[float64]string{0: "0s", 59.9: "59s", 61: "1m 1s", 3600: "1h 0m", 90061: "1d 1h 1m"} {
		if got := duration(in); got != want {
			t.Errorf("duration(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[any]string{0: "0", 999: "999", 1000: "1,000", uint64(1234567): "1,234,567", -1234: "-1,234"} {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestMappingsOnForwardingPage(t *testing.T) {
	c, svc, _ := setup(t)
	_, body, _ := c.get("/forwarding")
	mustContain(t, "off", body, `id="mappings-state">Off.`, "any program on the LAN", "off by default", "No mappings.")
	svc.maps = control.Mappings{UPnP: true, PCP: true, MaxLeaseSec: 7200, Mappings: []control.Mapping{{
		Proto: "udp", OutsidePort: 40001, Host: netip.MustParseAddr("192.168.50.11"), InsidePort: 6000, By: "upnp", Description: "Xbox", LeaseLeftSec: 3599,
	}}}
	_, body, _ = c.get("/forwarding")
	mustContain(t, "on", body, `id="mappings-state">On: PCP UPnP IGD`, `id="map-udp-40001"`, "<code>192.168.50.11</code>", "<td>UDP</td>", "<code>40001</code>", "<td>6000</td>", "<td>UPnP</td>", "<td>Xbox</td>",
		`name="port" value="40001"`)
	code, body, _ := c.post("/forwarding/mapping-delete", url.Values{"proto": {"udp"}, "port": {"40001"}})
	if code != http.StatusOK || len(svc.maps.Mappings) != 0 {
		t.Fatalf("delete: %d %+v", code, svc.maps)
	}
	mustContain(t, "deleted", body, "port mapping udp 40001 deleted", "No mappings.")
	if code, _, _ := c.post("/forwarding/mapping-delete", url.Values{"proto": {"udp"}, "port": {"40001"}}); code != http.StatusNotFound {
		t.Fatalf("delete again: %d", code)
	}
}
