// Package alg lists passgate's protocol helpers: the VPN passthroughs
// (alg/ipsec, alg/pptp, alg/l2tp) and the application-level gateways
// (alg/sip, alg/rtsp, alg/h323, alg/ftp, alg/tftp). Each is a nat.Helper
// in a package of its own. All is the one list of their names, labels and
// descriptions that the admin page, the API, the CLI and the configuration
// use; Helpers makes fresh instances for an engine, in the same order.
package alg

import (
	"passgate/alg/ftp"
	"passgate/alg/h323"
	"passgate/alg/ipsec"
	"passgate/alg/l2tp"
	"passgate/alg/pptp"
	"passgate/alg/rtsp"
	"passgate/alg/sip"
	"passgate/alg/tftp"
	"passgate/nat"
)

// Kinds of helper, as the NAT Passthrough page names them.
const (
	Passthrough = "passthrough" // a VPN passthrough
	Gateway     = "helper"      // an application-level gateway
)

// Info describes one helper for people and the configuration.
type Info struct {
	Name  string // the switch name: the engine's, the API's and the CLI's
	Label string // IPsec, PPTP, H.323, ...
	Kind  string // Passthrough or Gateway
	// Description is one honest line of what it does, and why its default
	// is what it is.
	Description string
	// Warning is what people must know before switching it on.
	Warning string
	// Note is the few words `passgate status` shows beside it.
	Note string
	// Obsolete marks a protocol people should move away from.
	Obsolete bool
	// DefaultOn is the helper's default (its nat.Helper's DefaultOn).
	DefaultOn bool
	// New makes an instance for one engine.
	New func() nat.Helper
}

var all = []Info{
	{
		Name: "ipsec", Label: "IPsec", Kind: Passthrough, DefaultOn: true,
		Note:        "IKE 500, NAT-T 4500, ESP; AH cannot cross NAT",
		Description: "Lets LAN hosts reach IPsec VPN servers: IKE (UDP 500) and NAT-T (UDP 4500) pass and raw ESP is followed by SPI; AH cannot cross NAT (it signs the IP addresses) and is always dropped. On by default, as on home routers.",
		New:         func() nat.Helper { return &ipsec.Helper{} },
	},
	{
		Name: "pptp", Label: "PPTP", Kind: Passthrough, DefaultOn: true, Obsolete: true,
		Note:        "obsolete and insecure (MS-CHAPv2 is broken); prefer IPsec or WireGuard",
		Description: "PPTP is obsolete and insecure: its MS-CHAPv2 authentication can be cracked; use it only for legacy servers (passthrough follows TCP 1723 and its GRE tunnel). On by default, as on home routers.",
		Warning:     "Obsolete and insecure: prefer IPsec or WireGuard.",
		New:         func() nat.Helper { return &pptp.Helper{} },
	},
	{
		Name: "l2tp", Label: "L2TP", Kind: Passthrough, DefaultOn: true,
		Note:        "UDP 1701",
		Description: "Lets LAN hosts reach L2TP VPN servers on UDP 1701, telling tunnels apart by tunnel id; L2TP is usually carried in IPsec, which needs IPsec passthrough too. On by default, as on home routers.",
		New:         func() nat.Helper { return &l2tp.Helper{} },
	},
	{
		Name: "sip", Label: "SIP", Kind: Gateway, DefaultOn: false,
		Description: "SIP helper (UDP/TCP 5060): rewrites a LAN phone's SIP and SDP addresses and opens its RTP ports so calls get audio. Off by default: RFC 4787 (REQ-10) and RFC 5382 ask that helpers other than FTP be off unless wanted, and a SIP helper that breaks calls is what users complain of most.",
		New:         func() nat.Helper { return &sip.Helper{} },
	},
	{
		Name: "rtsp", Label: "RTSP", Kind: Gateway, DefaultOn: false,
		Description: "RTSP helper (TCP 554 and 8554): opens the UDP ports a stream's SETUP negotiates. Off by default, as RFC 4787 (REQ-10) and RFC 5382 ask of helpers other than FTP; players fall back to RTP over TCP.",
		New:         func() nat.Helper { return &rtsp.Helper{} },
	},
	{
		Name: "h323", Label: "H.323", Kind: Gateway, DefaultOn: false,
		Description: "H.323 helper (TCP 1720, and RAS registrations on UDP 1719): follows call signalling and H.245 to open the media ports of calls, and lets a gatekeeper's calls reach an endpoint registered with it. Off by default, as RFC 4787 (REQ-10) and RFC 5382 ask of helpers other than FTP.",
		New:         func() nat.Helper { return &h323.Helper{} },
	},
	{
		Name: "ftp", Label: "FTP", Kind: Gateway, DefaultOn: true,
		Description: "FTP helper (TCP 21): rewrites PORT/EPRT and passive replies so FTP data connections work. On by default, as on home routers and as RFC 4787/5382 allow for FTP; passive FTP works without it.",
		New:         func() nat.Helper { return &ftp.Helper{} },
	},
	{
		Name: "tftp", Label: "TFTP", Kind: Gateway, DefaultOn: true,
		Description: "TFTP helper (UDP 69): lets a TFTP server's answers, which come from a new port, back in; nothing is rewritten. On by default, as on home routers.",
		New:         func() nat.Helper { return &tftp.Helper{} },
	},
}

// All describes every helper, in the order the NAT Passthrough page
// shows them and the engine asks them: IPsec, PPTP, L2TP, SIP, RTSP,
// H.323, FTP, TFTP. The slice is the caller's.
func All() []Info { return append([]Info(nil), all...) }

// ByName finds a helper's description.
func ByName(name string) (Info, bool) {
	for _, a := range all {
		if a.Name == name {
			return a, true
		}
	}
	return Info{}, false
}

// Names lists the helpers' switch names, in All's order.
func Names() []string {
	out := make([]string, len(all))
	for i, a := range all {
		out[i] = a.Name
	}
	return out
}

// On resolves a helper's switch in an engine configuration.
func (a Info) On(cfg nat.Config) bool {
	if s, ok := cfg.Helpers[a.Name]; ok {
		return s.Enabled(a.DefaultOn)
	}
	return a.DefaultOn
}

// Helpers returns one fresh instance of every helper, in All's order, for
// nat.Engine.RegisterHelpers.
func Helpers() []nat.Helper {
	out := make([]nat.Helper, len(all))
	for i, a := range all {
		out[i] = a.New()
	}
	return out
}
