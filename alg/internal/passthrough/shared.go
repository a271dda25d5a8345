package passthrough

import (
	"passgate/conntrack"
	"passgate/nat"
	"passgate/packet"
)

// Key spaces (nat.HelperEnv.Side) a Shared port uses; a helper keeps
// spaces 1 and 4-7 for its own ids.
const (
	sideFlow   = 0 // flow reply key: (server:port, host:Port)
	sideServer = 2 // keys: (server) -> number of shared flows
	sideHost   = 3 // keys: (server) -> the host of the newest
)

// Shared is a UDP port every LAN host keeps as its outside port with a
// server: IKE's 500, L2TP's 1701. A shared flow's reply tuple is a key in
// the helper's space (server:port, host:Port) and its Xlate holds the wire
// tuple; per server the number of shared flows and the host of the newest
// are kept, so what names no host can go to the only one. The server's
// keys are charged to the host that made them (a host talking to many
// servers holds many).
type Shared struct {
	Env  *nat.HelperEnv
	Port uint16
	// Fallbacks counts the flows given an ordinary mapping (Fallback).
	Fallbacks uint64
	// SentToOnlyHost counts what named no host and went to a server's
	// only host (OnlyHost); the helper counts it.
	SentToOnlyHost uint64
}

// NewFlow makes the shared flow of k (from host:Port to a server). The
// caller adds its ids to f, then calls Count.
func (s *Shared) NewFlow(now nat.Time, k conntrack.Tuple) (int32, *conntrack.Flow, nat.DropReason) {
	reply := conntrack.Tuple{Src: k.Dst, Dst: k.Src, SrcID: k.DstID, DstID: k.SrcID, Proto: k.Proto, Side: s.Env.Side(sideFlow)}
	id, f, r := s.Env.NewFlow(now, k, reply)
	if r != nat.DropNone {
		return 0, nil, r
	}
	f.Xlate = conntrack.Tuple{Src: k.Dst, Dst: s.Env.WANAddr(), SrcID: k.DstID, DstID: k.SrcID, Proto: k.Proto, Side: uint8(nat.WAN)}
	return id, f, nat.DropNone
}

// Count records the new shared flow f of k: its host is the server's
// newest, and the server has one flow more.
func (s *Shared) Count(k conntrack.Tuple, f *conntrack.Flow) {
	sk := s.Env.KeyOf(sideServer, k.Dst, 0)
	s.Env.PutKeyOf(k.Src, f, s.Env.KeyOf(sideHost, k.Dst, 0), nat.AddrValue(k.Src))
	n, _ := s.Env.Key(sk)
	s.Env.PutKeyOf(k.Src, f, sk, n+1)
}

// Fallback gives k, which cannot share the port, an ordinary port
// mapping, counted in Fallbacks and said with ev; it returns what
// nat.FlowMaker.Outbound does.
func (s *Shared) Fallback(now nat.Time, k conntrack.Tuple, ev nat.Event) (int32, conntrack.Dir, nat.DropReason, bool) {
	s.Fallbacks++
	s.Env.Event(now, ev)
	id, dir, r := s.Env.NewMapped(now, k)
	return id, dir, r, true
}

// Flow finds the shared flow of host with server:sport.
func (s *Shared) Flow(server [4]byte, sport uint16, host [4]byte) (int32, bool) {
	id, _, ok := s.Env.Lookup(conntrack.Tuple{Src: server, Dst: host, SrcID: sport, DstID: s.Port, Proto: packet.ProtoUDP, Side: s.Env.Side(sideFlow)})
	return id, ok
}

// OnlyHost finds the shared flow with server:sport of the one LAN host
// that has one with the server; false when none or several do.
func (s *Shared) OnlyHost(server [4]byte, sport uint16) (int32, bool) {
	if n, _ := s.Env.Key(s.Env.KeyOf(sideServer, server, 0)); n != 1 {
		return 0, false
	}
	host, _ := s.Env.Key(s.Env.KeyOf(sideHost, server, 0))
	return s.Flow(server, sport, nat.AddrOf(host))
}

// Deleted uncounts a shared flow that leaves the table (the caller
// releases its own ids, with DelIfOwner).
func (s *Shared) Deleted(f *conntrack.Flow) {
	sk := s.Env.KeyOf(sideServer, f.Orig.Dst, 0)
	if n, ok := s.Env.Key(sk); ok && n > 1 {
		s.Env.PutKey(sk, n-1)
	} else {
		s.Env.DelKey(sk)
		s.Env.DelKey(s.Env.KeyOf(sideHost, f.Orig.Dst, 0))
	}
}

// DelIfOwner removes key k if it still names host (another host may have
// taken the id since).
func (s *Shared) DelIfOwner(k conntrack.Tuple, host [4]byte) {
	if v, ok := s.Env.Key(k); ok && v == nat.AddrValue(host) {
		s.Env.DelKey(k)
	}
}

// AddStats adds what went to a server's only host.
func (s *Shared) AddStats(st *nat.Stats) { st.SharedToOnlyHost += s.SentToOnlyHost }
