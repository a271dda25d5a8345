// Package web is passgate's admin page: server-rendered HTML (html/template)
// with its stylesheet and a small optional script embedded in the binary,
// laid out like home-router firmware. A menu on the left leads to Status,
// NAT Passthrough, Port Forwarding, Connections and Events; /setup sets the
// first password (there is no default one) and /login starts a session.
//
// Every page but /login, /setup and the assets sits behind admin.Auth's
// Require, which sends people without a session to /login and refuses a
// state change without the session's CSRF token; every form carries it.
// The page makes no request to any other origin.
package web

import (
	"cmp"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"passgate/admin"
	"passgate/alg"
	"passgate/config"
	"passgate/control"
)

//go:embed templates/*.html static/*
var content embed.FS

// service is what the pages read and change: *admin.Service.
type service interface {
	Status() control.Status
	Flows(f control.FlowFilter) []control.Flow
	Events() []control.Event
	Config() config.Config
	SetPassthrough(name string, on bool) (admin.Changes, error)
	AddForward(pf config.PortForward) (admin.Changes, error)
	UpdateForward(name string, pf config.PortForward) (admin.Changes, error)
	DeleteForward(name string) (admin.Changes, error)
	SetDMZ(host string) (admin.Changes, error)
	Passthroughs() []admin.Passthrough
	Mappings() control.Mappings
	DeleteMapping(proto, port string) error
}

// authenticator guards the pages: *admin.Auth.
type authenticator interface {
	SetupNeeded() bool
	Setup(r *http.Request, code, pw string) error
	SetPassword(r *http.Request, old, new string) error
	Tokens() []admin.TokenInfo
	CreateToken(name string, ttl time.Duration, scope string) (string, admin.TokenInfo, error)
	RevokeToken(id string) error
	Login(w http.ResponseWriter, r *http.Request, password string) error
	Logout(w http.ResponseWriter, r *http.Request)
	Require(h http.Handler) http.Handler
}

// Handler serves the admin pages and their assets. Mount it at "/" next
// to the REST API; it answers /, /status, /passthrough, /forwarding,
// /connections, /events, /password, /login, /logout, /setup and /static/.
func Handler(svc *admin.Service, auth *admin.Auth) http.Handler {
	return newHandler(svc, auth, admin.CSRFToken)
}

// maxFlowRows caps the connections table; the count says how many matched.
const maxFlowRows = 1000

// maxForm bounds a posted form; the largest is a port forwarding rule.
const maxForm = 64 << 10

type handler struct {
	svc   service
	auth  authenticator
	csrf  func(*http.Request) string
	pages map[string]*template.Template
	next  http.Handler
	// routes are the guarded routes' patterns (for TestRouteScopes).
	routes []string
}

func newHandler(svc service, auth authenticator, csrf func(*http.Request) string) http.Handler {
	h := &handler{svc: svc, auth: auth, csrf: csrf, pages: parsePages()}
	mux := http.NewServeMux()
	static, _ := fs.Sub(content, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.loginPost)
	mux.HandleFunc("GET /setup", h.setupPage)
	mux.HandleFunc("POST /setup", h.setupPost)

	// Require enforces the API token scopes of admin.RouteScopes here too.
	guard := func(pattern string, fn http.HandlerFunc) {
		h.routes = append(h.routes, pattern)
		mux.Handle(pattern, auth.Require(fn))
	}
	guard("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusSeeOther)
	})
	guard("GET /status", h.statusPage)
	guard("GET /passthrough", h.passthroughPage)
	guard("POST /passthrough", h.passthroughPost)
	guard("GET /forwarding", h.forwardingPage)
	guard("POST /forwarding/add", h.forwardAdd)
	guard("POST /forwarding/update", h.forwardUpdate)
	guard("POST /forwarding/delete", h.forwardDelete)
	guard("POST /forwarding/dmz", h.dmzPost)
	guard("POST /forwarding/mapping-delete", h.mappingDelete)
	guard("GET /connections", h.connectionsPage)
	guard("GET /events", h.eventsPage)
	guard("GET /password", h.passwordPage)
	guard("POST /password", h.passwordPost)
	guard("POST /password/revoke", h.revokePost)
	guard("POST /password/token", h.tokenPost)
	guard("POST /logout", h.logoutPost)
	// Besides the session's CSRF token (Require), refuse any cross-site
	// form post by the browser's Sec-Fetch-Site and Origin headers: this
	// also covers /setup and /login, which come before any session (a page
	// elsewhere must not set the first password of a new gateway).
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Forbidden: a cross-site request; use the admin page itself", http.StatusForbidden)
	}))
	h.next = cop.Handler(mux)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// Not no-referrer: with it, Chromium sends "Origin: null" on the page's
	// own form posts, and the cross-origin check below refuses them.
	hd.Set("Referrer-Policy", "same-origin")
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	}
	h.next.ServeHTTP(w, r)
}

// ---- rendering

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string // the menu item to mark as current
	CSRF    string
	Refresh bool // the page offers auto-refresh
	Result  *result
	Data    any
}

// result is the outcome of a change: what changed, or what was wrong.
type result struct {
	Applied bool     // the change took (possibly changing nothing)
	Changes []string // admin.Changes lines
	Errors  []string // problems not tied to a field on the page
	Fields  map[string]string
	Form    string // which form the field errors belong to
}

// Field returns the error for a form field, if any.
func (r *result) Field(name string) string {
	if r == nil {
		return ""
	}
	return r.Fields[name]
}

func (r *result) failed() bool { return r != nil && !r.Applied }

var pageFiles = []string{
	"status", "passthrough", "forwarding", "connections", "events", "password",
}

func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, p := range pageFiles {
		pages[p] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(content, "templates/layout.html", "templates/head.html", "templates/"+p+".html"))
	}
	for _, p := range []string{"login", "setup"} {
		pages[p] = template.Must(template.New("bare.html").Funcs(funcs).ParseFS(content, "templates/bare.html", "templates/head.html", "templates/"+p+".html"))
	}
	return pages
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, code int, page string, v *view) {
	if v.Nav == "" {
		v.Nav = page
	}
	v.CSRF = h.csrf(r)
	var b strings.Builder
	if err := h.pages[page].Execute(&b, v); err != nil {
		slog.Error("admin page", "page", page, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprint(w, b.String())
}

// outcome turns what the service answered into a result and a status code.
// Errors naming prefix+field, for a field in formFields, are shown next to
// that field of the posted form; the rest above it, with their full path.
func outcome(changes admin.Changes, err error, form, prefix string, formFields ...string) (*result, int) {
	if err == nil {
		return &result{Applied: true, Changes: []string(changes)}, http.StatusOK
	}
	res := &result{Form: form, Fields: map[string]string{}}
	fes := config.AsErrors(err)
	if fes == nil {
		res.Errors = []string{err.Error()}
		switch {
		case errors.Is(err, admin.ErrNotFound):
			return res, http.StatusNotFound
		case errors.Is(err, admin.ErrNotAvailable):
			return res, http.StatusConflict
		}
		return res, http.StatusInternalServerError
	}
	for _, fe := range fes {
		if key, ok := strings.CutPrefix(fe.Field, prefix); ok && slices.Contains(formFields, key) {
			if res.Fields[key] != "" {
				res.Fields[key] += "; "
			}
			res.Fields[key] += fe.Msg
			continue
		}
		res.Errors = append(res.Errors, fe.Error())
	}
	return res, http.StatusUnprocessableEntity
}

func fieldResult(form string, fields map[string]string) *result {
	return &result{Form: form, Fields: fields}
}

// ---- login, setup, logout, password

type loginData struct {
	Next    string
	Changed bool // the password was just changed, which ends every session
}

// safeNext keeps a post-login redirect on this site: an absolute path of
// printable ASCII, no backslash, parsing to no scheme nor host, not
// starting with two slashes. Browsers drop tabs and newlines from URLs and
// read a backslash as a slash, so "/\t/evil.example" and "/\\evil.example"
// would leave the site; anything else is /status.
func safeNext(s string) string {
	const home = "/status"
	if !strings.HasPrefix(s, "/") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '\\' }) {
		return home
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		strings.HasPrefix(s, "//") || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") ||
		strings.HasPrefix(s, "/login") || strings.HasPrefix(s, "/setup") {
		return home
	}
	return s
}

func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if h.auth.SetupNeeded() {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	q := r.URL.Query()
	h.render(w, r, http.StatusOK, "login", &view{Title: "Log in", Data: loginData{Next: safeNext(q.Get("next")), Changed: q.Get("changed") != ""}})
}

func (h *handler) loginPost(w http.ResponseWriter, r *http.Request) {
	if h.auth.SetupNeeded() {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if err := h.auth.Login(w, r, r.PostFormValue("password")); err != nil {
		code := http.StatusUnauthorized
		var rl *admin.RateLimitError
		if errors.As(err, &rl) {
			code = http.StatusTooManyRequests
			w.Header().Set("Retry-After", strconv.Itoa(int(rl.RetryAfter.Seconds()+0.999)))
		}
		h.render(w, r, code, "login", &view{
			Title:  "Log in",
			Result: fieldResult("login", map[string]string{"password": err.Error()}),
			Data:   loginData{Next: next},
		})
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *handler) setupPage(w http.ResponseWriter, r *http.Request) {
	if !h.auth.SetupNeeded() {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "setup", &view{Title: "Set the password"})
}

func (h *handler) setupPost(w http.ResponseWriter, r *http.Request) {
	if !h.auth.SetupNeeded() {
		// The password is set; changing it takes the old one (/password).
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	pw, confirm, code := r.PostFormValue("password"), r.PostFormValue("confirm"), r.PostFormValue("setup_code")
	fail := func(field, msg string) {
		h.render(w, r, http.StatusUnprocessableEntity, "setup", &view{
			Title:  "Set the password",
			Result: fieldResult("setup", map[string]string{field: msg}),
		})
	}
	switch {
	case strings.TrimSpace(code) == "":
		fail("setup_code", "enter the setup code: passgate printed it in its log, and sudo passgate status shows it")
		return
	case pw == "":
		fail("password", "choose a password")
		return
	case pw != confirm:
		fail("confirm", "the two passwords differ")
		return
	}
	if err := h.auth.Setup(r, code, pw); err != nil {
		var rl *admin.RateLimitError
		switch {
		case errors.Is(err, admin.ErrPasswordSet):
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		case errors.Is(err, admin.ErrSetupCode):
			fail("setup_code", "wrong setup code: passgate printed it in its log, and sudo passgate status shows it")
		case errors.As(err, &rl):
			w.Header().Set("Retry-After", strconv.Itoa(int(rl.RetryAfter.Seconds()+0.999)))
			h.render(w, r, http.StatusTooManyRequests, "setup", &view{
				Title:  "Set the password",
				Result: fieldResult("setup", map[string]string{"setup_code": err.Error()}),
			})
		default:
			fail("password", err.Error())
		}
		return
	}
	if err := h.auth.Login(w, r, pw); err != nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/status", http.StatusSeeOther)
}

func (h *handler) logoutPost(w http.ResponseWriter, r *http.Request) {
	h.auth.Logout(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// passwordData is the password page's: the API tokens, and the one just
// made (shown this once).
type passwordData struct {
	Tokens   []admin.TokenInfo
	New      string
	NewInfo  admin.TokenInfo
	Scopes   []string
	Days     int
	NameTry  string // the name a refused creation asked for
	ScopeTry string
}

// password renders the password page with res.
func (h *handler) password(w http.ResponseWriter, r *http.Request, code int, res *result, d passwordData) {
	d.Tokens, d.Scopes = h.auth.Tokens(), []string{admin.ScopeRead, admin.ScopeAdmin}
	if d.Days == 0 {
		d.Days = int(admin.DefaultTokenTTL / (24 * time.Hour))
	}
	if d.ScopeTry == "" {
		d.ScopeTry = admin.ScopeRead
	}
	h.render(w, r, code, "password", &view{Title: "Password", Result: res, Data: d})
}

func (h *handler) passwordPage(w http.ResponseWriter, r *http.Request) {
	h.password(w, r, http.StatusOK, nil, passwordData{})
}

// revokePost revokes one API token.
func (h *handler) revokePost(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	res, code := &result{Applied: true, Changes: []string{"API token " + id + " revoked"}}, http.StatusOK
	if err := h.auth.RevokeToken(id); err != nil {
		res, code = outcome(nil, err, "revoke", "")
	}
	h.password(w, r, code, res, passwordData{})
}

// tokenPost makes an API token with the scope chosen (read unless asked
// otherwise) and shows it this once.
func (h *handler) tokenPost(w http.ResponseWriter, r *http.Request) {
	name, scope := r.PostFormValue("name"), r.PostFormValue("scope")
	try := passwordData{NameTry: name, ScopeTry: scope}
	days, err := strconv.Atoi(r.PostFormValue("expires_days"))
	if err != nil || days < 1 {
		h.password(w, r, http.StatusUnprocessableEntity, fieldResult("token", map[string]string{"expires_days": "a whole number of days, 1 or more"}), try)
		return
	}
	try.Days = days
	tok, info, err := h.auth.CreateToken(name, time.Duration(days)*24*time.Hour, scope)
	if err != nil {
		res, code := outcome(nil, err, "token", "", "name", "expires_days", "scope")
		h.password(w, r, code, res, try)
		return
	}
	res := &result{Applied: true, Changes: []string{fmt.Sprintf("API token %s (%s, scope %s) created", info.ID, info.Name, info.Scope)}}
	h.password(w, r, http.StatusCreated, res, passwordData{New: tok, NewInfo: info})
}

// passwordPost changes the password. That ends every session, this one
// too, and revokes every API token, so success leads to the login page.
func (h *handler) passwordPost(w http.ResponseWriter, r *http.Request) {
	old, pw, confirm := r.PostFormValue("old"), r.PostFormValue("password"), r.PostFormValue("confirm")
	fields := map[string]string{}
	switch {
	case old == "":
		fields["old"] = "enter the current password"
	case pw == "":
		fields["password"] = "choose a new password"
	case pw != confirm:
		fields["confirm"] = "the two passwords differ"
	}
	if len(fields) == 0 {
		err := h.auth.SetPassword(r, old, pw)
		var pe *admin.PasswordError
		var rl *admin.RateLimitError
		switch {
		case err == nil:
			http.Redirect(w, r, "/login?changed=1", http.StatusSeeOther)
			return
		case errors.Is(err, admin.ErrWrongPassword):
			fields["old"] = err.Error()
		case errors.As(err, &rl):
			w.Header().Set("Retry-After", strconv.Itoa(int(rl.RetryAfter.Seconds()+0.999)))
			h.password(w, r, http.StatusTooManyRequests, fieldResult("password", map[string]string{"old": err.Error()}), passwordData{})
			return
		case errors.As(err, &pe):
			fields["password"] = err.Error()
		default:
			h.password(w, r, http.StatusInternalServerError, &result{Errors: []string{err.Error()}}, passwordData{})
			return
		}
	}
	h.password(w, r, http.StatusUnprocessableEntity, fieldResult("password", fields), passwordData{})
}

// ---- status

type statusData struct {
	S           control.Status
	Uptime      string
	TotalDrops  uint64
	Drops       []countRow
	Flows       []countRow
	VPN         []vpnRow
	Passthrough []admin.Passthrough
}

type countRow struct {
	Name  string
	Label string
	Count uint64
}

type vpnRow struct {
	Name, Label string
	Sessions    int
	On          bool
	Known       bool // the passthrough switch exists
}

func (h *handler) statusPage(w http.ResponseWriter, r *http.Request) {
	st := h.svc.Status()
	d := statusData{S: st, Uptime: duration(st.UptimeSec), TotalDrops: st.NAT.TotalDrops()}
	for name, n := range st.NAT.Drops {
		if n > 0 {
			d.Drops = append(d.Drops, countRow{Name: name, Label: dropLabel(name), Count: n})
		}
	}
	slices.SortFunc(d.Drops, func(a, b countRow) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Name, b.Name))
	})
	for _, p := range []string{"tcp", "udp", "icmp", "gre", "esp"} {
		d.Flows = append(d.Flows, countRow{Name: p, Label: strings.ToUpper(p), Count: uint64(st.NAT.FlowsByProto[p])})
	}
	for p, n := range st.NAT.FlowsByProto {
		if !slices.ContainsFunc(d.Flows, func(c countRow) bool { return c.Name == p }) {
			d.Flows = append(d.Flows, countRow{Name: p, Label: strings.ToUpper(p), Count: uint64(n)})
		}
	}
	for _, v := range alg.All() {
		if v.Kind != alg.Passthrough {
			continue
		}
		on, known := st.Passthrough[v.Name]
		d.VPN = append(d.VPN, vpnRow{Name: v.Name, Label: v.Label, Sessions: st.NAT.VPNSessions[v.Name], On: on, Known: known})
	}
	h.render(w, r, http.StatusOK, "status", &view{Title: "Status", Refresh: true, Data: d})
}

// ---- NAT passthrough

type passthroughRow struct {
	admin.Passthrough
	Obsolete bool
}

func (h *handler) passthroughRows() []passthroughRow {
	var rows []passthroughRow
	for _, p := range h.svc.Passthroughs() {
		if p.Label == "" {
			p.Label = p.Name
		}
		if !p.Available {
			p.On = false // a helper that does not exist is not on
		}
		a, _ := alg.ByName(p.Name)
		rows = append(rows, passthroughRow{Passthrough: p, Obsolete: a.Obsolete})
	}
	return rows
}

func (h *handler) passthroughPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "passthrough", &view{Title: "NAT Passthrough", Data: h.passthroughRows()})
}

// passthroughPost applies the switches whose box differs from the running
// state, in the page's order, and stops at the first refusal.
func (h *handler) passthroughPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	res, code := &result{Applied: true}, http.StatusOK
	for _, p := range h.svc.Passthroughs() {
		if !p.Available {
			continue
		}
		want := r.PostForm.Get(p.Name) == "on"
		if want == p.On {
			continue
		}
		changes, err := h.svc.SetPassthrough(p.Name, want)
		res.Changes = append(res.Changes, changes...)
		if err != nil {
			var r2 *result
			r2, code = outcome(nil, err, "passthrough", "")
			res.Applied, res.Errors = false, append(res.Errors, r2.Errors...)
			break
		}
	}
	h.render(w, r, code, "passthrough", &view{Title: "NAT Passthrough", Result: res, Data: h.passthroughRows()})
}

// ---- port forwarding and DMZ

type forwardingData struct {
	Mappings control.Mappings
	Rules    []config.PortForward
	DMZ      string
	Editing  string             // the name of the rule being edited; empty: adding
	Form     config.PortForward // the add/edit form's values
	Inside   string             // the inside port as typed
	DMZForm  string
}

var forwardFields = []string{"name", "proto", "outside_port", "host", "inside_port"}

func (h *handler) forwardingData() forwardingData {
	c := h.svc.Config()
	return forwardingData{Mappings: h.svc.Mappings(), Rules: c.PortForwards, DMZ: c.DMZ, DMZForm: c.DMZ, Form: config.PortForward{Proto: "tcp"}}
}

func (h *handler) mappingDelete(w http.ResponseWriter, r *http.Request) {
	proto, port := r.PostFormValue("proto"), r.PostFormValue("port")
	res, code := &result{Applied: true, Changes: []string{fmt.Sprintf("port mapping %s %s deleted", proto, port)}}, http.StatusOK
	if err := h.svc.DeleteMapping(proto, port); err != nil {
		res, code = &result{Errors: []string{err.Error()}}, http.StatusNotFound
	}
	h.render(w, r, code, "forwarding", &view{Title: "Port Forwarding", Result: res, Data: h.forwardingData()})
}

func (h *handler) forwardingPage(w http.ResponseWriter, r *http.Request) {
	d := h.forwardingData()
	if name := r.URL.Query().Get("edit"); name != "" {
		i := slices.IndexFunc(d.Rules, func(pf config.PortForward) bool { return pf.Name == name })
		if i < 0 {
			h.render(w, r, http.StatusNotFound, "forwarding", &view{Title: "Port Forwarding",
				Result: &result{Errors: []string{fmt.Sprintf("there is no rule named %q", name)}}, Data: d})
			return
		}
		d.Editing, d.Form = name, d.Rules[i]
		if d.Form.InsidePort != 0 {
			d.Inside = strconv.Itoa(d.Form.InsidePort)
		}
	}
	h.render(w, r, http.StatusOK, "forwarding", &view{Title: "Port Forwarding", Data: d})
}

// forwardFromForm reads the add/edit form; a problem it can see itself
// (an inside port that is not a number) comes back as a field error.
func forwardFromForm(r *http.Request) (config.PortForward, string, map[string]string) {
	pf := config.PortForward{
		Name:        strings.TrimSpace(r.PostFormValue("name")),
		Proto:       strings.TrimSpace(r.PostFormValue("proto")),
		OutsidePort: config.PortSpec(strings.ReplaceAll(r.PostFormValue("outside_port"), " ", "")),
		Host:        strings.TrimSpace(r.PostFormValue("host")),
	}
	inside := strings.TrimSpace(r.PostFormValue("inside_port"))
	fields := map[string]string{}
	if inside != "" {
		n, err := strconv.Atoi(inside)
		if err != nil {
			fields["inside_port"] = fmt.Sprintf("%q is not a port number; leave it empty to use the outside port", inside)
		}
		pf.InsidePort = n
	}
	return pf, inside, fields
}

// The service names a rule's errors by its place in the file: a new rule
// goes last, an edited one keeps its place.

func (h *handler) forwardAdd(w http.ResponseWriter, r *http.Request) {
	pf, inside, fields := forwardFromForm(r)
	at := len(h.svc.Config().PortForwards)
	h.forwardChange(w, r, "", at, pf, inside, fields, func() (admin.Changes, error) { return h.svc.AddForward(pf) })
}

func (h *handler) forwardUpdate(w http.ResponseWriter, r *http.Request) {
	orig := r.PostFormValue("original")
	pf, inside, fields := forwardFromForm(r)
	at := slices.IndexFunc(h.svc.Config().PortForwards, func(o config.PortForward) bool { return o.Name == orig })
	h.forwardChange(w, r, orig, at, pf, inside, fields, func() (admin.Changes, error) { return h.svc.UpdateForward(orig, pf) })
}

func (h *handler) forwardChange(w http.ResponseWriter, r *http.Request, editing string, at int, pf config.PortForward, inside string, fields map[string]string, apply func() (admin.Changes, error)) {
	var res *result
	code := http.StatusUnprocessableEntity
	if len(fields) > 0 {
		res = fieldResult("forward", fields)
	} else {
		var changes admin.Changes
		changes, err := apply()
		res, code = outcome(changes, err, "forward", fmt.Sprintf("port_forwards[%d].", at), forwardFields...)
		for k, msg := range res.Fields {
			res.Fields[k] = ruleWords(msg)
		}
	}
	d := h.forwardingData()
	if res.failed() {
		// Keep what was typed, to correct it.
		d.Editing, d.Form, d.Inside = editing, pf, inside
	}
	h.render(w, r, code, "forwarding", &view{Title: "Port Forwarding", Nav: "forwarding", Result: res, Data: d})
}

// ruleWords says "rule "web"" where the configuration's message next to a
// field names another rule by its place in the file, port_forwards[0]
// "web", which the page shows nowhere; a rule without a name is "another
// rule".
func ruleWords(msg string) string {
	msg = ruleRefNamed.ReplaceAllString(msg, "rule $1")
	return ruleRef.ReplaceAllString(msg, "another rule")
}

var (
	ruleRefNamed = regexp.MustCompile(`port_forwards\[\d+\] ("(?:[^"\\]|\\.)*")`)
	ruleRef      = regexp.MustCompile(`port_forwards\[\d+\]`)
)

func (h *handler) forwardDelete(w http.ResponseWriter, r *http.Request) {
	changes, err := h.svc.DeleteForward(r.PostFormValue("name"))
	res, code := outcome(changes, err, "delete", "")
	h.render(w, r, code, "forwarding", &view{Title: "Port Forwarding", Result: res, Data: h.forwardingData()})
}

func (h *handler) dmzPost(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimSpace(r.PostFormValue("dmz"))
	changes, err := h.svc.SetDMZ(host)
	res, code := outcome(changes, err, "dmz", "", "dmz")
	d := h.forwardingData()
	if res.failed() {
		d.DMZForm = host
	}
	h.render(w, r, code, "forwarding", &view{Title: "Port Forwarding", Result: res, Data: d})
}

// ---- connections

type connectionsData struct {
	Host, Proto string
	Protos      []string
	Flows       []control.Flow
	Total       int
	Capped      bool
}

var flowProtos = []string{"tcp", "udp", "icmp", "gre", "esp"}

func (h *handler) connectionsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := connectionsData{Host: strings.TrimSpace(q.Get("host")), Proto: strings.ToLower(strings.TrimSpace(q.Get("proto"))), Protos: flowProtos}
	var ff control.FlowFilter
	fields := map[string]string{}
	if d.Host != "" {
		a, err := netip.ParseAddr(d.Host)
		if err != nil {
			fields["host"] = fmt.Sprintf("%q is not an IPv4 address", d.Host)
		}
		ff.Host = a
	}
	if d.Proto != "" && !slices.Contains(flowProtos, d.Proto) {
		fields["proto"] = fmt.Sprintf("unknown protocol %q", d.Proto)
	}
	ff.Proto = d.Proto
	v := &view{Title: "Connections", Refresh: true}
	code := http.StatusOK
	if len(fields) > 0 {
		v.Result, code = fieldResult("filter", fields), http.StatusBadRequest
	} else {
		d.Flows = h.svc.Flows(ff)
		slices.SortStableFunc(d.Flows, func(a, b control.Flow) int {
			return cmp.Or(
				cmp.Compare(vpnFirst(a), vpnFirst(b)),
				strings.Compare(a.Proto, b.Proto),
				a.Inside.Compare(b.Inside),
				a.Remote.Compare(b.Remote),
			)
		})
		d.Total = len(d.Flows)
		if d.Total > maxFlowRows {
			d.Flows, d.Capped = d.Flows[:maxFlowRows], true
		}
	}
	v.Data = d
	h.render(w, r, code, "connections", v)
}

// ---- events

// eventRow is one row of the Events page: an event, and the like ones
// just before it folded into it.
type eventRow struct {
	control.Event
	Since time.Time // the oldest folded into it, if any
	More  uint64    // like events not shown: folded rows and what the rate limit left out
}

func (h *handler) eventsPage(w http.ResponseWriter, r *http.Request) {
	evs := slices.Clone(h.svc.Events())
	slices.SortStableFunc(evs, func(a, b control.Event) int { return b.Time.Compare(a.Time) })
	h.render(w, r, http.StatusOK, "events", &view{Title: "Events", Refresh: true, Data: foldEvents(evs)})
}

// foldEvents folds each run of events (newest first) that say the same
// thing about the same hosts into its newest: a flood of one kind, which
// the per-kind rate limit lets through once a second, is one row saying
// how many and since when, not a page of identical rows.
func foldEvents(evs []control.Event) []eventRow {
	var rows []eventRow
	for _, ev := range evs {
		if n := len(rows); n > 0 {
			last := &rows[n-1]
			if last.Kind == ev.Kind && last.Host == ev.Host && last.Peer == ev.Peer && last.Message == ev.Message {
				last.Since = ev.Time
				last.More += 1 + ev.Suppressed
				continue
			}
		}
		rows = append(rows, eventRow{Event: ev, More: ev.Suppressed})
	}
	return rows
}

// ---- template helpers

var funcs = template.FuncMap{
	"num":      num,
	"bytes":    humanBytes,
	"secs":     duration,
	"when":     func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"vpnLabel": vpnLabel,
	"dropText": dropLabel,
	"upper":    strings.ToUpper,
	"byLabel": func(by string) string {
		return map[string]string{"pcp": "PCP", "natpmp": "NAT-PMP", "upnp": "UPnP"}[by]
	},
	"words": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"pkts": func(n uint64) string {
		if n == 1 {
			return "1 pkt"
		}
		return num(n) + " pkts"
	},
	"portText": func(p config.PortSpec) string { return string(p) },
	"addrPort": func(ap netip.AddrPort) string {
		if !ap.IsValid() {
			return "—"
		}
		if ap.Port() == 0 {
			return ap.Addr().String()
		}
		return ap.String()
	},
	"insideText": func(pf config.PortForward) string {
		if pf.InsidePort == 0 {
			return "same as outside"
		}
		return pf.InsidePorts()
	},
	"join": func(sep string, xs []string) string { return strings.Join(xs, sep) },
	"ids": func(xs []uint16) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = strconv.Itoa(int(x))
		}
		return strings.Join(s, ", ")
	},
}

// num writes 1234567 as 1,234,567.
func num(v any) string {
	var s string
	switch n := v.(type) {
	case int:
		s = strconv.Itoa(n)
	case uint64:
		s = strconv.FormatUint(n, 10)
	case int64:
		s = strconv.FormatInt(n, 10)
	default:
		return fmt.Sprint(v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// duration writes seconds the way people read an uptime: 3d 4h 5m.
func duration(sec float64) string {
	if sec < 0 {
		sec = 0
	}
	s := int64(sec)
	d, s := s/86400, s%86400
	hh, s := s/3600, s%3600
	m, s := s/60, s%60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd %dh %dm", d, hh, m)
	case hh > 0:
		return fmt.Sprintf("%dh %dm", hh, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

func vpnLabel(name string) string {
	if a, ok := alg.ByName(name); ok {
		return a.Label
	}
	return strings.ToUpper(name)
}

// dropText explains the engine's drop reasons in a few words.
var dropText = map[string]string{
	"malformed":               "Malformed packet",
	"not_ipv4":                "Not IPv4",
	"ttl_exceeded":            "TTL exceeded",
	"unsolicited_inbound":     "Unsolicited inbound (no mapping, forward or DMZ)",
	"filtered":                "Filtered (endpoint-dependent filtering)",
	"table_full":              "Flow table full",
	"host_limit":              "Per-host flow limit reached",
	"ports_exhausted":         "No free outside port",
	"frag_needed":             "Too big, fragmentation needed",
	"fragment_limit":          "Fragment limit",
	"unsupported_protocol":    "Unsupported protocol",
	"martian":                 "Martian address",
	"icmp_error_no_flow":      "ICMP error for no known flow",
	"tcp_invalid":             "Invalid TCP segment",
	"to_router":               "Addressed to the router",
	"no_route":                "No route",
	"emit_full":               "Transmit queue full",
	"ah_cannot_cross_nat":     "IPsec AH cannot cross NAT",
	"ipsec_passthrough_off":   "IPsec passthrough is off",
	"pptp_passthrough_off":    "PPTP passthrough is off",
	"l2tp_passthrough_off":    "L2TP passthrough is off",
	"gre_without_control":     "GRE without a PPTP control connection",
	"esp_unknown_spi":         "ESP with an unknown SPI",
	"ike_unknown_spi":         "IKE with an unknown SPI",
	"l2tp_unknown_tunnel":     "L2TP for an unknown tunnel",
	"pptp_out_of_order":       "PPTP message out of order",
	"pptp_control_limit":      "Too many PPTP control connections",
	"pptp_control_host_share": "A LAN host's share of PPTP control connections used up",
	"helper_table_full":       "Passthrough helper table full",
}

func dropLabel(name string) string {
	if s, ok := dropText[name]; ok {
		return s
	}
	s := strings.ReplaceAll(name, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// vpnFirst sorts VPN passthrough flows before the rest.
func vpnFirst(f control.Flow) int {
	if f.VPN != "" {
		return 0
	}
	return 1
}
