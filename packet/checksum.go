// Package packet owns passgate's views over raw packet bytes: Ethernet II
// headers and Ethernet/IPv4 ARP packets, IPv4 (with options and
// fragments), TCP, UDP and ICMP, read and rewritten in place, and
// the Internet checksum with its incremental update (RFC 1071, RFC 1624).
//
// A view is a named []byte: accessors read the wire format directly and
// setters write it back, so nothing is copied or allocated. Parsing checks
// only what the accessors need to stay in bounds; semantic checks belong to
// the caller.
package packet

import "encoding/binary"

// Sum adds b to the ones'-complement accumulator sum, as 16-bit big-endian
// words (an odd trailing byte is padded with zero). The result is unfolded.
func Sum(b []byte, sum uint32) uint32 {
	acc := uint64(sum)
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	for acc>>32 != 0 {
		acc = (acc & 0xffffffff) + acc>>32
	}
	return uint32(acc)
}

// Fold folds the accumulator to 16 bits and complements it: the value that
// goes into a checksum field.
func Fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + sum>>16
	}
	return ^uint16(sum)
}

// Checksum is the Internet checksum of b.
func Checksum(b []byte) uint16 { return Fold(Sum(b, 0)) }

// PseudoHeaderSum is the unfolded sum of the IPv4 pseudo-header used by TCP
// and UDP.
func PseudoHeaderSum(src, dst [4]byte, proto uint8, length int) uint32 {
	s := uint32(src[0])<<8 | uint32(src[1])
	s += uint32(src[2])<<8 | uint32(src[3])
	s += uint32(dst[0])<<8 | uint32(dst[1])
	s += uint32(dst[2])<<8 | uint32(dst[3])
	s += uint32(proto)
	s += uint32(length)
	return s
}

// Update16 returns checksum hc after one 16-bit word of the covered data
// changed from old to new (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
func Update16(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	s = (s & 0xffff) + s>>16
	s = (s & 0xffff) + s>>16
	return ^uint16(s)
}

// Update32 returns checksum hc after a 32-bit field (an IPv4 address)
// changed from old to new.
func Update32(hc uint16, old, new [4]byte) uint16 {
	s := uint32(^hc)
	s += uint32(^(uint16(old[0])<<8 | uint16(old[1])))
	s += uint32(^(uint16(old[2])<<8 | uint16(old[3])))
	s += uint32(uint16(new[0])<<8 | uint16(new[1]))
	s += uint32(uint16(new[2])<<8 | uint16(new[3]))
	s = (s & 0xffff) + s>>16
	s = (s & 0xffff) + s>>16
	return ^uint16(s)
}
