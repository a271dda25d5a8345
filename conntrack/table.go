package conntrack

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
)

// Dir says which of a flow's tuples a packet matched.
type Dir uint8

const (
	Original Dir = 0
	Reply    Dir = 1
)

// Errors returned by Insert. Values, so the packet path never formats.
var (
	ErrFull       = errors.New("conntrack: table full")
	ErrHostLimit  = errors.New("conntrack: per-host flow limit reached")
	ErrOwnerLimit = errors.New("conntrack: per-owner flow limit reached")
	ErrExists     = errors.New("conntrack: tuple already tracked")
)

// Owner is what a flow is charged to besides its LAN host address: the
// source MAC address of the LAN frame that made it (so a host forging
// source addresses on the LAN still has one share), or the port-forward
// rule or DMZ that let an inbound flow in (so a flood from the WAN uses up
// the rule's share, not the LAN host's).
type Owner struct {
	Kind uint8
	ID   [6]byte
}

// key is o as one word, what the share map is keyed by: a map keyed by
// a word takes the runtime's 64-bit fast path, one keyed by a 7-byte
// struct hashes and compares it byte by byte.
func (o Owner) key() uint64 {
	return uint64(o.Kind) | uint64(binary.LittleEndian.Uint32(o.ID[:4]))<<8 | uint64(binary.LittleEndian.Uint16(o.ID[4:]))<<40
}

// Owner kinds.
const (
	OwnerNone uint8 = iota
	OwnerMAC
	OwnerRule
	OwnerInbound // no share of its own: a flow the WAN made through a host's mapping
	// OwnerMACInbound: a flow the WAN made through the mapping of a host
	// whose frames came from the MAC (ID): the MAC's inbound share.
	OwnerMACInbound
)

// InboundOwner is the owner of flows the WAN makes through a LAN host's
// mapping: like a rule's, they count against the host's inbound share
// (hostKey), never its outbound one.
var InboundOwner = Owner{Kind: OwnerInbound}

// MACOwner is the owner for a LAN source MAC address.
func MACOwner(mac [6]byte) Owner { return Owner{Kind: OwnerMAC, ID: mac} }

// MACInboundOwner is InboundOwner for a mapping made from a known LAN
// MAC: the flow counts against the host's inbound share and against the
// MAC's inbound share (its own, as large as the host's inbound share, not
// the MAC's outbound one), so a host forging many LAN addresses, each
// with its mappings, still gets one share of the flows the WAN makes
// through them.
func MACInboundOwner(mac [6]byte) Owner { return Owner{Kind: OwnerMACInbound, ID: mac} }

// RuleOwner is the owner for an inbound rule (a port forward's index; the
// owner picks a number for the DMZ).
func RuleOwner(i int) Owner {
	return Owner{Kind: OwnerRule, ID: [6]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}}
}

// Seq is what passgate knows of one direction of a TCP connection: the
// sequence number after the last segment sent that way, the last
// acknowledgement sent that way, the window it advertised and its window
// scale (from its SYN). The NAT engine keeps it to judge RSTs
// (RFC 5961).
type Seq struct {
	Next, Ack uint32
	Win       uint32 // scaled
	Scale     uint8  // the SYN's window scale + 1 (0: none)
	Seen      uint8  // bit 0: Next is known; bit 1: Ack and Win are (before: Ack is the first SYN's end if bit 2, Win the SYN's data; nat)
}

// EarlyDrops counts flows removed to make room for a new one, by what was
// full.
type EarlyDrops struct {
	TableFull, HostQuota, MACQuota, RuleQuota uint64
}

// share is what is charged to a host or an owner: how many flows, and
// its unreplied ones (their records, flowExt, linked by shNext, shPrev;
// which list is shareHost or shareOwner), the closed ones first (Table.Closed; ctail is the last of
// them), in the order they closed, then the others oldest first, so that
// an early drop for a full share takes the share's own first at once,
// however many unreplied flows of others are older.
type share struct {
	n, head, tail, ctail int32
}

const (
	shareHost  = 0
	shareOwner = 1
)

// Flow is one tracked connection. The owner interprets State, Origin, Ext
// and its data (Table.Data); the table owns the tuples, the deadline and
// the bookkeeping.
//
// The layout is for the packet path and for memory (TestFlowLayout keeps
// it): 128 bytes, two cache lines, so every flow of the slab starts on
// one. The first holds all an established packet reads: the tuples (the
// index compares a lookup's key with one of them), State, Helper, Flags,
// Gen, the deadline and the low bits of its wheel tick (ExtendDeadline).
// The second the counts a run adds to and what every flow has: its
// mapping, host and owner, its place on the timing wheel, when it was
// made. What only some flows need is apart: TCP sequence state in an
// array by flow id (Table.Seq; it is read with the flow's lines on every
// segment), a helper's data and the early-drop lists in a record the
// flow holds while it needs one (flowExt).
type Flow struct {
	Orig, Reply Tuple
	// Xlate is the reply tuple as it appears on the wire. It equals Reply
	// unless a helper indexes the reply direction by a key of its own (an
	// IKE SPI, an L2TP tunnel id on a shared outside port, an ESP SPI not
	// yet learned); translation always follows Xlate.
	Xlate    Tuple
	State    uint8
	Origin   uint8
	Helper   uint8 // which helper owns the flow (0: none)
	st       uint8 // stInUse, stReplied, stLinked, stClosed
	Flags    uint16
	Gen      uint32 // incremented each time the slot is reused
	tick     uint32 // the low 32 bits of the wheel tick of the flow's slot (Table.flowTick)
	Deadline int64

	Packets    [2]uint64
	Bytes      [2]uint64
	Ext        uint32  // owner's handle (for NAT: the mapping)
	Host       [4]byte // LAN host charged for this flow (zero: none)
	next, prev int32   // timing wheel list
	created    uint32  // when it was made, in units of 1<<createdShift ns (Created)
	x          int32   // its flowExt record's handle (0: none)
	Owner      Owner
	class      uint8 // the owner's counting class (SetClass)
}

// Flow.st's bits.
const (
	stInUse   = 1 << iota
	stReplied // the flow has seen a reply (Assured)
	stLinked  // in the wheel's slot tick&(wheelSize-1)
	// stClosed: the owner said the connection is over (Closed): back on
	// the unreplied lists, at their heads, until it is answered again.
	stClosed
)

// Class is the counting class the owner gave the flow (SetClass).
func (f *Flow) Class() uint8 { return f.class }

// Assured says whether the flow has seen a reply (Table.Replied: for TCP,
// once established) and is not closed since (Table.Closed), so that no
// early drop takes it.
func (f *Flow) Assured() bool { return f.st&stReplied != 0 }

// NumClasses bounds the owner's counting classes: 0 (the default) to
// NumClasses-1.
const NumClasses = 8

const (
	tickShift = 28 // a wheel tick is 2^28 ns, about 268 ms
	wheelBits = 10 // 1024 slots: one turn is about 275 s
	wheelSize = 1 << wheelBits
	noFlow    = -1
	protoTCP  = 6
)

// Table is the flow table. Flows live in a slab sized at creation, so the
// packet path never allocates; both tuples of every flow are in one index.
type Table struct {
	flows []Flow
	seq   [][2]Seq // by flow id: TCP sequence state (Seq), apart so a Flow fits two lines
	xp    extPool  // what only some flows need (flowExt)
	// The free flows: those removed, chained through Flow.next (a free
	// flow is on no wheel slot), last removed first, then those never
	// used, from fresh up; a list of ids was 4 bytes a flow more.
	freeHead int32
	fresh    int32
	index    flowIndex // value: flow id << 1 | Dir
	perHost  shares[hostKey]
	maxHost  int32
	live     int
	// byProto and byClass count live flows as they come and go, so
	// readers need not walk the table.
	byProto [256]int32
	byClass [NumClasses]int32

	perOwner  shares[uint64] // by Owner.key
	maxRule   int32
	linkOwner Owner // what Insert charges besides the host (SetLink)

	// room says MakeRoom last made room for a flow of roomHost and
	// roomOwner and no flow was made since (nothing else takes room:
	// removing a flow only makes more), so InsertOwned for them need not
	// check the table and the two shares again (some 120 instructions
	// of a new flow from a known MAC).
	room      bool
	roomHost  [4]byte
	roomOwner Owner

	// The unreplied list, of the flows' records (flowExt): its ends
	// and the last closed flow's (Closed).
	unrHead, unrTail int32
	unrCTail         int32
	early            EarlyDrops

	wheel    [wheelSize]int32
	lastTick int64

	expect   map[Tuple]Expectation
	expHost  map[[4]byte]int32
	expOwner map[Owner]int32

	// OnDelete, if set, is called for every flow just before it is removed
	// (expiry or Delete), so the owner can release what the flow held.
	OnDelete func(id int32, f *Flow)
	// OnExpectationGone, if set, is called for every expectation that goes
	// unfulfilled (expired, replaced or removed), for the same reason.
	OnExpectationGone func(e *Expectation)

	// extMapped is the mapping the record pool lies in (reserveExt),
	// nil when on Go's heap; here, not in the pool, to leave the hot
	// fields before it where they were.
	extMapped []byte
}

// New makes a table for at most max flows (at most MaxFlows: it panics
// past that), at most perHost of them charged to any one LAN host (0: no
// per-host limit).
func New(max, perHost int, now int64) *Table {
	if max > MaxFlows {
		panic("conntrack: a table of more than MaxFlows flows")
	}
	t := &Table{
		flows:    hugeSlice[Flow](max),
		seq:      hugeSlice[[2]Seq](max),
		freeHead: noFlow,
		index:    newFlowIndex(2 * max),
		perHost:  newShares[hostKey](),
		maxHost:  int32(perHost),
		perOwner: newShares[uint64](),
		maxRule:  int32(perHost),
		unrHead:  noFlow,
		unrTail:  noFlow,
		unrCTail: noFlow,
		lastTick: now >> tickShift,
		expect:   make(map[Tuple]Expectation, 64),
		expHost:  make(map[[4]byte]int32, 16),
		expOwner: make(map[Owner]int32, 16),
	}
	for i := range t.wheel {
		t.wheel[i] = noFlow
	}
	reserveExt(t, max)
	return t
}

// full says whether no flow is free.
func (t *Table) full() bool { return t.freeHead == noFlow && int(t.fresh) == len(t.flows) }

// Len is the number of live flows; Cap the table size.
func (t *Table) Len() int { return t.live }
func (t *Table) Cap() int { return len(t.flows) }

// ProtoFlows is the number of live flows of IP protocol p.
func (t *Table) ProtoFlows(p uint8) int { return int(t.byProto[p]) }

// ClassFlows is the number of live flows in counting class c.
func (t *Table) ClassFlows(c uint8) int {
	if c >= NumClasses {
		return 0
	}
	return int(t.byClass[c])
}

// SetClass puts flow id in the owner's counting class c (below
// NumClasses; a new flow is in class 0), so ClassFlows counts it until
// it is removed.
func (t *Table) SetClass(id int32, c uint8) {
	f := &t.flows[id]
	if f.st&stInUse == 0 || c >= NumClasses || c == f.class {
		return
	}
	t.byClass[f.class]--
	t.byClass[c]++
	f.class = c
}

// hostKey is what a host's share is counted by: its address and the MAC
// its flows came from (zero when none is known), or inboundMark for flows
// the WAN made (a rule's, or through the host's mapping: its inbound
// share). A host forging another's address from its own MAC so uses up a
// share of its own, never the other's, its MAC's share (the owner) still
// bounding all it makes; and what comes in from the WAN never takes the
// host's outbound share, nor gets more than one share however many
// forwards lead to the host.
type hostKey struct {
	// The address's 4 bytes and the MAC's 6 as one little-endian
	// 10-byte number, in two words: a map hashes and compares them as
	// plain memory (its 128-bit routines) and the remembered last host
	// (shares.at) is two compares, where a struct of byte arrays was
	// compared byte by byte.
	lo, hi uint64
}

// inboundMark is the broadcast address, never a frame's source.
var inboundMark = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func keyOfHost(addr [4]byte, o Owner) hostKey {
	var mac [6]byte
	switch o.Kind {
	case OwnerMAC:
		mac = o.ID
	case OwnerRule, OwnerInbound, OwnerMACInbound:
		mac = inboundMark
	}
	return hostKey{
		lo: uint64(binary.LittleEndian.Uint32(addr[:])) | uint64(binary.LittleEndian.Uint32(mac[:4]))<<32,
		hi: uint64(binary.LittleEndian.Uint16(mac[4:])),
	}
}

// HostFlows is the number of flows charged to host from the MAC SetLink
// last named (none: flows made from the WAN or with no MAC known).
func (t *Table) HostFlows(host [4]byte) int {
	return int(t.perHost.get(keyOfHost(host, t.linkOwner)).n)
}

// shares are the hosts' shares by hostKey (Table.perHost) or the owners'
// by Owner.key (perOwner): the map gives a key's place in a slab of
// shares, so a share that changes (every flow made or removed) is written
// in the slab, and the map only when a host or owner comes or goes (a map
// assignment of a 16-byte key was some 80 instructions of each). It
// remembers the last key read or written: a host making a flow asks for
// its share four or five times (its count, its room twice, its list), the
// same host again and again. Every read and write goes through get, set
// and del, so last always says what the map says.
type shares[K comparable] struct {
	m      map[K]int32 // place in s
	s      []share
	free   []int32 // places in s no key holds
	last   K
	lastAt int32 // last's place, or -1: none
	lastOK bool
}

func newShares[K comparable]() shares[K] {
	return shares[K]{m: make(map[K]int32, 256), s: make([]share, 0, 256), free: make([]int32, 0, 256)}
}

// at is k's place in s, or -1.
func (h *shares[K]) at(k K) int32 {
	if h.lastOK && h.last == k {
		return h.lastAt
	}
	i, ok := h.m[k]
	if !ok {
		i = -1
	}
	h.last, h.lastAt, h.lastOK = k, i, true
	return i
}

func (h *shares[K]) get(k K) share {
	if i := h.at(k); i >= 0 {
		return h.s[i]
	}
	return share{}
}

func (h *shares[K]) set(k K, s share) {
	i := h.at(k)
	if i < 0 {
		if n := len(h.free); n > 0 {
			i, h.free = h.free[n-1], h.free[:n-1]
		} else {
			i = int32(len(h.s))
			h.s = append(h.s, share{})
		}
		h.m[k] = i
		h.lastAt = i
	}
	h.s[i] = s
}

func (h *shares[K]) del(k K) {
	if i := h.at(k); i >= 0 {
		delete(h.m, k)
		h.s[i] = share{}
		h.free = append(h.free, i)
		h.lastAt = -1
	}
}

// OwnerFlows is the number of flows charged to o.
func (t *Table) OwnerFlows(o Owner) int { return int(t.perOwner.get(o.key()).n) }

// SetRuleLimit sets how many flows each OwnerRule owner may have (the
// per-host limit until set; 0: none).
func (t *Table) SetRuleLimit(n int) { t.maxRule, t.room = int32(n), false }

// SetLink names what the flows Insert makes from now on are charged to
// besides their host: the source MAC of the LAN frame being processed, or
// no one (the zero Owner) for a frame from the WAN.
func (t *Table) SetLink(o Owner) { t.linkOwner = o }

// EarlyDrops are the counts of flows removed to make room.
func (t *Table) EarlyDrops() EarlyDrops { return t.early }

func (t *Table) ownerMax(o Owner) int32 {
	switch o.Kind {
	case OwnerMAC:
		return t.maxHost
	case OwnerRule:
		return t.maxRule
	case OwnerMACInbound:
		return max(t.maxHost, t.maxRule) // as the host's inbound share
	}
	return 0
}

func (t *Table) hostFull(host [4]byte, o Owner) bool {
	limit := t.maxHost
	if o.Kind == OwnerRule || o.Kind == OwnerInbound || o.Kind == OwnerMACInbound {
		// The inbound share: as large as a rule's, so that raising
		// the rules' limit for a busy server is not undone here.
		limit = max(limit, t.maxRule)
	}
	return host != ([4]byte{}) && limit > 0 && t.perHost.get(keyOfHost(host, o)).n >= limit
}

func (t *Table) ownerFull(o Owner) bool {
	m := t.ownerMax(o)
	return o.Kind != OwnerNone && m > 0 && t.perOwner.get(o.key()).n >= m
}

// MakeRoom makes sure a flow charged to host and to owner (the zero
// values: no one) fits, removing a closed flow (Closed: a reset TCP
// connection), else the oldest that has seen no reply (half-open TCP,
// unanswered UDP), where the table, the host's share or the owner's is
// full, as Linux's conntrack early_drop does; flows that have seen a
// reply and are not closed are never removed. It returns the error Insert would
// return, or nil. Removal runs OnDelete, so the caller must hold nothing
// of a flow's (a mapping, a pointer) across the call.
func (t *Table) MakeRoom(host [4]byte, owner Owner) error {
	return t.MakeRoomKeeping(host, owner, noFlow)
}

// MakeRoomKeeping is MakeRoom never removing flow keep (the flow whose
// packet is being handled when a helper makes a flow of its own).
func (t *Table) MakeRoomKeeping(host [4]byte, owner Owner, keep int32) error {
	dropped := false
	if t.ownerFull(owner) {
		if !t.evict(t.shareHead(t.perOwner.get(owner.key()), shareOwner, keep)) {
			return ErrOwnerLimit
		}
		if owner.Kind == OwnerMAC || owner.Kind == OwnerMACInbound {
			t.early.MACQuota++
		} else {
			t.early.RuleQuota++
		}
		dropped = true
	}
	if t.hostFull(host, owner) {
		if !t.evict(t.shareHead(t.perHost.get(keyOfHost(host, owner)), shareHost, keep)) {
			return ErrHostLimit
		}
		t.early.HostQuota++
		dropped = true
	}
	if t.full() {
		x := t.unrHead
		if x != noFlow && t.xp.at(x).id == keep {
			x = t.xp.at(x).unrNext
		}
		if !t.evict(x) {
			return ErrFull
		}
		t.early.TableFull++
	}
	if dropped {
		// One drop a share: a share over its limit by more (a rule
		// limit lowered, SetRuleLimit) is still full, and Insert,
		// trusting the room, would keep it over the limit for good.
		if t.hostFull(host, owner) {
			return ErrHostLimit
		}
		if t.ownerFull(owner) {
			return ErrOwnerLimit
		}
	}
	t.room, t.roomHost, t.roomOwner = true, host, owner
	return nil
}

// shareHead is the record of the first flow of s's unreplied list w (a
// closed one, else the oldest) other than keep.
func (t *Table) shareHead(s share, w int, keep int32) int32 {
	if s.n == 0 {
		return noFlow // a share never charged: its list is not set up
	}
	x := s.head
	if x != noFlow && t.xp.at(x).id == keep {
		x = t.xp.at(x).shNext[w]
	}
	return x
}

// EvictOldest removes the oldest flow that has seen no reply among those
// charged to host from owner's frames (the MAC, or none) and that match
// accepts, looking at the evictScan oldest, as an early drop does for what
// the caller bounds itself (a helper's ids held for a LAN host); it reports
// whether it removed one. Flows that have seen a reply are never removed.
// Removal runs OnDelete.
func (t *Table) EvictOldest(host [4]byte, owner Owner, match func(*Flow) bool) bool {
	s := t.perHost.get(keyOfHost(host, owner))
	if s.n == 0 {
		return false
	}
	x := s.head
	for n := 0; x != noFlow && n < evictScan; n++ {
		r := t.xp.at(x)
		if match(&t.flows[r.id]) {
			return t.evict(x)
		}
		x = r.shNext[shareHost]
	}
	return false
}

// evictScan bounds how many of a host's unreplied flows one EvictOldest
// looks at, so its cost does not grow with the host's share.
const evictScan = 64

// evict removes the flow of record x, the head of an unreplied list,
// and reports whether there was one.
func (t *Table) evict(x int32) bool {
	if x == noFlow {
		return false
	}
	t.Delete(t.xp.at(x).id)
	return true
}

// shareAdd charges flow id to s and puts it at the end of s's unreplied
// list w. The lists link the flows' records (flowExt), not the flows.
func (t *Table) shareAdd(s share, id int32, w int) share {
	if s.n == 0 {
		s.head, s.tail, s.ctail = noFlow, noFlow, noFlow
	}
	s.n++
	x := t.flows[id].x
	r := t.xp.at(x)
	r.shNext[w], r.shPrev[w] = noFlow, s.tail
	if s.tail != noFlow {
		t.xp.at(s.tail).shNext[w] = x
	} else {
		s.head = x
	}
	s.tail = x
	return s
}

// shareUnlink takes flow id off s's unreplied list w.
func (t *Table) shareUnlink(s share, id int32, w int) share {
	x := t.flows[id].x
	f := t.xp.at(x)
	if p := f.shPrev[w]; p != noFlow {
		t.xp.at(p).shNext[w] = f.shNext[w]
	} else {
		s.head = f.shNext[w]
	}
	if n := f.shNext[w]; n != noFlow {
		t.xp.at(n).shPrev[w] = f.shPrev[w]
	} else {
		s.tail = f.shPrev[w]
	}
	if s.ctail == x {
		s.ctail = f.shPrev[w] // closed too, or none
	}
	f.shNext[w], f.shPrev[w] = noFlow, noFlow
	return s
}

// sharesUnlink takes an unreplied flow off its shares' unreplied lists.
func (t *Table) sharesUnlink(f *Flow, id int32) {
	if f.Host != ([4]byte{}) {
		hk := keyOfHost(f.Host, f.Owner)
		t.perHost.set(hk, t.shareUnlink(t.perHost.get(hk), id, shareHost))
	}
	if f.Owner.Kind != OwnerNone {
		okey := f.Owner.key()
		t.perOwner.set(okey, t.shareUnlink(t.perOwner.get(okey), id, shareOwner))
	}
}

// Replied marks a flow as having seen a reply: from then on no early
// drop removes it.
func (t *Table) Replied(id int32) {
	f := &t.flows[id]
	if f.st&stReplied != 0 {
		return
	}
	f.st |= stReplied
	f.st &^= stClosed
	t.unrUnlink(id)
	t.sharesUnlink(f, id)
	t.dropExt(f)
}

// Closed marks a flow whose connection is over (a TCP reset, or both FINs) as one of
// the first an early drop may take: it is no longer assured, and goes on
// the table's and its shares' unreplied lists after the closed flows at
// their heads, before every flow never answered (a connection being
// opened now, which losing would break). Among closed flows the one
// closed longest ago goes first: what a reset's state is kept for (a lost
// reset, the connection going on) comes soon after it if at all. Its
// deadline is the owner's to keep: it stays until then unless room is
// needed. Replied (the tuple reused by a new connection, established)
// makes it assured again.
func (t *Table) Closed(id int32) {
	f := &t.flows[id]
	if f.st&stInUse == 0 || f.st&(stClosed|stReplied) == stClosed {
		return // already closed and not answered since: where it is
	}
	if f.st&stReplied == 0 {
		t.unrUnlink(id)
		t.sharesUnlink(f, id)
	} else if f.x == 0 {
		f.x = t.newExt(id)
	}
	f.st = f.st&^stReplied | stClosed
	x := f.x
	p := t.unrCTail
	n := t.unrHead
	if p != noFlow {
		n = t.xp.at(p).unrNext
		t.xp.at(p).unrNext = x
	} else {
		t.unrHead = x
	}
	if n != noFlow {
		t.xp.at(n).unrPrev = x
	} else {
		t.unrTail = x
	}
	r := t.xp.at(x)
	r.unrPrev, r.unrNext = p, n
	t.unrCTail = x
	if f.Host != ([4]byte{}) {
		hk := keyOfHost(f.Host, f.Owner)
		t.perHost.set(hk, t.shareClose(t.perHost.get(hk), id, shareHost))
	}
	if f.Owner.Kind != OwnerNone {
		okey := f.Owner.key()
		t.perOwner.set(okey, t.shareClose(t.perOwner.get(okey), id, shareOwner))
	}
}

// shareClose puts flow id, already charged to s, on s's unreplied list w
// after its closed flows.
func (t *Table) shareClose(s share, id int32, w int) share {
	x := t.flows[id].x
	f := t.xp.at(x)
	p, n := s.ctail, s.head
	if p != noFlow {
		n = t.xp.at(p).shNext[w]
		t.xp.at(p).shNext[w] = x
	} else {
		s.head = x
	}
	if n != noFlow {
		t.xp.at(n).shPrev[w] = x
	} else {
		s.tail = x
	}
	f.shPrev[w], f.shNext[w] = p, n
	s.ctail = x
	return s
}

func (t *Table) unrUnlink(id int32) {
	x := t.flows[id].x
	f := t.xp.at(x)
	if f.unrPrev != noFlow {
		t.xp.at(f.unrPrev).unrNext = f.unrNext
	} else if t.unrHead == x {
		t.unrHead = f.unrNext
	}
	if f.unrNext != noFlow {
		t.xp.at(f.unrNext).unrPrev = f.unrPrev
	} else if t.unrTail == x {
		t.unrTail = f.unrPrev
	}
	if t.unrCTail == x {
		t.unrCTail = f.unrPrev
	}
	f.unrNext, f.unrPrev = noFlow, noFlow
}

// Live reports whether id is a live flow of generation gen (ids are
// reused, so whoever keeps an id keeps its Gen too).
func (t *Table) Live(id int32, gen uint32) bool {
	return id >= 0 && int(id) < len(t.flows) && t.flows[id].st&stInUse != 0 && t.flows[id].Gen == gen
}

// createdShift: a flow keeps when it was made in units of 2^24 ns (some
// 17 ms) in 32 bits, which span 2.3 years; Created reads them as within
// half that of the wheel's clock (lastTick).
const createdShift = 24

// Created is when flow id was made (the now Insert was given, to some
// 17 ms: createdShift).
func (t *Table) Created(id int32) int64 {
	ref := t.lastTick << (tickShift - createdShift)
	return (ref + int64(int32(t.flows[id].created-uint32(ref)))) << createdShift
}

// Seq is flow id's TCP sequence state (zero when a TCP flow is made;
// meaningless for other protocols). It stays where it is: the pointer is
// good while the flow lives.
func (t *Table) Seq(id int32) *[2]Seq { return &t.seq[id] }

// Get returns the flow with id; valid until the flow is deleted.
func (t *Table) Get(id int32) *Flow { return &t.flows[id] }

// Insert adds a flow. host, if not zero, is charged against the per-host
// limit, and so is what SetLink last named against its own. The caller
// fills the returned flow's other fields.
func (t *Table) Insert(orig, reply Tuple, host [4]byte, now, deadline int64) (int32, error) {
	return t.InsertOwned(orig, reply, host, t.linkOwner, now, deadline)
}

// InsertOwned is Insert charging owner instead of what SetLink named.
func (t *Table) InsertOwned(orig, reply Tuple, host [4]byte, owner Owner, now, deadline int64) (int32, error) {
	if !t.room || t.roomHost != host || t.roomOwner != owner {
		if t.full() {
			return noFlow, ErrFull
		}
		if t.hostFull(host, owner) {
			return noFlow, ErrHostLimit
		}
		if t.ownerFull(owner) {
			return noFlow, ErrOwnerLimit
		}
	}
	if orig == reply {
		return noFlow, ErrExists
	}
	id := t.freeHead
	if id == noFlow {
		id = t.fresh
	}
	// The index reads a tuple from its flow: the free flow holds them
	// first.
	f := &t.flows[id]
	f.Orig, f.Reply = orig, reply
	if err := t.add(&f.Orig, uint32(id)<<1); err != nil {
		return noFlow, err
	}
	if err := t.add(&f.Reply, uint32(id)<<1|1); err != nil {
		t.del(&f.Orig, uint32(id)<<1)
		return noFlow, err
	}
	if id == t.freeHead {
		t.freeHead = f.next
	} else {
		t.fresh++
	}
	// Cleared, then set field by field: a Flow literal is built on
	// the stack and copied, twice the stores.
	gen := f.Gen + 1
	*f = Flow{}
	f.Orig, f.Reply, f.Xlate = orig, reply, reply
	f.Host, f.Owner, f.Deadline, f.Gen, f.st = host, owner, deadline, gen, stInUse
	f.created = uint32(now >> createdShift)
	if orig.Proto == protoTCP {
		t.seq[id] = [2]Seq{}
	}
	x := t.newExt(id)
	f.x = x
	t.xp.at(x).unrPrev = t.unrTail
	if host != ([4]byte{}) {
		hk := keyOfHost(host, owner)
		t.perHost.set(hk, t.shareAdd(t.perHost.get(hk), id, shareHost))
	}
	if owner.Kind != OwnerNone {
		okey := owner.key()
		t.perOwner.set(okey, t.shareAdd(t.perOwner.get(okey), id, shareOwner))
	}
	if t.unrTail != noFlow {
		t.xp.at(t.unrTail).unrNext = x
	} else {
		t.unrHead = x
	}
	t.unrTail = x
	t.room = false // the room MakeRoom made is this flow's
	t.live++
	t.byProto[orig.Proto]++
	t.byClass[0]++
	t.link(id, deadline)
	return id, nil
}

// Rekey replaces a flow's reply tuple (helpers learn ids after creation,
// like an ESP SPI chosen by the server).
func (t *Table) Rekey(id int32, reply Tuple) error {
	f := &t.flows[id]
	if reply == f.Reply {
		return nil
	}
	if _, ok := t.get(&reply); ok {
		return ErrExists
	}
	v := uint32(id)<<1 | 1
	old := f.Reply
	t.del(&f.Reply, v)
	f.Reply = reply
	if err := t.add(&f.Reply, v); err != nil {
		// Back as it was: old's run only got shorter.
		f.Reply = old
		_ = t.add(&f.Reply, v)
		return err
	}
	return nil
}

// SetDeadline moves a flow's deadline. Later is free (the wheel finds out
// when the old slot comes round); earlier, as after a TCP reset, moves the
// flow to an earlier slot so it does not outlive its new deadline.
func (t *Table) SetDeadline(id int32, deadline int64) {
	f := &t.flows[id]
	f.Deadline = deadline
	if f.st&stLinked != 0 && deadline>>tickShift < t.flowTick(f) {
		t.unlink(id)
		t.link(id, deadline)
	}
}

// Deadline reads flow id's deadline; it may run alongside ExtendDeadline.
func (t *Table) Deadline(id int32) int64 { return atomic.LoadInt64(&t.flows[id].Deadline) }

// ExtendDeadline moves flow id's deadline later if that leaves the
// timing wheel as it is (the flow's slot is at or before the new deadline: Expire
// finds it there and looks again later). It writes the deadline alone,
// atomically, so goroutines that only read the table otherwise may call
// it at once for the same flow. It reports false, changing nothing, when
// the wheel would have to move the flow: then SetDeadline, alone.
func (t *Table) ExtendDeadline(id int32, deadline int64) bool {
	f := &t.flows[id]
	if atomic.LoadInt64(&f.Deadline) >= deadline {
		// Already as late (the other direction's worker got there
		// first): a store would only pull the cache line to this core.
		return true
	}
	// A live flow is always on the wheel but inside Expire, so linked
	// (at the far end of the flow, a cache line a packet has no other
	// reason to read) need not be looked at: tick is its slot's.
	if deadline>>tickShift < t.flowTick(f) {
		return false
	}
	atomic.StoreInt64(&f.Deadline, deadline)
	return true
}

// ExtendDeadlineLocked is ExtendDeadline for an owner that has the table
// to itself (no goroutine reads it meanwhile): the deadline is stored
// plainly, not with an atomic store (a full fence on x86).
func (t *Table) ExtendDeadlineLocked(id int32, deadline int64) bool {
	f := &t.flows[id]
	if f.Deadline >= deadline {
		return true
	}
	if deadline>>tickShift < t.flowTick(f) {
		return false
	}
	f.Deadline = deadline
	return true
}

// Delete removes a flow now.
func (t *Table) Delete(id int32) {
	f := &t.flows[id]
	if f.st&stInUse == 0 {
		return
	}
	t.unlink(id)
	t.remove(id)
}

func (t *Table) remove(id int32) {
	f := &t.flows[id]
	if t.OnDelete != nil {
		t.OnDelete(id, f)
	}
	t.del(&f.Orig, uint32(id)<<1)
	t.del(&f.Reply, uint32(id)<<1|1)
	if f.st&stReplied == 0 {
		t.unrUnlink(id)
		t.sharesUnlink(f, id)
	}
	if f.x != 0 {
		t.xp.put(f.x)
		f.x = 0
	}
	if f.Host != ([4]byte{}) {
		hk := keyOfHost(f.Host, f.Owner)
		if s := t.perHost.get(hk); s.n > 1 {
			s.n--
			t.perHost.set(hk, s)
		} else {
			t.perHost.del(hk)
		}
	}
	if f.Owner.Kind != OwnerNone {
		okey := f.Owner.key()
		if s := t.perOwner.get(okey); s.n > 1 {
			s.n--
			t.perOwner.set(okey, s)
		} else {
			t.perOwner.del(okey)
		}
	}
	f.st &^= stInUse
	t.live--
	t.byProto[f.Orig.Proto]--
	t.byClass[f.class]--
	f.next = t.freeHead
	t.freeHead = id
}

// Range calls fn for every live flow until fn returns false. Not for the
// packet path.
func (t *Table) Range(fn func(id int32, f *Flow) bool) {
	for i := range t.flows {
		if t.flows[i].st&stInUse != 0 && !fn(int32(i), &t.flows[i]) {
			return
		}
	}
}

// Expire removes every flow whose deadline is at or before now, and
// returns how many it removed. A flow's deadline can move later without
// touching the wheel (a packet only writes Flow.Deadline); when its slot
// comes round and the deadline has moved, the flow is put in the slot of its
// new deadline. So the work done here follows the flows that expire or
// reach their old slot, never the size of the table.
func (t *Table) Expire(now int64) int {
	n := t.expireExpectations(now)
	tick := now >> tickShift
	if tick-t.lastTick > wheelSize {
		// Idle for longer than a turn: visit every slot once.
		t.lastTick = tick - wheelSize
	}
	for ; t.lastTick <= tick; t.lastTick++ {
		s := int32(t.lastTick & (wheelSize - 1))
		id := t.wheel[s]
		t.wheel[s] = noFlow
		for id != noFlow {
			f := &t.flows[id]
			next := f.next
			f.next, f.prev = noFlow, noFlow
			f.st &^= stLinked
			if f.Deadline <= now {
				t.remove(id)
				n++
			} else {
				t.linkAfter(id, f.Deadline, t.lastTick)
			}
			id = next
		}
	}
	t.lastTick = tick
	return n
}

func (t *Table) link(id int32, deadline int64) { t.linkAfter(id, deadline, t.lastTick) }

// linkAfter puts a flow in the slot of its deadline, never in a slot at or
// before the tick being processed (it would be seen again a turn late, or
// twice in one pass).
func (t *Table) linkAfter(id int32, deadline int64, cur int64) {
	tick := deadline >> tickShift
	if tick <= cur {
		tick = cur + 1
	}
	if tick-cur >= wheelSize {
		tick = cur + wheelSize - 1
	}
	s := int32(tick & (wheelSize - 1))
	f := &t.flows[id]
	f.st |= stLinked
	f.tick = uint32(tick)
	f.prev = noFlow
	f.next = t.wheel[s]
	if f.next != noFlow {
		t.flows[f.next].prev = id
	}
	t.wheel[s] = id
}

func (t *Table) unlink(id int32) {
	f := &t.flows[id]
	if f.st&stLinked == 0 {
		return
	}
	if f.prev != noFlow {
		t.flows[f.prev].next = f.next
	} else {
		t.wheel[f.tick&(wheelSize-1)] = f.next
	}
	if f.next != noFlow {
		t.flows[f.next].prev = f.prev
	}
	f.next, f.prev = noFlow, noFlow
	f.st &^= stLinked
}

// flowTick is the wheel tick of a linked flow's slot. A flow keeps its
// tick's low 32 bits only, to fit the line the packet path reads; the
// rest follows from lastTick, which a linked flow's tick is always
// within a turn of the wheel of.
func (t *Table) flowTick(f *Flow) int64 {
	return t.lastTick + int64(int32(f.tick-uint32(t.lastTick)))
}
