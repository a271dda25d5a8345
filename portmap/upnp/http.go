package upnp

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Handler serves the descriptions and the control URLs. Requests from an
// address allowed refuses get 403; SUBSCRIBE (eventing) gets 405: there are
// no event subscriptions; OPTIONS (a browser's CORS preflight) gets 405 as
// well, and a control request without its SOAPAction header 401.
// A request whose Host header is not the router's LAN address (with or
// without the port) gets 403: a DNS-rebinding page (evil.example resolved
// to the router) is same-origin for the browser and could set SOAPAction,
// but its Host header still names evil.example.
func Handler(d *Device, c *Control, allowed func(netip.Addr) bool, clock func() time.Time) http.Handler {
	authority := strings.TrimPrefix(d.Base, "http://")
	addr, _, _ := strings.Cut(authority, ":")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !allowed(ap.Addr().Unmap()) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.Host != authority && r.Host != addr {
			http.Error(w, "forbidden: the Host header must be the router's LAN address", http.StatusForbidden)
			return
		}
		client := ap.Addr().Unmap()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/igd1.xml":
			xmlOut(w, http.StatusOK, d.Description(1))
		case r.Method == http.MethodGet && r.URL.Path == "/igd2.xml":
			xmlOut(w, http.StatusOK, d.Description(2))
		case r.Method == http.MethodGet && SCPD(r.URL.Path) != nil:
			xmlOut(w, http.StatusOK, SCPD(r.URL.Path))
		case r.Method == http.MethodPost && (r.URL.Path == "/ctl/WANIPConn" || r.URL.Path == "/ctl/WANCommonIFC"):
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
			if err != nil {
				http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
				return
			}
			a, err := ParseAction(body)
			if err != nil {
				xmlOut(w, http.StatusInternalServerError, FaultBody(ErrInvalidArgs))
				return
			}
			// The SOAPAction header is required and must name the body's
			// action: a web page cannot send it without a CORS preflight
			// (which is refused), so a browser on the LAN cannot be made to
			// map ports by a page it visits.
			if svc, name, ok := SOAPAction(r.Header.Get("SOAPAction")); !ok || svc != a.Service || name != a.Name {
				xmlOut(w, http.StatusInternalServerError, FaultBody(ErrInvalidAction))
				return
			}
			out, err := c.Do(clock(), client, a)
			var f *Fault
			if errors.As(err, &f) {
				xmlOut(w, http.StatusInternalServerError, FaultBody(f))
				return
			}
			if err != nil {
				xmlOut(w, http.StatusInternalServerError, FaultBody(ErrActionFailed))
				return
			}
			xmlOut(w, http.StatusOK, Response(a.Service, a.Name, out))
		case r.Method == "SUBSCRIBE" || r.Method == "UNSUBSCRIBE" || r.Method == http.MethodOptions:
			http.Error(w, "no event subscriptions", http.StatusMethodNotAllowed)
		default:
			http.NotFound(w, r)
		}
	})
}

func xmlOut(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	w.Header().Set("Server", server)
	w.WriteHeader(status)
	w.Write(b)
}
