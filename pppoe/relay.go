package pppoe

import (
	"encoding/binary"
	"errors"
	"time"

	"passgate/packet"
)

// Side is the interface a frame arrived on or leaves by.
type Side uint8

const (
	LAN Side = iota // the hosts that dial
	WAN             // the access concentrators
)

func (s Side) String() string {
	if s == LAN {
		return "lan"
	}
	return "wan"
}

// Config configures a Relay.
type Config struct {
	LANMAC packet.MAC // the router's address on the LAN: the "access concentrator" hosts see
	WANMAC packet.MAC // the router's address on the WAN: the "host" access concentrators see

	// IdleTimeout ends a session no frame crossed for this long, with a
	// PADT to both ends; default 10 minutes. PPP's LCP echoes keep a live
	// session busy.
	IdleTimeout time.Duration
	// DiscoveryTimeout is how long a host's discovery (PADI to PADS) is
	// remembered after its last PADI or PADR; default 30 s.
	DiscoveryTimeout time.Duration
	// MaxSessions bounds the session table; default 128.
	MaxSessions int
	// MaxDiscoveries bounds the hosts in discovery at once; default 64.
	MaxDiscoveries int
	// MaxPayload is the largest PPPoE packet (header and tags, the
	// Ethernet payload) the relay builds: the smaller MTU; default 1500.
	MaxPayload int
	// Mark starts every Relay-Session-Id the relay adds, so it knows its
	// own; choose it at random per run. 0 means a fixed default.
	Mark uint32
	// EmitBytes is the room for frames the relay builds between two
	// ResetEmitted calls; default 64 KiB.
	EmitBytes int
}

// Defaults.
const (
	DefaultIdleTimeout      = 10 * time.Minute
	DefaultDiscoveryTimeout = 30 * time.Second
	DefaultMaxSessions      = 128
	DefaultMaxDiscoveries   = 64
	DefaultMaxPayload       = 1500
	DefaultMark             = 0x70675252 // "pgRR"
	DefaultEmitBytes        = 64 << 10

	// MaxForeignRelayID is the longest Relay-Session-Id of another relay
	// that this relay keeps (to route the answers by it).
	MaxForeignRelayID = 64

	maxOffers = 4
)

func (c *Config) setDefaults() {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.DiscoveryTimeout <= 0 {
		c.DiscoveryTimeout = DefaultDiscoveryTimeout
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxDiscoveries <= 0 {
		c.MaxDiscoveries = DefaultMaxDiscoveries
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	if c.EmitBytes <= 0 {
		c.EmitBytes = DefaultEmitBytes
	}
}

// Action is what the caller does with the frame it handed to Process.
type Action uint8

const (
	// Drop: discard the frame; Verdict.Reason says why.
	Drop Action = iota
	// Forward: the frame was rewritten in place; send Verdict.Frame (a
	// prefix of it) out Verdict.Out.
	Forward
	// Consumed: send nothing for the frame itself; what the relay built
	// instead waits in Emitted.
	Consumed
)

// Verdict is the outcome of Process.
type Verdict struct {
	Action Action
	Out    Side
	Frame  []byte
	Reason Reason
}

// Emit is a frame the relay built (a discovery frame whose tags changed
// length, a Generic-Error, a PADT); Frame is a whole Ethernet frame in the
// relay's buffer, valid until ResetEmitted.
type Emit struct {
	Out   Side
	Frame []byte
}

// Relay-Session-Id values the relay adds are RelayIDLen bytes: the mark (4
// bytes), a kind, a zero byte, and a MAC address. Toward the WAN they name
// the LAN host (kindHost), so the answers of an access concentrator find
// it; toward the LAN, in a PADO, they name the access concentrator
// (kindAC), which the host must echo in its PADR (RFC 2516 section 4: "If
// either the Host or Access Concentrator receives this TAG they MUST
// include it unmodified in any discovery packet they send as a response"),
// so the relay knows which of several offers the host took. This is how
// rp-pppoe's pppoe-relay works too.
const (
	kindHost = 1
	kindAC   = 2
)

type session struct {
	sid          uint16
	host, ac     packet.MAC
	opened, last time.Duration
	toWAN, toLAN uint64
	used         bool
}

type offer struct {
	ac        packet.MAC
	cookie    uint64 // FNV-1a of the AC-Cookie
	hasCookie bool
}

// discovery is a host between its PADI and its PADS. A host that sent
// its own Relay-Session-Id (another relay sits between it and us) has one
// per such id: foreign.
type discovery struct {
	host    packet.MAC
	foreign bool
	idLen   uint8
	id      [MaxForeignRelayID]byte
	offers  [maxOffers]offer
	nOffers uint8
	next    uint8 // ring position of the next new offer
	until   time.Duration
	used    bool
	done    bool // a PADS opened its session: kept for a repeated PADR, but first to go
}

func (d *discovery) addOffer(o offer) {
	for i := range int(d.nOffers) {
		if d.offers[i].ac == o.ac {
			d.offers[i] = o
			return
		}
	}
	d.offers[d.next] = o
	d.next = (d.next + 1) % maxOffers
	if d.nOffers < maxOffers {
		d.nOffers++
	}
}

func (d *discovery) offered(ac packet.MAC) bool {
	for i := range int(d.nOffers) {
		if d.offers[i].ac == ac {
			return true
		}
	}
	return false
}

// Relay is the PPPoE relay. It is not safe for concurrent use: the caller
// serialises Process, Expire and the rest.
type Relay struct {
	cfg  Config
	mark [4]byte
	on   bool

	sessions []session
	free     []int32
	byLAN    map[uint64]int32 // (session id, host MAC)
	byWAN    map[uint64]int32 // (session id, AC MAC)

	disc []discovery

	arena []byte
	used  int
	emits []Emit

	stats Stats
}

// New makes a relay, switched on.
func New(cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if cfg.LANMAC.IsZero() || cfg.WANMAC.IsZero() || cfg.LANMAC.IsMulticast() || cfg.WANMAC.IsMulticast() {
		return nil, errors.New("pppoe: the relay needs the router's unicast LAN and WAN MAC addresses")
	}
	if cfg.MaxPayload < HeaderLen+64 {
		return nil, errors.New("pppoe: MaxPayload too small")
	}
	r := &Relay{
		cfg:      cfg,
		on:       true,
		sessions: make([]session, cfg.MaxSessions),
		free:     make([]int32, 0, cfg.MaxSessions),
		byLAN:    make(map[uint64]int32, cfg.MaxSessions),
		byWAN:    make(map[uint64]int32, cfg.MaxSessions),
		disc:     make([]discovery, cfg.MaxDiscoveries),
		arena:    make([]byte, cfg.EmitBytes),
		emits:    make([]Emit, 0, 2*cfg.MaxSessions+64), // room for a PADT each way per session
	}
	binary.BigEndian.PutUint32(r.mark[:], cfg.Mark)
	for i := cfg.MaxSessions - 1; i >= 0; i-- {
		r.free = append(r.free, int32(i))
	}
	return r, nil
}

// Config is the relay's configuration, defaults filled in.
func (r *Relay) Config() Config { return r.cfg }

// Enabled reports whether the relay is switched on.
func (r *Relay) Enabled() bool { return r.on }

// SetEnabled switches the relay at time now. Switched off, it drops every
// PPPoE frame and ends its sessions at once, with a PADT to both ends of
// each (in Emitted), as routers do when a passthrough is switched off.
func (r *Relay) SetEnabled(now time.Duration, on bool) {
	if on == r.on {
		return
	}
	r.on = on
	if on {
		return
	}
	for i := range r.sessions {
		if s := &r.sessions[i]; s.used {
			r.sendPADTs(s, "passgate: PPPoE relay switched off")
			r.stats.SwitchedOff++
			r.remove(int32(i))
		}
	}
	for i := range r.disc {
		r.disc[i] = discovery{}
	}
}

// Stats returns the counters.
func (r *Relay) Stats() Stats {
	s := r.stats
	s.Sessions = len(r.byWAN)
	for i := range r.disc {
		if r.disc[i].used {
			s.Discoveries++
		}
	}
	return s
}

// SessionInfo describes one relayed session.
type SessionInfo struct {
	ID                       uint16
	Host                     packet.MAC // the LAN host
	AC                       packet.MAC // the access concentrator
	Opened, LastActive       time.Duration
	FramesToWAN, FramesToLAN uint64
	ExpiresIn                time.Duration // unless a frame crosses
}

// Sessions calls fn for every session until fn returns false.
func (r *Relay) Sessions(now time.Duration, fn func(SessionInfo) bool) {
	for i := range r.sessions {
		s := &r.sessions[i]
		if !s.used {
			continue
		}
		info := SessionInfo{ID: s.sid, Host: s.host, AC: s.ac, Opened: s.opened, LastActive: s.last,
			FramesToWAN: s.toWAN, FramesToLAN: s.toLAN, ExpiresIn: max(0, s.last+r.cfg.IdleTimeout-now)}
		if !fn(info) {
			return
		}
	}
}

// Emitted returns the frames the relay built since the last ResetEmitted.
func (r *Relay) Emitted() []Emit { return r.emits }

// ResetEmitted releases the buffers of Emitted; call it once the frames
// are copied or sent.
func (r *Relay) ResetEmitted() {
	clear(r.emits)
	r.emits = r.emits[:0]
	r.used = 0
}

// Expire ends the sessions idle for IdleTimeout, with a PADT to both ends
// of each (in Emitted), and forgets discoveries that are over.
func (r *Relay) Expire(now time.Duration) {
	for i := range r.sessions {
		s := &r.sessions[i]
		if s.used && now-s.last >= r.cfg.IdleTimeout {
			r.sendPADTs(s, "passgate: PPPoE relay: session idle timeout")
			r.stats.Expired++
			r.remove(int32(i))
		}
	}
	for i := range r.disc {
		if d := &r.disc[i]; d.used && now >= d.until {
			*d = discovery{}
		}
	}
}

func key(sid uint16, m packet.MAC) uint64 {
	return uint64(sid)<<48 | uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

func (r *Relay) drop(why Reason) Verdict {
	r.stats.Drops[why]++
	return Verdict{Action: Drop, Reason: why}
}

// Process handles one Ethernet frame of type 0x8863 or 0x8864 received on
// side in. It may rewrite the frame in place.
func (r *Relay) Process(now time.Duration, in Side, frame []byte) Verdict {
	if !r.on {
		return r.drop(ReasonOff)
	}
	if len(frame) < packet.EtherHeaderLen {
		return r.drop(ReasonMalformed)
	}
	eth := packet.Ether(frame)
	p, err := Parse(eth.Payload())
	if err != nil || eth.Src().IsMulticast() || eth.Src().IsZero() {
		return r.drop(ReasonMalformed)
	}
	switch eth.Type() {
	case EtherTypeSession:
		return r.sessionFrame(now, in, eth, p)
	case EtherTypeDiscovery:
		return r.discoveryFrame(now, in, eth, p)
	}
	return r.drop(ReasonMalformed)
}

// end returns the frame up to the end of the PPPoE packet of length n
// (header included), zero-padded to the Ethernet minimum where the
// received frame had room.
// discoveryOut sends a discovery frame of n bytes of PPPoE out of side
// out to dst, from the relay's MAC address on that side, and counts it.
func (r *Relay) discoveryOut(out Side, eth packet.Ether, dst packet.MAC, n int) Verdict {
	eth.SetDst(dst)
	if out == LAN {
		eth.SetSrc(r.cfg.LANMAC)
		r.stats.DiscoveryToLAN++
	} else {
		eth.SetSrc(r.cfg.WANMAC)
		r.stats.DiscoveryToWAN++
	}
	return Verdict{Action: Forward, Out: out, Frame: end(eth, n)}
}

func end(frame []byte, n int) []byte {
	n += packet.EtherHeaderLen
	if n < packet.MinFrameLen && len(frame) >= packet.MinFrameLen {
		clear(frame[n:packet.MinFrameLen])
		n = packet.MinFrameLen
	}
	return frame[:n]
}

func (r *Relay) sessionFrame(now time.Duration, in Side, eth packet.Ether, p Packet) Verdict {
	if p.Code() != CodeSession {
		return r.drop(ReasonMalformed)
	}
	own, byPeer, out, outMAC := r.cfg.LANMAC, r.byLAN, WAN, r.cfg.WANMAC
	if in == WAN {
		own, byPeer, out, outMAC = r.cfg.WANMAC, r.byWAN, LAN, r.cfg.LANMAC
	}
	if eth.Dst() != own {
		return r.drop(ReasonNotForUs)
	}
	i, ok := byPeer[key(p.SessionID(), eth.Src())]
	if !ok {
		return r.drop(ReasonUnknownSession)
	}
	s := &r.sessions[i]
	s.last = now
	to := s.ac
	if in == LAN {
		s.toWAN++
		r.stats.SessionToWAN++
	} else {
		to = s.host
		s.toLAN++
		r.stats.SessionToLAN++
	}
	eth.SetDst(to)
	eth.SetSrc(outMAC)
	return Verdict{Action: Forward, Out: out, Frame: end(eth, len(p))}
}

func (r *Relay) discoveryFrame(now time.Duration, in Side, eth packet.Ether, p Packet) Verdict {
	if CheckTags(p.Payload()) != nil {
		return r.drop(ReasonMalformed)
	}
	code := p.Code()
	if in == LAN {
		switch code {
		case CodePADI:
			if p.SessionID() != 0 || (eth.Dst() != packet.Broadcast && eth.Dst() != r.cfg.LANMAC) {
				return r.drop(ReasonMalformed)
			}
			return r.fromHost(now, eth, p)
		case CodePADR:
			if p.SessionID() != 0 {
				return r.drop(ReasonMalformed)
			}
			if eth.Dst() != r.cfg.LANMAC {
				return r.drop(ReasonNotForUs)
			}
			return r.fromHost(now, eth, p)
		case CodePADT:
			if eth.Dst() != r.cfg.LANMAC {
				return r.drop(ReasonNotForUs)
			}
			return r.padt(LAN, eth, p)
		}
		return r.drop(ReasonUnexpected)
	}
	switch code {
	case CodePADO, CodePADS, CodePADT, CodePADM, CodePADN:
		if eth.Dst() != r.cfg.WANMAC {
			return r.drop(ReasonNotForUs)
		}
	default:
		return r.drop(ReasonUnexpected)
	}
	switch code {
	case CodePADO, CodePADS:
		return r.fromAC(now, eth, p)
	case CodePADT:
		return r.padt(WAN, eth, p)
	}
	return r.acMessage(now, eth, p)
}

// ownID reports whether v is one of the relay's own Relay-Session-Id
// values, and its kind and MAC.
func (r *Relay) ownID(v []byte) (kind byte, m packet.MAC, ok bool) {
	if len(v) != RelayIDLen || [4]byte(v[0:4]) != r.mark || v[5] != 0 || (v[4] != kindHost && v[4] != kindAC) {
		return 0, m, false
	}
	return v[4], packet.MAC(v[6:12]), true
}

func (r *Relay) putID(v []byte, kind byte, m packet.MAC) {
	copy(v[0:4], r.mark[:])
	v[4] = kind
	v[5] = 0
	copy(v[6:12], m[:])
}

// relayID finds the first Relay-Session-Id of a (checked) tag list: its
// value and where its tag starts and ends in payload.
func relayID(payload []byte) (v []byte, start, stop int, ok bool) {
	it := Tags(payload)
	for it.Next() {
		if t := it.Tag(); t.Type == TagRelaySessionID {
			raw := it.Raw()
			stop = it.off
			return t.Value, stop - len(raw), stop, true
		}
	}
	return nil, 0, 0, false
}

// findDisc returns the discovery of host (own id) or of a foreign id
// (anyHost: of whichever host), still under way, or -1.
func (r *Relay) findDisc(now time.Duration, host packet.MAC, foreign []byte, anyHost bool) int {
	for i := range r.disc {
		d := &r.disc[i]
		if !d.used || now >= d.until || (!anyHost && d.host != host) {
			continue
		}
		if foreign == nil {
			if !d.foreign {
				return i
			}
			continue
		}
		if d.foreign && string(d.id[:d.idLen]) == string(foreign) {
			return i
		}
	}
	return -1
}

// startDisc finds or makes the discovery entry of a PADI and clears its
// offers; -1 if the table is full.
func (r *Relay) startDisc(now time.Duration, host packet.MAC, foreign []byte) int {
	i := r.findDisc(now, host, foreign, false)
	if i < 0 {
		done := -1
		for j := range r.disc {
			d := &r.disc[j]
			if !d.used || now >= d.until {
				i = j
				break
			}
			if d.done && (done < 0 || d.until < r.disc[done].until) {
				done = j
			}
		}
		if i < 0 {
			i = done
		}
		if i < 0 {
			return -1
		}
	}
	d := &r.disc[i]
	*d = discovery{host: host, used: true}
	if foreign != nil {
		d.foreign = true
		d.idLen = uint8(copy(d.id[:], foreign))
	}
	d.until = now + r.cfg.DiscoveryTimeout
	return i
}

// fromHost relays a PADI or PADR from a LAN host to the WAN.
func (r *Relay) fromHost(now time.Duration, eth packet.Ether, p Packet) Verdict {
	host := eth.Src()
	code := p.Code()
	payload := p.Payload()
	rid, _, _, hasRID := relayID(payload)
	kind, m, own := byte(0), packet.MAC{}, false
	if hasRID {
		kind, m, own = r.ownID(rid)
	}

	if hasRID && !own {
		// Another relay's id: use it, unchanged (RFC 2516 section 4: a
		// relay MUST NOT add its own when one is there, and SHOULD use the
		// existing one).
		if len(rid) > MaxForeignRelayID {
			r.replyError(eth, p, "passgate: PPPoE relay cannot keep this Relay-Session-Id")
			return r.drop(ReasonRelayIDUnusable)
		}
		var dst packet.MAC
		if code == CodePADI {
			if r.startDisc(now, host, rid) < 0 {
				return r.drop(ReasonDiscoveryFull)
			}
			dst = packet.Broadcast
		} else {
			i := r.findDisc(now, host, rid, false)
			if i < 0 {
				return r.drop(ReasonStaleRelayID)
			}
			d := &r.disc[i]
			ac, ok := pickOffer(d, payload)
			if !ok {
				return r.drop(ReasonNoRelayID)
			}
			d.until = now + r.cfg.DiscoveryTimeout
			dst = ac
		}
		r.stats.ForeignRelays++
		return r.discoveryOut(WAN, eth, dst, len(p))
	}

	if code == CodePADI {
		// Our own id in a PADI is left over from an earlier discovery:
		// replace it with a fresh one.
		if r.startDisc(now, host, nil) < 0 {
			return r.drop(ReasonDiscoveryFull)
		}
		if hasRID {
			r.putID(rid, kindHost, host)
			return r.discoveryOut(WAN, eth, packet.Broadcast, len(p))
		}
		return r.addRelayID(eth, p, packet.Broadcast)
	}

	// PADR.
	i := r.findDisc(now, host, nil, false)
	if i < 0 {
		return r.drop(ReasonStaleRelayID)
	}
	d := &r.disc[i]
	if hasRID {
		if kind != kindAC || !d.offered(m) {
			return r.drop(ReasonStaleRelayID)
		}
		d.until = now + r.cfg.DiscoveryTimeout
		r.putID(rid, kindHost, host)
		return r.discoveryOut(WAN, eth, m, len(p))
	}
	// A host that did not echo the id: it can only mean the one AC that
	// made an offer.
	ac, ok := pickOffer(d, payload)
	if !ok {
		return r.drop(ReasonNoRelayID)
	}
	d.until = now + r.cfg.DiscoveryTimeout
	return r.addRelayID(eth, p, ac)
}

// pickOffer chooses the access concentrator a PADR is for, among the
// offers a discovery received: the one whose AC-Cookie the PADR echoes,
// else the only one.
func pickOffer(d *discovery, payload []byte) (packet.MAC, bool) {
	if c, ok, _ := FindTag(payload, TagACCookie); ok {
		h := fnv(c)
		for i := range int(d.nOffers) {
			if o := d.offers[i]; o.hasCookie && o.cookie == h {
				return o.ac, true
			}
		}
	}
	if d.nOffers == 1 {
		return d.offers[0].ac, true
	}
	return packet.MAC{}, false
}

func fnv(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// addRelayID sends the host's PADI or PADR to dst on the WAN with the
// relay's Relay-Session-Id naming the host added, built anew (the tags
// grow). End-Of-List and anything after it are left out, so the new tag is
// not hidden behind it.
func (r *Relay) addRelayID(eth packet.Ether, p Packet, dst packet.MAC) Verdict {
	host := eth.Src()
	payload := p.Payload()
	it := Tags(payload)
	n := 0
	for it.Next() {
		n += len(it.Raw())
	}
	newLen := n + TagHeaderLen + RelayIDLen
	if HeaderLen+newLen > r.cfg.MaxPayload {
		r.replyError(eth, p, "passgate: PPPoE relay: no room to add a Relay-Session-Id")
		return r.drop(ReasonTooLong)
	}
	f := r.alloc(WAN, packet.EtherHeaderLen+HeaderLen+newLen)
	if f == nil {
		return r.drop(ReasonEmitFull)
	}
	packet.Ether(f).SetHeader(dst, r.cfg.WANMAC, EtherTypeDiscovery)
	Packet(f[packet.EtherHeaderLen:]).SetHeader(p.Code(), 0, newLen)
	w := packet.EtherHeaderLen + HeaderLen
	w += copy(f[w:], payload[:n])
	binary.BigEndian.PutUint16(f[w:], TagRelaySessionID)
	binary.BigEndian.PutUint16(f[w+2:], RelayIDLen)
	r.putID(f[w+TagHeaderLen:], kindHost, host)
	r.stats.DiscoveryToWAN++
	r.stats.TagsAdded++
	return Verdict{Action: Consumed, Out: WAN}
}

// fromAC relays a PADO or PADS from an access concentrator to the LAN host
// its Relay-Session-Id names, and opens a session on a PADS.
func (r *Relay) fromAC(now time.Duration, eth packet.Ether, p Packet) Verdict {
	ac := eth.Src()
	code := p.Code()
	payload := p.Payload()
	rid, rs, re, hasRID := relayID(payload)
	if !hasRID {
		return r.drop(ReasonNoRelayID)
	}
	kind, host, own := r.ownID(rid)
	var d *discovery
	if own {
		if kind != kindHost {
			return r.drop(ReasonNoRelayID)
		}
		i := r.findDisc(now, host, nil, false)
		if i < 0 {
			return r.drop(ReasonStaleRelayID)
		}
		d = &r.disc[i]
	} else {
		i := r.findDisc(now, packet.MAC{}, rid, true)
		if i < 0 {
			return r.drop(ReasonNoRelayID)
		}
		d = &r.disc[i]
		host = d.host
	}

	if code == CodePADO {
		o := offer{ac: ac}
		if c, ok, _ := FindTag(payload, TagACCookie); ok {
			o.cookie, o.hasCookie = fnv(c), true
		}
		d.addOffer(o)
		if own {
			// The host echoes this in its PADR: it names the AC.
			r.putID(rid, kindAC, ac)
		} else {
			r.stats.ForeignRelays++
		}
		return r.discoveryOut(LAN, eth, host, len(p))
	}

	// PADS. Session id 0 is the AC's refusal (with an error tag): relay it
	// and open nothing.
	sid := p.SessionID()
	if sid != 0 {
		if sid == 0xffff {
			return r.drop(ReasonMalformed)
		}
		if why := r.open(now, sid, host, ac, p); why != ReasonNone {
			return r.drop(why)
		}
		d.done = true
	}
	if !own {
		r.stats.ForeignRelays++
		return r.discoveryOut(LAN, eth, host, len(p))
	}
	// Our tag is for us only: take it out, in place (the frame shrinks).
	pl := eth.Payload()
	cut := re - rs
	copy(pl[HeaderLen+rs:], pl[HeaderLen+re:HeaderLen+len(payload)])
	newLen := len(payload) - cut
	Packet(pl).SetHeader(code, sid, newLen)
	return r.discoveryOut(LAN, eth, host, HeaderLen+newLen)
}

// open records the session a PADS sets up. On a refusal it sends the host
// a PADS with a Generic-Error and the AC a PADT, and says why.
func (r *Relay) open(now time.Duration, sid uint16, host, ac packet.MAC, pads Packet) Reason {
	wk, lk := key(sid, ac), key(sid, host)
	if i, ok := r.byWAN[wk]; ok {
		s := &r.sessions[i]
		if s.host == host {
			s.last = now // a repeated PADS
			return ReasonNone
		}
		// The AC gave this id to another of our hosts: for the AC the
		// old session is over.
		r.sendPADT(LAN, s.host, s.sid, "passgate: PPPoE relay: the access concentrator reassigned this session")
		r.stats.Replaced++
		r.remove(i)
	}
	why := ReasonNone
	if _, clash := r.byLAN[lk]; clash {
		why = ReasonSessionClash
	} else if len(r.free) == 0 {
		why = ReasonTableFull
	}
	if why != ReasonNone {
		msg := "passgate: PPPoE relay: session table full"
		if why == ReasonSessionClash {
			msg = "passgate: PPPoE relay: session id already in use by this host"
		}
		hu, _, _ := FindTag(pads.Payload(), TagHostUniq)
		r.sendError(LAN, host, CodePADS, 0, hu, msg)
		r.sendPADT(WAN, ac, sid, msg)
		return why
	}
	i := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	r.sessions[i] = session{sid: sid, host: host, ac: ac, opened: now, last: now, used: true}
	r.byWAN[wk] = i
	r.byLAN[lk] = i
	r.stats.Opened++
	return ReasonNone
}

func (r *Relay) remove(i int32) {
	s := &r.sessions[i]
	delete(r.byWAN, key(s.sid, s.ac))
	delete(r.byLAN, key(s.sid, s.host))
	*s = session{}
	r.free = append(r.free, i)
}

// padt relays a PADT to the other end of its session and ends the session.
func (r *Relay) padt(in Side, eth packet.Ether, p Packet) Verdict {
	var i int32
	var ok bool
	if in == LAN {
		i, ok = r.byLAN[key(p.SessionID(), eth.Src())]
	} else {
		i, ok = r.byWAN[key(p.SessionID(), eth.Src())]
	}
	if !ok {
		return r.drop(ReasonUnknownSession)
	}
	s := &r.sessions[i]
	out := WAN
	dst, src := s.ac, r.cfg.WANMAC
	if in == WAN {
		out, dst, src = LAN, s.host, r.cfg.LANMAC
	}
	// rp-pppoe's client echoes the id of the PADO in its PADT; give each
	// side the id it knows.
	if rid, _, _, has := relayID(p.Payload()); has {
		if _, _, own := r.ownID(rid); own {
			if out == WAN {
				r.putID(rid, kindHost, s.host)
			} else {
				r.putID(rid, kindAC, s.ac)
			}
		}
	}
	eth.SetDst(dst)
	eth.SetSrc(src)
	if in == LAN {
		r.stats.ClosedByHost++
		r.stats.DiscoveryToWAN++
	} else {
		r.stats.ClosedByAC++
		r.stats.DiscoveryToLAN++
	}
	r.remove(i)
	return Verdict{Action: Forward, Out: out, Frame: end(eth, len(p))}
}

// acMessage relays a PADM or PADN of a session to its host.
func (r *Relay) acMessage(now time.Duration, eth packet.Ether, p Packet) Verdict {
	i, ok := r.byWAN[key(p.SessionID(), eth.Src())]
	if !ok {
		return r.drop(ReasonUnknownSession)
	}
	s := &r.sessions[i]
	s.last = now
	return r.discoveryOut(LAN, eth, s.host, len(p))
}

// alloc takes n bytes (at least the Ethernet minimum, zeroed) for a frame
// to send out of side; nil when the room is used up.
func (r *Relay) alloc(out Side, n int) []byte {
	size := max(n, packet.MinFrameLen)
	if r.used+size > len(r.arena) || len(r.emits) == cap(r.emits) {
		return nil
	}
	f := r.arena[r.used : r.used+size : r.used+size]
	clear(f)
	r.used += size
	r.emits = append(r.emits, Emit{Out: out, Frame: f})
	return f[:n]
}

// sendError builds a discovery frame with code and session id sid to dst
// on side out, carrying Host-Uniq (if given) and a Generic-Error.
func (r *Relay) sendError(out Side, dst packet.MAC, code uint8, sid uint16, hostUniq []byte, msg string) {
	if len(hostUniq) > 256 {
		hostUniq = nil
	}
	n := TagHeaderLen + len(msg)
	if hostUniq != nil {
		n += TagHeaderLen + len(hostUniq)
	}
	f := r.alloc(out, packet.EtherHeaderLen+HeaderLen+n)
	if f == nil {
		r.stats.Drops[ReasonEmitFull]++ // the error or PADT is lost
		return
	}
	src := r.cfg.LANMAC
	if out == WAN {
		src = r.cfg.WANMAC
	}
	packet.Ether(f).SetHeader(dst, src, EtherTypeDiscovery)
	Packet(f[packet.EtherHeaderLen:]).SetHeader(code, sid, n)
	w := packet.EtherHeaderLen + HeaderLen
	if hostUniq != nil {
		w += PutTag(f[w:], TagHostUniq, hostUniq)
	}
	binary.BigEndian.PutUint16(f[w:], TagGenericError)
	binary.BigEndian.PutUint16(f[w+2:], uint16(len(msg)))
	copy(f[w+TagHeaderLen:], msg)
	r.stats.ErrorsSent++
}

func (r *Relay) sendPADT(out Side, dst packet.MAC, sid uint16, msg string) {
	r.sendError(out, dst, CodePADT, sid, nil, msg)
}

func (r *Relay) sendPADTs(s *session, msg string) {
	r.sendPADT(WAN, s.ac, s.sid, msg)
	r.sendPADT(LAN, s.host, s.sid, msg)
}

// replyError answers a host's PADI with a PADO, or its PADR with a PADS,
// carrying a Generic-Error (RFC 2516 section 4, for a relay that cannot add
// or use a Relay-Session-Id).
func (r *Relay) replyError(eth packet.Ether, p Packet, msg string) {
	code := CodePADO
	if p.Code() == CodePADR {
		code = CodePADS
	}
	hu, _, _ := FindTag(p.Payload(), TagHostUniq)
	r.sendError(LAN, eth.Src(), code, 0, hu, msg)
}
