package nat

// Application-level gateways. A Helper is a small module (NPF's alg_*
// style: match, inspect, expect) registered with the engine in a fixed
// order. The engine gives it the packets of the flows it claimed, with
// their addresses before and after translation; the helper may rewrite the
// payload (of any length: the engine fixes lengths, checksums and TCP
// sequence numbers) and ask for expectations, which get a public port from
// the mapper so the address it writes into the payload is the one the peer
// will reach.

import (
	"encoding/binary"
	"net/netip"
	"time"

	"passgate/conntrack"
	"passgate/packet"
)

// Helper is one protocol's module: an application-level gateway (FTP,
// SIP, ...) or a VPN passthrough (IPsec, PPTP, L2TP). Beyond its name
// and default it implements the hooks it needs: PayloadHelper here, the
// rest in hooks.go.
type Helper interface {
	// Name is the switch name: "ipsec", "pptp", "l2tp", "ftp", "tftp",
	// "sip", "rtsp", "h323"; Config.Helpers switches it by that name.
	Name() string
	// DefaultOn says whether the helper is on when the configuration does
	// not say (the VPN passthroughs, FTP and TFTP on; SIP, H.323 and RTSP
	// off, RFC 4787 REQ-10).
	DefaultOn() bool
}

// PayloadHelper is an application-level gateway: it claims new TCP and
// UDP flows by server port and sees their payloads, which it may rewrite.
type PayloadHelper interface {
	Helper
	// Wants says whether a new flow from the LAN to serverPort is the
	// helper's.
	Wants(proto uint8, serverPort uint16) bool
	// Inspect sees each packet with a payload on the helper's flows,
	// before the engine translates it.
	Inspect(p *HelperPacket)
}

// HelperEnded is implemented by helpers that keep state per flow.
type HelperEnded interface {
	Ended(f FlowRef)
}

// FlowRef names a flow for as long as it lives (ids are reused; Gen
// tells incarnations apart).
type FlowRef struct {
	ID  int32
	Gen uint32
}

// HelperPacket is one packet handed to a helper. It is reused: a helper
// must not keep it or its Payload after Inspect returns.
type HelperPacket struct {
	Flow    FlowRef
	FromLAN bool
	Proto   uint8
	// Inside is the LAN host's endpoint, Outside its public one, Remote
	// the peer's (for a packet from the LAN: source, translated source,
	// destination).
	Inside, Outside, Remote netip.AddrPort
	Payload                 []byte
	Now                     Time

	e        *Engine
	helper   uint8
	replaced []byte
	changed  bool
}

// SetPayload replaces the payload. b is copied before Inspect returns, so
// it may be the helper's scratch buffer.
func (p *HelperPacket) SetPayload(b []byte) {
	p.replaced = b
	p.changed = true
}

// Expect is a connection a helper predicts: Remote will connect (from
// RemotePort, or any port if 0) to the public port the engine allocates
// for Inside, and must reach Inside.
type Expect struct {
	Proto      uint8
	Remote     netip.Addr
	RemotePort uint16
	Inside     netip.AddrPort
	Timeout    time.Duration // 0: the configured expectation timeout
	Tag        uint64        // the helper's name for it (Forget)
	// Claim makes the helper own the flow the expectation becomes, as for
	// SIP signalling arriving on a registration's mapping.
	Claim bool
}

// Expect registers an expectation and returns the public port the helper
// writes into the payload. The port is the LAN endpoint's endpoint-
// independent mapping (its own port when free, the same parity otherwise),
// held while the expectation waits.
func (p *HelperPacket) Expect(x Expect) (uint16, bool) {
	e := p.e
	if !x.Remote.Is4() || !x.Inside.Addr().Is4() {
		return 0, false
	}
	host := x.Inside.Addr().As4()
	m, ok := e.maps.acquire(x.Proto, host, x.Inside.Port(), e.srcMAC, e.reserved)
	if !ok {
		return 0, false
	}
	ext := e.maps.slab[m].extPort
	life := x.Timeout
	if life == 0 {
		life = e.cfg.Timeouts.Expectation
	}
	err := e.ct.Expect(conntrack.Expectation{
		Match:    conntrack.Tuple{Src: x.Remote.As4(), Dst: e.wanAddr, SrcID: x.RemotePort, DstID: ext, Proto: x.Proto, Side: uint8(WAN)},
		Reply:    conntrack.Tuple{Src: host, Dst: x.Remote.As4(), SrcID: x.Inside.Port(), DstID: x.RemotePort, Proto: x.Proto, Side: uint8(LAN)},
		Host:     host,
		Owner:    e.ct.Get(p.Flow.ID).Owner,
		Helper:   p.helper,
		Data:     uint64(m) + 1,
		Tag:      x.Tag,
		Claim:    x.Claim,
		Deadline: int64(p.Now) + int64(life),
	})
	if err != nil {
		e.maps.release(m)
		return 0, false
	}
	e.helperStats[p.helper-1].Expectations++
	return ext, true
}

// Forget removes the helper's expectations tagged tag (a call ended).
func (p *HelperPacket) Forget(tag uint64) {
	h := p.helper
	p.e.ct.Unexpect(func(x *conntrack.Expectation) bool { return x.Helper == h && x.Tag == tag })
}

// EndFlows ends the flows of a LAN endpoint (the media of a call that
// ended), instead of leaving them to time out. It walks the table, which is
// fine at the rate calls end, never per packet.
func (p *HelperPacket) EndFlows(proto uint8, inside netip.AddrPort) {
	e := p.e
	if !inside.Addr().Is4() {
		return
	}
	host, port := inside.Addr().As4(), inside.Port()
	e.ct.Range(func(id int32, f *conntrack.Flow) bool {
		if f.Orig.Proto != proto || id == p.Flow.ID {
			return true
		}
		lan := f.Orig
		if f.Origin == originForward || f.Origin == originDMZ || f.Origin == originExpected {
			lan = f.Reply
		}
		if lan.Src == host && lan.SrcID == port {
			e.doom(id, f.Gen)
		}
		return true
	})
}

// Unparsed counts a payload the helper could not read; it is forwarded
// untouched.
func (p *HelperPacket) Unparsed() { p.e.helperStats[p.helper-1].Unparsed++ }

// HelperCounters are one helper's counters.
type HelperCounters struct {
	On           bool
	Flows        uint64
	Rewrites     uint64
	Expectations uint64
	Expected     uint64
	Unparsed     uint64
}

// seqAdj is the TCP sequence correction of one direction of a flow whose
// payload length a helper changed: bytes after pos are shifted by after,
// bytes before it by before.
type seqAdj struct {
	pos           uint32
	before, after int32
}

type seqAdjs struct {
	gen uint32
	dir [2]seqAdj
}

// RegisterHelpers installs the helpers, in order, and asserts their hooks
// once. Call it before traffic; Reconfigure switches them.
func (e *Engine) RegisterHelpers(hs ...Helper) {
	if len(e.helpers)+len(hs) > maxHelpers {
		panic("nat: too many helpers")
	}
	for _, h := range hs {
		i := len(e.helpers)
		e.helpers = append(e.helpers, h)
		k := hooksOf(h)
		e.hooks = append(e.hooks, k)
		if k.payload != nil {
			e.payload = append(e.payload, i)
		}
		if k.maker != nil {
			for _, p := range k.maker.Ports() {
				e.makerPorts = append(e.makerPorts, portHook{p, i})
			}
		}
		if k.proto != nil {
			for _, p := range k.proto.Protocols() {
				e.protoOwner[p] = uint8(i + 1)
			}
		}
		e.fast[i+1] = k.fast
		var class uint8
		if k.pass != nil {
			if e.nextClass == 0 {
				e.nextClass = 1
			}
			if int(e.nextClass) >= conntrack.NumClasses {
				panic("nat: too many passthrough helpers to count")
			}
			class, e.nextClass = e.nextClass, e.nextClass+1
			e.passthroughs = append(e.passthroughs, i)
			_, e.classTunnels[class] = h.(TunnelHelper)
		}
		e.passClass = append(e.passClass, class)
		if a, ok := h.(Attacher); ok {
			a.Attach(&HelperEnv{e: e, idx: i})
		}
	}
	e.helperStats = make([]HelperCounters, len(e.helpers))
	e.applyHelpers()
}

func (e *Engine) applyHelpers() {
	e.helperOn = e.helperOn[:0]
	e.shared = e.shared[:0]
	for i, h := range e.helpers {
		on := h.DefaultOn()
		if s, ok := e.cfg.Helpers[h.Name()]; ok {
			on = s.Enabled(on)
		}
		e.helperOn = append(e.helperOn, on)
		if sp := e.hooks[i].shared; sp != nil && on {
			e.shared = append(e.shared, sp.SharedPort())
		}
	}
}

// claim gives a new flow to the payload helper that wants its server
// port: the destination of a flow from the LAN, the inside port of a
// forwarded one.
func (e *Engine) claim(f *conntrack.Flow, serverPort uint16) {
	for _, i := range e.payload {
		if e.helperOn[i] && e.hooks[i].payload.Wants(f.Orig.Proto, serverPort) {
			f.Helper = uint8(i + 1)
			e.helperStats[i].Flows++
			return
		}
	}
}

// expected makes the flow an expectation predicted for an inbound packet.
// The flow is charged to what the expectation was charged to: the owner of
// the flow that predicted it (the LAN MAC whose request a server answers,
// or the rule or mapping that let an inbound flow in), not to the host's
// address alone, and room is made for it as for any new flow (early drop).
// ok reports whether an expectation matched; r is why its flow could not
// be made.
func (e *Engine) expected(now Time, k conntrack.Tuple) (id int32, r DropReason, ok bool) {
	x, ok := e.ct.Expected(k, int64(now))
	if !ok {
		return 0, DropNone, false
	}
	reply := x.Reply
	if reply.DstID == 0 {
		reply.DstID = k.SrcID
	}
	// The expectation holds its mapping across the early drop.
	err := e.ct.MakeRoom(x.Host, x.Owner)
	if err == nil {
		id, err = e.ct.InsertOwned(k, reply, x.Host, x.Owner, int64(now), int64(now+e.timeoutFor(k.Proto)))
	}
	if err != nil {
		e.maps.release(uint32(x.Data - 1))
		return 0, ownerRoomReason(x.Owner, err), true
	}
	f := e.ct.Get(id)
	f.Ext = uint32(x.Data) // the mapping the expectation held
	f.Origin = originExpected
	if x.Claim && x.Helper != 0 {
		f.Helper = x.Helper
	}
	if i := int(x.Helper) - 1; i >= 0 && i < len(e.helperStats) {
		e.helperStats[i].Expected++
	}
	e.stats.Created++
	return id, DropNone, true
}

func (e *Engine) expectationGone(x *conntrack.Expectation) {
	if x.Data != 0 {
		e.maps.release(uint32(x.Data - 1))
	}
}

// algInspect runs a helper on a packet and applies what it changed. It
// returns the packet to go on with: the same one, or a larger copy in an
// emit buffer (then frame is that buffer).
func (e *Engine) algInspect(now Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) (packet.IPv4, []byte, DropReason) {
	i := int(f.Helper) - 1
	if !e.helperOn[i] {
		return ip, nil, DropNone
	}
	var payload []byte
	var t packet.TCP
	var origSeq uint32 // sequence corrections count in the sender's own numbering
	switch ip.Protocol() {
	case packet.ProtoTCP:
		t = packet.TCP(ip.Payload())
		origSeq = t.Seq()
		if adj, ok := e.seqAdj(id, f); ok {
			e.adjustSeq(t, &adj, dir)
		}
		payload = t.Payload()
	case packet.ProtoUDP:
		payload = packet.UDP(ip.Payload()).Payload()
	default:
		return ip, nil, DropNone
	}
	if len(payload) == 0 || ip.IsFragment() {
		return ip, nil, DropNone
	}
	p := &e.hp
	*p = HelperPacket{
		Flow:    FlowRef{id, f.Gen},
		FromLAN: dir == conntrack.Original,
		Proto:   ip.Protocol(),
		Inside:  f.Orig.SrcAddrPort(),
		Outside: f.Xlate.DstAddrPort(),
		Remote:  f.Orig.DstAddrPort(),
		Payload: payload,
		Now:     now,
		e:       e,
		helper:  f.Helper,
	}
	if f.Origin == originForward || f.Origin == originDMZ || f.Origin == originExpected {
		// The flow began outside (a server on the LAN, or a connection a
		// helper expected).
		p.FromLAN = dir == conntrack.Reply
		p.Inside, p.Outside, p.Remote = f.Reply.SrcAddrPort(), f.Orig.DstAddrPort(), f.Orig.SrcAddrPort()
	}
	e.hooks[i].payload.Inspect(p)
	if !p.changed {
		return ip, nil, DropNone
	}
	e.helperStats[i].Rewrites++
	delta := len(p.replaced) - len(payload)
	hl := len(ip) - len(payload) // IP and transport headers
	var frame []byte
	out := ip
	if delta > 0 {
		frame = e.emitBuf(len(ip) + delta)
		if frame == nil {
			return ip, nil, DropEmitFull
		}
		out = packet.IPv4(frame[EtherHeadroom:])
		copy(out, ip[:hl])
	}
	copy(out[hl:], p.replaced)
	out = out[:hl+len(p.replaced)]
	out.SetTotalLen(len(out))
	l4 := out.Payload()
	switch out.Protocol() {
	case packet.ProtoTCP:
		if delta != 0 {
			e.recordSeqShift(id, f, dir, origSeq, int32(delta))
		}
		l4[16], l4[17] = 0, 0
		binary.BigEndian.PutUint16(l4[16:], packet.Fold(packet.Sum(l4, packet.PseudoHeaderSum(out.Src(), out.Dst(), packet.ProtoTCP, len(l4)))))
	case packet.ProtoUDP:
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		if packet.UDP(l4).Checksum() != 0 {
			l4[6], l4[7] = 0, 0
			c := packet.Fold(packet.Sum(l4, packet.PseudoHeaderSum(out.Src(), out.Dst(), packet.ProtoUDP, len(l4))))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
	}
	return out, frame, DropNone
}

// seqAdj returns the flow's sequence corrections, and whether it has
// any.
func (e *Engine) seqAdj(id int32, f *conntrack.Flow) (seqAdjs, bool) {
	if len(e.seqAdjs) == 0 {
		return seqAdjs{}, false
	}
	a, ok := e.seqAdjs[id]
	return a, ok && a.gen == f.Gen
}

// recordSeqShift notes that dir's payload grew by delta at seq: later
// bytes of that direction move, and the other side's acks move back.
func (e *Engine) recordSeqShift(id int32, f *conntrack.Flow, dir conntrack.Dir, seq uint32, delta int32) {
	a, ok := e.seqAdj(id, f)
	if !ok {
		a = seqAdjs{gen: f.Gen}
	}
	w := &a.dir[dir]
	if w.before == w.after || int32(seq-w.pos) > 0 {
		w.pos = seq
		w.before = w.after
		w.after += delta
	}
	e.seqAdjs[id] = a
}

// adjustSeq shifts a segment's sequence number by its direction's
// correction, and its acknowledgement and SACK edges (RFC 2018), which
// count the other direction's bytes, back by the other direction's.
func (e *Engine) adjustSeq(t packet.TCP, a *seqAdjs, dir conntrack.Dir) {
	this, other := &a.dir[dir], &a.dir[1-dir]
	seq, ack := t.Seq(), t.Ack()
	off := this.before
	if int32(seq-this.pos) > 0 {
		off = this.after
	}
	nseq, nack := seq+uint32(off), other.unshift(ack)
	if nseq != seq || nack != ack {
		c := t.Checksum()
		c = packet.Update16(c, uint16(seq>>16), uint16(nseq>>16))
		c = packet.Update16(c, uint16(seq), uint16(nseq))
		c = packet.Update16(c, uint16(ack>>16), uint16(nack>>16))
		c = packet.Update16(c, uint16(ack), uint16(nack))
		binary.BigEndian.PutUint32(t[4:], nseq)
		binary.BigEndian.PutUint32(t[8:], nack)
		binary.BigEndian.PutUint16(t[16:], c)
	}
	if other.before == 0 && other.after == 0 {
		return
	}
	// A receiver that misses a segment after a rewrite SACKs what came
	// later in its own (shifted) numbering; unshifted edges would tell the
	// sender that data it never sent arrived, or hide what did.
	boff, n := t.SACK()
	for i := 0; i < 2*n; i++ {
		o := boff + 4*i
		edge := binary.BigEndian.Uint32(t[o:])
		if ne := other.unshift(edge); ne != edge {
			t.SetUint32(o, ne)
		}
	}
}

// unshift maps a sequence number as the receiver of w's direction counts
// it (an ack or a SACK edge) back to the sender's numbering.
func (w *seqAdj) unshift(v uint32) uint32 {
	off := w.before
	if int32(v-uint32(w.before)-w.pos) > 0 {
		off = w.after
	}
	return v - uint32(off)
}

// helperEnded tells a helper its flow is gone.
func (e *Engine) helperEnded(id int32, f *conntrack.Flow) {
	k := &e.hooks[f.Helper-1]
	if k.ended != nil {
		k.ended.Ended(FlowRef{id, f.Gen})
	}
	if k.deleted != nil {
		k.deleted.Deleted(id, f)
	}
}

// HelperStats returns each registered payload helper's counters by name
// (the passthroughs count in Stats).
func (e *Engine) HelperStats() map[string]HelperCounters {
	out := make(map[string]HelperCounters, len(e.payload))
	for _, i := range e.payload {
		c := e.helperStats[i]
		c.On = e.helperOn[i]
		out[e.helpers[i].Name()] = c
	}
	return out
}
