package upnp

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"time"
)

// Handler serves the descriptions and the control URLs. Requests from an
// address allowed refuses get 403; SUBSCRIBE (eventing) gets 405: there are
// no event subscriptions.
func Handler(d *Device, c *Control, allowed func(netip.Addr) bool, clock func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !allowed(ap.Addr().Unmap()) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		client := ap.Addr().Unmap()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/igd1.xml":
			xmlOut(w, http.StatusOK, d.Description(1))
		case r.Method == http.MethodGet && r.URL.Path == "/igd2.xml":
			xmlOut(w, http.StatusOK, d.Description(2))
		case r.Method == http.MethodGet && (r.URL.Path == "/WANIPConn.xml" || r.URL.Path == "/WANCommonIFC.xml"):
			xmlOut(w, http.StatusOK, scpd(r.URL.Path))
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
			if svc, name, ok := SOAPAction(r.Header.Get("SOAPAction")); ok && (svc != a.Service || name != a.Name) {
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
		case r.Method == "SUBSCRIBE" || r.Method == "UNSUBSCRIBE":
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

// scpd is a service description: the actions by name (clients that read
// it look for the names; the arguments are the spec's).
func scpd(path string) []byte {
	actions := []string{"GetCommonLinkProperties", "GetTotalBytesSent", "GetTotalBytesReceived", "GetTotalPacketsSent", "GetTotalPacketsReceived"}
	if path == "/WANIPConn.xml" {
		actions = []string{"GetExternalIPAddress", "GetStatusInfo", "GetConnectionTypeInfo", "AddPortMapping", "AddAnyPortMapping",
			"DeletePortMapping", "DeletePortMappingRange", "GetSpecificPortMappingEntry", "GetGenericPortMappingEntry", "GetListOfPortMappings"}
	}
	b := []byte(`<?xml version="1.0"?>` + "\n" + `<scpd xmlns="urn:schemas-upnp-org:service-1-0"><specVersion><major>1</major><minor>0</minor></specVersion><actionList>`)
	for _, a := range actions {
		b = append(b, "<action><name>"+a+"</name></action>"...)
	}
	return append(b, "</actionList><serviceStateTable/></scpd>\n"...)
}
