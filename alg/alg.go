// Package alg lists passgate's application-level gateways. Each protocol
// has a package of its own (alg/ftp, ...; alg/ipsec, alg/l2tp and alg/pptp
// hold the VPN passthrough wire formats the engine uses directly); All
// returns fresh instances in the fixed order the engine asks them about new
// flows.
package alg

import (
	"passgate/alg/ftp"
	"passgate/alg/h323"
	"passgate/alg/rtsp"
	"passgate/alg/sip"
	"passgate/alg/tftp"
	"passgate/nat"
)

// All returns one instance of every helper.
func All() []nat.Helper {
	return []nat.Helper{&ftp.Helper{}, &sip.Helper{}, &tftp.Helper{}, &rtsp.Helper{}, &h323.Helper{}}
}
