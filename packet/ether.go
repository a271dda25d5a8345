package packet

import (
	"encoding/binary"
	"net"
)

// MAC is an Ethernet address.
type MAC [6]byte

// Broadcast is the Ethernet broadcast address.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// String formats the address as six colon-separated hex octets.
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// MACFrom converts a net.HardwareAddr of length 6; ok is false otherwise.
func MACFrom(hw net.HardwareAddr) (m MAC, ok bool) {
	if len(hw) != 6 {
		return m, false
	}
	return MAC(hw), true
}

// EtherTypes passgate handles.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100
)

// EtherHeaderLen is the length of an untagged Ethernet II header.
const EtherHeaderLen = 14

// Ether is a view over an Ethernet II frame, header first.
type Ether []byte

// ParseEther returns the view if b holds at least a full Ethernet header.
func ParseEther(b []byte) (Ether, bool) {
	if len(b) < EtherHeaderLen {
		return nil, false
	}
	return Ether(b), true
}

// Dst is the destination address.
func (e Ether) Dst() MAC { return MAC(e[0:6]) }

// Src is the source address.
func (e Ether) Src() MAC { return MAC(e[6:12]) }

// Type is the EtherType.
func (e Ether) Type() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// Payload is everything after the header.
func (e Ether) Payload() []byte { return e[EtherHeaderLen:] }

// SetDst writes the destination address.
func (e Ether) SetDst(m MAC) { copy(e[0:6], m[:]) }

// SetSrc writes the source address.
func (e Ether) SetSrc(m MAC) { copy(e[6:12], m[:]) }

// SetType writes the EtherType.
func (e Ether) SetType(t uint16) { binary.BigEndian.PutUint16(e[12:14], t) }

// SetHeader writes the whole header at once.
func (e Ether) SetHeader(dst, src MAC, typ uint16) {
	_ = e[13]
	copy(e[0:6], dst[:])
	copy(e[6:12], src[:])
	binary.BigEndian.PutUint16(e[12:14], typ)
}

// ARP operation codes.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// ARPLen is the length of an Ethernet/IPv4 ARP packet.
const ARPLen = 28

// MinFrameLen is the minimum Ethernet frame length without the FCS; frames
// passgate builds are padded to it.
const MinFrameLen = 60

// ARP is a view over an Ethernet/IPv4 ARP packet (RFC 826).
type ARP []byte

// ParseARP returns the view if b is an ARP packet for Ethernet and IPv4
// (hardware type 1, protocol 0x0800, lengths 6 and 4).
func ParseARP(b []byte) (ARP, bool) {
	if len(b) < ARPLen {
		return nil, false
	}
	a := ARP(b[:ARPLen])
	if a.HardwareType() != 1 || a.ProtocolType() != EtherTypeIPv4 || a[4] != 6 || a[5] != 4 {
		return nil, false
	}
	return a, true
}

// HardwareType is the htype field (1 for Ethernet).
func (a ARP) HardwareType() uint16 { return binary.BigEndian.Uint16(a[0:2]) }

// ProtocolType is the ptype field (0x0800 for IPv4).
func (a ARP) ProtocolType() uint16 { return binary.BigEndian.Uint16(a[2:4]) }

// Op is the operation: ARPRequest or ARPReply.
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[6:8]) }

// SenderMAC is the sender hardware address.
func (a ARP) SenderMAC() MAC { return MAC(a[8:14]) }

// SenderIP is the sender protocol address.
func (a ARP) SenderIP() [4]byte { return [4]byte(a[14:18]) }

// TargetMAC is the target hardware address.
func (a ARP) TargetMAC() MAC { return MAC(a[18:24]) }

// TargetIP is the target protocol address.
func (a ARP) TargetIP() [4]byte { return [4]byte(a[24:28]) }

// Set writes a complete Ethernet/IPv4 ARP packet into a (which must be at
// least ARPLen long).
func (a ARP) Set(op uint16, sha MAC, spa [4]byte, tha MAC, tpa [4]byte) {
	_ = a[ARPLen-1]
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], EtherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], sha[:])
	copy(a[14:18], spa[:])
	copy(a[18:24], tha[:])
	copy(a[24:28], tpa[:])
}

// BuildARP writes a whole ARP frame (Ethernet header, ARP packet, padding to
// MinFrameLen) into b and returns the frame; b must have room for
// MinFrameLen bytes.
func BuildARP(b []byte, ethDst, ethSrc MAC, op uint16, sha MAC, spa [4]byte, tha MAC, tpa [4]byte) []byte {
	f := b[:MinFrameLen]
	Ether(f).SetHeader(ethDst, ethSrc, EtherTypeARP)
	ARP(f[EtherHeaderLen:]).Set(op, sha, spa, tha, tpa)
	clear(f[EtherHeaderLen+ARPLen:])
	return f
}
