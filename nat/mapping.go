package nat

// The mapper: RFC 4787 endpoint-independent mappings from a LAN endpoint
// (proto, host, port or ICMP id) to an outside port on the one WAN address,
// shared by every flow from that endpoint, with port preservation and parity
// kept, and the filtering state that decides which inbound packets a mapping
// admits.

import (
	"unsafe"

	"passgate/conntrack"
	"passgate/packet"
)

// mapKey is the LAN endpoint of a mapping.
type mapKey struct {
	host  [4]byte
	port  uint16
	proto uint8
}

// packed is k as the indexes hash it.
func (k mapKey) packed() conntrack.Key {
	return conntrack.Key{A: uint64(be32(k.host)), B: uint64(k.port)<<8 | uint64(k.proto)}
}

type mapping struct {
	key     mapKey
	extPort uint16
	mac     uint16 // the LAN MAC it was made from (macTable id), 0 unknown
	refs    int32  // free: the next free mapping + 1 (0: none)
}

// macTable names the LAN MACs mappings were made from by 16-bit ids, so
// that a mapping keeps its maker's MAC in room it had spare (the flows
// the WAN makes through it are charged to that MAC: newInbound). An id
// lives while a mapping holds it. A LAN has a handful of MACs; a host
// forging more than macIDs (which defeats a per-MAC share anyway) gets
// id 0 for the rest, whose inbound flows are charged to their address
// alone, as before. Sized at the start: nothing allocates later.
type macTable struct {
	ids  map[[6]byte]uint16
	macs [macIDs + 1][6]byte // by id
	refs [macIDs + 1]int32
	free []uint16
	// The MAC ref last named and its id (0: none): a LAN's new flows
	// come in runs from one host, and the map's lookup of a 6-byte key
	// (hashed and compared as bytes) was some 170 instructions of each.
	last   [6]byte
	lastID uint16
}

const macIDs = 4096

func newMACTable() *macTable {
	t := &macTable{ids: make(map[[6]byte]uint16, macIDs), free: make([]uint16, macIDs)}
	for i := range t.free {
		t.free[i] = uint16(macIDs - i) // id 1 first
	}
	return t
}

// ref takes a reference to mac's id (0 for no MAC, or none left).
func (t *macTable) ref(mac [6]byte) uint16 {
	if mac == ([6]byte{}) {
		return 0
	}
	if t.lastID != 0 && mac == t.last {
		t.refs[t.lastID]++
		return t.lastID
	}
	id, ok := t.ids[mac]
	if !ok {
		n := len(t.free)
		if n == 0 {
			return 0
		}
		id, t.free = t.free[n-1], t.free[:n-1]
		t.ids[mac], t.macs[id] = id, mac
	}
	t.refs[id]++
	t.last, t.lastID = mac, id
	return id
}

// unref gives a reference back; the id is free with its last.
func (t *macTable) unref(id uint16) {
	if id == 0 {
		return
	}
	if t.refs[id]--; t.refs[id] == 0 {
		delete(t.ids, t.macs[id])
		t.macs[id] = [6]byte{}
		if id == t.lastID {
			t.lastID = 0
		}
		t.free = append(t.free, id)
	}
}

// filter counts the flows a mapping (its outside port) has to one
// remote address: what address-dependent filtering admits.
type filter struct {
	remote [4]byte
	ext    uint16
	proto  uint8
	n      uint32 // free: the next free filter + 1 (0: none)
}

func (f *filter) packed() conntrack.Key {
	return conntrack.Key{A: uint64(be32(f.remote)), B: uint64(f.ext)<<8 | uint64(f.proto)}
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

// mapper's mappings and filters are in slabs sized for one a flow (its
// worst case: a filter entry is a flow's to its remote; a hairpin flow
// may hold two, so in theory a table of hairpin flows holds more filters
// than flows, and a filter that finds no room is not made: fail closed,
// counted as nothing), each indexed by a TagIndex (4-byte slots, the
// key read from the slab), the free ones chained through refs and n,
// last freed first, then those never used (from freshMap, freshFilt).
type mapper struct {
	slab      []mapping
	freeMap   uint32 // the first free mapping + 1 (0: none)
	freshMap  uint32
	byKey     *conntrack.TagIndex // LAN endpoint -> slab index
	byPort    [3][]uint32         // outside port -> slab index + 1; 0 free
	filts     []filter            // by filt's values
	freeFilt  uint32              // the first free filter + 1
	freshFilt uint32
	filt      *conntrack.TagIndex // (proto, outside port, remote) -> filts index
	rng       uint64
	lo, hi    uint16
	live      int
	macs      *macTable
}

func newMapper(max int, lo, hi uint16, seed uint64) *mapper {
	if seed == 0 {
		seed = 0x9e3779b97f4a7c15
	}
	m := &mapper{
		slab:  make([]mapping, max),
		byKey: conntrack.NewTagIndex(max),
		filts: make([]filter, max),
		filt:  conntrack.NewTagIndex(max),
		rng:   seed,
		lo:    lo,
		hi:    hi,
		macs:  newMACTable(),
	}
	for i := range m.byPort {
		m.byPort[i] = make([]uint32, 65536)
	}
	return m
}

// find is the mapping of LAN endpoint k, and its hash in byKey.
func (m *mapper) find(k mapKey) (uint32, uint64, bool) {
	h := m.byKey.Hash(k.packed())
	i, ok := m.byKey.Find(h, func(v uint32) bool { return m.slab[v].key == k })
	return i, h, ok
}

// takeFree is the entry to use next of a slab of n whose free ones are
// chained from head (index + 1, 0: none), then from fresh up; the caller
// takes it off (head moves on along the chain, or fresh up by one).
func takeFree(head, fresh *uint32, n int) (uint32, bool) {
	if *head != 0 {
		return *head - 1, true
	}
	return *fresh, int(*fresh) < n
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
// forwarding owns. A new mapping keeps mac (the LAN frame's source, or
// zero) as its maker's.
func (m *mapper) acquire(proto uint8, host [4]byte, port uint16, mac [6]byte, reserved func(uint8, uint16) bool) (uint32, bool) {
	k := mapKey{host: host, port: port, proto: proto}
	i, h, found := m.find(k)
	if found {
		m.slab[i].refs++
		return i, true
	}
	i, ok := takeFree(&m.freeMap, &m.freshMap, len(m.slab))
	if !ok {
		return 0, false
	}
	ext, ok := m.pickPort(proto, port, reserved)
	if !ok {
		return 0, false
	}
	if !m.byKey.Insert(h, i) {
		return 0, false // a probe run too long (conntrack.TagIndex): never with its random key
	}
	if m.freeMap == i+1 {
		m.freeMap = uint32(m.slab[i].refs)
	} else {
		m.freshMap++
	}
	m.slab[i] = mapping{key: k, extPort: ext, mac: m.macs.ref(mac), refs: 1}
	m.byPort[protoSlot(proto)][ext] = i + 1
	m.live++
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
	m.byKey.Delete(m.byKey.Hash(mp.key.packed()), i, func(v uint32) uint64 { return m.byKey.Hash(m.slab[v].key.packed()) })
	m.byPort[protoSlot(mp.key.proto)][mp.extPort] = 0
	m.macs.unref(mp.mac)
	*mp = mapping{refs: int32(m.freeMap)}
	m.freeMap = i + 1
	m.live--
}

func (m *mapper) len() int { return m.live }

// macOf is the LAN MAC mapping i was made from, if known.
func (m *mapper) macOf(i uint32) ([6]byte, bool) {
	id := m.slab[i].mac
	return m.macs.macs[id], id != 0
}

// lookup is the mapping of a LAN endpoint, if there is one.
func (m *mapper) lookup(proto uint8, host [4]byte, port uint16) (uint32, bool) {
	i, _, ok := m.find(mapKey{host: host, port: port, proto: proto})
	return i, ok
}

// findFilter is the filter of (proto, ext, remote), and its hash.
func (m *mapper) findFilter(k filter) (uint32, uint64, bool) {
	h := m.filt.Hash(k.packed())
	i, ok := m.filt.Find(h, func(v uint32) bool {
		f := &m.filts[v]
		return f.remote == k.remote && f.ext == k.ext && f.proto == k.proto
	})
	return i, h, ok
}

// filterAdd adds d to the flows the mapping of outside port ext has to
// remote; the filter goes when none are left.
func (m *mapper) filterAdd(proto uint8, ext uint16, remote [4]byte, d int32) {
	k := filter{remote: remote, ext: ext, proto: proto}
	i, h, ok := m.findFilter(k)
	if !ok {
		if i, ok = takeFree(&m.freeFilt, &m.freshFilt, len(m.filts)); d <= 0 || !ok {
			return
		}
		if !m.filt.Insert(h, i) {
			return // a probe run too long (conntrack.TagIndex): never with its random key
		}
		if m.freeFilt == i+1 {
			m.freeFilt = m.filts[i].n
		} else {
			m.freshFilt++
		}
		m.filts[i] = k
	}
	f := &m.filts[i]
	if n := int32(f.n) + d; n > 0 {
		f.n = uint32(n)
		return
	}
	m.filt.Delete(h, i, func(v uint32) uint64 { return m.filt.Hash(m.filts[v].packed()) })
	*f = filter{n: m.freeFilt}
	m.freeFilt = i + 1
}

func (m *mapper) filterHas(proto uint8, ext uint16, remote [4]byte) bool {
	_, _, ok := m.findFilter(filter{remote: remote, ext: ext, proto: proto})
	return ok
}

// lines puts in at where acquire and filterAdd of a new flow from LAN
// endpoint (proto, host, port) to remote read and write: the mapping's
// index slot, the outside port's entry, the slab entry a new mapping
// would take, and the filter's slot and slab entry for outside port port
// (what a kept port gives; another port's filter slot is missed).
func (m *mapper) lines(at *[5]uintptr, proto uint8, host [4]byte, port uint16, remote [4]byte) {
	k := mapKey{host: host, port: port, proto: proto}
	f := filter{remote: remote, ext: port, proto: proto}
	at[0] = m.byKey.SlotAt(m.byKey.Hash(k.packed()))
	at[1] = m.filt.SlotAt(m.filt.Hash(f.packed()))
	at[2] = uintptr(unsafe.Pointer(&m.byPort[protoSlot(proto)][port]))
	i, _ := takeFree(&m.freeMap, &m.freshMap, len(m.slab))
	j, _ := takeFree(&m.freeFilt, &m.freshFilt, len(m.filts))
	// Past the end when full: the entry before, harmless.
	at[3] = uintptr(unsafe.Pointer(&m.slab[min(int(i), len(m.slab)-1)]))
	at[4] = uintptr(unsafe.Pointer(&m.filts[min(int(j), len(m.filts)-1)]))
}
