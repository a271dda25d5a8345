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
	def                                     bool
}

// passthroughDefs are the page's switches: every helper alg.All lists,
// then the PPPoE relay, which is no helper.
var passthroughDefs = func() []passthroughDef {
	var defs []passthroughDef
	for _, a := range alg.All() {
		defs = append(defs, passthroughDef{name: a.Name, label: a.Label, kind: a.Kind, description: a.Description, warning: a.Warning, def: a.DefaultOn})
	}
	return append(defs, passthroughDef{
		name: "pppoe", label: "PPPoE relay", def: false,
		description: "PPPoE relay: relays PPPoE discovery and session frames so a LAN host can dial its own PPPoE session through the router. Off by default, as on routers that have one.",
	})
}()

// field is the configuration file's switch.
func (d passthroughDef) field(c *config.Config) **bool {
	f, _, _ := c.Switch(d.name)
	return f
}

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

// available says whether the switch works in this Service, and why not:
// every helper is built in; the PPPoE relay needs a gateway that has one.
func (s *Service) available(d passthroughDef) (bool, string) {
	if d.name == "pppoe" && s.setPPPoE == nil {
		return false, "the PPPoE relay is not available in this gateway"
	}
	return true, ""
}

// defaultOn is the switch's default.
func (d passthroughDef) defaultOn() bool { return d.def }

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
