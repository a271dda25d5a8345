package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"passgate/config"
	"passgate/control"
)

const testConfig = `{
  "lan": {"interface": "lan0", "address": "192.168.50.1/24"},
  "wan": {"interface": "wan0", "address": "203.0.113.1/24"},
  "port_forwards": [{"name": "web", "proto": "tcp", "outside_port": 8080, "host": "192.168.50.10", "inside_port": 80}]
}
`

// fakeGateway stands in for the router: it records what was applied.
type fakeGateway struct {
	mu      sync.Mutex
	applied []config.Settings // what Reconfigure got, in order
	pppoe   []bool
	fail    error
	flows   []control.Flow
	events  []control.Event
	maps    []control.Mapping
}

func (g *fakeGateway) Status() control.Status {
	return control.Status{
		Version: "test", UptimeSec: 12,
		NAT: control.NATStats{
			PacketsOut: 10, PacketsIn: 9, BytesOut: 1000, BytesIn: 900,
			Drops:        map[string]uint64{"pptp_passthrough_off": 3, "to_router": 1},
			Flows:        2,
			FlowsByProto: map[string]int{"tcp": 1, "udp": 1},
			VPNSessions:  map[string]int{"pptp": 1},
		},
		Dataplane: map[string]uint64{"rx_frames": 20},
		Sockets:   []control.SocketStats{{Interface: "lan0", Kind: "rx", RxPackets: 7, RxDrops: 1}},
	}
}

func (g *fakeGateway) Flows(fn func(control.Flow) bool) {
	for _, f := range g.flows {
		if !fn(f) {
			return
		}
	}
}

func (g *fakeGateway) Events() []control.Event { return g.events }

func (g *fakeGateway) PPPoE() control.PPPoE { return control.PPPoE{} }

func (g *fakeGateway) Mappings() control.Mappings {
	g.mu.Lock()
	defer g.mu.Unlock()
	return control.Mappings{UPnP: len(g.maps) > 0, Mappings: append([]control.Mapping(nil), g.maps...)}
}

func (g *fakeGateway) DeleteMapping(proto string, port uint16) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, m := range g.maps {
		if m.Proto == proto && m.OutsidePort == port {
			g.maps = append(g.maps[:i], g.maps[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("%s %d: %w", proto, port, control.ErrNoMapping)
}

func (g *fakeGateway) Reconfigure(s *config.Settings) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail != nil {
		return g.fail
	}
	g.applied = append(g.applied, *s)
	return nil
}

func (g *fakeGateway) SetPPPoERelay(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pppoe = append(g.pppoe, on)
}

func (g *fakeGateway) last() (config.Settings, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.applied) == 0 {
		return config.Settings{}, 0
	}
	return g.applied[len(g.applied)-1], len(g.applied)
}

type env struct {
	t    testing.TB
	dir  string
	path string
	gw   *fakeGateway
	svc  *Service
	auth *Auth
	h    http.Handler // the admin server's handler
	now  time.Time
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "passgate.json")
	if err := os.WriteFile(path, []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	store := config.NewStore(path)
	c, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, path: path, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.gw = &fakeGateway{
		flows: []control.Flow{
			{Proto: "tcp", Inside: netip.MustParseAddrPort("192.168.50.10:40000"), Outside: netip.MustParseAddrPort("203.0.113.1:40000"), Remote: netip.MustParseAddrPort("203.0.113.10:1723"), State: "established", VPN: "pptp"},
			{Proto: "udp", Inside: netip.MustParseAddrPort("192.168.50.11:5000"), Outside: netip.MustParseAddrPort("203.0.113.1:5000"), Remote: netip.MustParseAddrPort("203.0.113.20:53"), State: "replied"},
		},
		events: []control.Event{{Kind: "passthrough_off", Message: "PPTP blocked"}},
	}
	log := slog.New(slog.DiscardHandler)
	e.svc, err = NewService(Options{Backend: e.gw, Reconfigure: e.gw.Reconfigure, SetPPPoERelay: e.gw.SetPPPoERelay, Store: store, Config: *c, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.auth, err = NewAuth(AuthPath(path))
	if err != nil {
		t.Fatal(err)
	}
	e.auth.cost = bcrypt.MinCost
	e.auth.log = log
	e.auth.now = func() time.Time { return e.now }
	e.h = NewHandler(ServerOptions{Service: e.svc, Auth: e.auth, Logger: log})
	return e
}

// client is a cookie-carrying API caller.
type client struct {
	e      *env
	cookie *http.Cookie
	csrf   string
	bearer string
	remote string
}

func (e *env) client() *client { return &client{e: e, remote: "192.168.50.10:50000"} }

// tokenClient is a client that calls with a new API token named name.
func (e *env) tokenClient(name string) *client {
	e.t.Helper()
	tok, _, err := e.auth.CreateToken(name, 0, "")
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.client()
	c.bearer = tok
	return c
}

type reply struct {
	code int
	hdr  http.Header
	body []byte
}

func (r reply) errs() []ErrorItem {
	var er ErrorResponse
	json.Unmarshal(r.body, &er)
	return er.Errors
}

// hasErr reports whether the reply lists an error on field whose message
// contains msg.
func (r reply) hasErr(field, msg string) bool {
	for _, e := range r.errs() {
		if e.Field == field && strings.Contains(e.Message, msg) {
			return true
		}
	}
	return false
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// do sends body (a string is sent as is, anything else as JSON) with
// Content-Type application/json.
func (c *client) do(method, path string, body any) reply {
	return c.doCT(method, path, body, "application/json")
}

func (c *client) doCT(method, path string, body any, ct string) reply {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, "http://192.168.50.1:8080"+path, rd)
	req.RemoteAddr = c.remote
	if rd != nil && ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	if c.csrf != "" {
		req.Header.Set(CSRFHeader, c.csrf)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	rec := httptest.NewRecorder()
	c.e.h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, ck := range res.Cookies() {
		if ck.Name == SessionCookie {
			if ck.MaxAge < 0 {
				c.cookie = nil
			} else {
				c.cookie = ck
			}
		}
	}
	body2, _ := io.ReadAll(res.Body)
	return reply{code: res.StatusCode, hdr: res.Header, body: body2}
}

// loggedIn sets the password up and returns a client with a session and
// its CSRF token.
func (e *env) loggedIn() *client {
	e.t.Helper()
	c := e.client()
	r := c.do("POST", "/api/v1/setup", SetupRequest{Password: "correct horse", SetupCode: e.auth.SetupCode()})
	if r.code != http.StatusCreated {
		e.t.Fatalf("setup: %d %s", r.code, r.body)
	}
	var lr LoginResponse
	r.decode(e.t, &lr)
	if lr.CSRFToken == "" || c.cookie == nil {
		e.t.Fatalf("setup: no session: %s", r.body)
	}
	c.csrf = lr.CSRFToken
	return c
}

func (e *env) file() string {
	b, err := os.ReadFile(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

var errBoom = errors.New("boom")

func (e *env) filter(proto string) control.FlowFilter { return control.FlowFilter{Proto: proto} }

// switchOf names an engine switch as the configuration file does: "on",
// "off", or "default" when the file leaves it unset. admin compares what
// was applied through it, without importing the engine.
func switchOf(s interface{ Enabled(def bool) bool }) string {
	switch on, offByDefault := s.Enabled(true), s.Enabled(false); {
	case on && offByDefault:
		return "on"
	case !on && !offByDefault:
		return "off"
	}
	return "default"
}
