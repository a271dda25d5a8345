// Package config owns passgate's configuration file: its JSON schema, strict
// decoding (unknown fields are errors), defaults, validation with errors that
// name the offending field (e.g. "port_forwards[1].outside_port: 70000 out
// of range 1-65535"), and the conversion into the engine's nat.Config
// (cmd/passgate makes the data plane's router.Options from the Settings:
// config sits below the data plane and does not import it).
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// DefaultControlSocket is where the control API listens unless configured.
const DefaultControlSocket = "/run/passgate/passgate.sock"

// Config is the configuration file, field for field. Fields left out take
// their defaults (docs/config.md); marshalling leaves zero fields out, so a
// saved file holds what was set and nothing more.
type Config struct {
	LAN          LAN           `json:"lan,omitzero"`
	WAN          WAN           `json:"wan,omitzero"`
	NAT          NAT           `json:"nat,omitzero"`
	Passthrough  Passthrough   `json:"passthrough,omitzero"`
	Helpers      Helpers       `json:"helpers,omitzero"`
	PortForwards []PortForward `json:"port_forwards,omitzero"`
	DMZ          string        `json:"dmz,omitzero"`
	Workers      int           `json:"workers,omitzero"`
	Driver       string        `json:"driver,omitzero"`
	// Offload has established flows forwarded in the kernel (the XDP
	// program with AF_XDP, a tc program with AF_PACKET); default on,
	// false turns it off.
	Offload       *bool  `json:"offload,omitzero"`
	ControlSocket string `json:"control_socket,omitzero"`
	// KeepRxOffloads leaves the interfaces' receive offloads (GRO, LRO,
	// VLAN stripping) alone; default: off while passgate runs.
	KeepRxOffloads bool `json:"keep_rx_offloads,omitzero"`
	// ControlGroup names a group (or a numeric gid) whose members may use
	// the control socket besides root; "": root only.
	ControlGroup string      `json:"control_group,omitzero"`
	Admin        Admin       `json:"admin,omitzero"`
	PortMapping  PortMapping `json:"port_mapping,omitzero"`
}

// LAN is the inside interface.
type LAN struct {
	Interface string `json:"interface,omitzero"`
	Address   string `json:"address,omitzero"` // router address with prefix length, e.g. 192.168.50.1/24
	MTU       int    `json:"mtu,omitzero"`
}

// WAN is the outside interface.
type WAN struct {
	Interface string `json:"interface,omitzero"`
	Address   string `json:"address,omitzero"`
	Gateway   string `json:"gateway,omitzero"` // next hop off the WAN prefix; empty: none
	MTU       int    `json:"mtu,omitzero"`
}

// NAT holds the translation settings.
type NAT struct {
	Filtering          string   `json:"filtering,omitzero"`
	PortRange          string   `json:"port_range,omitzero"`
	MaxFlows           int      `json:"max_flows,omitzero"`
	MaxFlowsPerHost    int      `json:"max_flows_per_host,omitzero"`
	MaxFlowsPerRule    int      `json:"max_flows_per_rule,omitzero"` // inbound flows of each port forward and of the DMZ
	MSSClamp           int      `json:"mss_clamp,omitzero"`
	Timeouts           Timeouts `json:"timeouts,omitzero"`
	AllowShortTimeouts bool     `json:"allow_short_timeouts,omitzero"`
}

// Passthrough switches VPN passthrough per protocol; an absent field is
// on, as on home routers (alg.All describes each).
type Passthrough struct {
	IPsec *bool `json:"ipsec,omitzero"` // IKE on UDP 500, NAT-T on UDP 4500, raw ESP
	PPTP  *bool `json:"pptp,omitzero"`  // TCP 1723 and GRE; PPTP itself is obsolete and insecure
	L2TP  *bool `json:"l2tp,omitzero"`  // UDP 1701
	// PPPoE is the PPPoE relay (ethertypes 0x8863/0x8864 between LAN
	// hosts and access concentrators on the WAN); absent means off, as on
	// routers that have one.
	PPPoE *bool `json:"pppoe,omitzero"`
}

// Helpers switches the application-level gateways (alg.All describes
// each); an absent field takes the helper's default: FTP and TFTP on, SIP, RTSP and H.323 off (RFC 4787
// REQ-10 asks that helpers other than FTP be off unless wanted).
type Helpers struct {
	FTP  *bool `json:"ftp,omitzero"`
	TFTP *bool `json:"tftp,omitzero"`
	SIP  *bool `json:"sip,omitzero"`
	RTSP *bool `json:"rtsp,omitzero"`
	H323 *bool `json:"h323,omitzero"`
}

// Switch returns the file's field of a switch by its name (alg.All's
// names, and "pppoe" for the relay) and the field's path for errors;
// ok is false for a name the file has no field for.
func (c *Config) Switch(name string) (field **bool, path string, ok bool) {
	p, h := &c.Passthrough, &c.Helpers
	switch name {
	case "ipsec":
		return &p.IPsec, "passthrough.ipsec", true
	case "pptp":
		return &p.PPTP, "passthrough.pptp", true
	case "l2tp":
		return &p.L2TP, "passthrough.l2tp", true
	case "pppoe":
		return &p.PPPoE, "passthrough.pppoe", true
	case "ftp":
		return &h.FTP, "helpers.ftp", true
	case "tftp":
		return &h.TFTP, "helpers.tftp", true
	case "sip":
		return &h.SIP, "helpers.sip", true
	case "rtsp":
		return &h.RTSP, "helpers.rtsp", true
	case "h323":
		return &h.H323, "helpers.h323", true
	}
	return nil, "", false
}

// Timeouts are Go durations ("5m", "2h4m", "30s").
type Timeouts struct {
	UDP            string `json:"udp,omitzero"`
	TCPEstablished string `json:"tcp_established,omitzero"`
	// TCPOpening and TCPClosing are the opening and closing phases'
	// timeouts (RFC 7857 section 2.1); either left out is TCPTransitory.
	TCPOpening    string `json:"tcp_opening,omitzero"`
	TCPClosing    string `json:"tcp_closing,omitzero"`
	TCPTransitory string `json:"tcp_transitory,omitzero"`
	TCPClosed     string `json:"tcp_closed,omitzero"`
	ICMP          string `json:"icmp,omitzero"`
}

// PortForward forwards inbound traffic on outside ports to a LAN host.
type PortForward struct {
	Name        string   `json:"name"`                 // unique among the forwards; letters, digits, space, . _ -
	Proto       string   `json:"proto"`                // tcp or udp
	OutsidePort PortSpec `json:"outside_port"`         // 8080 or "8000-8010"
	Host        string   `json:"host"`                 // the LAN host
	InsidePort  int      `json:"inside_port,omitzero"` // first inside port; default: the first outside port
}

// InsidePorts is the inside port or range a rule forwards to, as the
// admin page and the CLI show it: "1000-1535" for outside 65000-65535 to
// inside port 1000, "80" for one port, "" when it is the outside one (no
// inside_port). An outside port Validate would refuse gives the first
// inside port alone.
func (pf PortForward) InsidePorts() string {
	if pf.InsidePort == 0 {
		return ""
	}
	lo, hi, err := parsePortRange(string(pf.OutsidePort))
	if err != nil || hi == lo {
		return strconv.Itoa(pf.InsidePort)
	}
	return strconv.Itoa(pf.InsidePort) + "-" + strconv.Itoa(pf.InsidePort+int(hi-lo))
}

// Admin is the admin plane: the web page, the REST API and /metrics, served
// on the LAN address only.
type Admin struct {
	// Enabled turns the admin server on; default true when passgate runs
	// with a configuration file (it saves changes there).
	Enabled *bool `json:"enabled,omitzero"`
	// Listen is ADDRESS:PORT; the address must be the LAN address or
	// 127.0.0.1. Default: the LAN address, port 8080.
	Listen string `json:"listen,omitzero"`
	// TLSCert and TLSKey are the PEM files of the admin server's own
	// certificate (both or neither); default: a self-signed one made at
	// first start next to the authentication state file.
	TLSCert string `json:"tls_cert,omitzero"`
	TLSKey  string `json:"tls_key,omitzero"`
	// MaxConnections caps the admin server's open connections; default
	// DefaultAdminMaxConnections.
	MaxConnections int `json:"max_connections,omitzero"`
	// MetricsLocalhost opens /metrics without a token to clients on
	// 127.0.0.1 (a Prometheus on the router itself); default false.
	MetricsLocalhost bool `json:"metrics_localhost,omitzero"`
}

// PortMapping lets LAN applications open their own port forwards with
// PCP, NAT-PMP or UPnP IGD. All three are off by default: once on, any
// program on the LAN can open the router to the Internet.
type PortMapping struct {
	PCP           bool   `json:"pcp,omitzero"`
	NATPMP        bool   `json:"natpmp,omitzero"`
	UPnP          bool   `json:"upnp,omitzero"`
	MaxLease      string `json:"max_lease,omitzero"`       // longest lease granted; default 2h
	MaxPerHost    int    `json:"max_per_host,omitzero"`    // mappings a LAN host may hold; default 32
	AllowLowPorts bool   `json:"allow_low_ports,omitzero"` // outside ports below 1024
	// MaxMappings bounds the mappings of all LAN hosts together; default
	// 1024.
	MaxMappings int `json:"max_mappings,omitzero"`
	// AllowThirdParty lets a LAN host map ports for another LAN host with
	// PCP's THIRD_PARTY option; default false (NOT_AUTHORIZED).
	AllowThirdParty bool `json:"allow_third_party,omitzero"`
}

// PortSpec is a port or a port range, written as a JSON number (8080) or
// string ("8080", "8000-8010"). It keeps the text; Validate parses it, so
// its errors can name the field.
type PortSpec string

// UnmarshalJSON accepts a number or a string.
func (p *PortSpec) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = PortSpec(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*p = ""
		return nil
	}
	// Anything else is kept verbatim (a number, or garbage Validate names).
	*p = PortSpec(b)
	return nil
}

// MarshalJSON writes a single port as a number, a range as a string.
func (p PortSpec) MarshalJSON() ([]byte, error) {
	if n, err := strconv.Atoi(string(p)); err == nil {
		return []byte(strconv.Itoa(n)), nil
	}
	return json.Marshal(string(p))
}

// Load reads and decodes a configuration file. It does not validate; call
// Validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration strictly: unknown fields, wrong types and
// trailing data are errors naming the field (or the line and column).
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := Decode(data, &c, ""); err != nil {
		return nil, err
	}
	return &c, nil
}

// Decode decodes one JSON value strictly into v (a pointer), as Parse does
// for a whole configuration: unknown fields, wrong types and trailing data
// are Errors naming the field. Field names start with prefix, so a part of
// the configuration decoded on its own (a port forward sent to the REST
// API) is named as it is in the file, e.g. "port_forwards[2].inside_port".
func Decode(data []byte, v any, prefix string) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return fmt.Errorf("config: Decode needs a pointer, got %T", v)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(data, t.Elem(), prefix, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		off := dec.InputOffset()
		return Errors{{Field: position(data, off), Msg: "unexpected data after the JSON object"}}
	}
	return nil
}

// Clone returns a deep copy: Validate fills defaults in place, and the
// switches are pointers.
func (c Config) Clone() Config {
	c.PortForwards = slices.Clone(c.PortForwards)
	cloneBool := func(b *bool) *bool {
		if b == nil {
			return nil
		}
		v := *b
		return &v
	}
	c.Passthrough.IPsec = cloneBool(c.Passthrough.IPsec)
	c.Passthrough.PPTP = cloneBool(c.Passthrough.PPTP)
	c.Passthrough.L2TP = cloneBool(c.Passthrough.L2TP)
	c.Passthrough.PPPoE = cloneBool(c.Passthrough.PPPoE)
	c.Admin.Enabled = cloneBool(c.Admin.Enabled)
	c.Offload = cloneBool(c.Offload)
	c.Helpers = Helpers{FTP: cloneBool(c.Helpers.FTP), TFTP: cloneBool(c.Helpers.TFTP), SIP: cloneBool(c.Helpers.SIP), RTSP: cloneBool(c.Helpers.RTSP), H323: cloneBool(c.Helpers.H323)}
	return c
}

// Marshal renders c as the file holds it: indented JSON with a final
// newline, zero fields left out.
func (c *Config) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return append(b, '\n'), nil
}

// FieldError is one problem with one field.
type FieldError struct {
	Field string // dotted path, e.g. port_forwards[1].outside_port; or line:col for syntax errors
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Errors is every problem found, in file order.
type Errors []*FieldError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find each FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// AsErrors extracts the field errors of err (nil if it carries none).
func AsErrors(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return Errors{fe}
	}
	return nil
}

func decodeError(data []byte, t reflect.Type, prefix string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return Errors{{Field: position(data, syn.Offset), Msg: "invalid JSON: " + syn.Error()}}
	case errors.As(err, &typ):
		field := typ.Field
		if p := fieldPath(data, t, typ.Offset); field != "" && stripIndexes(p) == field {
			field = p // the same field, with array indexes
		}
		if field == "" && prefix == "" {
			field = "(top level)"
		}
		return Errors{{Field: joinPath(prefix, field), Msg: fmt.Sprintf("expected %s, got JSON %s", typeName(typ.Type.Kind().String()), typ.Value)}}
	case errors.Is(err, io.EOF):
		return Errors{{Field: "(file)", Msg: "empty; a JSON object is required"}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errors{{Field: position(data, int64(len(data))), Msg: "invalid JSON: unexpected end of input"}}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		p := unknownFieldPath(data, t, name)
		if p == "" {
			p = name
		}
		if p == "" || strings.HasSuffix(p, ".") {
			p += `""` // a key that is the empty string
		}
		return Errors{{Field: joinPath(prefix, p), Msg: "unknown field"}}
	}
	return fmt.Errorf("decode: %w", err)
}

// joinPath joins a prefix and a field path: "a" + "b" is "a.b", "a" + "[1]"
// is "a[1]".
func joinPath(prefix, p string) string {
	switch {
	case prefix == "":
		return p
	case p == "":
		return prefix
	case strings.HasPrefix(p, "["):
		return prefix + p
	}
	return prefix + "." + p
}

func stripIndexes(p string) string {
	var b strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func typeName(kind string) string {
	switch kind {
	case "int", "int64", "uint16", "uint8":
		return "a whole number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return kind
}

// position turns a byte offset into "line L, column C".
func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("line %d, column %d", line, col)
}
