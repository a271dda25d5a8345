package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"passgate/config"
	"passgate/control"
)

// APIPrefix is where the REST API lives.
const APIPrefix = "/api/v1/"

// maxBody bounds a request body.
const maxBody = 1 << 20

// ErrorItem is one problem in an error response: the field it concerns
// (a configuration field such as "port_forwards[0].outside_port", a body
// or query field, or empty) and what is wrong.
type ErrorItem struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// ErrorResponse is every error the API returns: {"errors":[...]}.
type ErrorResponse struct {
	Errors []ErrorItem `json:"errors"`
}

// ChangesResponse answers a change: what changed, one line each (empty
// when nothing did).
type ChangesResponse struct {
	Changes Changes `json:"changes"`
}

// SessionInfo answers GET /api/v1/session.
type SessionInfo struct {
	SetupNeeded   bool   `json:"setup_needed"`
	Authenticated bool   `json:"authenticated"`
	Via           string `json:"via,omitempty"`        // "session", "token" or "local" (the control socket)
	CSRFToken     string `json:"csrf_token,omitempty"` // send it as X-CSRF-Token with changes
	Scope         string `json:"scope,omitempty"`      // with a token: "admin" or "read"
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Password string `json:"password"`
}

// SetupRequest is the body of POST /api/v1/setup: the first password and
// the setup code passgate printed in its log and shows on `passgate
// status` (not needed on the control socket).
type SetupRequest struct {
	Password  string `json:"password"`
	SetupCode string `json:"setup_code"`
}

// LoginResponse answers a login or the first setup.
type LoginResponse struct {
	CSRFToken string `json:"csrf_token"`
}

// PasswordRequest is the body of PUT /api/v1/password.
type PasswordRequest struct {
	OldPassword string `json:"old_password"` // ignored on the control socket (root)
	Password    string `json:"password"`
}

// PassthroughRequest is the body of PUT /api/v1/passthrough/{name}.
type PassthroughRequest struct {
	Enabled *bool `json:"enabled"`
}

// PassthroughResponse answers PUT /api/v1/passthrough/{name}.
type PassthroughResponse struct {
	Changes     Changes     `json:"changes"`
	Passthrough Passthrough `json:"passthrough"`
}

// ForwardResponse answers POST and PUT of a port forward.
type ForwardResponse struct {
	Changes Changes            `json:"changes"`
	Forward config.PortForward `json:"forward"`
}

// DMZBody is GET /api/v1/dmz's answer and PUT's body: "" is off.
type DMZBody struct {
	Host *string `json:"host"`
}

// DMZResponse answers PUT /api/v1/dmz.
type DMZResponse struct {
	Changes Changes `json:"changes"`
	Host    string  `json:"host"`
}

// TokenRequest is the body of POST /api/v1/tokens: what the token is for,
// how many days it lives (0: 90) and what it may do: "admin" (the
// default) or "read".
type TokenRequest struct {
	Name        string `json:"name"`
	ExpiresDays int    `json:"expires_days,omitzero"`
	Scope       string `json:"scope,omitempty"`
}

// TokenResponse answers POST /api/v1/tokens; the token is shown only here.
type TokenResponse struct {
	Token string `json:"token"`
	TokenInfo
}

type api struct {
	svc     *Service
	auth    *Auth
	trusted bool // the control socket: root, no login
	log     *slog.Logger
	routes  []string // the authenticated routes, as RouteKey makes them (for TestRouteScopes)
}

// NewAPI is the REST API for the admin HTTP server: every call but
// session, setup and login needs a session (and, to change anything, its
// CSRF token) or an API token.
func NewAPI(svc *Service, auth *Auth) http.Handler {
	return (&api{svc: svc, auth: auth, log: svc.log}).handler()
}

// NewLocalAPI is the same API for the control socket, which only root can
// open: no login, no CSRF; PUT /api/v1/password sets the password without
// the old one (passgate passwd).
func NewLocalAPI(svc *Service, auth *Auth) http.Handler {
	return (&api{svc: svc, auth: auth, trusted: true, log: svc.log}).handler()
}

type methods map[string]http.HandlerFunc

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	open := func(path string, m methods) { mux.Handle(path, dispatch(m)) }
	authed := func(path string, m methods) {
		var h http.Handler = dispatch(m)
		for method := range m {
			a.routes = append(a.routes, RouteKey(method, path))
		}
		if !a.trusted {
			h = a.auth.Require(h)
		}
		mux.Handle(path, h)
	}
	p := strings.TrimSuffix(APIPrefix, "/")
	open(p+"/session", methods{"GET": a.session})
	open(p+"/setup", methods{"POST": a.setup})
	open(p+"/login", methods{"POST": a.login})
	authed(p+"/logout", methods{"POST": a.logout})
	authed(p+"/password", methods{"PUT": a.password})
	authed(p+"/status", methods{"GET": a.status})
	authed(p+"/flows", methods{"GET": a.flows})
	authed(p+"/events", methods{"GET": a.events})
	authed(p+"/config", methods{"GET": a.getConfig, "PUT": a.putConfig})
	authed(p+"/passthrough", methods{"GET": a.listPassthrough})
	authed(p+"/passthrough/{name}", methods{"GET": a.getPassthrough, "PUT": a.putPassthrough})
	authed(p+"/forwards", methods{"GET": a.listForwards, "POST": a.addForward})
	authed(p+"/forwards/{name}", methods{"GET": a.getForward, "PUT": a.putForward, "DELETE": a.deleteForward})
	authed(p+"/dmz", methods{"GET": a.getDMZ, "PUT": a.putDMZ})
	authed(p+"/mappings", methods{"GET": a.listMappings})
	authed(p+"/mappings/{proto}/{port}", methods{"DELETE": a.deleteMapping})
	authed(p+"/tokens", methods{"GET": a.listTokens, "POST": a.createToken})
	authed(p+"/tokens/{id}", methods{"DELETE": a.revokeToken})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErrors(w, http.StatusNotFound, apiErrors("", "no such endpoint: "+r.Method+" "+r.URL.Path))
	})
	return mux
}

// dispatch picks the handler by method; HEAD is GET without the body.
func dispatch(m methods) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
			w = headWriter{w}
		}
		if h, ok := m[method]; ok {
			h(w, r)
			return
		}
		var allow []string
		for k := range m {
			allow = append(allow, k)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeErrors(w, http.StatusMethodNotAllowed, apiErrors("", fmt.Sprintf("method %s not allowed here (allowed: %s)", r.Method, strings.Join(allow, ", "))))
	})
}

// headWriter drops the body of a HEAD answer.
type headWriter struct{ http.ResponseWriter }

func (headWriter) Write(p []byte) (int, error) { return len(p), nil }

func apiErrors(field, msg string) ErrorResponse {
	return ErrorResponse{Errors: []ErrorItem{{Field: field, Message: msg}}}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "on -> off", not "on -\u003e off"; the answer is JSON, never HTML
	_ = enc.Encode(v)
}

func writeErrors(w http.ResponseWriter, code int, e ErrorResponse) {
	writeJSON(w, code, e)
}

// writeError answers err with the status it calls for: field errors 400,
// ErrNotFound 404, ErrNotAvailable and password conflicts 409, rate limits
// 429, anything else 500.
func (a *api) writeError(w http.ResponseWriter, err error) {
	if es := config.AsErrors(err); len(es) > 0 {
		out := ErrorResponse{}
		for _, e := range es {
			out.Errors = append(out.Errors, ErrorItem{Field: e.Field, Message: e.Msg})
		}
		writeErrors(w, http.StatusBadRequest, out)
		return
	}
	var rl *RateLimitError
	var pe *PasswordError
	switch {
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(int(rl.RetryAfter.Seconds()+0.999)))
		writeErrors(w, http.StatusTooManyRequests, apiErrors("", err.Error()))
	case errors.As(err, &pe):
		writeErrors(w, http.StatusBadRequest, apiErrors("password", err.Error()))
	case errors.Is(err, ErrWrongPassword):
		writeErrors(w, http.StatusUnauthorized, apiErrors("password", err.Error()))
	case errors.Is(err, ErrNotFound):
		writeErrors(w, http.StatusNotFound, apiErrors("", err.Error()))
	case errors.Is(err, ErrSetupCode):
		writeErrors(w, http.StatusForbidden, apiErrors("setup_code", err.Error()))
	case errors.Is(err, ErrNotAvailable), errors.Is(err, ErrPasswordSet), errors.Is(err, ErrSetupNeeded), errors.Is(err, ErrTooManyTokens):
		writeErrors(w, http.StatusConflict, apiErrors("", err.Error()))
	default:
		a.log.Error("admin API", "err", err)
		writeErrors(w, http.StatusInternalServerError, apiErrors("", err.Error()))
	}
}

// decodeBody reads a JSON body strictly into v: the Content-Type must be
// application/json (so a page elsewhere cannot post it without a CORS
// preflight), unknown fields and wrong types are errors naming the field,
// prefixed by prefix. It answers the error itself and returns false.
func (a *api) decodeBody(w http.ResponseWriter, r *http.Request, v any, prefix string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeErrors(w, http.StatusUnsupportedMediaType, apiErrors("", "the body must be JSON, sent with Content-Type: application/json"))
		return false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeErrors(w, http.StatusRequestEntityTooLarge, apiErrors("", fmt.Sprintf("body too large or unreadable (at most %d bytes): %v", maxBody, err)))
		return false
	}
	if err := config.Decode(data, v, prefix); err != nil {
		a.writeError(w, err)
		return false
	}
	return true
}

// noQuery refuses query parameters a call does not take.
func noQuery(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for k := range r.URL.Query() {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			writeErrors(w, http.StatusBadRequest, apiErrors(k, "unknown query parameter"))
			return false
		}
	}
	return true
}

func (a *api) session(w http.ResponseWriter, r *http.Request) {
	info := SessionInfo{SetupNeeded: a.auth.SetupNeeded()}
	if a.trusted {
		info.Authenticated, info.Via = true, "local"
	} else if id, ok := a.auth.identify(r); ok {
		info.Authenticated = true
		info.Via, info.CSRFToken, info.Scope = "token", "", id.Scope
		if id.Session {
			info.Via, info.CSRFToken, info.Scope = "session", id.CSRF, ""
		}
	}
	writeJSON(w, http.StatusOK, info)
}

func (a *api) setup(w http.ResponseWriter, r *http.Request) {
	var req SetupRequest
	if !a.decodeBody(w, r, &req, "") {
		return
	}
	if !a.auth.SetupNeeded() {
		a.writeError(w, ErrPasswordSet)
		return
	}
	if a.trusted {
		if err := a.auth.ResetPassword(req.Password); err != nil {
			a.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, LoginResponse{})
		return
	}
	if err := a.auth.Setup(r, req.SetupCode, req.Password); err != nil {
		a.writeError(w, err)
		return
	}
	a.loginAndAnswer(w, r, req.Password, http.StatusCreated)
}

func (a *api) login(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	if !a.decodeBody(w, r, &req, "") {
		return
	}
	a.loginAndAnswer(w, r, req.Password, http.StatusOK)
}

// loginAndAnswer logs in and answers with the new session's CSRF token.
func (a *api) loginAndAnswer(w http.ResponseWriter, r *http.Request, password string, code int) {
	csrf, err := a.auth.login(w, r, password)
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, code, LoginResponse{CSRFToken: csrf})
}

func (a *api) logout(w http.ResponseWriter, r *http.Request) {
	a.auth.Logout(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) password(w http.ResponseWriter, r *http.Request) {
	var req PasswordRequest
	if !a.decodeBody(w, r, &req, "") {
		return
	}
	var err error
	if a.trusted {
		err = a.auth.ResetPassword(req.Password)
	} else {
		err = a.auth.SetPassword(r, req.OldPassword, req.Password)
		if errors.Is(err, ErrWrongPassword) {
			writeErrors(w, http.StatusBadRequest, apiErrors("old_password", "wrong password"))
			return
		}
	}
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ChangesResponse{Changes: Changes{"admin password changed; every session ended and every API token revoked"}})
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		writeJSON(w, http.StatusOK, a.svc.Status())
	}
}

func (a *api) flows(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r, "host", "proto") {
		return
	}
	ff, bad := control.ParseFlowFilter(r.URL.Query())
	if bad != nil {
		writeErrors(w, http.StatusBadRequest, apiErrors(bad.Field, bad.Message))
		return
	}
	writeJSON(w, http.StatusOK, a.svc.Flows(ff))
}

func (a *api) events(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		writeJSON(w, http.StatusOK, a.svc.Events())
	}
}

func (a *api) getConfig(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		writeJSON(w, http.StatusOK, a.svc.Config())
	}
}

func (a *api) putConfig(w http.ResponseWriter, r *http.Request) {
	var c config.Config
	if !a.decodeBody(w, r, &c, "") {
		return
	}
	ch, err := a.svc.Apply(c)
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ChangesResponse{Changes: ch})
}

func (a *api) listPassthrough(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		writeJSON(w, http.StatusOK, a.svc.Passthroughs())
	}
}

func (a *api) findPassthrough(w http.ResponseWriter, name string) (Passthrough, bool) {
	for _, p := range a.svc.Passthroughs() {
		if p.Name == name {
			return p, true
		}
	}
	writeErrors(w, http.StatusNotFound, apiErrors("name", fmt.Sprintf("no passthrough %q (want one of %s)", name, strings.Join(passthroughNames(), ", "))))
	return Passthrough{}, false
}

func (a *api) getPassthrough(w http.ResponseWriter, r *http.Request) {
	if p, ok := a.findPassthrough(w, r.PathValue("name")); ok {
		writeJSON(w, http.StatusOK, p)
	}
}

func (a *api) putPassthrough(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := a.findPassthrough(w, name); !ok {
		return
	}
	var req PassthroughRequest
	if !a.decodeBody(w, r, &req, "") {
		return
	}
	if req.Enabled == nil {
		writeErrors(w, http.StatusBadRequest, apiErrors("enabled", "required: true or false"))
		return
	}
	ch, err := a.svc.SetPassthrough(name, *req.Enabled)
	if err != nil {
		a.writeError(w, err)
		return
	}
	p, _ := a.findPassthrough(w, name)
	writeJSON(w, http.StatusOK, PassthroughResponse{Changes: ch, Passthrough: p})
}

func (a *api) listForwards(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		writeJSON(w, http.StatusOK, a.svc.Forwards())
	}
}

func (a *api) getForward(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	for _, pf := range a.svc.Forwards() {
		if pf.Name == name {
			writeJSON(w, http.StatusOK, pf)
			return
		}
	}
	a.writeError(w, fmt.Errorf("port forward %q: %w", name, ErrNotFound))
}

func (a *api) addForward(w http.ResponseWriter, r *http.Request) {
	var pf config.PortForward
	if !a.decodeBody(w, r, &pf, fmt.Sprintf("port_forwards[%d]", len(a.svc.Forwards()))) {
		return
	}
	ch, err := a.svc.AddForward(pf)
	if err != nil {
		a.writeError(w, err)
		return
	}
	w.Header().Set("Location", APIPrefix+"forwards/"+url.PathEscape(pf.Name))
	writeJSON(w, http.StatusCreated, ForwardResponse{Changes: ch, Forward: pf})
}

func (a *api) putForward(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	i := a.svc.ForwardIndex(name)
	if i < 0 {
		a.writeError(w, fmt.Errorf("port forward %q: %w", name, ErrNotFound))
		return
	}
	var pf config.PortForward
	if !a.decodeBody(w, r, &pf, fmt.Sprintf("port_forwards[%d]", i)) {
		return
	}
	ch, err := a.svc.UpdateForward(name, pf)
	if err != nil {
		a.writeError(w, err)
		return
	}
	if pf.Name == "" {
		pf.Name = name
	}
	writeJSON(w, http.StatusOK, ForwardResponse{Changes: ch, Forward: pf})
}

func (a *api) deleteForward(w http.ResponseWriter, r *http.Request) {
	ch, err := a.svc.DeleteForward(r.PathValue("name"))
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ChangesResponse{Changes: ch})
}

func (a *api) getDMZ(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		h := a.svc.DMZ()
		writeJSON(w, http.StatusOK, DMZBody{Host: &h})
	}
}

func (a *api) putDMZ(w http.ResponseWriter, r *http.Request) {
	var req DMZBody
	if !a.decodeBody(w, r, &req, "") {
		return
	}
	if req.Host == nil {
		writeErrors(w, http.StatusBadRequest, apiErrors("host", `required: a LAN host address, or "" for off`))
		return
	}
	ch, err := a.svc.SetDMZ(*req.Host)
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, DMZResponse{Changes: ch, Host: a.svc.DMZ()})
}

func (a *api) listTokens(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		writeJSON(w, http.StatusOK, a.auth.Tokens())
	}
}

func (a *api) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if !a.decodeBody(w, r, &req, "") {
		return
	}
	if req.ExpiresDays < 0 {
		writeErrors(w, http.StatusBadRequest, apiErrors("expires_days", "a token lives 1 or more days (0: 90)"))
		return
	}
	tok, info, err := a.auth.CreateToken(req.Name, time.Duration(req.ExpiresDays)*24*time.Hour, req.Scope)
	if err != nil {
		a.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, TokenResponse{Token: tok, TokenInfo: info})
}

func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := a.auth.RevokeToken(r.PathValue("id")); err != nil {
		a.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listMappings answers GET /api/v1/mappings: the port mappings LAN
// applications made (PCP, NAT-PMP, UPnP) and which protocols are on.
func (a *api) listMappings(w http.ResponseWriter, r *http.Request) {
	if noQuery(w, r) {
		writeJSON(w, http.StatusOK, control.MappingsOf(a.svc.backend))
	}
}

// deleteMapping answers DELETE /api/v1/mappings/{proto}/{port}.
func (a *api) deleteMapping(w http.ResponseWriter, r *http.Request) {
	code, err := control.DeleteMappingOf(a.svc.backend, r.PathValue("proto"), r.PathValue("port"))
	if err != nil {
		writeErrors(w, code, apiErrors("", err.Error()))
		return
	}
	a.log.Info("port mapping deleted", "proto", r.PathValue("proto"), "port", r.PathValue("port"))
	writeJSON(w, http.StatusOK, control.MappingsOf(a.svc.backend))
}
