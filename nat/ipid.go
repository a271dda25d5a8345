package nat

import (
	"crypto/sha256"
	"encoding/binary"
	"sync/atomic"

	"passgate/packet"
)

// IP identification (RFC 7857 section 10, RFC 6864 section 5.3.1). A
// receiver reassembles the fragments of a datagram by (source,
// destination, protocol, ID), so the ID must be unique for that triple
// while the datagram may live. LAN hosts choose their IDs each on its
// own; once their source is the one public address, two hosts' datagrams
// to one server could share an ID, and the server would splice the
// fragments of one into the other. So a datagram that may be fragmented
// (non-atomic: DF clear, or a fragment already) whose source the NAT
// rewrites (outbound, hairpinned) gets a new ID from a counter chosen by
// its destination and protocol, and every fragment of it the same one
// (frag.go's note carries it). Atomic datagrams (DF set, unfragmented)
// keep theirs: RFC 6864 lets their ID be anything and nothing reassembles
// them. Inbound datagrams keep theirs too: only their destination
// changes, which splits, never merges, the servers' ID spaces.
//
// The counters are ipIDBuckets words, a destination and protocol hashed
// (keyed by a key drawn one way from the port seed) to one: a destination's IDs come from its
// counter alone, shared with the few others hashed there, so they wrap
// after 65,536 datagrams to it and those others, not to everyone. They
// start at values drawn one way from the seed too (neither may give the
// port generator away). FastPath's workers take IDs
// concurrently, so the counters move by atomic adds. The flow offload's
// programs (dataplane/offload) give IDs to the DF-clear datagrams they
// forward from the same counters and key (ShareIPIDs), so that one
// destination's IDs are one sequence whichever of the two translates.

// IPIDBuckets is how many ID counters there are (ShareIPIDs).
const IPIDBuckets = ipIDBuckets

const ipIDBuckets = 1024

// IPIDHashMul is the multiplier of IPIDBucket's hash.
const IPIDHashMul = 0x9e3779b97f4a7c15

type ipIDs struct {
	key uint64
	ctr *[ipIDBuckets]uint32 // own, or shared (ShareIPIDs)
	own [ipIDBuckets]uint32
}

func (g *ipIDs) init(seed uint64) {
	if seed == 0 {
		seed = 0x9e3779b97f4a7c15
	}
	// The key and the counters' starts come from the seed one way: the
	// seed is the port generator's state too (mapper.next), which the
	// key (learnt from which destinations share a counter, or read from
	// the offload's map) or the starts (the first IDs a server sees)
	// must not give away.
	h := seedHash(seed, "ip id")
	g.key = binary.LittleEndian.Uint64(h[:])
	g.ctr = &g.own
	x := binary.LittleEndian.Uint64(h[8:]) | 1 // xorshift's state is never 0
	for i := range g.ctr {
		// xorshift64*, as the mapper's
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		g.ctr[i] = uint32((x * 0x2545f4914f6cdd1d) >> 48)
	}
}

// seedHash is SHA-256 of the port seed and what for: keys drawn from the
// seed one way, so that learning one (the IP ID key from which
// destinations share a counter, say) gives neither the others nor the
// port generator's state (the seed itself).
func seedHash(seed uint64, what string) [sha256.Size]byte {
	b := make([]byte, 0, 8+len("passgate ")+len(what))
	b = binary.LittleEndian.AppendUint64(b, seed)
	b = append(b, "passgate "...)
	return sha256.Sum256(append(b, what...))
}

// next is the next ID toward dst (an address as an integer, be32) for
// proto.
func (g *ipIDs) next(dst uint32, proto uint8) uint16 {
	return uint16(atomic.AddUint32(&g.ctr[IPIDBucket(g.key, dst, proto)], 1))
}

// IPIDBucket is the counter an ID toward dst (an address as an integer,
// big-endian) for proto comes from, under key: the top 10 bits of
// ((dst<<8 | proto) xor key) times 0x9e3779b97f4a7c15, mod 2^64.
func IPIDBucket(key uint64, dst uint32, proto uint8) int {
	h := (uint64(dst)<<8 | uint64(proto)) ^ key
	h *= IPIDHashMul
	return int(h >> (64 - 10) & (ipIDBuckets - 1))
}

// ShareIPIDs makes the engine take the IDs it gives non-atomic datagrams
// from ctr (IPIDBuckets counters, each moved by an atomic add of 1, the
// ID its new value's low 16 bits, the counter picked by IPIDBucket under
// the key it returns), memory it shares with another translator to the
// same public address, such as the flow offload's programs. It copies its
// counters there first, so the IDs go on from where they were. ctr nil
// takes the engine's own counters back. ctr must stay valid while the
// engine lives. Call it before the engine forwards (no method running).
func (e *Engine) ShareIPIDs(ctr *[IPIDBuckets]uint32) (key uint64) {
	if ctr == nil {
		ctr = &e.ids.own
	}
	if ctr != e.ids.ctr {
		for i := range ctr {
			atomic.StoreUint32(&ctr[i], atomic.LoadUint32(&e.ids.ctr[i]))
		}
	}
	e.ids.ctr = ctr
	return e.ids.key
}

// nonAtomic reports whether ip is not atomic (RFC 6864 section 4): DF
// clear, or a fragment.
func nonAtomic(ip packet.IPv4) bool { return binary.BigEndian.Uint16(ip[6:])&0x7fff != 0x4000 }

// setID32 gives ip the ID id, updating the header checksum.
func setID32(ip packet.IPv4, id uint16) {
	h := ip[:packet.IPv4MinHeader:packet.IPv4MinHeader]
	old := binary.BigEndian.Uint16(h[4:])
	binary.BigEndian.PutUint16(h[4:], id)
	binary.BigEndian.PutUint16(h[10:], csumFold(uint32(^binary.BigEndian.Uint16(h[10:]))+uint32(^old)+uint32(id)))
}
