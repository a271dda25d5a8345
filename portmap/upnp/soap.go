// Package upnp is the UPnP Internet Gateway Device for passgate's LAN:
// SSDP discovery (ssdp.go), the device descriptions (desc.go) and the
// WANIPConnection control actions over SOAP (this file), versions 1 and 2
// side by side (Windows, Xbox and PlayStation look for version 1). There are
// no event subscriptions (CallStranger, CVE-2020-12695): SUBSCRIBE is
// refused. It reads and builds messages and decides through a
// portmap.Manager; the sockets are in portmap/server.
package upnp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"passgate/portmap"
)

// Service types.
const (
	WANIPConn1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
	WANIPConn2 = "urn:schemas-upnp-org:service:WANIPConnection:2"
	WANCIF1    = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
)

// Limits of a SOAP request.
const (
	MaxBody  = 16 << 10
	maxArgs  = 32
	maxValue = 512
)

// Action is a parsed SOAP request.
type Action struct {
	Service string // the namespace of the action element
	Name    string
	Args    map[string]string
}

// Errors of ParseAction.
var (
	ErrTooLarge = errors.New("upnp: SOAP body too large")
	ErrNoAction = errors.New("upnp: no action in the SOAP body")
	ErrTooMany  = errors.New("upnp: too many or too long arguments")
)

// ParseAction reads a SOAP envelope (at most MaxBody bytes): the first
// element inside Body is the action, its child elements the arguments.
func ParseAction(body []byte) (Action, error) {
	if len(body) > MaxBody {
		return Action{}, ErrTooLarge
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var a Action
	depth, bodyDepth := 0, -1
	var arg string
	var val strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Action{}, fmt.Errorf("upnp: SOAP body: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case bodyDepth < 0 && t.Name.Local == "Body":
				bodyDepth = depth
			case bodyDepth > 0 && depth == bodyDepth+1 && a.Name == "":
				a.Name, a.Service, a.Args = t.Name.Local, t.Name.Space, map[string]string{}
			case a.Name != "" && depth == bodyDepth+2:
				arg = t.Name.Local
				val.Reset()
			}
		case xml.CharData:
			if arg != "" {
				if val.Len()+len(t) > maxValue {
					return Action{}, ErrTooMany
				}
				val.Write(t)
			}
		case xml.EndElement:
			if arg != "" && depth == bodyDepth+2 {
				if len(a.Args) >= maxArgs {
					return Action{}, ErrTooMany
				}
				a.Args[arg] = strings.TrimSpace(val.String())
				arg = ""
			}
			if depth == bodyDepth+1 && a.Name != "" {
				return a, nil
			}
			depth--
		}
	}
	return Action{}, ErrNoAction
}

// SOAPAction reads the service and action from a SOAPAction header
// ("urn:...:WANIPConnection:1#AddPortMapping", quoted or not).
func SOAPAction(h string) (service, action string, ok bool) {
	h = strings.Trim(strings.TrimSpace(h), `"`)
	return strings.Cut(h, "#")
}

// Fault is a UPnP error.
type Fault struct {
	Code int
	Desc string
}

func (f *Fault) Error() string { return fmt.Sprintf("UPnP error %d %s", f.Code, f.Desc) }

// The errors of WANIPConnection (v2 spec, section 2.4 and the action
// tables); passgate never answers 725 OnlyPermanentLeasesSupported: it
// clamps a lease of 0 to its maximum instead.
var (
	ErrInvalidAction      = &Fault{401, "Invalid Action"}
	ErrInvalidArgs        = &Fault{402, "Invalid Args"}
	ErrActionFailed       = &Fault{501, "Action Failed"}
	ErrNotAuthorized      = &Fault{606, "Action not authorized"}
	ErrArrayIndexInvalid  = &Fault{713, "SpecifiedArrayIndexInvalid"}
	ErrNoSuchEntry        = &Fault{714, "NoSuchEntryInArray"}
	ErrWildCardExtPort    = &Fault{716, "WildCardNotPermittedInExtPort"}
	ErrConflict           = &Fault{718, "ConflictInMappingEntry"}
	ErrRemoteHostWildcard = &Fault{726, "RemoteHostOnlySupportsWildcard"}
	ErrNoPortMaps         = &Fault{728, "NoPortMapsAvailable"}
	ErrConflictOther      = &Fault{729, "ConflictWithOtherMechanisms"}
	ErrMappingNotFound    = &Fault{730, "PortMappingNotFound"}
	ErrWildCardIntPort    = &Fault{732, "WildCardNotPermittedInIntPort"}
	ErrInconsistentParams = &Fault{733, "InconsistentParameters"}
)

// Control answers WANIPConnection and WANCommonInterfaceConfig actions.
type Control struct {
	Manager *portmap.Manager
	Public  func() netip.Addr
	Started time.Time
}

// Arg is one output argument, in order.
type Arg struct{ Name, Value string }

// Do runs an action for client and returns its output arguments or a
// *Fault.
func (c *Control) Do(now time.Time, client netip.Addr, a Action) ([]Arg, error) {
	v2 := a.Service == WANIPConn2
	if a.Service == WANCIF1 {
		return c.cif(a)
	}
	if a.Service != WANIPConn1 && !v2 {
		return nil, ErrInvalidAction
	}
	switch a.Name {
	case "GetExternalIPAddress":
		pub := ""
		if p := c.Public(); p.IsValid() {
			pub = p.String()
		}
		return []Arg{{"NewExternalIPAddress", pub}}, nil
	case "GetStatusInfo":
		return []Arg{{"NewConnectionStatus", "Connected"}, {"NewLastConnectionError", "ERROR_NONE"}, {"NewUptime", strconv.Itoa(int(now.Sub(c.Started) / time.Second))}}, nil
	case "GetConnectionTypeInfo":
		return []Arg{{"NewConnectionType", "IP_Routed"}, {"NewPossibleConnectionTypes", "IP_Routed"}}, nil
	case "AddPortMapping":
		_, err := c.add(now, client, a, true)
		return nil, err
	case "AddAnyPortMapping":
		if !v2 {
			return nil, ErrInvalidAction
		}
		l, err := c.add(now, client, a, false)
		if err != nil {
			return nil, err
		}
		return []Arg{{"NewReservedPort", strconv.Itoa(int(l.Outside))}}, nil
	case "DeletePortMapping":
		proto, port, err := protoPort(a)
		if err != nil {
			return nil, err
		}
		if _, err := c.Manager.Delete(now, client, "upnp", proto, port, true, nil); err != nil {
			// Another host's mapping, or a PCP client's (RFC 6970 answers
			// PCP's NOT_AUTHORIZED with 606 too).
			if errors.Is(err, portmap.ErrNotAuthorized) || errors.Is(err, portmap.ErrNonce) {
				return nil, ErrNotAuthorized
			}
			return nil, ErrNoSuchEntry
		}
		return nil, nil
	case "DeletePortMappingRange":
		if !v2 {
			return nil, ErrInvalidAction
		}
		return nil, c.deleteRange(now, client, a)
	case "GetSpecificPortMappingEntry":
		proto, port, err := protoPort(a)
		if err != nil {
			return nil, err
		}
		l, ok := c.Manager.Find(proto, port)
		if !ok {
			return nil, ErrNoSuchEntry
		}
		return entry(now, l)[3:], nil
	case "GetGenericPortMappingEntry":
		i, err := strconv.ParseUint(a.Args["NewPortMappingIndex"], 10, 16)
		if err != nil {
			return nil, ErrInvalidArgs
		}
		ls := c.Manager.Leases()
		if int(i) >= len(ls) {
			return nil, ErrArrayIndexInvalid
		}
		return entry(now, ls[i]), nil
	case "GetListOfPortMappings":
		if !v2 {
			return nil, ErrInvalidAction
		}
		return c.list(now, a)
	}
	return nil, ErrInvalidAction
}

func (c *Control) cif(a Action) ([]Arg, error) {
	switch a.Name {
	case "GetCommonLinkProperties":
		return []Arg{{"NewWANAccessType", "Ethernet"}, {"NewLayer1UpstreamMaxBitRate", "1000000000"}, {"NewLayer1DownstreamMaxBitRate", "1000000000"}, {"NewPhysicalLinkStatus", "Up"}}, nil
	case "GetTotalBytesSent", "GetTotalBytesReceived", "GetTotalPacketsSent", "GetTotalPacketsReceived":
		return []Arg{{"New" + strings.TrimPrefix(a.Name, "Get"), "0"}}, nil
	}
	return nil, ErrInvalidAction
}

func protoOf(s string) (uint8, bool) {
	switch strings.ToUpper(s) {
	case "TCP":
		return portmap.TCP, true
	case "UDP":
		return portmap.UDP, true
	}
	return 0, false
}

func protoName(p uint8) string {
	if p == portmap.TCP {
		return "TCP"
	}
	return "UDP"
}

func port(s string) (uint16, bool) {
	v, err := strconv.ParseUint(s, 10, 16)
	return uint16(v), err == nil
}

// protoPort reads NewProtocol and NewExternalPort (and insists on a
// wildcard NewRemoteHost).
func protoPort(a Action) (uint8, uint16, error) {
	proto, ok := protoOf(a.Args["NewProtocol"])
	p, ok2 := port(a.Args["NewExternalPort"])
	if !ok || !ok2 {
		return 0, 0, ErrInvalidArgs
	}
	return proto, p, nil
}

func (c *Control) add(now time.Time, client netip.Addr, a Action, exact bool) (portmap.Lease, error) {
	proto, ext, err := protoPort(a)
	if err != nil {
		return portmap.Lease{}, err
	}
	in, ok := port(a.Args["NewInternalPort"])
	host, err2 := netip.ParseAddr(a.Args["NewInternalClient"])
	lease, err3 := strconv.ParseUint(a.Args["NewLeaseDuration"], 10, 32)
	switch {
	case !ok || err2 != nil || err3 != nil:
		return portmap.Lease{}, ErrInvalidArgs
	case a.Args["NewRemoteHost"] != "":
		return portmap.Lease{}, ErrRemoteHostWildcard
	case ext == 0 && exact:
		return portmap.Lease{}, ErrWildCardExtPort
	case in == 0:
		return portmap.Lease{}, ErrWildCardIntPort
	}
	l, err := c.Manager.Map(now, portmap.Request{
		Client: client, Host: host.Unmap(), Proto: proto, Inside: in, Outside: ext, Exact: exact,
		Lease: time.Duration(lease) * time.Second, By: "upnp", Desc: a.Args["NewPortMappingDescription"],
	})
	if err != nil {
		return l, fault(err, a.Service == WANIPConn2)
	}
	return l, nil
}

func fault(err error, v2 bool) error {
	switch {
	case errors.Is(err, portmap.ErrNotAuthorized), errors.Is(err, portmap.ErrNotLAN), errors.Is(err, portmap.ErrLowPort):
		return ErrNotAuthorized
	case (errors.Is(err, portmap.ErrReserved) || errors.Is(err, portmap.ErrNonce)) && v2:
		// A PCP client's mapping is another mechanism's, as a configured
		// forward's port is: v1 has only 718 for both.
		return ErrConflictOther
	case errors.Is(err, portmap.ErrNonce):
		return ErrConflict
	case errors.Is(err, portmap.ErrReserved), errors.Is(err, portmap.ErrConflict):
		return ErrConflict
	case errors.Is(err, portmap.ErrHostLimit), errors.Is(err, portmap.ErrNoPort), errors.Is(err, portmap.ErrTotalLimit):
		return ErrNoPortMaps
	case errors.Is(err, portmap.ErrInvalid):
		return ErrInvalidArgs
	}
	return ErrActionFailed
}

func rangeArgs(a Action) (uint8, uint16, uint16, error) {
	proto, ok := protoOf(a.Args["NewProtocol"])
	lo, ok2 := port(a.Args["NewStartPort"])
	hi, ok3 := port(a.Args["NewEndPort"])
	switch {
	case !ok || !ok2 || !ok3:
		return 0, 0, 0, ErrInvalidArgs
	case lo > hi:
		return 0, 0, 0, ErrInconsistentParams
	}
	return proto, lo, hi, nil
}

func (c *Control) deleteRange(now time.Time, client netip.Addr, a Action) error {
	proto, lo, hi, err := rangeArgs(a)
	if err != nil {
		return err
	}
	n := 0
	for _, l := range c.Manager.Leases() {
		if l.Proto == proto && l.Outside >= lo && l.Outside <= hi && l.Host == client {
			if k, _ := c.Manager.Delete(now, client, "upnp", proto, l.Outside, true, nil); k > 0 {
				n += k
			}
		}
	}
	if n == 0 {
		return ErrMappingNotFound
	}
	return nil
}

func (c *Control) list(now time.Time, a Action) ([]Arg, error) {
	proto, lo, hi, err := rangeArgs(a)
	if err != nil {
		return nil, err
	}
	max, err := strconv.ParseUint(a.Args["NewNumberOfPorts"], 10, 16)
	if err != nil {
		return nil, ErrInvalidArgs
	}
	if max == 0 {
		max = 1000
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:schemas-upnp-org:gw:WANIPConnection http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd">`)
	n := 0
	for _, l := range c.Manager.Leases() {
		if l.Proto != proto || l.Outside < lo || l.Outside > hi || n == int(max) {
			continue
		}
		n++
		b.WriteString("<p:PortMappingEntry>")
		for _, arg := range entry(now, l) {
			name := arg.Name
			switch name {
			case "NewPortMappingDescription":
				name = "NewDescription"
			case "NewLeaseDuration":
				name = "NewLeaseTime"
			}
			fmt.Fprintf(&b, "<p:%s>%s</p:%s>", name, escape(arg.Value), name)
		}
		b.WriteString("</p:PortMappingEntry>")
	}
	b.WriteString("</p:PortMappingList>")
	if n == 0 {
		return nil, ErrMappingNotFound
	}
	return []Arg{{"NewPortListing", b.String()}}, nil
}

// entry is a mapping as GetGenericPortMappingEntry answers it;
// GetSpecificPortMappingEntry answers from NewInternalPort on.
func entry(now time.Time, l portmap.Lease) []Arg {
	return []Arg{
		{"NewRemoteHost", ""},
		{"NewExternalPort", strconv.Itoa(int(l.Outside))},
		{"NewProtocol", protoName(l.Proto)},
		{"NewInternalPort", strconv.Itoa(int(l.Inside))},
		{"NewInternalClient", l.Host.String()},
		{"NewEnabled", "1"},
		{"NewPortMappingDescription", l.Description},
		{"NewLeaseDuration", strconv.Itoa(int(l.Left(now) / time.Second))},
	}
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

const envelopeHead = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`

// Response builds an action's SOAP response.
func Response(service, action string, out []Arg) []byte {
	var b strings.Builder
	b.WriteString(envelopeHead)
	fmt.Fprintf(&b, `<u:%sResponse xmlns:u="%s">`, action, escape(service))
	for _, a := range out {
		fmt.Fprintf(&b, "<%s>%s</%s>", a.Name, escape(a.Value), a.Name)
	}
	fmt.Fprintf(&b, "</u:%sResponse></s:Body></s:Envelope>\n", action)
	return []byte(b.String())
}

// FaultBody builds a UPnP error's SOAP fault (sent with HTTP 500).
func FaultBody(f *Fault) []byte {
	return []byte(envelopeHead + `<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>` +
		`<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>` + strconv.Itoa(f.Code) +
		`</errorCode><errorDescription>` + f.Desc + `</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>` + "\n")
}
