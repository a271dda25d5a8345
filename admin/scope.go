package admin

import (
	"net/http"
	"strings"
)

// The scopes of an API token.
const (
	// ScopeAdmin may do everything a session may (every token made before
	// scopes existed has it).
	ScopeAdmin = "admin"
	// ScopeRead may only read: for Prometheus, a dashboard, a status
	// script.
	ScopeRead = "read"
)

// RouteScopes is the scope every authenticated route needs, keyed by
// method and the route's pattern as it was registered (the method taken
// off a "GET /status" pattern): the REST API's and the admin pages'. A
// token of scope ScopeRead may call only the routes marked ScopeRead; any
// other route, one missing here included, needs ScopeAdmin (or a session),
// so a new route is never writable by a read token by mistake
// (TestRouteScopes fails on a route missing here). HEAD is GET's.
var RouteScopes = map[string]string{
	// The REST API.
	"GET /api/v1/status":             ScopeRead,
	"GET /api/v1/flows":              ScopeRead,
	"GET /api/v1/events":             ScopeRead,
	"GET /api/v1/config":             ScopeRead,
	"GET /api/v1/passthrough":        ScopeRead,
	"GET /api/v1/passthrough/{name}": ScopeRead,
	"GET /api/v1/forwards":           ScopeRead,
	"GET /api/v1/forwards/{name}":    ScopeRead,
	"GET /api/v1/dmz":                ScopeRead,
	"GET /api/v1/mappings":           ScopeRead,

	// Who may use the router stays with the administrator: the token
	// list too.
	"GET /api/v1/tokens":                     ScopeAdmin,
	"POST /api/v1/tokens":                    ScopeAdmin,
	"DELETE /api/v1/tokens/{id}":             ScopeAdmin,
	"POST /api/v1/logout":                    ScopeAdmin,
	"PUT /api/v1/password":                   ScopeAdmin,
	"PUT /api/v1/config":                     ScopeAdmin,
	"PUT /api/v1/passthrough/{name}":         ScopeAdmin,
	"POST /api/v1/forwards":                  ScopeAdmin,
	"PUT /api/v1/forwards/{name}":            ScopeAdmin,
	"DELETE /api/v1/forwards/{name}":         ScopeAdmin,
	"PUT /api/v1/dmz":                        ScopeAdmin,
	"DELETE /api/v1/mappings/{proto}/{port}": ScopeAdmin,

	// The admin pages (admin/web), which take a token too.
	"GET /{$}":                        ScopeRead,
	"GET /status":                     ScopeRead,
	"GET /passthrough":                ScopeRead,
	"GET /forwarding":                 ScopeRead,
	"GET /connections":                ScopeRead,
	"GET /events":                     ScopeRead,
	"GET /password":                   ScopeAdmin,
	"POST /passthrough":               ScopeAdmin,
	"POST /forwarding/add":            ScopeAdmin,
	"POST /forwarding/update":         ScopeAdmin,
	"POST /forwarding/delete":         ScopeAdmin,
	"POST /forwarding/dmz":            ScopeAdmin,
	"POST /forwarding/mapping-delete": ScopeAdmin,
	"POST /password":                  ScopeAdmin,
	"POST /password/revoke":           ScopeAdmin,
	"POST /password/token":            ScopeAdmin,
	"POST /logout":                    ScopeAdmin,
}

// RouteKey is a request's key in RouteScopes: its method (HEAD as GET)
// and the pattern of the route that matched it, without the pattern's own
// method.
func RouteKey(method, pattern string) string {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if m, path, ok := strings.Cut(pattern, " "); ok && m != "" && !strings.Contains(m, "/") {
		pattern = path
	}
	return method + " " + strings.TrimSpace(pattern)
}

// tokenMay says whether a token of scope may make request r: an admin
// token anything, a read token only a GET or HEAD of a route RouteScopes
// marks ScopeRead. r.Pattern is set by the ServeMux that routed r.
func tokenMay(scope string, r *http.Request) bool {
	if scope == ScopeAdmin {
		return true
	}
	if scope != ScopeRead || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return RouteScopes[RouteKey(r.Method, r.Pattern)] == ScopeRead
}
