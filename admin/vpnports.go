package admin

import (
	"fmt"
	"net/netip"
	"strings"

	"passgate/config"
)

// vpnPort is a port a VPN passthrough uses on the public address, which a
// port forward may take too: for a VPN server on the LAN, legitimate, but
// the user is told what it does (forwardNotes).
type vpnPort struct {
	proto string
	port  int
	vpn   string // the passthrough's switch
	what  string // what from the WAN the forward sends to its host
	// lan says how LAN clients' own passthrough fares beside the forward
	// (HOST: the forward's host), as the engine does it (nat
	// SharedReplier; alg/ipsec and alg/l2tp TestIPsecServerBehindForwards,
	// TestL2TPServerBehindForward); off what the forward does with the
	// passthrough switched off (alg/ipsec TestIPsecServerBehindForwardsOff,
	// lab/vpnlab TestPPTPServerBehindForward).
	lan, off string
}

var vpnPorts = []vpnPort{
	{"udp", 500, "ipsec", "IKE",
		"their servers' IKE answers on UDP 500 still reach them (told apart by IKE SPI, or as the one LAN host talking IKE with that server); IKE no LAN client's exchange explains goes to HOST",
		"IKE through the forward still reaches HOST and its answers go back, but no IPsec a LAN host starts leaves (neither LAN clients' nor an exchange HOST starts itself)"},
	{"udp", 4500, "ipsec", "NAT-T (IPsec over UDP)",
		"their NAT-T gets an outside port of its own",
		"NAT-T through the forward still reaches HOST and its answers go back, but no IPsec a LAN host starts leaves (neither LAN clients' nor what HOST starts itself)"},
	{"tcp", 1723, "pptp", "PPTP (control connections; their calls' GRE follows)",
		"they connect from ports of their own and their calls' GRE is told apart by call id",
		"control connections still reach HOST, but no call's GRE crosses: a PPTP server needs PPTP passthrough on too"},
	{"udp", 1701, "l2tp", "L2TP",
		"their servers' answers on UDP 1701 still reach them (told apart by tunnel id, or as the one LAN host talking L2TP with that server); L2TP no LAN client's tunnel explains goes to HOST",
		"L2TP through the forward still reaches HOST and its answers go back, but no L2TP a LAN host starts leaves (neither LAN clients' nor a tunnel HOST starts itself)"},
}

// forwardNotes says, for a port forward c has that covers a port a VPN
// passthrough uses, what it means: one "note: ..." line per such port.
func forwardNotes(c *config.Config, pf config.PortForward) []string {
	lo, hi, ok := portRange(string(pf.OutsidePort))
	if !ok {
		return nil
	}
	host := pf.Host
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	var notes []string
	for _, v := range vpnPorts {
		if !strings.EqualFold(pf.Proto, v.proto) || v.port < lo || v.port > hi {
			continue
		}
		inside := v.port
		if pf.InsidePort != 0 {
			inside = pf.InsidePort + v.port - lo
		}
		d, _ := passthroughByName(v.vpn)
		n := fmt.Sprintf("note: port forward %s takes %s %d, which %s passthrough uses: %s from the WAN to port %d goes to %s:%d (a VPN server there); ",
			pf.Name, strings.ToUpper(v.proto), v.port, d.label, v.what, v.port, host, inside)
		if d.isOn(c) {
			n += fmt.Sprintf("LAN clients' own %s passthrough still works: ", d.label) + strings.ReplaceAll(v.lan, "HOST", host)
		} else {
			n += fmt.Sprintf("%s passthrough is off: ", d.label) + strings.ReplaceAll(v.off, "HOST", host)
		}
		if v.port == 500 && !forwards(c, "udp", 4500, pf.Host) {
			n += fmt.Sprintf("; an IPsec server behind NAT talks NAT-T on UDP 4500: forward that to %s too", host)
		}
		notes = append(notes, n)
	}
	return notes
}

// forwards says whether c forwards proto port to host.
func forwards(c *config.Config, proto string, port int, host string) bool {
	for _, pf := range c.PortForwards {
		lo, hi, ok := portRange(string(pf.OutsidePort))
		if ok && strings.EqualFold(pf.Proto, proto) && port >= lo && port <= hi && sameHost(pf.Host, host) {
			return true
		}
	}
	return false
}

func sameHost(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x == y
}
