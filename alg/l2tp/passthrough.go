package l2tp

// L2TP passthrough as a nat helper. Every LAN host keeps outside port 1701
// with a server, and what comes back is sent to the right host by the
// tunnel id in the L2TP header, which is always the receiver's (the LAN
// host's): learned from the Assigned Tunnel ID of the host's SCCRQ. A
// shared flow's reply tuple is a key in the helper's space (server:port,
// host:1701); its Xlate holds the wire tuple. A host whose first message
// is no readable SCCRQ, hides the id, or uses an id another host uses with
// the server gets an ordinary port mapping instead (RFC 2661 section 8.1
// lets the port change), which is counted and logged.

import (
	"fmt"

	"passgate/alg/internal/passthrough"
	"passgate/conntrack"
	"passgate/nat"
	"passgate/packet"
)

// Drop reasons and events of L2TP passthrough.
var (
	DropL2TPOff           = nat.NewRefusalReason("l2tp_passthrough_off")
	DropL2TPUnknownTunnel = nat.NewDropReason("l2tp_unknown_tunnel")

	EventL2TPFallback = nat.NewEventKind("l2tp_fallback", func(ev nat.Event) string {
		return fmt.Sprintf("L2TP from %s to %s cannot share outside port 1701 (%s); it gets its own port", passthrough.Host(ev), passthrough.Peer(ev), why(ev.A))
	})
	EventL2TPUnknownTunnel = nat.NewEventKind("l2tp_unknown_tunnel", func(ev nat.Event) string {
		return fmt.Sprintf("L2TP from %s for tunnel %d matches no LAN host: dropped", passthrough.Peer(ev), ev.A)
	})
)

// Why a tunnel could not share port 1701 (EventL2TPFallback's A).
const (
	whyHidden  = 1 // the tunnel id is in a hidden AVP
	whyClash   = 2 // another LAN host uses the id with the server
	whyNoSCCRQ = 3 // the first message was no readable SCCRQ
)

func why(r uint64) string {
	switch r {
	case whyHidden:
		return "its tunnel id is in a hidden AVP"
	case whyClash:
		return "another LAN host uses the same tunnel id with this server"
	case whyNoSCCRQ:
		return "its first message was not a readable SCCRQ"
	}
	return "unknown reason"
}

// Key space of the helper (nat.HelperEnv.Side); the shared port 1701
// (passthrough.Shared) has 0, 2 and 3.
const sideTunnel = 1 // keys: (server, tunnel id) -> host

// Helper is L2TP passthrough. Register one per engine.
type Helper struct {
	env *nat.HelperEnv
	// port is the shared port 1701; its Fallbacks are the tunnels given an
	// ordinary mapping, its SentToOnlyHost the datagrams on 1701 no tunnel
	// id placed, sent to the one host.
	port passthrough.Shared
}

var (
	_ nat.FlowMaker         = (*Helper)(nil)
	_ nat.PassthroughHelper = (*Helper)(nil)
	_ nat.SharedReplier     = (*Helper)(nil)
)

// Name is the switch name.
func (*Helper) Name() string { return "l2tp" }

// DefaultOn: on, as on home routers.
func (*Helper) DefaultOn() bool { return true }

// Attach takes the engine.
func (h *Helper) Attach(env *nat.HelperEnv) {
	h.env = env
	h.port = passthrough.Shared{Env: env, Port: Port}
}

// Ports is L2TP's.
func (*Helper) Ports() []nat.Port { return []nat.Port{{Proto: packet.ProtoUDP, Port: Port}} }

// SharedPort is 1701.
func (*Helper) SharedPort() nat.Port { return nat.Port{Proto: packet.ProtoUDP, Port: Port} }

// Outbound refuses L2TP when switched off and gives a tunnel from port
// 1701 the shared outside port when its SCCRQ allows.
func (h *Helper) Outbound(now nat.Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, nat.DropReason, bool) {
	if passthrough.Blocked(h.env, now, passthrough.L2TP, k.Src, k.Dst) {
		return 0, 0, DropL2TPOff, true
	}
	if k.SrcID != Port {
		return 0, 0, nat.DropNone, false
	}
	tid, why := assigned(ip)
	if why == 0 {
		if owner, ok := h.env.Key(h.env.KeyOf(sideTunnel, k.Dst, uint64(tid))); ok && owner != nat.AddrValue(k.Src) {
			if _, alive := h.port.Flow(k.Dst, k.DstID, nat.AddrOf(owner)); alive {
				why = whyClash
			}
		}
	}
	if why != 0 {
		return h.port.Fallback(now, k, nat.Event{Kind: EventL2TPFallback, Host: k.Src, Peer: k.Dst, A: why})
	}
	id, f, r := h.port.NewFlow(now, k)
	if r != nat.DropNone {
		return 0, 0, r, true
	}
	h.learn(f, tid)
	h.port.Count(k, f)
	return id, conntrack.Original, nat.DropNone, true
}

// Inbound demultiplexes L2TP on the shared port by the tunnel id in the
// header.
func (h *Helper) Inbound(now nat.Time, ip packet.IPv4, k conntrack.Tuple) (int32, conntrack.Dir, nat.DropReason, bool) {
	if !h.env.On() {
		return 0, 0, nat.DropNone, false
	}
	id, hd, byTunnel, err := h.place(ip, k)
	switch {
	case byTunnel:
		return id, conntrack.Reply, nat.DropNone, true
	case id >= 0:
		// No L2TP, or a tunnel id no LAN host announced (a tunnel the
		// server starts, id 0): to the LAN host when exactly one talks
		// L2TP with its sender on the shared port.
		h.port.SentToOnlyHost++
		return id, conntrack.Reply, nat.DropNone, true
	case err != nil:
		return 0, conntrack.Reply, nat.DropMalformed, true
	}
	h.env.Event(now, nat.Event{Kind: EventL2TPUnknownTunnel, Peer: k.Src, A: uint64(hd.TunnelID)})
	return 0, conntrack.Reply, DropL2TPUnknownTunnel, true
}

// Places says whether Inbound sends a datagram to port 1701 to a LAN host
// (nat.SharedReplier): with a port forward of UDP 1701, only what it does
// not place goes to the forward.
func (h *Helper) Places(ip packet.IPv4, k conntrack.Tuple) bool {
	id, _, _, _ := h.place(ip, k)
	return id >= 0
}

// place finds, with no side effects, the shared flow a datagram from the
// WAN goes to (-1: none): by its tunnel id, else the one host talking
// L2TP with its sender.
func (h *Helper) place(ip packet.IPv4, k conntrack.Tuple) (id int32, hd Header, byTunnel bool, err error) {
	hd, err = ParseHeader(packet.UDP(ip.Payload()).Payload())
	host, known := h.env.Key(h.env.KeyOf(sideTunnel, k.Src, uint64(hd.TunnelID)))
	if err == nil && known {
		if id, ok := h.port.Flow(k.Src, k.SrcID, nat.AddrOf(host)); ok {
			return id, hd, true, nil
		}
		return -1, hd, false, nil
	}
	if id, ok := h.port.OnlyHost(k.Src, k.SrcID); ok {
		return id, hd, false, err
	}
	return -1, hd, false, err
}

// assigned reads the Assigned Tunnel ID of an SCCRQ, or says why not
// (why...).
func assigned(ip packet.IPv4) (uint16, uint64) {
	if ip.MoreFragments() {
		return 0, whyNoSCCRQ
	}
	p := packet.UDP(ip.Payload()).Payload()
	hd, err := ParseHeader(p)
	if err != nil || !hd.Control || hd.TunnelID != 0 {
		return 0, whyNoSCCRQ
	}
	ci, err := ParseControl(p, hd)
	if err == ErrHidden {
		return 0, whyHidden
	}
	if err != nil || ci.MessageType != SCCRQ || !ci.HasAssigned || ci.AssignedTunnelID == 0 {
		return 0, whyNoSCCRQ
	}
	return ci.AssignedTunnelID, 0
}

// learn adds a tunnel id to a shared flow; a flow holds up to four (Data,
// 16 bits each), one per tunnel the host opens to the server.
func (h *Helper) learn(f *conntrack.Flow, tid uint16) {
	data, aux := h.env.Data(f)
	for i := 0; i < 4; i++ {
		switch uint16(data >> (16 * i)) {
		case tid:
			return
		case 0:
			if h.env.PutKeyOf(f.Orig.Src, f, h.env.KeyOf(sideTunnel, f.Orig.Dst, uint64(tid)), nat.AddrValue(f.Orig.Src)) {
				h.env.SetData(f, data|uint64(tid)<<(16*i), aux)
			}
			return
		}
	}
}

// FlowPacket learns the tunnels a LAN host opens later on its shared flow.
func (h *Helper) FlowPacket(now nat.Time, id int32, f *conntrack.Flow, dir conntrack.Dir, ip packet.IPv4) nat.DropReason {
	if dir == conntrack.Original {
		if tid, why := assigned(ip); why == 0 {
			h.learn(f, tid)
		}
	}
	return nat.DropNone
}

// Deleted releases a shared flow's tunnel ids and uncounts it.
func (h *Helper) Deleted(id int32, f *conntrack.Flow) {
	h.port.Deleted(f)
	data, _ := h.env.Data(f)
	for i := 0; i < 4; i++ {
		if tid := uint16(data >> (16 * i)); tid != 0 {
			h.port.DelIfOwner(h.env.KeyOf(sideTunnel, f.Orig.Dst, uint64(tid)), f.Orig.Src)
		}
	}
}

// Owns takes the LAN's L2TP flows that got an ordinary mapping.
func (h *Helper) Owns(f *conntrack.Flow) bool {
	return f.Orig.Proto == packet.ProtoUDP && h.env.OpenedFromLAN(f) && f.Orig.DstID == Port
}

// Session: every L2TP flow is one.
func (*Helper) Session(*conntrack.Flow) bool { return true }

// Describe shows a shared flow's tunnel ids.
func (h *Helper) Describe(f *conntrack.Flow, fi *nat.FlowInfo) {
	if !passthrough.Own(h.env, "l2tp", f, fi) {
		return
	}
	data, _ := h.env.Data(f)
	for i := 0; i < 4; i++ {
		if tid := uint16(data >> (16 * i)); tid != 0 {
			fi.TunnelIDs = append(fi.TunnelIDs, tid)
		}
	}
}

// AddStats adds the tunnels given an ordinary mapping and what the shared
// port sent to its only host.
func (h *Helper) AddStats(s *nat.Stats) {
	s.L2TPFallback = h.port.Fallbacks
	h.port.AddStats(s)
}
