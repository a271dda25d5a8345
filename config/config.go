// Package config owns passgate's configuration file: its JSON schema, strict
// decoding (unknown fields are errors), defaults, validation with errors that
// name the offending field (e.g. "port_forwards[1].outside_port: 70000 out
// of range 1-65535"), and the conversion into the engine's nat.Config and
// the data plane's router.Options.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// DefaultControlSocket is where the control API listens unless configured.
const DefaultControlSocket = "/run/passgate/passgate.sock"

// Config is the configuration file, field for field.
type Config struct {
	LAN           LAN           `json:"lan"`
	WAN           WAN           `json:"wan"`
	NAT           NAT           `json:"nat"`
	Passthrough   Passthrough   `json:"passthrough"`
	PortForwards  []PortForward `json:"port_forwards"`
	DMZ           string        `json:"dmz"`
	Workers       int           `json:"workers"`
	ControlSocket string        `json:"control_socket"`
}

// LAN is the inside interface.
type LAN struct {
	Interface string `json:"interface"`
	Address   string `json:"address"` // router address with prefix length, e.g. 192.168.50.1/24
	MTU       int    `json:"mtu"`
}

// WAN is the outside interface.
type WAN struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`
	Gateway   string `json:"gateway"` // next hop off the WAN prefix; empty: none
	MTU       int    `json:"mtu"`
}

// NAT holds the translation settings.
type NAT struct {
	Filtering          string   `json:"filtering"`
	PortRange          string   `json:"port_range"`
	MaxFlows           int      `json:"max_flows"`
	MaxFlowsPerHost    int      `json:"max_flows_per_host"`
	MSSClamp           int      `json:"mss_clamp"`
	Timeouts           Timeouts `json:"timeouts"`
	AllowShortTimeouts bool     `json:"allow_short_timeouts"`
}

// Passthrough switches VPN passthrough per protocol; an absent field is
// on, as on home routers.
type Passthrough struct {
	IPsec *bool `json:"ipsec"` // IKE on UDP 500, NAT-T on UDP 4500, raw ESP
	PPTP  *bool `json:"pptp"`  // TCP 1723 and GRE; PPTP itself is obsolete and insecure
	L2TP  *bool `json:"l2tp"`  // UDP 1701
}

// Timeouts are Go durations ("5m", "2h4m", "30s").
type Timeouts struct {
	UDP            string `json:"udp"`
	TCPEstablished string `json:"tcp_established"`
	TCPTransitory  string `json:"tcp_transitory"`
	TCPClosed      string `json:"tcp_closed"`
	ICMP           string `json:"icmp"`
}

// PortForward forwards inbound traffic on outside ports to a LAN host.
type PortForward struct {
	Name        string   `json:"name"`
	Proto       string   `json:"proto"`        // tcp or udp
	OutsidePort PortSpec `json:"outside_port"` // 8080 or "8000-8010"
	Host        string   `json:"host"`
	InsidePort  int      `json:"inside_port"` // first inside port; default: the first outside port
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		off := dec.InputOffset()
		return nil, Errors{{Field: position(data, off), Msg: "unexpected data after the configuration object"}}
	}
	return &c, nil
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

func decodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return Errors{{Field: position(data, syn.Offset), Msg: "invalid JSON: " + syn.Error()}}
	case errors.As(err, &typ):
		field := typ.Field
		if p := fieldPath(data, typ.Offset); field != "" && stripIndexes(p) == field {
			field = p // the same field, with array indexes
		}
		if field == "" {
			field = "(top level)"
		}
		return Errors{{Field: field, Msg: fmt.Sprintf("expected %s, got JSON %s", typeName(typ.Type.Kind().String()), typ.Value)}}
	case errors.Is(err, io.EOF):
		return Errors{{Field: "(file)", Msg: "empty; a JSON object is required"}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errors{{Field: position(data, int64(len(data))), Msg: "invalid JSON: unexpected end of input"}}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		if p := unknownFieldPath(data, name); p != "" {
			return Errors{{Field: p, Msg: "unknown field"}}
		}
		return Errors{{Field: name, Msg: "unknown field"}}
	}
	return fmt.Errorf("decode: %w", err)
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
