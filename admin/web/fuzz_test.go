package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"passgate/admin"
)

// sameSite reports whether a browser following loc from the login page
// stays on the admin page's site. Browsers (the WHATWG URL parser) drop
// tabs and newlines anywhere, trim leading C0 controls and spaces, and
// read a backslash as a slash.
func sameSite(loc string) bool {
	loc = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(loc)
	loc = strings.TrimLeft(loc, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	base, _ := url.Parse("https://192.168.50.1:8080/login")
	u, err := url.Parse(loc)
	if err != nil {
		return false
	}
	r := base.ResolveReference(u)
	return r.Scheme == "https" && r.Host == base.Host
}

// FuzzSafeNext: whatever next= says, the redirect after login stays on
// the site. Seeds: testdata/fuzz/FuzzSafeNext.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/events", "//evil.example", "/\t/evil.example", "/\\evil", "https://evil.example/", "/status?a=b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if !strings.HasPrefix(got, "/") || !sameSite(got) {
			t.Fatalf("safeNext(%q) = %q: off this site", next, got)
		}
	})
}

// FuzzWebUnauthenticated posts any form with any cookie to /setup and
// /login, and asks for /login?next=..., as anyone on the LAN can before
// logging in. Nothing may answer 5xx, no post sets the password without
// the setup code, and every redirect stays on the site.
// Seeds: testdata/fuzz/FuzzWebUnauthenticated.
func FuzzWebUnauthenticated(f *testing.F) {
	f.Add(uint8(0), "password=long+enough&confirm=long+enough", "")
	f.Add(uint8(1), "password=correct+horse&next=%2Fevents", "passgate_session=x")
	f.Add(uint8(2), "next=/%09/evil.example", "")
	fresh := newAuth(f, "")
	h := newHandler(newFakeService(), fresh, admin.CSRFToken)
	// Login, with a password set: the redirect after it must stay here.
	withPw := newHandler(newFakeService(), newAuth(f, "correct horse"), admin.CSRFToken)
	f.Fuzz(func(t *testing.T, which uint8, form, cookie string) {
		var req *http.Request
		switch which % 3 {
		case 0:
			req = httptest.NewRequest("POST", "https://192.168.50.1:8080/setup", strings.NewReader(form))
		case 1:
			req = httptest.NewRequest("POST", "https://192.168.50.1:8080/login", strings.NewReader(form))
		default:
			req = httptest.NewRequest("GET", "https://192.168.50.1:8080/login", nil)
			req.URL.RawQuery = form
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		if which%3 == 1 {
			withPw.ServeHTTP(rec, req)
		} else {
			h.ServeHTTP(rec, req)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d", req.Method, req.URL.Path, form, rec.Code)
		}
		if !fresh.SetupNeeded() {
			t.Fatalf("%q set the password without the setup code", form)
		}
		if loc := rec.Header().Get("Location"); loc != "" && !sameSite(loc) {
			t.Fatalf("%s %s %q: redirect off the site to %q", req.Method, req.URL.Path, form, loc)
		}
	})
}
