package web

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"passgate/admin"
)

// TestRouteScopes walks every guarded page route: each must have its scope
// in admin.RouteScopes (a new route without one fails here), only GETs may
// be read routes; a read token gets the read pages and 403 naming its
// scope on every change (and on the password page), changing nothing.
func TestRouteScopes(t *testing.T) {
	svc, auth := newFakeService(), newAuth(t, "correct horse")
	h := newHandler(svc, auth, admin.CSRFToken).(*handler)
	if len(h.routes) < 15 {
		t.Fatalf("only %d routes: %v", len(h.routes), h.routes)
	}
	var keys []string
	for _, p := range h.routes {
		m, _, _ := strings.Cut(p, " ")
		k := admin.RouteKey(m, p)
		keys = append(keys, k)
		switch s, ok := admin.RouteScopes[k]; {
		case !ok:
			t.Errorf("page route %s has no scope: add it to admin.RouteScopes", p)
		case s == admin.ScopeRead && m != "GET":
			t.Errorf("page route %s is a change but marked read", p)
		}
	}
	for k := range admin.RouteScopes {
		if _, p, _ := strings.Cut(k, " "); !strings.HasPrefix(p, "/api/") && !slices.Contains(keys, k) {
			t.Errorf("admin.RouteScopes names %s, which the pages do not have", k)
		}
	}
	tok, _, err := auth.CreateToken("dashboard", 0, admin.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, h)
	for _, k := range keys {
		method, path, _ := strings.Cut(k, " ")
		path = strings.TrimSuffix(path, "{$}")
		req, _ := http.NewRequest(method, c.srv.URL+path, strings.NewReader(url.Values{"name": {"x"}, "id": {"x"}}.Encode()))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		code, body, _ := c.do(req)
		switch {
		case admin.RouteScopes[k] != admin.ScopeRead:
			if code != http.StatusForbidden || !strings.Contains(body, `this API token's scope is "read"`) || !strings.Contains(body, method+" "+path) {
				t.Errorf("read token, %s: %d %s, want 403 naming the scope", k, code, body)
			}
		case path == "/":
			if code != http.StatusSeeOther {
				t.Errorf("read token, %s: %d", k, code)
			}
		case code != http.StatusOK:
			t.Errorf("read token, %s: %d %s", k, code, body)
		}
	}
	if len(svc.calls) != 0 || len(auth.Tokens()) != 1 {
		t.Fatalf("a read token changed something: %v, %d tokens", svc.calls, len(auth.Tokens()))
	}
}

var newTokenRE = regexp.MustCompile(`<code id="new-token">([^<]+)</code>`)

// The password page's form makes a token of the scope chosen (read
// preselected), shows it once, lists its scope; a bad scope is refused on
// its field.
func TestTokenFormScope(t *testing.T) {
	c, _, auth := setup(t)
	_, body, _ := c.get("/password")
	mustContain(t, "password page", body, `id="token-form"`, `<option value="read" selected>`, `<option value="admin">`, `name="expires_days"`, `value="90"`)
	code, body, _ := c.post("/password/token", url.Values{"name": {"grafana"}, "scope": {"read"}, "expires_days": {"30"}})
	m := newTokenRE.FindStringSubmatch(body)
	if code != http.StatusCreated || m == nil || !strings.HasPrefix(m[1], admin.TokenPrefix) {
		t.Fatalf("create: %d\n%s", code, body)
	}
	list := auth.Tokens()
	if len(list) != 1 || list[0].Scope != admin.ScopeRead || list[0].Name != "grafana" || list[0].Expires.Sub(list[0].Created).Hours() != 30*24 {
		t.Fatalf("tokens %+v", list)
	}
	mustContain(t, "token list", body, `<td class="scope">read</td>`)
	// The token reads and cannot change.
	for path, want := range map[string]int{"/status": http.StatusOK, "/password": http.StatusForbidden} {
		req, _ := http.NewRequest("GET", c.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+m[1])
		if code, _, _ := (&client{t: t, srv: c.srv, c: c.srv.Client()}).do(req); code != want {
			t.Errorf("new read token, GET %s: %d, want %d", path, code, want)
		}
	}
	code, body, _ = c.post("/password/token", url.Values{"name": {"x"}, "scope": {"root"}, "expires_days": {"30"}})
	mustContain(t, "bad scope", body, `id="token-scope-error"`, `&#34;admin&#34; or &#34;read&#34;`)
	if code != http.StatusUnprocessableEntity || len(auth.Tokens()) != 1 {
		t.Fatalf("bad scope: %d, %d tokens", code, len(auth.Tokens()))
	}
	code, body, _ = c.post("/password/token", url.Values{"name": {"x"}, "scope": {"admin"}, "expires_days": {"0"}})
	mustContain(t, "bad days", body, `id="token-days-error"`)
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("0 days: %d", code)
	}
}
