package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"passgate/admin"
)

// Login CSRF and changes from another site: a cross-site post to /login,
// even with the right password, starts no session; one to /password or
// /password/revoke with a session and its CSRF token (leaked) changes
// nothing.
func TestCrossSiteLoginAndChanges(t *testing.T) {
	c, _, auth := setup(t)
	post := func(path string, form url.Values) int {
		t.Helper()
		form.Set("csrf_token", c.csrf)
		req, _ := http.NewRequest("POST", c.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
		code, _, _ := c.do(req)
		return code
	}
	if code := post("/password", url.Values{"old": {"correct horse"}, "password": {"attacker pw1"}, "confirm": {"attacker pw1"}}); code != http.StatusForbidden {
		t.Fatalf("cross-site password change: %d", code)
	}
	if code := post("/logout", url.Values{}); code != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d", code)
	}
	fresh := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))
	form := url.Values{"password": {"correct horse"}}
	req, _ := http.NewRequest("POST", fresh.srv.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := fresh.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("cross-site login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// The password is unchanged: the owner still logs in with it.
	if code, _, _ := c.get("/status"); code != http.StatusOK {
		t.Fatalf("the session after the cross-site posts: %d", code)
	}
}

// Wrong setup codes on the page: 403-like field errors, then 429 with
// Retry-After from that address; the code stays the one printed.
func TestSetupPageRateLimited(t *testing.T) {
	auth := newAuth(t, "")
	code := auth.SetupCode()
	c := newClient(t, newHandler(newFakeService(), auth, admin.CSRFToken))
	var last int
	var hd http.Header
	for range admin.FreeLoginFailures + 1 {
		last, _, hd = c.post("/setup", url.Values{"setup_code": {"AAAA-AAAA-AAAA"}, "password": {"attacker pw"}, "confirm": {"attacker pw"}})
	}
	if last != http.StatusTooManyRequests || hd.Get("Retry-After") == "" {
		t.Fatalf("after %d wrong codes: %d %v", admin.FreeLoginFailures+1, last, hd)
	}
	if auth.SetupCode() != code || !auth.SetupNeeded() {
		t.Fatal("wrong codes changed the setup code or set the password")
	}
}
