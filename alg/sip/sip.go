// Package sip is passgate's SIP helper (RFC 3261 over UDP and TCP port
// 5060, SDP per RFC 4566). For a phone on the LAN it rewrites, in what the
// phone sends, the Via sent-by, the Contact URI and the SDP c= and o=
// addresses that equal the phone's own private address to the public one
// (the port too when it is the phone's signalling port), asks the engine
// for RTP and RTCP expectations for each audio and video stream and writes
// the public RTP port into the m= line, and fixes Content-Length. An
// address the phone already made public (STUN) is left alone. From the
// far end's SDP it learns the remote media address the expectations are
// for. A call's pending expectations go with BYE, CANCEL or a final error
// answer to its INVITE; its media flows end with it. A REGISTER
// keeps the phone's signalling mapping held for the registration's life.
//
// In what comes back from the far end it undoes its own rewrites, as
// Linux's nf_nat_sip does in the reply direction: a response's top Via
// sent-by (with its received= and rport=) and the Contact bindings a
// registrar echoes, and a request's Request-URI, go back from the public
// address and port of the flow's mapping to the phone's private ones, so
// a phone that checks the sent-by of its own Via (RFC 3261 section
// 18.1.2) accepts the response and a request reaches it by its own
// address. Only the mapping's exact address and port are restored, and
// only where the helper wrote them: the far end's SDP and a phone that
// writes its public address itself (STUN) are left as they are.
//
// The helper is off unless switched on (RFC 4787 REQ-10). What it cannot
// parse passes untouched and is counted.
package sip

import (
	"net/netip"
	"strconv"
	"time"

	"passgate/alg/internal/ascii"
	"passgate/nat"
	"passgate/packet"
)

// Port is the SIP port (plain UDP and TCP).
const Port = 5060

// maxCalls bounds the per-call state; the oldest call goes when full.
const maxCalls = 4096

// maxEndpoints bounds the per-LAN-endpoint notes; the oldest goes when
// full.
const maxEndpoints = 4096

// maxRegistration caps how long a REGISTER holds the phone's mapping.
const maxRegistration = 2 * time.Hour

// Helper is the SIP helper. Register one with nat.Engine.RegisterHelpers;
// the engine calls it from one goroutine at a time.
type Helper struct {
	m     message
	sdp   sdp
	edits []edit
	arena []byte // replacement text of the edits
	out   []byte // the rewritten payload
	calls map[uint64]call
	// ends notes, per LAN signalling endpoint, which of its addresses the
	// helper made public, so only those are restored on the way back. It
	// is keyed by endpoint, not flow: a registrar's INVITE may come on a
	// flow of its own after the REGISTER's flow timed out.
	ends map[endpoint]note
}

// endpoint is a LAN host's signalling endpoint.
type endpoint struct {
	proto uint8
	addr  netip.AddrPort
}

// note is what the helper rewrote last in an endpoint's messages.
type note struct {
	bits uint8 // wroteVia, wroteContact
	// viaPort is the top Via's sent-by port when the helper made only its
	// address public: a port that is not the flow's (a TCP phone names its
	// listening port and sends from another), left as written.
	viaPort uint16
	last    nat.Time
}

const (
	wroteVia     = 1 << iota // the top Via sent-by was made public
	wroteContact             // a Contact was made public
)

// edit replaces payload bytes [s, e) with r (s == e inserts).
type edit struct {
	s, e int
	r    []byte
}

// call is what the helper keeps per Call-ID.
type call struct {
	flow        nat.FlowRef
	remote      netip.Addr // the far end's media address, once known
	expRemote   netip.Addr // the remote the expectations were made for
	media       [maxMedia]netip.AddrPort
	nmedia      int
	established bool
	last        nat.Time
}

func (*Helper) Name() string    { return "sip" }
func (*Helper) DefaultOn() bool { return false }
func (*Helper) Wants(proto uint8, port uint16) bool {
	return (proto == packet.ProtoUDP || proto == packet.ProtoTCP) && port == Port
}

// Ended drops the state of calls signalled on a flow that ended.
func (h *Helper) Ended(f nat.FlowRef) {
	for k, c := range h.calls {
		if c.flow == f {
			delete(h.calls, k)
		}
	}
}

// Inspect reads each SIP message of the payload (a datagram holds one; a
// TCP segment may hold several) and rewrites what needs it.
func (h *Helper) Inspect(p *nat.HelperPacket) {
	pl := p.Payload
	stream := p.Proto == packet.ProtoTCP
	h.edits = h.edits[:0]
	h.arena = h.arena[:0]
	for off := 0; off < len(pl); {
		for off < len(pl) && isSpace(pl[off]) { // keep-alives (RFC 5626)
			off++
		}
		if off == len(pl) {
			break
		}
		m := &h.m
		if err := parse(pl[off:], m, stream); err != nil {
			p.Unparsed()
			break
		}
		h.message(p, pl, off, m)
		if !stream {
			break
		}
		off += m.end
	}
	if len(h.edits) == 0 {
		return
	}
	if out, ok := h.apply(pl); ok {
		p.SetPayload(out)
	} else {
		p.Unparsed()
	}
}

// message handles one message at pl[off:].
func (h *Helper) message(p *nat.HelperPacket, pl []byte, off int, m *message) {
	b := pl[off:]
	tag := callTag(m.callID)
	if p.FromLAN {
		var set, clear uint8
		var viaPort uint16
		for i := 0; i < m.nvia; i++ {
			top := i == 0
			values(b, m.via[i], func(v span) bool {
				if host, port, ok := viaSentBy(b, v); ok {
					wrote := h.hostPort(p, off, b, host, port, Port)
					if top {
						set, clear = noteWrite(p, b, host, wrote, wroteVia, set, clear)
						if n := portOr(b, port, Port); wrote && n != int(p.Inside.Port()) {
							viaPort = uint16(n)
						}
					}
				}
				top = false
				return true
			})
		}
		contact := false
		for i := 0; i < m.ncontact; i++ {
			values(b, m.contact[i], func(v span) bool {
				if host, port, sips, ok := contactURI(b, v); ok {
					wrote := h.hostPort(p, off, b, host, port, schemePort(sips))
					set, clear = noteWrite(p, b, host, wrote, wroteContact, set, clear)
					contact = wrote || contact
				}
				return true
			})
		}
		h.note(p, set, clear, viaPort)
		if contact && m.request && eqFold(m.method, "REGISTER") && p.Proto == packet.ProtoUDP {
			h.register(p, m, tag)
		}
	} else {
		h.restore(p, off, b, m)
	}
	bodyEdits := len(h.edits)
	if m.body.e > m.body.s && ascii.HasPrefixFold(m.ctype, "application/sdp") {
		s := &h.sdp
		body := m.body.of(b)
		if err := parseSDP(body, s); err != nil {
			p.Unparsed()
		} else if p.FromLAN {
			h.offerOrAnswerOut(p, off+m.body.s, body, s, tag)
		} else {
			h.learn(p, body, s, tag)
		}
	}
	if delta := h.delta(bodyEdits); delta != 0 && m.clen >= 0 {
		h.replace(off+m.clenSpan.s, off+m.clenSpan.e, func(a []byte) []byte {
			return strconv.AppendInt(a, int64(m.clen+delta), 10)
		})
	}
	h.end(p, m, tag)
}

// hostPort rewrites a host equal to the LAN host's address to the public
// one, and then its port when it is the LAN host's port (written or, when
// absent, the scheme's default def). It reports whether it rewrote.
func (h *Helper) hostPort(p *nat.HelperPacket, off int, b []byte, host, port span, def uint16) bool {
	a, ok := parseIPv4(host.of(b))
	if !ok || netip.AddrFrom4(a) != p.Inside.Addr() {
		return false
	}
	h.replace(off+host.s, off+host.e, p.Outside.Addr().AppendTo)
	in, pub := p.Inside.Port(), p.Outside.Port()
	if in == pub {
		return true
	}
	if port.e > port.s {
		if n, ok := atoi(port.of(b)); ok && n == int(in) {
			h.replace(off+port.s, off+port.e, func(a []byte) []byte { return strconv.AppendUint(a, uint64(pub), 10) })
		}
	} else if def == in {
		h.replace(off+host.e, off+host.e, func(a []byte) []byte {
			return strconv.AppendUint(append(a, ':'), uint64(pub), 10)
		})
	}
	return true
}

// portOr is the port a host:port names: its port, or def when it has
// none; -1 if the port is not a number.
func portOr(b []byte, port span, def uint16) int {
	if port.e <= port.s {
		return int(def)
	}
	if n, ok := atoi(port.of(b)); ok {
		return n
	}
	return -1
}

// schemePort is the default port of a sip: or sips: URI.
func schemePort(sips bool) uint16 {
	if sips {
		return 5061
	}
	return Port
}

// noteWrite adds bit to set when the helper rewrote host, and to clear
// when the LAN host wrote the public address there itself (STUN): its
// answers then carry that address and must stay as they are.
func noteWrite(p *nat.HelperPacket, b []byte, host span, wrote bool, bit, set, clear uint8) (uint8, uint8) {
	if wrote {
		return set | bit, clear
	}
	if a, ok := parseIPv4(host.of(b)); ok && netip.AddrFrom4(a) == p.Outside.Addr() {
		clear |= bit
	}
	return set, clear
}

// note records what the helper rewrote in a message from a LAN endpoint.
// Messages that name neither address (most in-dialog requests have no
// Contact of their own address) change nothing. It writes the map only
// when the bits change or a minute has passed (so eviction, oldest
// first, sees the endpoint in use), not for every message.
func (h *Helper) note(p *nat.HelperPacket, set, clear uint8, viaPort uint16) {
	if set|clear == 0 {
		return
	}
	k := endpoint{p.Proto, p.Inside}
	n, ok := h.ends[k]
	bits := n.bits&^clear | set
	if set&wroteVia == 0 {
		viaPort = n.viaPort // this message said nothing new of the Via
	}
	if ok && bits == n.bits && viaPort == n.viaPort && p.Now-n.last < nat.Time(time.Minute) {
		return
	}
	if !ok {
		if h.ends == nil {
			h.ends = make(map[endpoint]note, 64)
		}
		if len(h.ends) >= maxEndpoints {
			dropOldest(h.ends, func(n note) nat.Time { return n.last })
		}
	}
	h.ends[k] = note{bits: bits, viaPort: viaPort, last: p.Now}
}

// restore undoes, in a message to the LAN host, what the helper wrote in
// the LAN host's own messages (see the package comment).
func (h *Helper) restore(p *nat.HelperPacket, off int, b []byte, m *message) {
	n := h.ends[endpoint{p.Proto, p.Inside}]
	bits := n.bits
	if bits == 0 {
		return
	}
	if m.request {
		// A request sent to the phone's public contact (an INVITE the
		// registrar forwards to the binding): its Request-URI goes back to
		// the phone's own. The To header is left as the far end wrote it:
		// the helper never rewrites From and To (they name the users, not
		// where they are), and the phone's response must echo To as
		// received (RFC 3261 section 8.2.6.2).
		if bits&wroteContact != 0 && m.uri.e > m.uri.s {
			if host, port, sips, ok := contactURI(b, m.uri); ok {
				h.restoreHostPort(p, off, b, host, port, schemePort(sips))
			}
		}
		return
	}
	if bits&wroteVia != 0 && m.nvia > 0 {
		// The top Via is the phone's own (RFC 3261 section 18.2.2 sends the
		// response to it); those below, if any, are not the helper's.
		values(b, m.via[0], func(v span) bool {
			host, port, ok := viaSentBy(b, v)
			if !ok {
				return false
			}
			if !h.restoreHostPort(p, off, b, host, port, Port) {
				// Where the helper made the address alone public, the
				// address alone comes back.
				if a, ok := parseIPv4(host.of(b)); !ok || netip.AddrFrom4(a) != p.Outside.Addr() || n.viaPort == 0 || portOr(b, port, Port) != int(n.viaPort) {
					return false
				}
				h.replace(off+host.s, off+host.e, p.Inside.Addr().AppendTo)
			}
			// received= and rport= (RFC 3581) name where the request came
			// from: the public address and port. They are restored too,
			// as nf_nat_sip does: a phone that finds them differ from its
			// sent-by concludes it is behind a NAT and re-registers with
			// the public address as its Contact (pjsip's contact rewrite,
			// RFC 5626 outbound), which the helper then leaves alone, so
			// the registration would no longer hold the mapping. Restored,
			// the Via is what the server would have written had the phone
			// reached it directly (RFC 3581 section 4 adds received= even
			// when it equals the sent-by).
			received, rport := viaParams(b, v, max(host.e, port.e))
			if a, ok := parseIPv4(received.of(b)); ok && netip.AddrFrom4(a) == p.Outside.Addr() {
				h.replace(off+received.s, off+received.e, p.Inside.Addr().AppendTo)
			}
			in, pub := p.Inside.Port(), p.Outside.Port()
			if n, ok := atoi(rport.of(b)); ok && n == int(pub) && in != pub {
				h.replace(off+rport.s, off+rport.e, func(a []byte) []byte { return strconv.AppendUint(a, uint64(in), 10) })
			}
			return false
		})
	}
	if bits&wroteContact != 0 {
		// A registrar's 2xx lists the bindings (RFC 3261 section 10.3);
		// phones look for their own Contact among them.
		for i := 0; i < m.ncontact; i++ {
			values(b, m.contact[i], func(v span) bool {
				if host, port, sips, ok := contactURI(b, v); ok {
					h.restoreHostPort(p, off, b, host, port, schemePort(sips))
				}
				return true
			})
		}
	}
}

// restoreHostPort turns a host:port equal to the public address and port
// of the flow's mapping (the port written or, when absent, the default
// def) back to the LAN host's. It reports whether it did.
func (h *Helper) restoreHostPort(p *nat.HelperPacket, off int, b []byte, host, port span, def uint16) bool {
	a, ok := parseIPv4(host.of(b))
	if !ok || netip.AddrFrom4(a) != p.Outside.Addr() {
		return false
	}
	in, pub := p.Inside.Port(), p.Outside.Port()
	if portOr(b, port, def) != int(pub) {
		return false
	}
	h.replace(off+host.s, off+host.e, p.Inside.Addr().AppendTo)
	if in == pub {
		return true
	}
	if port.e > port.s {
		h.replace(off+port.s, off+port.e, func(a []byte) []byte { return strconv.AppendUint(a, uint64(in), 10) })
	} else {
		h.replace(off+host.e, off+host.e, func(a []byte) []byte {
			return strconv.AppendUint(append(a, ':'), uint64(in), 10)
		})
	}
	return true
}

// register keeps the phone's signalling mapping (and the registrar's way
// in to it) for the registration's life, or lets it go on a
// de-registration.
func (h *Helper) register(p *nat.HelperPacket, m *message, tag uint64) {
	exp := 3600 // the registrar's usual default when the phone asks none
	if m.expires >= 0 {
		exp = m.expires
	}
	if exp == 0 {
		p.Forget(tag)
		return
	}
	life := min(time.Duration(exp)*time.Second+30*time.Second, maxRegistration)
	p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: p.Remote.Addr(), Inside: p.Inside, Timeout: life, Tag: tag, Claim: true})
}

// offerOrAnswerOut rewrites the SDP a LAN host sends (body at absolute
// offset base) and expects its media.
func (h *Helper) offerOrAnswerOut(p *nat.HelperPacket, base int, body []byte, s *sdp, tag uint64) {
	inside := p.Inside.Addr()
	own := func(sp span) bool {
		if sp.e == sp.s {
			return false
		}
		a, ok := parseIPv4(sp.of(body))
		return ok && netip.AddrFrom4(a) == inside
	}
	pub := p.Outside.Addr().AppendTo
	if own(s.origin) {
		h.replace(base+s.origin.s, base+s.origin.e, pub)
	}
	if own(s.conn) {
		h.replace(base+s.conn.s, base+s.conn.e, pub)
	}
	c := h.call(p, tag)
	remote := c.remote
	if !remote.IsValid() {
		remote = p.Remote.Addr()
	}
	c.nmedia = 0
	c.expRemote = remote
	for i := 0; i < s.n; i++ {
		md := &s.media[i]
		if own(md.conn) {
			h.replace(base+md.conn.s, base+md.conn.e, pub)
		}
		a, ok := s.addr(body, i)
		if !ok || netip.AddrFrom4(a) != inside || md.portVal == 0 || !s.rtp(body, i) {
			continue
		}
		in := netip.AddrPortFrom(inside, uint16(md.portVal))
		rtp, rtcp, ok := expectMedia(p, remote, in, tag)
		if !ok {
			continue
		}
		c.media[c.nmedia] = in
		c.nmedia++
		if int(rtp) != md.portVal {
			h.replace(base+md.port.s, base+md.port.e, func(a []byte) []byte { return strconv.AppendUint(a, uint64(rtp), 10) })
		}
		if rtcp != 0 && rtcp != rtp+1 && !md.rtcp {
			// RTCP is not on the next port outside: say where (RFC 3605).
			nl := md.nl.of(body)
			at := base + md.lineEnd
			h.replace(at, at, func(a []byte) []byte {
				if len(nl) == 0 {
					a = append(a, "\r\n"...)
				}
				a = strconv.AppendUint(append(a, "a=rtcp:"...), uint64(rtcp), 10)
				if len(nl) > 0 {
					a = append(a, nl...)
				}
				return a
			})
		}
	}
	h.store(tag, c)
}

// expectMedia expects RTP on in and RTCP on the port above it from remote;
// rtcp is 0 if that expectation failed.
func expectMedia(p *nat.HelperPacket, remote netip.Addr, in netip.AddrPort, tag uint64) (rtp, rtcp uint16, ok bool) {
	rtp, ok = p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: remote, Inside: in, Tag: tag})
	if !ok {
		return 0, 0, false
	}
	if in.Port() < 65535 {
		rtcp, _ = p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: remote, Inside: netip.AddrPortFrom(in.Addr(), in.Port()+1), Tag: tag})
	}
	return rtp, rtcp, true
}

// learn notes the far end's media address from SDP sent to the LAN host
// and, if the LAN host's media was already expected from another address,
// expects it from this one too.
func (h *Helper) learn(p *nat.HelperPacket, body []byte, s *sdp, tag uint64) {
	for i := 0; i < s.n; i++ {
		a, ok := s.addr(body, i)
		if !ok || s.media[i].portVal == 0 || !s.rtp(body, i) || a == [4]byte{} {
			continue
		}
		remote := netip.AddrFrom4(a)
		c := h.call(p, tag)
		c.remote = remote
		if c.nmedia > 0 && c.expRemote != remote {
			for _, in := range c.media[:c.nmedia] {
				expectMedia(p, remote, in, tag)
			}
			c.expRemote = remote
		}
		h.store(tag, c)
		return
	}
}

// end forgets a call's expectations when it ends or fails.
func (h *Helper) end(p *nat.HelperPacket, m *message, tag uint64) {
	if m.request {
		if eqFold(m.method, "BYE") || eqFold(m.method, "CANCEL") {
			h.forget(p, tag)
		}
		return
	}
	if !eqFold(m.cseqMethod, "INVITE") || m.status < 200 {
		return
	}
	c, ok := h.calls[tag]
	if m.status < 300 {
		if ok && !c.established {
			c.established = true
			h.calls[tag] = c
		}
		return
	}
	// A final error answer ends a call being set up; a failed re-INVITE
	// leaves an established one as it was.
	if ok && !c.established {
		h.forget(p, tag)
	}
}

func (h *Helper) forget(p *nat.HelperPacket, tag uint64) {
	if c, ok := h.calls[tag]; ok {
		p.Forget(tag)
		// The call's media flows end with it (RTP and RTCP).
		for _, in := range c.media[:c.nmedia] {
			p.EndFlows(packet.ProtoUDP, in)
			p.EndFlows(packet.ProtoUDP, netip.AddrPortFrom(in.Addr(), in.Port()+1))
		}
		delete(h.calls, tag)
	}
}

// call returns the state of a call (a zero one if new).
func (h *Helper) call(p *nat.HelperPacket, tag uint64) call {
	c, ok := h.calls[tag]
	if !ok {
		c = call{flow: p.Flow}
	}
	c.last = p.Now
	return c
}

func (h *Helper) store(tag uint64, c call) {
	if h.calls == nil {
		h.calls = make(map[uint64]call)
	}
	if _, ok := h.calls[tag]; !ok && len(h.calls) >= maxCalls {
		dropOldest(h.calls, func(c call) nat.Time { return c.last })
	}
	h.calls[tag] = c
}

// replace queues an edit; text appends the replacement.
func (h *Helper) replace(s, e int, text func([]byte) []byte) {
	a := len(h.arena)
	h.arena = text(h.arena)
	h.edits = append(h.edits, edit{s, e, h.arena[a:len(h.arena):len(h.arena)]})
}

// delta is the change in length the edits from index i on make.
func (h *Helper) delta(i int) int {
	d := 0
	for _, e := range h.edits[i:] {
		d += len(e.r) - (e.e - e.s)
	}
	return d
}

// apply builds the rewritten payload; edits that overlap (which the
// parser never produces) make it give up.
func (h *Helper) apply(pl []byte) ([]byte, bool) {
	ed := h.edits
	for i := 1; i < len(ed); i++ { // few edits: insertion sort
		for j := i; j > 0 && ed[j].s < ed[j-1].s; j-- {
			ed[j], ed[j-1] = ed[j-1], ed[j]
		}
	}
	out := h.out[:0]
	pos := 0
	for _, e := range ed {
		if e.s < pos || e.e < e.s || e.e > len(pl) {
			return nil, false
		}
		out = append(out, pl[pos:e.s]...)
		out = append(out, e.r...)
		pos = e.e
	}
	out = append(out, pl[pos:]...)
	h.out = out
	return out, true
}

// callTag names a call's expectations: FNV-1a of its Call-ID.
func callTag(id []byte) uint64 {
	x := uint64(14695981039346656037)
	for _, c := range id {
		x ^= uint64(c)
		x *= 1099511628211
	}
	return x
}

// dropOldest deletes the entry of m whose last use is the oldest, to make
// room in a bounded table.
func dropOldest[K comparable, V any](m map[K]V, last func(V) nat.Time) {
	var oldest K
	first := true
	for k, v := range m {
		if first || last(v) < last(m[oldest]) {
			oldest, first = k, false
		}
	}
	delete(m, oldest)
}
