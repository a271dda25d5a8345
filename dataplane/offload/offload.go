// Package offload is passgate's flow offload, as routers' flow-offload
// hardware does it: the packets of established TCP and UDP flows are
// rewritten and redirected to the way out inside the XDP program, from a
// BPF hash map the router fills, and never cross into userspace; new
// flows, helpers, fragments, IP options, TTL expiry, TCP SYN/FIN/RST and
// everything else stateful still go to the engine, which alone decides
// what is offloaded and when it stops being. A datagram with DF clear
// whose source an entry rewrites gets a new IP ID from the counters the
// programs share with the engine (IDMap, nat/ipid.go).
//
// A map entry is keyed by a packet's 5-tuple as it arrives (ingress
// ifindex, protocol, source and destination address and port) and holds
// the translated tuple, the RFC 1624 checksum deltas precomputed for the
// IPv4 header (translation and the TTL decrement) and for the transport
// checksum (pseudo-header and ports), the egress ifindex, the next hop's
// and our own MAC, the ingress interface's MAC (the only destination
// forwarded: a frame for another station or a group is not the
// router's), the largest frame the way out takes, and the packets
// and bytes the program forwarded (atomic adds), which the router reads
// back to keep the flow alive in the engine and counted.
//
// Key and Value are encoded in the layout the program reads (Encode);
// Apply rewrites a frame in Go exactly as the program does, for tests.
package offload

import (
	"encoding/binary"

	"passgate/packet"
)

// Sizes of the encoded key and value.
const (
	KeySize   = 20
	ValueSize = 88
)

// Offsets in the encoded value.
const (
	vSrc      = 0  // new source address
	vDst      = 4  // new destination address
	vPorts    = 8  // new source and destination ports, network order
	vIfindex  = 12 // egress ifindex, native order
	vDstMAC   = 16
	vSrcMAC   = 22
	vIPDelta  = 28 // IPv4 header checksum delta, native order, memory-order words
	vL4Delta  = 32 // transport checksum delta, likewise
	vMaxFrame = 36 // largest frame (Ethernet header included) the way out takes
	vPackets  = 40 // forwarded by the program, native order
	vBytes    = 48 // their IPv4 lengths
	// The transport checksum delta split in its pseudo-header part (the
	// addresses) and the ports' part, for the tc program's checksum
	// helpers: a checksum left partial takes only the first.
	vAddrDelta = 56
	vPortDelta = 60
	// What the program saw last of a TCP flow in this direction, native
	// order: where the last segment ended (sequence number plus payload),
	// its acknowledgement and window (unscaled). The router hands them to
	// the engine before it judges an RST, FIN or SYN of the flow
	// (nat.Engine.OffloadResync), whose sequence numbers went by unseen.
	vSeqNext = 64
	vSeqAck  = 68
	vSeqWin  = 72
	// The MAC of the interface the key's packets arrive on: a frame
	// addressed to another station (a bridge flooding it, a promiscuous
	// port) or to a group is none of the router's to forward, as the
	// engine drops it.
	vInMAC = 76
	// How far from vSeqAck a TCP segment's acknowledgement may be, and
	// its end behind vSeqNext (twice as far ahead), for the program to
	// record it (0: any): a blind attacker's segment must not set the
	// edges the engine judges an RST by.
	vAckSpan = 84
)

// Key is a packet's tuple as it arrives.
type Key struct {
	Ifindex          uint32
	Proto            uint8
	Src, Dst         [4]byte
	SrcPort, DstPort uint16
}

// Encode writes k in the map's layout: ifindex (native order), source,
// destination, the two ports (network order, as they sit in the packet),
// the protocol in a zero-padded word.
func (k Key) Encode(b *[KeySize]byte) {
	binary.NativeEndian.PutUint32(b[0:], k.Ifindex)
	copy(b[4:8], k.Src[:])
	copy(b[8:12], k.Dst[:])
	binary.BigEndian.PutUint16(b[12:], k.SrcPort)
	binary.BigEndian.PutUint16(b[14:], k.DstPort)
	binary.NativeEndian.PutUint32(b[16:], uint32(k.Proto))
}

// MarshalBinary encodes k for cilium/ebpf's map calls.
func (k Key) MarshalBinary() ([]byte, error) {
	var b [KeySize]byte
	k.Encode(&b)
	return b[:], nil
}

// Value is what a packet matching a Key becomes.
type Value struct {
	Src, Dst         [4]byte
	SrcPort, DstPort uint16
	Ifindex          uint32
	DstMAC, SrcMAC   [6]byte
	// InMAC is the ingress interface's own MAC: only frames addressed
	// to it are forwarded.
	InMAC [6]byte
	// IPDelta and L4Delta are filled by NewValue.
	IPDelta, L4Delta     uint32
	AddrDelta, PortDelta uint32
	MaxFrame             uint32
	// SeqNext, SeqAck and SeqWin: the last TCP segment the program
	// forwarded (valid once Packets is not 0).
	SeqNext, SeqAck, SeqWin uint32
	// AckSpan, if not 0, makes the program record a TCP segment only if
	// its acknowledgement is within AckSpan of SeqAck and its end at most
	// twice AckSpan ahead of SeqNext or AckSpan behind it (the engine's
	// seed of SeqNext, SeqAck and SeqWin, then the last recorded
	// segment's), as the engine learns from a segment (RFC 5961 5).
	AckSpan        uint32
	Packets, Bytes uint64
}

// NewValue is the entry for packets arriving as k in frames addressed to
// inMAC and leaving translated to the given tuple through ifindex with at
// most mtu bytes of IPv4.
func NewValue(k Key, src, dst [4]byte, sport, dport uint16, ifindex uint32, dstMAC, srcMAC, inMAC [6]byte, mtu int) Value {
	v := Value{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Ifindex: ifindex,
		DstMAC: dstMAC, SrcMAC: srcMAC, InMAC: inMAC, MaxFrame: uint32(mtu + packet.EtherHeaderLen)}
	var addr uint32
	addr = delta4(addr, k.Src, src)
	addr = delta4(addr, k.Dst, dst)
	// The TTL decrement: the word (TTL, protocol) loses 0x0100, which
	// in ones' complement is adding ~0x0100 (RFC 1624 eqn. 3 with m' =
	// m - 0x100: ~m + m' = 0xffff - 0x100).
	v.IPDelta = memOrder(addr + 0xfeff)
	ports := delta16(0, k.SrcPort, sport)
	ports = delta16(ports, k.DstPort, dport)
	v.L4Delta = memOrder(addr + ports)
	v.AddrDelta, v.PortDelta = memOrder(addr), memOrder(ports)
	return v
}

// delta16 adds to the ones'-complement sum acc the change of one 16-bit
// word from old to new (~m + m').
func delta16(acc uint32, old, new uint16) uint32 {
	return acc + uint32(^old) + uint32(new)
}

func delta4(acc uint32, old, new [4]byte) uint32 {
	acc = delta16(acc, binary.BigEndian.Uint16(old[:]), binary.BigEndian.Uint16(new[:]))
	return delta16(acc, binary.BigEndian.Uint16(old[2:]), binary.BigEndian.Uint16(new[2:]))
}

// memOrder folds a big-endian-word sum to 16 bits and gives it for words
// loaded from memory in native order, which is how the program loads the
// checksum fields: the ones'-complement sum commutes with swapping the
// bytes of every word (RFC 1071 2.B).
func memOrder(sum uint32) uint32 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(sum))
	return uint32(binary.NativeEndian.Uint16(b[:]))
}

// Encode writes v in the map's layout.
func (v *Value) Encode(b *[ValueSize]byte) {
	*b = [ValueSize]byte{}
	copy(b[vSrc:], v.Src[:])
	copy(b[vDst:], v.Dst[:])
	binary.BigEndian.PutUint16(b[vPorts:], v.SrcPort)
	binary.BigEndian.PutUint16(b[vPorts+2:], v.DstPort)
	binary.NativeEndian.PutUint32(b[vIfindex:], v.Ifindex)
	copy(b[vDstMAC:], v.DstMAC[:])
	copy(b[vSrcMAC:], v.SrcMAC[:])
	binary.NativeEndian.PutUint32(b[vIPDelta:], v.IPDelta)
	binary.NativeEndian.PutUint32(b[vL4Delta:], v.L4Delta)
	binary.NativeEndian.PutUint32(b[vMaxFrame:], v.MaxFrame)
	binary.NativeEndian.PutUint64(b[vPackets:], v.Packets)
	binary.NativeEndian.PutUint64(b[vBytes:], v.Bytes)
	binary.NativeEndian.PutUint32(b[vAddrDelta:], v.AddrDelta)
	binary.NativeEndian.PutUint32(b[vPortDelta:], v.PortDelta)
	binary.NativeEndian.PutUint32(b[vSeqNext:], v.SeqNext)
	binary.NativeEndian.PutUint32(b[vSeqAck:], v.SeqAck)
	binary.NativeEndian.PutUint32(b[vSeqWin:], v.SeqWin)
	copy(b[vInMAC:], v.InMAC[:])
	binary.NativeEndian.PutUint32(b[vAckSpan:], v.AckSpan)
}

// Decode reads v from the map's layout.
func (v *Value) Decode(b *[ValueSize]byte) {
	copy(v.Src[:], b[vSrc:])
	copy(v.Dst[:], b[vDst:])
	v.SrcPort = binary.BigEndian.Uint16(b[vPorts:])
	v.DstPort = binary.BigEndian.Uint16(b[vPorts+2:])
	v.Ifindex = binary.NativeEndian.Uint32(b[vIfindex:])
	copy(v.DstMAC[:], b[vDstMAC:])
	copy(v.SrcMAC[:], b[vSrcMAC:])
	v.IPDelta = binary.NativeEndian.Uint32(b[vIPDelta:])
	v.L4Delta = binary.NativeEndian.Uint32(b[vL4Delta:])
	v.MaxFrame = binary.NativeEndian.Uint32(b[vMaxFrame:])
	v.Packets = binary.NativeEndian.Uint64(b[vPackets:])
	v.Bytes = binary.NativeEndian.Uint64(b[vBytes:])
	v.AddrDelta = binary.NativeEndian.Uint32(b[vAddrDelta:])
	v.PortDelta = binary.NativeEndian.Uint32(b[vPortDelta:])
	v.SeqNext = binary.NativeEndian.Uint32(b[vSeqNext:])
	v.SeqAck = binary.NativeEndian.Uint32(b[vSeqAck:])
	v.SeqWin = binary.NativeEndian.Uint32(b[vSeqWin:])
	copy(v.InMAC[:], b[vInMAC:])
	v.AckSpan = binary.NativeEndian.Uint32(b[vAckSpan:])
}

// Seq is what Apply's caller records of a TCP segment as the program
// does (as far as v.AckSpan lets it: Record): its end (sequence number plus
// payload length), acknowledgement and window.
func Seq(frame []byte) (next, ack, win uint32) {
	const e = packet.EtherHeaderLen
	t := frame[e+20:]
	payload := int(binary.BigEndian.Uint16(frame[e+2:])) - 20 - int(t[12]>>4)*4
	return binary.BigEndian.Uint32(t[4:]) + uint32(payload), binary.BigEndian.Uint32(t[8:]), uint32(binary.BigEndian.Uint16(t[14:]))
}

// Record does to v what the program records of the TCP segment in frame
// (Seq): without AckSpan all of it; with it, nothing unless the
// segment's acknowledgement is within AckSpan of v.SeqAck and its end at
// most twice AckSpan ahead of v.SeqNext or AckSpan behind it (a guessed
// ACK alone set the acknowledgement an RST is exact at: nat's
// TestRSTAtForgedAck), and the edge only if it moves forward by at most
// twice AckSpan. It reports whether it took the segment's
// acknowledgement.
func Record(frame []byte, v *Value) bool {
	next, ack, win := Seq(frame)
	switch {
	case v.AckSpan == 0 || next-v.SeqNext-1 < 2*v.AckSpan && ack-v.SeqAck+v.AckSpan <= 2*v.AckSpan:
		v.SeqNext = next
	case ack-v.SeqAck+v.AckSpan > 2*v.AckSpan || v.SeqNext-next > v.AckSpan:
		return false
	}
	v.SeqAck, v.SeqWin = ack, win
	return true
}

// Verdicts of Apply, as the program's.
const (
	Miss     = iota // not offloaded: to the socket as without offload
	Redirect        // rewritten, out through Value.Ifindex
)

// PlainACK reports whether a TCP segment whose data offset byte off (the
// header's byte 12: the data offset, then three reserved bits and AE) and
// flags byte (13) flags are ones the programs may forward: no reserved bit,
// ACK
// set, with at most PSH, URG, ECE and CWR besides, and AE (Accurate ECN,
// RFC 9768: an AccECN endpoint sets it on many segments, and with ACK it
// changes nothing the NAT tracks). A segment without ACK (which the
// engine drops or judges) or with SYN, FIN, RST or a reserved bit goes to
// the engine.
func PlainACK(off, flags byte) bool {
	const others = 0x08 | 0x20 | 0x40 | 0x80 // PSH, URG, ECE, CWR
	return off&0x0e == 0 && flags&^others == packet.TCPAck
}

// Match reports whether the program looks frame up at all, and with which
// key (Ifindex left for the caller): plain IPv4 (no options, not a
// fragment, its header checksum right and its total length within the
// frame: the engine drops others as malformed) TCP with ACK and no other
// flag than PSH, URG, ECE, CWR and AE (PlainACK), or UDP, with a TTL above 1, whose
// transport checksum is not left partial (the field holding just the
// pseudo-header sum, as a sender on this host relying on checksum offload
// leaves it: the engine completes those).
func Match(frame []byte) (Key, bool) {
	const e = packet.EtherHeaderLen
	if len(frame) < e+28 || frame[12] != 0x08 || frame[13] != 0 || frame[e] != 0x45 ||
		binary.BigEndian.Uint16(frame[e+6:])&0x3fff != 0 || frame[e+8] <= 1 ||
		packet.Checksum(frame[e:e+20]) != 0 || e+int(binary.BigEndian.Uint16(frame[e+2:])) > len(frame) {
		return Key{}, false
	}
	k := Key{Proto: frame[e+9]}
	switch k.Proto {
	case packet.ProtoUDP:
	case packet.ProtoTCP:
		if len(frame) < e+40 || !PlainACK(frame[e+32], frame[e+33]) {
			return Key{}, false
		}
	default:
		return Key{}, false
	}
	off := e + 20 + 6
	if k.Proto == packet.ProtoTCP {
		off = e + 20 + 16
	}
	ps := packet.PseudoHeaderSum([4]byte(frame[e+12:]), [4]byte(frame[e+16:]), k.Proto, int(binary.BigEndian.Uint16(frame[e+2:])-20))
	if f := binary.BigEndian.Uint16(frame[off:]); f != 0 && f == ^packet.Fold(ps) {
		return Key{}, false
	}
	copy(k.Src[:], frame[e+12:])
	copy(k.Dst[:], frame[e+16:])
	k.SrcPort = binary.BigEndian.Uint16(frame[e+20:])
	k.DstPort = binary.BigEndian.Uint16(frame[e+22:])
	return k, true
}

// Apply does to frame, a match of v's key, what the program does: Miss
// if it is not addressed to v.InMAC or is larger than the way out takes,
// else the rewrite (tuple, TTL, checksums by the deltas, MACs, and if it
// has DF clear and v rewrites its source an IP ID from ids: IDs.Next) and
// Redirect. It counts nothing.
func Apply(frame []byte, v *Value, ids *IDs) int {
	const e = packet.EtherHeaderLen
	if [6]byte(frame[0:6]) != v.InMAC || uint32(len(frame)) > v.MaxFrame {
		return Miss
	}
	var idDelta uint32 // the header checksum's, in memory order
	if frame[e+6]&0x40 == 0 && [4]byte(frame[e+12:]) != v.Src {
		old := binary.NativeEndian.Uint16(frame[e+4:])
		binary.BigEndian.PutUint16(frame[e+4:], ids.Next(v.Dst, frame[e+9]))
		idDelta = uint32(^old) + uint32(binary.NativeEndian.Uint16(frame[e+4:]))
	}
	copy(frame[e+12:], v.Src[:])
	copy(frame[e+16:], v.Dst[:])
	binary.BigEndian.PutUint16(frame[e+20:], v.SrcPort)
	binary.BigEndian.PutUint16(frame[e+22:], v.DstPort)
	frame[e+8]--
	put := func(off int, d uint32, udp bool) {
		old := binary.NativeEndian.Uint16(frame[off:])
		if udp && old == 0 {
			return // no checksum
		}
		s := uint32(^old) + d
		s = s&0xffff + s>>16
		s = s&0xffff + s>>16
		n := ^uint16(s)
		if udp && n == 0 {
			n = 0xffff
		}
		binary.NativeEndian.PutUint16(frame[off:], n)
	}
	put(e+10, v.IPDelta+idDelta, false)
	if frame[e+9] == packet.ProtoTCP {
		put(e+20+16, v.L4Delta, false)
	} else {
		put(e+20+6, v.L4Delta, true)
	}
	copy(frame[0:6], v.DstMAC[:])
	copy(frame[6:12], v.SrcMAC[:])
	return Redirect
}
