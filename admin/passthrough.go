package admin

import (
	"fmt"

	"passgate/alg"
	"passgate/config"
)

// Passthrough is one switch of the NAT Passthrough page. A helper that
// this build does not have is listed with Available false, never faked.
type Passthrough struct {
	Name        string `json:"name"`        // ipsec, pptp, l2tp, sip, rtsp, h323, ftp, tftp, pppoe
	Label       string `json:"label"`       // IPsec, PPTP, ...
	Description string `json:"description"` // one honest line of what it does, and why its default is what it is
	Available   bool   `json:"available"`   // built into this version
	On          bool   `json:"on"`          // switched on (false when not available)
	Default     bool   `json:"default"`
	Warning     string `json:"warning,omitempty"`
}

type passthroughDef struct {
	name, label, kind, description, warning string
	def                                     bool // default for the VPN switches and the relay; helpers say their own
	// field is the configuration file's switch for it.
	field func(c *config.Config) **bool
	// helper: an application-level gateway, available when the build
	// registers one of this name (alg.All).
	helper bool
	// fieldName is the configuration field, for errors.
	fieldName string
}

var passthroughDefs = []passthroughDef{
	{
		name: "ipsec", label: "IPsec", kind: "passthrough", def: true, fieldName: "passthrough.ipsec",
		description: "Lets LAN hosts reach IPsec VPN servers: IKE (UDP 500) and NAT-T (UDP 4500) pass and raw ESP is followed by SPI; AH cannot cross NAT (it signs the IP addresses) and is always dropped. On by default, as on home routers.",
		field:       func(c *config.Config) **bool { return &c.Passthrough.IPsec },
	},
	{
		name: "pptp", label: "PPTP", kind: "passthrough", def: true, fieldName: "passthrough.pptp",
		description: "PPTP is obsolete and insecure: its MS-CHAPv2 authentication can be cracked; use it only for legacy servers (passthrough follows TCP 1723 and its GRE tunnel). On by default, as on home routers.",
		warning:     "Obsolete and insecure: prefer IPsec or WireGuard.",
		field:       func(c *config.Config) **bool { return &c.Passthrough.PPTP },
	},
	{
		name: "l2tp", label: "L2TP", kind: "passthrough", def: true, fieldName: "passthrough.l2tp",
		description: "Lets LAN hosts reach L2TP VPN servers on UDP 1701, telling tunnels apart by tunnel id; L2TP is usually carried in IPsec, which needs IPsec passthrough too. On by default, as on home routers.",
		field:       func(c *config.Config) **bool { return &c.Passthrough.L2TP },
	},
	{
		name: "sip", label: "SIP", kind: "helper", helper: true, fieldName: "helpers.sip",
		description: "SIP helper (UDP/TCP 5060): rewrites a LAN phone's SIP and SDP addresses and opens its RTP ports so calls get audio. Off by default: RFC 4787 (REQ-10) and RFC 5382 ask that helpers other than FTP be off unless wanted, and a SIP helper that breaks calls is what users complain of most.",
		field:       func(c *config.Config) **bool { return &c.Helpers.SIP },
	},
	{
		name: "rtsp", label: "RTSP", kind: "helper", helper: true, fieldName: "helpers.rtsp",
		description: "RTSP helper (TCP 554): opens the UDP ports a stream's SETUP negotiates. Off by default, as RFC 4787 (REQ-10) and RFC 5382 ask of helpers other than FTP; players fall back to RTP over TCP.",
		field:       func(c *config.Config) **bool { return &c.Helpers.RTSP },
	},
	{
		name: "h323", label: "H.323", kind: "helper", helper: true, fieldName: "helpers.h323",
		description: "H.323 helper (TCP 1720): follows call signalling and H.245 to open the media ports of calls (RAS on UDP 1719 is not handled). Off by default, as RFC 4787 (REQ-10) and RFC 5382 ask of helpers other than FTP.",
		field:       func(c *config.Config) **bool { return &c.Helpers.H323 },
	},
	{
		name: "ftp", label: "FTP", kind: "helper", helper: true, fieldName: "helpers.ftp",
		description: "FTP helper (TCP 21): rewrites PORT/EPRT and passive replies so FTP data connections work. On by default, as on home routers and as RFC 4787/5382 allow for FTP; passive FTP works without it.",
		field:       func(c *config.Config) **bool { return &c.Helpers.FTP },
	},
	{
		name: "tftp", label: "TFTP", kind: "helper", helper: true, fieldName: "helpers.tftp",
		description: "TFTP helper (UDP 69): lets a TFTP server's answers, which come from a new port, back in; nothing is rewritten. On by default, as on home routers.",
		field:       func(c *config.Config) **bool { return &c.Helpers.TFTP },
	},
	{
		name: "pppoe", label: "PPPoE relay", def: false, fieldName: "passthrough.pppoe",
		description: "PPPoE relay: relays PPPoE discovery and session frames so a LAN host can dial its own PPPoE session through the router. Off by default, as on routers that have one.",
		field:       func(c *config.Config) **bool { return &c.Passthrough.PPPoE },
	},
}

// builtHelpers are the helpers this build registers, by name, with their
// defaults.
var builtHelpers = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range alg.All() {
		m[h.Name()] = h.DefaultOn()
	}
	return m
}()

func passthroughByName(name string) (passthroughDef, bool) {
	for _, d := range passthroughDefs {
		if d.name == name {
			return d, true
		}
	}
	return passthroughDef{}, false
}

func passthroughNames() []string {
	out := make([]string, len(passthroughDefs))
	for i, d := range passthroughDefs {
		out[i] = d.name
	}
	return out
}

// available says whether the switch works in this build and this Service,
// and why not.
func (s *Service) available(d passthroughDef) (bool, string) {
	switch {
	case d.helper:
		if _, ok := builtHelpers[d.name]; !ok {
			return false, fmt.Sprintf("the %s helper is not built into this version of passgate yet", d.label)
		}
	case d.name == "pppoe":
		if s.setPPPoE == nil {
			return false, "the PPPoE relay is not available in this gateway"
		}
	}
	return true, ""
}

// defaultOn is the switch's default.
func (d passthroughDef) defaultOn() bool {
	if d.helper {
		return builtHelpers[d.name]
	}
	return d.def
}

// isOn is the switch's state in a configuration.
func (d passthroughDef) isOn(c *config.Config) bool {
	if b := *d.field(c); b != nil {
		return *b
	}
	return d.defaultOn()
}

// Passthroughs lists every switch the page shows, built or not, in page
// order: IPsec, PPTP, L2TP, SIP, RTSP, H.323, FTP, TFTP, PPPoE relay.
func (s *Service) Passthroughs() []Passthrough {
	s.mu.Lock()
	eff := s.eff.Clone()
	s.mu.Unlock()
	out := make([]Passthrough, 0, len(passthroughDefs))
	for _, d := range passthroughDefs {
		e := Passthrough{Name: d.name, Label: d.label, Description: d.description, Default: d.defaultOn(), Warning: d.warning}
		ok, why := s.available(d)
		e.Available = ok
		if ok {
			e.On = d.isOn(&eff)
		} else if e.Warning == "" {
			e.Warning = "Not available yet: " + why + "."
		}
		out = append(out, e)
	}
	return out
}

// switchChanges describes the switches that differ between two effective
// configurations: "PPTP passthrough: on -> off", "SIP helper: off -> on",
// "PPPoE relay: off -> on".
func switchChanges(old, nw *config.Config) Changes {
	var ch Changes
	for _, d := range passthroughDefs {
		if w, i := d.isOn(old), d.isOn(nw); w != i {
			what := d.label
			if d.kind != "" {
				what += " " + d.kind
			}
			ch = append(ch, fmt.Sprintf("%s: %s -> %s", what, onOff(w), onOff(i)))
		}
	}
	return ch
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
