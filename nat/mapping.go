package nat

// The mapper: RFC 4787 endpoint-independent mappings from a LAN endpoint
// (proto, host, port or ICMP id) to an outside port on the one WAN address,
// shared by every flow from that endpoint, with port preservation and parity
// kept, and the filtering state that decides which inbound packets a mapping
// admits.

import (
	"passgate/conntrack"
	"passgate/packet"
)

// Mappings and filters are keyed by tuples in conntrack's index, with
// Side values of their own so the key spaces never mix.
const (
	sideMapping = 0x10
	sideFilter  = 0x11
)

// mapKey is the LAN endpoint of a mapping.
type mapKey struct {
	host  [4]byte
	port  uint16
	proto uint8
}

func (k mapKey) tuple() conntrack.Tuple {
	return conntrack.Tuple{Src: k.host, SrcID: k.port, Proto: k.proto, Side: sideMapping}
}

func filtTuple(proto uint8, ext uint16, remote [4]byte) conntrack.Tuple {
	return conntrack.Tuple{Src: remote, DstID: ext, Proto: proto, Side: sideFilter}
}

type mapping struct {
	key     mapKey
	extPort uint16
	refs    int32
}

// protoSlot indexes the per-protocol outside port tables.
func protoSlot(proto uint8) int {
	switch proto {
	case packet.ProtoTCP:
		return 0
	case packet.ProtoUDP:
		return 1
	default:
		return 2 // ICMP query ids
	}
}

type mapper struct {
	slab   []mapping
	free   []uint32
	byKey  *conntrack.Index // LAN endpoint -> slab index
	byPort [3][]uint32      // outside port -> slab index + 1; 0 free
	filt   *conntrack.Index // (remote, outside port) -> flows of the mapping to remote
	rng    uint64
	lo, hi uint16
}

func newMapper(max int, lo, hi uint16, seed uint64) *mapper {
	if seed == 0 {
		seed = 0x9e3779b97f4a7c15
	}
	m := &mapper{
		slab:  make([]mapping, max),
		free:  make([]uint32, max),
		byKey: conntrack.NewIndex(max),
		filt:  conntrack.NewIndex(max),
		rng:   seed,
		lo:    lo,
		hi:    hi,
	}
	for i := range m.free {
		m.free[i] = uint32(max - 1 - i)
	}
	for i := range m.byPort {
		m.byPort[i] = make([]uint32, 65536)
	}
	return m
}

// next is xorshift64*: deterministic for a seed, so replays with the fixed
// seed allocate the same ports, and unpredictable with a random one.
func (m *mapper) next() uint64 {
	m.rng ^= m.rng >> 12
	m.rng ^= m.rng << 25
	m.rng ^= m.rng >> 27
	return m.rng * 2685821657736338717
}

// lookupExt finds the mapping that owns an outside port.
func (m *mapper) lookupExt(proto uint8, port uint16) (uint32, bool) {
	v := m.byPort[protoSlot(proto)][port]
	return v - 1, v != 0
}

// acquire returns the mapping for a LAN endpoint, creating it if needed,
// and takes a reference. reserved says which outside ports port
// forwarding owns.
func (m *mapper) acquire(proto uint8, host [4]byte, port uint16, reserved func(uint8, uint16) bool) (uint32, bool) {
	k := mapKey{host: host, port: port, proto: proto}
	v, found := m.byKey.Upsert(k.tuple())
	if v == nil {
		return 0, false
	}
	if found {
		m.slab[*v].refs++
		return *v, true
	}
	var ext uint16
	ok := len(m.free) > 0
	if ok {
		ext, ok = m.pickPort(proto, port, reserved)
	}
	if !ok {
		m.byKey.Del(k.tuple())
		return 0, false
	}
	i := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	m.slab[i] = mapping{key: k, extPort: ext, refs: 1}
	*v = i
	m.byPort[protoSlot(proto)][ext] = i + 1
	return i, true
}

// pickPort preserves the LAN port when it is free (RFC 4787 REQ-4 allows,
// and applications such as IKE on 500 work better with it), otherwise
// picks a free port of the same parity (REQ-5 for RTP/RTCP pairs) from a
// random point of a range: the dynamic range, or for a LAN port below
// 1024 the ports below 1024 first (REQ-3: some servers trust a
// privileged source port, NTP's symmetric mode and rsh among them).
func (m *mapper) pickPort(proto uint8, want uint16, reserved func(uint8, uint16) bool) (uint16, bool) {
	tbl := m.byPort[protoSlot(proto)]
	if want != 0 && tbl[want] == 0 && !reserved(proto, want) {
		return want, true
	}
	if want != 0 && want < 1024 {
		if p, ok := m.pickIn(tbl, 1, 1023, want, proto, reserved); ok {
			return p, true
		}
	}
	return m.pickIn(tbl, m.lo, m.hi, want, proto, reserved)
}

// pickIn picks a free port in [lo, hi] of want's parity, or any free one
// if that parity is used up.
func (m *mapper) pickIn(tbl []uint32, lo, hi, want uint16, proto uint8, reserved func(uint8, uint16) bool) (uint16, bool) {
	n := uint32(hi) - uint32(lo) + 1
	start := uint32(m.next() % uint64(n))
	for i := uint32(0); i < n; i++ {
		p := uint16(uint32(lo) + (start+i)%n)
		if p == 0 || p&1 != want&1 || tbl[p] != 0 || reserved(proto, p) {
			continue
		}
		return p, true
	}
	for i := uint32(0); i < n; i++ {
		p := uint16(uint32(lo) + (start+i)%n)
		if p != 0 && tbl[p] == 0 && !reserved(proto, p) {
			return p, true
		}
	}
	return 0, false
}

// release drops a reference; the mapping goes with its last flow.
func (m *mapper) release(i uint32) {
	mp := &m.slab[i]
	mp.refs--
	if mp.refs > 0 {
		return
	}
	m.byKey.Del(mp.key.tuple())
	m.byPort[protoSlot(mp.key.proto)][mp.extPort] = 0
	m.free = append(m.free, i)
}

func (m *mapper) len() int { return m.byKey.Len() }

func (m *mapper) filterAdd(proto uint8, ext uint16, remote [4]byte, d int32) {
	k := filtTuple(proto, ext, remote)
	v, _ := m.filt.Upsert(k)
	if v == nil {
		return // a probe run too long to add to (conntrack.Index): never with its random key
	}
	if n := int32(*v) + d; n > 0 {
		*v = uint32(n)
	} else {
		m.filt.Del(k)
	}
}

func (m *mapper) filterHas(proto uint8, ext uint16, remote [4]byte) bool {
	_, ok := m.filt.Get(filtTuple(proto, ext, remote))
	return ok
}
