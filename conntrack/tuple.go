// Package conntrack owns passgate's flow table: the generalised tuple, flows
// indexed by both their original and their reply tuple, expectations,
// per-flow state and deadlines, the table and per-LAN-host limits, and
// expiry on a timing wheel whose cost follows what expires.
//
// The table is not safe for concurrent use; its owner (the NAT engine)
// serialises access. Time is whatever int64 clock the owner passes in.
package conntrack

import (
	"fmt"
	"net/netip"
)

// Tuple identifies one direction of a flow as it is seen arriving on Side.
// IDs are ports for TCP and UDP, the query id for ICMP (SrcID for requests,
// DstID for replies), and whatever a helper supplies for other protocols
// (GRE key, ESP SPI half, IKE SPI, L2TP tunnel id).
//
// The field order leaves no padding, so the map hashes it as plain memory.
type Tuple struct {
	Src, Dst     [4]byte
	SrcID, DstID uint16
	Proto        uint8
	Side         uint8
}

func (t Tuple) String() string {
	return fmt.Sprintf("%d/%d %s:%d>%s:%d", t.Proto, t.Side,
		netip.AddrFrom4(t.Src), t.SrcID, netip.AddrFrom4(t.Dst), t.DstID)
}

// SrcAddrPort and DstAddrPort are conveniences for the control plane.
func (t Tuple) SrcAddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(t.Src), t.SrcID)
}

func (t Tuple) DstAddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(t.Dst), t.DstID)
}
