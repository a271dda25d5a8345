package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/google/renameio/v2"
	"golang.org/x/crypto/bcrypt"

	"passgate/config"
)

// Authentication settings.
const (
	// SessionCookie is the name of the session cookie.
	SessionCookie = "passgate_session"
	// CSRFHeader carries the session's CSRF token on API calls that change
	// something; forms send it as the field CSRFField.
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf_token"
	// SessionIdle ends a session not used for this long; SessionMaxAge
	// ends any session this long after its login, however busy (a status
	// page left open refreshes itself).
	SessionIdle   = 12 * time.Hour
	SessionMaxAge = 24 * time.Hour
	// MinPasswordLen is the shortest password accepted, in characters;
	// MaxPasswordBytes the longest (bcrypt reads 72 bytes).
	MinPasswordLen   = 8
	MaxPasswordBytes = 72
	// FreeLoginFailures is how many failed logins a client address has
	// before each further failure makes it wait: 1 s, 2 s, 4 s, ... up to
	// MaxLoginBackoff.
	FreeLoginFailures = 5
	MaxLoginBackoff   = 15 * time.Minute
	// TokenPrefix starts every API token.
	TokenPrefix = "pgt_"
	// DefaultTokenTTL is how long an API token lives unless made with
	// another lifetime; MaxTokenTTL the longest one; MaxTokens how many may
	// exist at once.
	DefaultTokenTTL = 90 * 24 * time.Hour
	MaxTokenTTL     = 10 * 365 * 24 * time.Hour
	MaxTokens       = 32
	// Wrong setup codes are counted per client address as failed logins
	// are (FreeLoginFailures, then a doubling wait): the code itself never
	// changes, so a LAN host sending wrong codes cannot make the one the
	// owner read on the router stale. 59 bits leave nothing to guess.

	maxSessions = 256
	maxClients  = 4096
)

// Errors of Login and SetPassword.
var (
	ErrWrongPassword = errors.New("wrong password")
	ErrSetupNeeded   = errors.New("no password is set yet: set one first (the setup page, POST /api/v1/setup or passgate passwd)")
	ErrPasswordSet   = errors.New("a password is set already: log in and change it, or use passgate passwd as root")
	ErrSetupCode     = errors.New("wrong or missing setup code: the code is in passgate's log and in the output of passgate status (run as root on the router), or set the password with passgate passwd")
	ErrTooManyTokens = fmt.Errorf("too many API tokens (at most %d): revoke one first", MaxTokens)
)

// RateLimitError refuses a login from a client address that failed too
// often; RetryAfter says when it may try again.
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many failed logins from this address: try again in %s", e.RetryAfter.Round(time.Second).String())
}

// PasswordError says why a new password is refused.
type PasswordError struct{ Msg string }

func (e *PasswordError) Error() string { return e.Msg }

// Auth authenticates people (a password, then a session cookie with a CSRF
// token) and scripts (API tokens). The password's bcrypt hash and the API
// tokens' SHA-256 hashes live in a state file next to the configuration,
// mode 0600; sessions live in memory only, so a restart logs everyone out.
// There is no default password: until one is set, SetupNeeded is true and
// nothing but setting it is allowed.
//
// The first password can be set only with the setup code, a one-time code
// made in memory at start while no password is set, printed in the log and
// by `passgate status` (root on the router): proof of local access, so a
// host on the LAN cannot take a new gateway before its owner. `passgate
// passwd` needs no code.
//
// Changing or resetting the password ends every session and revokes every
// API token. Tokens expire (DefaultTokenTTL) and at most MaxTokens exist.
type Auth struct {
	path string
	log  *slog.Logger
	now  func() time.Time
	cost int // bcrypt cost

	mu       sync.Mutex
	state    authState
	stamp    fileStamp
	sessions map[[32]byte]*session // by SHA-256 of the cookie value
	clients  map[string]*attempts  // login and setup code failures by client address

	setupCode string // while no password is set; "" once one is
}

type authState struct {
	PasswordHash string       `json:"password_hash,omitempty"`
	PasswordSet  time.Time    `json:"password_set,omitzero"`
	Tokens       []tokenEntry `json:"tokens,omitempty"`
}

type tokenEntry struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Hash    string    `json:"sha256"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"` // zero: a token from before expiry existed, Created+DefaultTokenTTL
	Scope   string    `json:"scope,omitempty"`  // "" (a token from before scopes existed): ScopeAdmin
}

// scope is what the token may do.
func (e tokenEntry) scope() string {
	if e.Scope == "" {
		return ScopeAdmin
	}
	return e.Scope
}

// expires is when the token stops working.
func (e tokenEntry) expires() time.Time {
	if e.Expires.IsZero() {
		return e.Created.Add(DefaultTokenTTL)
	}
	return e.Expires
}

// TokenInfo describes an API token (never the token itself).
type TokenInfo struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Expired bool      `json:"expired,omitempty"`
	Scope   string    `json:"scope"` // ScopeAdmin or ScopeRead
}

type session struct {
	csrf     string
	lastSeen time.Time
	created  time.Time
}

type attempts struct {
	failures int
	last     time.Time // last failure
	until    time.Time // refused before this
	inFlight bool
}

type fileStamp struct {
	ok    bool
	mtime time.Time
	size  int64
	ino   uint64
}

// NewAuth opens the state file at path; a missing file means no password
// yet (first run). The file is created on the first change.
func NewAuth(path string) (*Auth, error) {
	a := &Auth{
		path: path, log: slog.Default(), now: time.Now, cost: bcrypt.DefaultCost,
		sessions: map[[32]byte]*session{}, clients: map[string]*attempts{},
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(); err != nil {
		return nil, err
	}
	a.newSetupCode()
	return a, nil
}

// setupAlphabet has no letters that read alike (0/O, 1/I/L).
const setupAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// newSetupCode makes a setup code if no password is set (12 characters
// of 31: 59 bits), and forgets it if one is; a.mu is held.
func (a *Auth) newSetupCode() {
	if a.state.PasswordHash != "" {
		a.setupCode = ""
		return
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(setupAlphabet[int(c)%len(setupAlphabet)])
	}
	a.setupCode = sb.String()
}

// SetupCode is the one-time code the first setup needs, "" once a
// password is set. Only root sees it: in the log and on the control
// socket (passgate status).
func (a *Auth) SetupCode() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	if a.state.PasswordHash != "" {
		return ""
	}
	if a.setupCode == "" {
		a.newSetupCode()
	}
	return a.setupCode
}

// normCode reads a setup code as people type it: any case, with or
// without dashes and spaces.
func normCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// Setup sets the first password for the client of r (nil: the router
// itself); code must be the setup code (SetupCode). A wrong code is
// ErrSetupCode; wrong codes count against the client's address as failed
// logins do (*RateLimitError). A password already set is ErrPasswordSet.
func (a *Auth) Setup(r *http.Request, code, pw string) error {
	key := clientKey(r)
	a.mu.Lock()
	a.refresh()
	if a.state.PasswordHash != "" {
		a.mu.Unlock()
		return ErrPasswordSet
	}
	now := a.now()
	c, err := a.attempt(key, now)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	if a.setupCode == "" {
		a.newSetupCode()
	}
	want, got := normCode(a.setupCode), normCode(code)
	if subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		a.failed(c, now)
		a.log.Warn("admin setup refused: wrong setup code", "client", key, "failures", c.failures)
		a.mu.Unlock()
		return ErrSetupCode
	}
	delete(a.clients, key)
	a.mu.Unlock()
	if err := CheckPassword(pw); err != nil {
		return err
	}
	return a.setHash("", pw, true)
}

// SetLogger sets where Auth logs logins, failures and password changes.
func (a *Auth) SetLogger(l *slog.Logger) {
	if l != nil {
		a.log = l
	}
}

// Path is the state file.
func (a *Auth) Path() string { return a.path }

// reload reads the state file if it changed since it was last read (a
// `passgate passwd` that wrote it directly); a.mu is held.
func (a *Auth) reload() error {
	fi, err := os.Stat(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		if a.state.PasswordHash != "" {
			clear(a.sessions) // root removed it to reset the password
		}
		a.state, a.stamp = authState{}, fileStamp{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth state: %w", err)
	}
	st := fileStamp{ok: true, mtime: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	if st == a.stamp {
		return nil
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("auth state: %w", err)
	}
	var s authState
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("auth state %s: broken (%v); remove it and set the password again with passgate passwd", a.path, err)
	}
	if s.PasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(s.PasswordHash)); err != nil {
			return fmt.Errorf("auth state %s: password_hash is not a bcrypt hash: %w", a.path, err)
		}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(a.path, 0o600); err == nil {
			a.log.Warn("auth state file was readable by others; made it 0600", "file", a.path)
		}
	}
	if s.PasswordHash != a.state.PasswordHash {
		clear(a.sessions) // `passgate passwd` wrote the file: as a change here
	}
	a.state, a.stamp = s, st
	return nil
}

// refresh is reload for callers that cannot return its error: a state file
// broken while running keeps what was read before, and says so.
func (a *Auth) refresh() {
	if err := a.reload(); err != nil {
		a.log.Error("auth state unreadable; keeping the one read before", "err", err)
	}
}

// save writes the state file atomically, mode 0600; a.mu is held.
func (a *Auth) save() error {
	data, err := json.MarshalIndent(a.state, "", "  ")
	if err != nil {
		return fmt.Errorf("auth state: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(a.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth state: %w", err)
	}
	pf, err := renameio.NewPendingFile(a.path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(0o600))
	if err != nil {
		return fmt.Errorf("auth state: %w", err)
	}
	defer pf.Cleanup()
	if _, err := pf.Write(data); err != nil {
		return fmt.Errorf("auth state: %w", err)
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("auth state: %w", err)
	}
	if err := config.SyncDir(dir); err != nil {
		// The new file is in place but may not survive a power cut: say
		// so rather than claim it saved.
		a.stamp = fileStamp{}
		if rerr := a.reload(); rerr != nil {
			a.log.Error("auth state", "err", rerr)
		}
		return fmt.Errorf("auth state: %w", err)
	}
	a.stamp = fileStamp{} // read it back next time: take its new stamp
	return a.reload()
}

// SetupNeeded reports whether no password is set yet (first run).
func (a *Auth) SetupNeeded() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	return a.state.PasswordHash == ""
}

// CheckPassword says what is wrong with a new password (nil if nothing).
func CheckPassword(pw string) error {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLen:
		return &PasswordError{fmt.Sprintf("the password must be at least %d characters long", MinPasswordLen)}
	case len(pw) > MaxPasswordBytes:
		return &PasswordError{fmt.Sprintf("the password must be at most %d bytes long", MaxPasswordBytes)}
	case !utf8.ValidString(pw):
		return &PasswordError{"the password is not valid UTF-8"}
	}
	return nil
}

// SetPassword changes the password for the client of r: old must be the
// current one, and wrong ones count against the client's address as failed
// logins do (*RateLimitError), so a stolen session or token cannot guess
// it. Every session ends and every API token is revoked. The first
// password is set with Setup (or ResetPassword, root): without one,
// SetPassword is ErrSetupNeeded. The new one needs at least MinPasswordLen
// characters.
func (a *Auth) SetPassword(r *http.Request, old, new string) error {
	if err := CheckPassword(new); err != nil {
		return err
	}
	key := clientKey(r)
	a.mu.Lock()
	a.refresh()
	cur := a.state.PasswordHash
	if cur == "" {
		a.mu.Unlock()
		return ErrSetupNeeded
	}
	c, err := a.attempt(key, a.now())
	if err != nil {
		a.mu.Unlock()
		return err
	}
	c.inFlight = true
	a.mu.Unlock()
	wrong := bcrypt.CompareHashAndPassword([]byte(cur), []byte(old)) != nil
	a.mu.Lock()
	c.inFlight = false
	if wrong {
		a.failed(c, a.now())
		a.log.Warn("admin password change refused: wrong current password", "client", key, "failures", c.failures)
		a.mu.Unlock()
		return fmt.Errorf("current password: %w", ErrWrongPassword)
	}
	delete(a.clients, key)
	a.mu.Unlock()
	return a.setHash(cur, new, false)
}

// ResetPassword sets the password without the old one: for root, through
// the control socket or `passgate passwd` writing the state file. Every
// session ends and every API token is revoked.
func (a *Auth) ResetPassword(new string) error {
	if err := CheckPassword(new); err != nil {
		return err
	}
	a.mu.Lock()
	a.refresh()
	cur := a.state.PasswordHash
	a.mu.Unlock()
	return a.setHash(cur, new, false)
}

// setHash hashes pw (outside the lock: bcrypt is slow on purpose) and
// stores it if the hash is still expect.
func (a *Auth) setHash(expect, pw string, first bool) error {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), a.cost)
	if err != nil {
		return fmt.Errorf("hashing the password: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	if a.state.PasswordHash != expect {
		if first {
			return ErrPasswordSet
		}
		return errors.New("the password changed meanwhile; try again")
	}
	prev := a.state
	revoked := len(a.state.Tokens)
	a.state.PasswordHash = string(h)
	a.state.PasswordSet = a.now().UTC().Truncate(time.Second)
	a.state.Tokens = nil
	if err := a.save(); err != nil {
		a.state = prev
		return err
	}
	clear(a.sessions)
	a.setupCode = ""
	if first {
		a.log.Info("admin password set (first run)")
	} else {
		a.log.Info("admin password changed; every session ended and every API token revoked", "tokens_revoked", revoked)
	}
	return nil
}

// clientKey is what the login rate limit counts by: the client's IP.
func clientKey(r *http.Request) string {
	if r == nil {
		return "local"
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || host == "" {
		return "local"
	}
	return host
}

// Login checks password and, if right, starts a session: it sets the
// session cookie (HttpOnly, SameSite=Strict, Secure, Path=/): the admin
// server speaks only TLS.
// Failures are counted per client address: after FreeLoginFailures each
// one doubles the wait before the next attempt (*RateLimitError), and one
// attempt at a time is checked per address.
func (a *Auth) Login(w http.ResponseWriter, r *http.Request, password string) error {
	_, err := a.login(w, r, password)
	return err
}

// login is Login; it returns the new session's CSRF token.
func (a *Auth) login(w http.ResponseWriter, r *http.Request, password string) (string, error) {
	key := clientKey(r)
	a.mu.Lock()
	a.refresh()
	now := a.now()
	hash := a.state.PasswordHash
	if hash == "" {
		a.mu.Unlock()
		return "", ErrSetupNeeded
	}
	c, err := a.attempt(key, now)
	if err != nil {
		a.mu.Unlock()
		return "", err
	}
	c.inFlight = true
	a.mu.Unlock()

	err = bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))

	a.mu.Lock()
	defer a.mu.Unlock()
	c.inFlight = false
	now = a.now()
	if err != nil {
		a.failed(c, now)
		a.log.Warn("admin login failed", "client", key, "failures", c.failures)
		return "", ErrWrongPassword
	}
	delete(a.clients, key)
	id, csrf := randomToken(), randomToken()
	a.pruneSessions(now)
	a.sessions[sha256.Sum256([]byte(id))] = &session{csrf: csrf, lastSeen: now, created: now}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: true,
	})
	a.log.Info("admin login", "client", key)
	return csrf, nil
}

// attempt is the client's failure record, or a *RateLimitError if it
// must wait (or has an attempt in flight); a.mu is held.
func (a *Auth) attempt(key string, now time.Time) (*attempts, error) {
	c := a.clients[key]
	if c != nil && now.Before(c.until) {
		return nil, &RateLimitError{RetryAfter: c.until.Sub(now)}
	}
	if c != nil && c.inFlight {
		return nil, &RateLimitError{RetryAfter: time.Second}
	}
	if c == nil {
		a.pruneClients(now)
		c = &attempts{}
		a.clients[key] = c
	}
	return c, nil
}

// failed counts a failure: past FreeLoginFailures each one doubles the
// wait before the next attempt; a.mu is held.
func (a *Auth) failed(c *attempts, now time.Time) {
	if now.Sub(c.last) > time.Hour {
		c.failures = 0
	}
	c.failures++
	c.last = now
	if n := c.failures - FreeLoginFailures; n >= 0 {
		wait := MaxLoginBackoff
		if n < 20 {
			wait = min(time.Second<<n, MaxLoginBackoff)
		}
		c.until = now.Add(wait)
	}
}

// pruneClients forgets addresses whose failures are old; a.mu is held.
func (a *Auth) pruneClients(now time.Time) {
	if len(a.clients) < maxClients {
		return
	}
	for k, c := range a.clients {
		if !c.inFlight && now.After(c.until) && now.Sub(c.last) > time.Hour {
			delete(a.clients, k)
		}
	}
	for k, c := range a.clients { // still full: forget the unblocked ones
		if len(a.clients) < maxClients {
			break
		}
		if !c.inFlight && now.After(c.until) {
			delete(a.clients, k)
		}
	}
}

// pruneSessions drops idle sessions, and the least recently used ones
// beyond maxSessions; a.mu is held.
func (a *Auth) pruneSessions(now time.Time) {
	for k, s := range a.sessions {
		if now.Sub(s.lastSeen) > SessionIdle || now.Sub(s.created) > SessionMaxAge {
			delete(a.sessions, k)
		}
	}
	for len(a.sessions) >= maxSessions {
		var oldest [32]byte
		var t time.Time
		for k, s := range a.sessions {
			if t.IsZero() || s.lastSeen.Before(t) {
				oldest, t = k, s.lastSeen
			}
		}
		delete(a.sessions, oldest)
	}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Logout ends the request's session, if any, and clears the cookie.
func (a *Auth) Logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, sha256.Sum256([]byte(c.Value)))
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: true,
	})
}

// Identity is who a request is: a session (with its CSRF token) or an API
// token.
type Identity struct {
	Session bool
	CSRF    string // the session's CSRF token
	Token   string // the API token's id
	Scope   string // the API token's scope
}

type ctxKey struct{}

// identify finds the request's session or API token.
func (a *Auth) identify(r *http.Request) (Identity, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return Identity{}, false
		}
		id, scope, ok := a.checkToken(strings.TrimSpace(tok))
		return Identity{Token: id, Scope: scope}, ok
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Identity{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh() // a password reset by passgate passwd ends the session now
	k := sha256.Sum256([]byte(c.Value))
	s := a.sessions[k]
	now := a.now()
	if s == nil {
		return Identity{}, false
	}
	if now.Sub(s.lastSeen) > SessionIdle || now.Sub(s.created) > SessionMaxAge {
		delete(a.sessions, k)
		return Identity{}, false
	}
	s.lastSeen = now
	return Identity{Session: true, CSRF: s.csrf}, true
}

// Require lets authenticated requests through to h: a session cookie, or
// an API token as "Authorization: Bearer TOKEN". Others get 401 with a JSON
// error under /api/, and a redirect to /login elsewhere. A token of scope
// ScopeRead gets 403 on every route RouteScopes does not mark read (see
// tokenMay): this is the one place scopes are enforced. With a session,
// every method but GET, HEAD and OPTIONS must carry the session's CSRF
// token, in the X-CSRF-Token header or the csrf_token form field, or it is
// refused with 403.
func (a *Auth) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := strings.HasPrefix(r.URL.Path, "/api/")
		id, ok := a.identify(r)
		if !ok {
			if api || r.Header.Get("Authorization") != "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="passgate"`)
				writeErrors(w, http.StatusUnauthorized, apiErrors("", "authentication required: log in (POST /api/v1/login) or send an API token"))
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if !id.Session && !tokenMay(id.Scope, r) {
			msg := fmt.Sprintf("this API token's scope is %q: it may only read (GET of status, flows, events, configuration, forwards, passthrough, DMZ, mappings, and /metrics); %s %s needs a token of scope %q or a session", id.Scope, r.Method, r.URL.Path, ScopeAdmin)
			if api {
				writeErrors(w, http.StatusForbidden, apiErrors("", msg))
			} else {
				http.Error(w, "Forbidden: "+msg, http.StatusForbidden)
			}
			return
		}
		if id.Session && !safeMethod(r.Method) && !csrfOK(r, id.CSRF) {
			if api {
				writeErrors(w, http.StatusForbidden, apiErrors("", "missing or wrong CSRF token: send the session's token in the X-CSRF-Token header"))
			} else {
				http.Error(w, "Forbidden: missing or wrong CSRF token; reload the page and try again", http.StatusForbidden)
			}
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

// requireMetrics lets a scrape through with an API token ("Authorization:
// Bearer TOKEN", as Prometheus sends it with its authorization setting) or
// a session; with localOpen, a client on 127.0.0.1 needs neither.
func (a *Auth) requireMetrics(h http.Handler, localOpen bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if localOpen && clientKey(r) == "127.0.0.1" {
			h.ServeHTTP(w, r)
			return
		}
		if _, ok := a.identify(r); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="passgate"`)
			http.Error(w, "authentication required: send an API token as Authorization: Bearer TOKEN (passgate token create prometheus)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func csrfOK(r *http.Request, want string) bool {
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		ct := r.Header.Get("Content-Type")
		if strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data") {
			got = r.PostFormValue(CSRFField)
		}
	}
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// CSRFToken is the session's CSRF token, for templates: forms carry it as
// the csrf_token field. Empty outside Require or for API tokens.
func CSRFToken(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(Identity)
	return id.CSRF
}

// RequestIdentity is who Require let through.
func RequestIdentity(r *http.Request) (Identity, bool) {
	id, ok := r.Context().Value(ctxKey{}).(Identity)
	return id, ok
}

// CreateToken makes an API token for scripts ("Authorization: Bearer
// TOKEN") that expires after ttl (0: DefaultTokenTTL) with scope
// ScopeAdmin or ScopeRead ("": ScopeAdmin), stores its SHA-256 hash and
// returns the token, which is shown this once only. Expired tokens are
// dropped; with MaxTokens live ones it is ErrTooManyTokens.
func (a *Auth) CreateToken(name string, ttl time.Duration, scope string) (token string, info TokenInfo, err error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", TokenInfo{}, config.Errors{{Field: "name", Msg: "1-64 printable characters required (what the token is for)"}}
	}
	if scope == "" {
		scope = ScopeAdmin
	}
	if scope != ScopeAdmin && scope != ScopeRead {
		return "", TokenInfo{}, config.Errors{{Field: "scope", Msg: fmt.Sprintf("%q or %q (what the token may do: everything, or only read)", ScopeAdmin, ScopeRead)}}
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Hour || ttl > MaxTokenTTL {
		return "", TokenInfo{}, config.Errors{{Field: "expires_days", Msg: fmt.Sprintf("a token lives 1 to %d days", int(MaxTokenTTL/(24*time.Hour)))}}
	}
	token = TokenPrefix + randomToken()
	sum := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	now := a.now().UTC().Truncate(time.Second)
	prev := slices.Clone(a.state.Tokens)
	a.state.Tokens = slices.DeleteFunc(a.state.Tokens, func(e tokenEntry) bool { return !now.Before(e.expires()) })
	if len(a.state.Tokens) >= MaxTokens {
		a.state.Tokens = prev
		return "", TokenInfo{}, ErrTooManyTokens
	}
	e := tokenEntry{ID: hex.EncodeToString(sum[:4]), Name: name, Hash: hex.EncodeToString(sum[:]), Created: now, Expires: now.Add(ttl), Scope: scope}
	a.state.Tokens = append(a.state.Tokens, e)
	if err := a.save(); err != nil {
		a.state.Tokens = prev
		return "", TokenInfo{}, err
	}
	a.log.Info("API token created", "id", e.ID, "name", name, "scope", scope, "expires", e.Expires)
	return token, e.info(now), nil
}

func (e tokenEntry) info(now time.Time) TokenInfo {
	return TokenInfo{ID: e.ID, Name: e.Name, Created: e.Created, Expires: e.expires(), Expired: !now.Before(e.expires()), Scope: e.scope()}
}

// Tokens lists the API tokens.
func (a *Auth) Tokens() []TokenInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	out := []TokenInfo{}
	now := a.now()
	for _, e := range a.state.Tokens {
		out = append(out, e.info(now))
	}
	return out
}

// RevokeToken deletes the API token with that id; ErrNotFound if none.
func (a *Auth) RevokeToken(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	i := slices.IndexFunc(a.state.Tokens, func(e tokenEntry) bool { return e.ID == id })
	if i < 0 {
		return fmt.Errorf("token %q: %w", id, ErrNotFound)
	}
	prev := slices.Clone(a.state.Tokens)
	a.state.Tokens = slices.Delete(a.state.Tokens, i, i+1)
	if err := a.save(); err != nil {
		a.state.Tokens = prev
		return err
	}
	a.log.Info("API token revoked", "id", id)
	return nil
}

// checkToken finds the API token, if it has not expired; it returns the
// token's id and scope.
func (a *Auth) checkToken(tok string) (id, scope string, ok bool) {
	if !strings.HasPrefix(tok, TokenPrefix) {
		return "", "", false
	}
	sum := sha256.Sum256([]byte(tok))
	want := hex.EncodeToString(sum[:])
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	found := ""
	now := a.now()
	for _, e := range a.state.Tokens {
		if subtle.ConstantTimeCompare([]byte(e.Hash), []byte(want)) == 1 && now.Before(e.expires()) {
			found, scope = e.ID, e.scope()
		}
	}
	return found, scope, found != ""
}

// AuthSuffix names the authentication state file next to the
// configuration file: FILE.auth.
const AuthSuffix = ".auth"

// AuthPath is the authentication state file of the configuration file
// configPath.
func AuthPath(configPath string) string { return configPath + AuthSuffix }
