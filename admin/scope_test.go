package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

// concrete fills a route pattern's wildcards with values the test
// harness has (a passthrough, a forward, a token id, a mapping).
var concrete = strings.NewReplacer("/passthrough/{name}", "/passthrough/pptp", "/forwards/{name}", "/forwards/web", "{id}", "abcd", "{proto}/{port}", "tcp/40000")

// apiRoutes are the REST API's authenticated routes, as registered.
func apiRoutes(e *env) []string {
	a := &api{svc: e.svc, auth: e.auth, log: slog.New(slog.DiscardHandler)}
	a.handler()
	slices.Sort(a.routes)
	return a.routes
}

// endpointFor finds the request authedEndpoints makes for a route key.
func endpointFor(t *testing.T, key string) (method, path string, body any) {
	t.Helper()
	method, pattern, _ := strings.Cut(key, " ")
	path = concrete.Replace(pattern)
	for _, ep := range authedEndpoints {
		if ep.method == method && ep.path == path {
			return method, path, ep.body
		}
	}
	t.Fatalf("route %s has no request in authedEndpoints: add one", key)
	return
}

// TestRouteScopes walks every authenticated route the API registers: each
// must have its scope in RouteScopes (a new route without one fails here),
// only GETs may be read routes, a read token gets 200 on the reads and 403
// naming its scope on everything else, changing nothing, and an admin
// token is never refused.
func TestRouteScopes(t *testing.T) {
	e := newEnv(t)
	e.loggedIn()
	routes := apiRoutes(e)
	if len(routes) < 20 {
		t.Fatalf("only %d routes found: %v", len(routes), routes)
	}
	for _, k := range routes {
		switch s, ok := RouteScopes[k]; {
		case !ok:
			t.Errorf("route %s has no scope: add it to RouteScopes", k)
		case s != ScopeRead && s != ScopeAdmin:
			t.Errorf("route %s: scope %q", k, s)
		case s == ScopeRead && !strings.HasPrefix(k, "GET "):
			t.Errorf("route %s is a change but marked read", k)
		}
	}
	for k := range RouteScopes {
		if _, p, _ := strings.Cut(k, " "); strings.HasPrefix(p, "/api/") && !slices.Contains(routes, k) {
			t.Errorf("RouteScopes names %s, which the API does not have", k)
		}
	}
	before := e.file()
	reader := e.client()
	tok, info, err := e.auth.CreateToken("grafana", 0, ScopeRead)
	if err != nil || info.Scope != ScopeRead {
		t.Fatalf("create: %+v %v", info, err)
	}
	reader.bearer = tok
	reads := 0
	for _, k := range routes {
		method, path, body := endpointFor(t, k)
		r := reader.do(method, path, body)
		if RouteScopes[k] == ScopeRead {
			reads++
			if r.code != http.StatusOK {
				t.Errorf("read token, %s %s: %d %s", method, path, r.code, r.body)
			}
			if h := reader.do("HEAD", path, nil); h.code != http.StatusOK || len(h.body) != 0 {
				t.Errorf("read token, HEAD %s: %d", path, h.code)
			}
			continue
		}
		if r.code != http.StatusForbidden || !r.hasErr("", `this API token's scope is "read": it may only read`) || !r.hasErr("", method+" "+path+` needs a token of scope "admin"`) {
			t.Errorf("read token, %s %s: %d %s, want 403 naming the scope", method, path, r.code, r.body)
		}
	}
	if reads != 10 {
		t.Errorf("%d read routes, want 10", reads)
	}
	// Nothing changed: no reconfiguration, the file as it was, the token
	// list as it was, the password as it was.
	if _, n := e.gw.last(); n != 0 || e.file() != before || len(e.auth.Tokens()) != 1 {
		t.Fatalf("a read token changed something: %d reconfigurations, %d tokens", n, len(e.auth.Tokens()))
	}
	var si SessionInfo
	reader.do("GET", "/api/v1/session", nil).decode(t, &si)
	if !si.Authenticated || si.Via != "token" || si.Scope != ScopeRead {
		t.Fatalf("session via a read token: %+v", si)
	}
	// /metrics is a read.
	if r := reader.do("GET", "/metrics", nil); r.code != http.StatusOK {
		t.Errorf("read token, /metrics: %d", r.code)
	}

	// An admin token is refused nothing (each route in a fresh gateway:
	// a password change revokes the token).
	for _, k := range routes {
		e := newEnv(t)
		e.loggedIn()
		method, path, body := endpointFor(t, k)
		if r := e.tokenClient("admin").do(method, path, body); r.code == http.StatusForbidden || r.code == http.StatusUnauthorized {
			t.Errorf("admin token, %s %s: %d %s", method, path, r.code, r.body)
		}
	}
}

// TestTokenScopeCreateAndCompat: the scope is chosen at creation (admin by
// default, a bad one refused naming the field), listed, kept in the auth
// file; a token in a file from before scopes (no "scope") is an admin one.
func TestTokenScopeCreateAndCompat(t *testing.T) {
	e := newEnv(t)
	c := e.loggedIn()
	var def, read TokenResponse
	c.do("POST", "/api/v1/tokens", `{"name":"script"}`).decode(t, &def)
	c.do("POST", "/api/v1/tokens", `{"name":"prometheus","scope":"read"}`).decode(t, &read)
	if def.Scope != ScopeAdmin || read.Scope != ScopeRead {
		t.Fatalf("created %+v and %+v", def.TokenInfo, read.TokenInfo)
	}
	if r := c.do("POST", "/api/v1/tokens", `{"name":"x","scope":"write"}`); r.code != 400 || !r.hasErr("scope", `"admin" or "read"`) {
		t.Fatalf("bad scope: %d %s", r.code, r.body)
	}
	var list []TokenInfo
	c.do("GET", "/api/v1/tokens", nil).decode(t, &list)
	if len(list) != 2 || list[0].Scope != ScopeAdmin || list[1].Scope != ScopeRead {
		t.Fatalf("list %+v", list)
	}
	// The file as an older passgate wrote it: no scope on the entries.
	b, err := os.ReadFile(e.auth.Path())
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	toks := st["tokens"].([]any)
	if toks[0].(map[string]any)["scope"] != ScopeAdmin || toks[1].(map[string]any)["scope"] != ScopeRead {
		t.Fatalf("scopes in the file: %s", b)
	}
	delete(toks[0].(map[string]any), "scope")
	old, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(e.auth.Path(), append(old, ' ', ' ', ' ', '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	bot := e.client()
	bot.bearer = def.Token
	if r := bot.do("PUT", "/api/v1/passthrough/l2tp", `{"enabled":false}`); r.code != 200 {
		t.Fatalf("a token from before scopes, PUT: %d %s", r.code, r.body)
	}
	if got := e.auth.Tokens(); got[0].Scope != ScopeAdmin {
		t.Fatalf("a token from before scopes lists as %q", got[0].Scope)
	}
}
