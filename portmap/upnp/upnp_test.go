package upnp

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"passgate/portmap"
	. "passgate/portmap/portmaptest"
)

func handler(t testing.TB) (http.Handler, *portmap.Manager, func() int) {
	m, e := Manager(t)
	d := NewDevice("http://192.168.50.1:5000", "192.168.50.1", 1)
	c := &Control{Manager: m, Public: func() netip.Addr { return Public }, Started: T0}
	lan := netip.MustParsePrefix("192.168.50.0/24")
	return Handler(d, c, lan.Contains, func() time.Time { return T0.Add(10 * time.Second) }), m, func() int { return len(e.DynamicForwards()) }
}

func soap(service, action string, args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%s xmlns:u="%s">`, action, service)
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, "<%s>%s</%s>", args[i], args[i+1], args[i])
	}
	fmt.Fprintf(&b, "</u:%s></s:Body></s:Envelope>", action)
	return b.String()
}

func add(service, action, ext, proto, in, client, lease string) string {
	return soap(service, action, "NewRemoteHost", "", "NewExternalPort", ext, "NewProtocol", proto, "NewInternalPort", in,
		"NewInternalClient", client, "NewEnabled", "1", "NewPortMappingDescription", "test "+ext, "NewLeaseDuration", lease)
}

func call(h http.Handler, from, method, path, service, action, body string) (int, string) {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = from + ":40000"
	r.Host = "192.168.50.1:5000"
	if action != "" {
		r.Header.Set("SOAPAction", `"`+service+"#"+action+`"`)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

var errorCode = regexp.MustCompile(`<errorCode>(\d+)</errorCode>`)

func TestControl(t *testing.T) {
	h, _, forwards := handler(t)
	l1, l2 := LAN1.String(), LAN2.String()
	for _, c := range []struct {
		name, from, service, action, body string
		code                              int    // HTTP status
		want                              string // a substring of the answer, or the UPnP error code
		fwds                              int
	}{
		{"external address", l1, WANIPConn1, "GetExternalIPAddress", soap(WANIPConn1, "GetExternalIPAddress"), 200, "<NewExternalIPAddress>203.0.113.1</NewExternalIPAddress>", 0},
		{"status", l1, WANIPConn2, "GetStatusInfo", soap(WANIPConn2, "GetStatusInfo"), 200, "<NewConnectionStatus>Connected</NewConnectionStatus><NewLastConnectionError>ERROR_NONE</NewLastConnectionError><NewUptime>10</NewUptime>", 0},
		{"add TCP v1, lease 0", l1, WANIPConn1, "AddPortMapping", add(WANIPConn1, "AddPortMapping", "40000", "TCP", "5000", l1, "0"), 200, "<u:AddPortMappingResponse", 1},
		{"the clamped lease", l1, WANIPConn1, "GetSpecificPortMappingEntry", soap(WANIPConn1, "GetSpecificPortMappingEntry", "NewRemoteHost", "", "NewExternalPort", "40000", "NewProtocol", "TCP"),
			200, "<NewInternalPort>5000</NewInternalPort><NewInternalClient>192.168.50.10</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>test 40000</NewPortMappingDescription><NewLeaseDuration>7200</NewLeaseDuration>", 1},
		{"add UDP v2", l1, WANIPConn2, "AddPortMapping", add(WANIPConn2, "AddPortMapping", "40001", "UDP", "5001", l1, "600"), 200, "AddPortMappingResponse", 2},
		{"lan2 for lan1", l2, WANIPConn2, "AddPortMapping", add(WANIPConn2, "AddPortMapping", "40002", "TCP", "22", l1, "600"), 500, "606", 2},
		{"lan2 for lan1, v1", l2, WANIPConn1, "AddPortMapping", add(WANIPConn1, "AddPortMapping", "40002", "TCP", "22", l1, "600"), 500, "606", 2},
		{"lan1's port, v1", l2, WANIPConn1, "AddPortMapping", add(WANIPConn1, "AddPortMapping", "40000", "TCP", "22", l2, "600"), 500, "718", 2},
		{"static forward, v1", l2, WANIPConn1, "AddPortMapping", add(WANIPConn1, "AddPortMapping", "8443", "TCP", "443", l2, "600"), 500, "718", 2},
		{"static forward, v2", l2, WANIPConn2, "AddPortMapping", add(WANIPConn2, "AddPortMapping", "8443", "TCP", "443", l2, "600"), 500, "729", 2},
		{"low port", l2, WANIPConn2, "AddPortMapping", add(WANIPConn2, "AddPortMapping", "80", "TCP", "80", l2, "600"), 500, "606", 2},
		{"remote host", l2, WANIPConn2, "AddPortMapping", strings.Replace(add(WANIPConn2, "AddPortMapping", "40003", "TCP", "80", l2, "600"), "<NewRemoteHost></NewRemoteHost>", "<NewRemoteHost>1.2.3.4</NewRemoteHost>", 1), 500, "726", 2},
		{"wildcard port", l2, WANIPConn1, "AddPortMapping", add(WANIPConn1, "AddPortMapping", "0", "TCP", "80", l2, "600"), 500, "716", 2},
		{"any port", l2, WANIPConn2, "AddAnyPortMapping", add(WANIPConn2, "AddAnyPortMapping", "40000", "TCP", "22", l2, "600"), 200, "<NewReservedPort>", 3},
		{"AddAny on v1", l2, WANIPConn1, "AddAnyPortMapping", add(WANIPConn1, "AddAnyPortMapping", "40000", "TCP", "22", l2, "600"), 500, "401", 3},
		{"entry 0", l2, WANIPConn1, "GetGenericPortMappingEntry", soap(WANIPConn1, "GetGenericPortMappingEntry", "NewPortMappingIndex", "0"), 200, "</NewExternalPort><NewProtocol>TCP</NewProtocol>", 3},
		{"entry 3", l2, WANIPConn1, "GetGenericPortMappingEntry", soap(WANIPConn1, "GetGenericPortMappingEntry", "NewPortMappingIndex", "3"), 500, "713", 3},
		{"list", l2, WANIPConn2, "GetListOfPortMappings", soap(WANIPConn2, "GetListOfPortMappings", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "UDP", "NewManage", "0", "NewNumberOfPorts", "0"),
			200, "&lt;p:NewExternalPort&gt;40001&lt;/p:NewExternalPort&gt;&lt;p:NewProtocol&gt;UDP", 3},
		{"delete lan1's as lan2", l2, WANIPConn1, "DeletePortMapping", soap(WANIPConn1, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "40000", "NewProtocol", "TCP"), 500, "606", 3},
		{"delete none", l1, WANIPConn1, "DeletePortMapping", soap(WANIPConn1, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "40009", "NewProtocol", "TCP"), 500, "714", 3},
		{"delete", l1, WANIPConn1, "DeletePortMapping", soap(WANIPConn1, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "40000", "NewProtocol", "TCP"), 200, "DeletePortMappingResponse", 2},
		{"delete range, none", l1, WANIPConn2, "DeletePortMappingRange", soap(WANIPConn2, "DeletePortMappingRange", "NewStartPort", "1", "NewEndPort", "100", "NewProtocol", "UDP", "NewManage", "0"), 500, "730", 2},
		{"delete range, backwards", l1, WANIPConn2, "DeletePortMappingRange", soap(WANIPConn2, "DeletePortMappingRange", "NewStartPort", "100", "NewEndPort", "1", "NewProtocol", "UDP", "NewManage", "0"), 500, "733", 2},
		{"delete range", l1, WANIPConn2, "DeletePortMappingRange", soap(WANIPConn2, "DeletePortMappingRange", "NewStartPort", "40000", "NewEndPort", "40010", "NewProtocol", "UDP", "NewManage", "0"), 200, "DeletePortMappingRangeResponse", 1},
		{"unknown action", l1, WANIPConn1, "ForceTermination", soap(WANIPConn1, "ForceTermination"), 500, "401", 1},
		{"header and body differ", l1, WANIPConn1, "GetStatusInfo", soap(WANIPConn1, "DeletePortMapping"), 500, "401", 1},
		{"not XML", l1, WANIPConn1, "GetStatusInfo", "<s:Envelope", 500, "402", 1},
		{"no SOAPAction header (a web page's form post)", l1, WANIPConn1, "", add(WANIPConn1, "AddPortMapping", "40005", "TCP", "5000", l1, "0"), 500, "401", 1},
		{"link properties", l1, WANCIF1, "GetCommonLinkProperties", soap(WANCIF1, "GetCommonLinkProperties"), 200, "<NewPhysicalLinkStatus>Up</NewPhysicalLinkStatus>", 1},
		{"from off the LAN", "10.0.0.1", WANIPConn1, "GetExternalIPAddress", soap(WANIPConn1, "GetExternalIPAddress"), 403, "forbidden", 1},
	} {
		code, body := call(h, c.from, "POST", "/ctl/WANIPConn", c.service, c.action, c.body)
		if code != c.code {
			t.Errorf("%s: HTTP %d, want %d: %s", c.name, code, c.code, body)
		}
		if code == 500 {
			if m := errorCode.FindStringSubmatch(body); m == nil || m[1] != c.want {
				t.Errorf("%s: %s, want UPnP error %s", c.name, body, c.want)
			}
		} else if !strings.Contains(body, c.want) {
			t.Errorf("%s: %s, want %s", c.name, body, c.want)
		}
		if n := forwards(); n != c.fwds {
			t.Errorf("%s: %d forwards, want %d", c.name, n, c.fwds)
		}
	}
	for _, m := range []string{"SUBSCRIBE", "OPTIONS"} {
		if code, _ := call(h, LAN1.String(), m, "/evt/WANIPConn", "", "", ""); code != http.StatusMethodNotAllowed {
			t.Errorf("%s: HTTP %d", m, code)
		}
	}
	for _, v := range []string{"1", "2"} {
		code, body := call(h, LAN1.String(), "GET", "/igd"+v+".xml", "", "", "")
		if code != 200 || !strings.Contains(body, "<serviceType>urn:schemas-upnp-org:service:WANIPConnection:"+v+"</serviceType>") || !strings.Contains(body, "<controlURL>/ctl/WANIPConn</controlURL>") ||
			!strings.Contains(body, "<SCPDURL>/WANIPConn"+v+".xml</SCPDURL>") {
			t.Errorf("description %s: %d %s", v, code, body)
		}
		code, body = call(h, LAN1.String(), "GET", "/WANIPConn"+v+".xml", "", "", "")
		if code != 200 || !strings.Contains(body, "<action><name>AddPortMapping</name><argumentList><argument><name>NewRemoteHost</name><direction>in</direction><relatedStateVariable>RemoteHost</relatedStateVariable>") ||
			strings.Contains(body, "GetListOfPortMappings") != (v == "2") {
			t.Errorf("SCPD %s: %d %s", v, code, body)
		}
	}
}

// wellFormed reads an XML document to its end.
func wellFormed(t *testing.T, what, doc string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v\n%s", what, err, doc)
		}
	}
}

func TestDocumentsWellFormed(t *testing.T) {
	d := NewDevice("http://192.168.50.1:5431", "192.168.50.1", 1)
	for _, v := range []int{1, 2} {
		wellFormed(t, fmt.Sprint("description ", v), string(d.Description(v)))
	}
	for _, p := range []string{"/WANIPConn1.xml", "/WANIPConn2.xml", "/WANCommonIFC.xml"} {
		wellFormed(t, p, string(SCPD(p)))
	}
	wellFormed(t, "fault", string(FaultBody(ErrConflict)))
	wellFormed(t, "response", string(Response(WANIPConn1, "GetExternalIPAddress", []Arg{{"NewExternalIPAddress", "<&>"}})))
}

func TestSSDP(t *testing.T) {
	d := NewDevice("http://192.168.50.1:5000", "192.168.50.1", 3)
	st, ok := MSearch([]byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"))
	if !ok || st != "urn:schemas-upnp-org:device:InternetGatewayDevice:1" {
		t.Fatalf("MSearch %q %v", st, ok)
	}
	rs := d.Responses(st)
	if len(rs) != 1 || !strings.Contains(string(rs[0]), "LOCATION: http://192.168.50.1:5000/igd1.xml\r\n") || !strings.Contains(string(rs[0]), "USN: uuid:"+d.UUID(1, 0)+"::"+st+"\r\n") {
		t.Fatalf("responses %q", rs)
	}
	if n := len(d.Responses("ssdp:all")); n != 18 {
		t.Fatalf("ssdp:all: %d answers, want 18", n)
	}
	if n := len(d.Responses("urn:schemas-upnp-org:service:WANIPConnection:2")); n != 1 {
		t.Fatalf("WANIPConnection:2: %d answers", n)
	}
	if len(d.Responses("urn:other")) != 0 {
		t.Fatal("answered another device type")
	}
	if _, ok := MSearch([]byte("M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n")); ok {
		t.Fatal("an M-SEARCH without MAN accepted")
	}
	bye := d.Notifies("ssdp:byebye")
	if len(bye) != 18 || strings.Contains(string(bye[0]), "LOCATION") || !strings.HasPrefix(string(bye[0]), "NOTIFY * HTTP/1.1\r\n") {
		t.Fatalf("byebye %q", bye[0])
	}
	if d.UUID(1, 0) == d.UUID(2, 0) || d.UUID(1, 0) != NewDevice("x", "192.168.50.1", 9).UUID(1, 0) {
		t.Fatal("UUIDs not distinct per device or not stable")
	}
}

// FuzzSOAP: any body (the HTTP server cuts it at MaxBody) parses or fails
// without panicking, and an action parsed and run never maps a port to
// another host than the sender; unknown actions are Invalid Action.
func FuzzSOAP(f *testing.F) {
	f.Add([]byte(add(WANIPConn1, "AddPortMapping", "40000", "TCP", "5000", "192.168.50.10", "0")))
	f.Add([]byte(add(WANIPConn2, "AddAnyPortMapping", "0", "UDP", "5000", "192.168.50.11", "60")))
	f.Add([]byte(soap(WANIPConn2, "GetListOfPortMappings", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "UDP", "NewManage", "0", "NewNumberOfPorts", "0")))
	f.Add([]byte(soap(WANIPConn1, "X_Unknown", "a", "b")))                                        // an unknown action
	f.Add([]byte(soap("urn:other", "AddPortMapping")))                                            // an unknown service
	f.Add([]byte(`<s:Envelope xmlns:s="x"><s:Body></s:Body></s:Envelope>`))                       // malformed: no action
	f.Add([]byte(`<s:Envelope><s:Body><u:A><B>` + strings.Repeat("x", 600) + `</B></u:A>`))       // malformed: a value over the limit
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><s:Envelope><s:Body><u:A>&a;</u:A></s:Body>`)) // malformed: an entity
	f.Add([]byte(strings.Repeat("<a>", 5000)))                                                    // malformed: deep nesting
	m, _ := Manager(f)
	c := &Control{Manager: m, Public: func() netip.Addr { return Public }, Started: T0}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAction(body)
		if err != nil {
			return
		}
		if len(a.Args) > maxArgs {
			t.Fatalf("%d args", len(a.Args))
		}
		out, err := c.Do(T0, LAN1, a)
		if err == nil {
			Response(a.Service, a.Name, out)
		}
		for _, l := range m.Leases() {
			if l.Host != LAN1 {
				t.Fatalf("mapping for %s", l.Host)
			}
		}
	})
}

// TestDNSRebindingRefused: a page from evil.example that rebinds its name
// to the router is same-origin for the LAN browser, so it can send
// SOAPAction; its Host header still says evil.example, and the request is
// refused before it maps anything. The router's address with or without
// the port is accepted.
func TestDNSRebindingRefused(t *testing.T) {
	h, _, forwards := handler(t)
	body := add(WANIPConn1, "AddPortMapping", "40000", "TCP", "22", LAN1.String(), "0")
	for _, host := range []string{"evil.example:5000", "evil.example", "192.168.50.1.nip.io:5000", "", "192.168.50.1:80"} {
		r := httptest.NewRequest("POST", "/ctl/WANIPConn", strings.NewReader(body))
		r.RemoteAddr = LAN1.String() + ":40000"
		r.Host = host
		r.Header.Set("SOAPAction", `"`+WANIPConn1+`#AddPortMapping"`)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || forwards() != 0 {
			t.Fatalf("Host %q: status %d, %d forwards; want 403 and none", host, w.Code, forwards())
		}
	}
	for _, host := range []string{"192.168.50.1:5000", "192.168.50.1"} {
		r := httptest.NewRequest("GET", "/igd1.xml", nil)
		r.RemoteAddr = LAN1.String() + ":40000"
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("Host %q: status %d, want 200", host, w.Code)
		}
	}
}

// TestSOAPEntitiesAndNesting: a DOCTYPE's entities are not expanded
// (billion laughs, external entities): a reference to one is an error; a
// body nested thousands deep within MaxBody is read without harm, and
// past MaxBody nothing is read.
func TestSOAPEntitiesAndNesting(t *testing.T) {
	laughs := `<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		soap(WANIPConn1, "AddPortMapping", "NewPortMappingDescription", "&b;&x;")
	if a, err := ParseAction([]byte(laughs)); err == nil {
		t.Fatalf("entities expanded: %+v", a)
	}
	deep := strings.Repeat("<a>", 4000) + strings.Repeat("</a>", 4000)
	if _, err := ParseAction([]byte(deep)); err == nil {
		t.Fatal("no action found in a deep body, yet no error")
	}
	if _, err := ParseAction([]byte(strings.Repeat(" ", MaxBody+1))); err != ErrTooLarge {
		t.Fatalf("oversize body: %v", err)
	}
}

// TestPCPMappingNotUPnPs: a mapping a PCP client made on the same host is
// not UPnP's to refresh, repoint or delete (it has no nonce): 718 in v1,
// 729 ConflictWithOtherMechanisms in v2, 606 on delete; the lease stays.
func TestPCPMappingNotUPnPs(t *testing.T) {
	h, m, _ := handler(t)
	p, err := m.Map(T0, portmap.Request{Client: LAN1, Proto: portmap.TCP, Inside: 5000, Outside: 40000, Exact: true, By: "pcp", Nonce: [12]byte{1}, Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l1 := LAN1.String()
	for _, c := range []struct{ name, service, action, body, want string }{
		{"add v1", WANIPConn1, "AddPortMapping", add(WANIPConn1, "AddPortMapping", "40000", "TCP", "5000", l1, "0"), "718"},
		{"add v2, another inside port", WANIPConn2, "AddPortMapping", add(WANIPConn2, "AddPortMapping", "40000", "TCP", "6000", l1, "600"), "729"},
		{"add any v2", WANIPConn2, "AddAnyPortMapping", add(WANIPConn2, "AddAnyPortMapping", "0", "TCP", "5000", l1, "600"), "729"},
		{"delete", WANIPConn1, "DeletePortMapping", soap(WANIPConn1, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", "40000", "NewProtocol", "TCP"), "606"},
		{"delete range", WANIPConn2, "DeletePortMappingRange", soap(WANIPConn2, "DeletePortMappingRange", "NewStartPort", "1", "NewEndPort", "65535", "NewProtocol", "TCP", "NewManage", "1"), "730"},
	} {
		code, body := call(h, l1, "POST", "/ctl/WANIPConn", c.service, c.action, c.body)
		if m := errorCode.FindStringSubmatch(body); code != 500 || m == nil || m[1] != c.want {
			t.Errorf("%s: HTTP %d %s, want UPnP error %s", c.name, code, body, c.want)
		}
	}
	if got := m.Leases(); len(got) != 1 || got[0] != p {
		t.Fatalf("leases %+v, want the PCP one %+v untouched", got, p)
	}
}
