// Package pcp is the Port Control Protocol (RFC 6887), version 2, for an
// IPv4 router: the message formats, their options and the answers to MAP,
// PEER and ANNOUNCE, deciding through a portmap.Manager. The socket is
// elsewhere (portmap/server), shared with NAT-PMP on UDP 5351: a datagram
// whose first byte is 0 is NAT-PMP's.
package pcp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"passgate/portmap"
)

// Protocol constants (RFC 6887 sections 7, 19).
const (
	ServerPort = 5351
	ClientPort = 5350
	Version    = 2
	MaxMessage = 1100
	HeaderLen  = 24

	OpAnnounce = 0
	OpMap      = 1
	OpPeer     = 2
	respBit    = 0x80

	OptThirdParty    = 1
	OptPreferFailure = 2
	OptFilter        = 3

	mapLen  = 36
	peerLen = 56
)

// Result codes (RFC 6887 section 7.4).
const (
	Success               uint8 = 0
	UnsuppVersion         uint8 = 1
	NotAuthorized         uint8 = 2
	MalformedRequest      uint8 = 3
	UnsuppOpcode          uint8 = 4
	UnsuppOption          uint8 = 5
	MalformedOption       uint8 = 6
	NetworkFailure        uint8 = 7
	NoResources           uint8 = 8
	UnsuppProtocol        uint8 = 9
	UserExQuota           uint8 = 10
	CannotProvideExternal uint8 = 11
	AddressMismatch       uint8 = 12
	ExcessiveRemotePeers  uint8 = 13
)

// Option is one option of a request.
type Option struct {
	Code uint8
	Data []byte
}

// Request is a parsed request. For MAP and PEER the fields after Op are
// set; Remote is PEER's.
type Request struct {
	Op         uint8
	Lifetime   uint32
	Client     netip.Addr // the client's address as the request states it
	Nonce      [12]byte
	Proto      uint8
	Internal   uint16
	Suggested  uint16
	SuggestIP  netip.Addr
	RemotePort uint16
	Remote     netip.Addr
	Options    []Option
	opData     []byte // the opcode-specific data, copied into answers
}

// ParseError is a request the server answers with an error code (Code
// 0: dropped silently).
type ParseError struct {
	Code uint8
	Why  string
}

func (e *ParseError) Error() string { return "pcp: " + e.Why }

func fail(code uint8, why string) error { return &ParseError{code, why} }

// Parse reads a request. A message too short to answer, or a response, is
// an error with Code 0.
func Parse(b []byte) (Request, error) {
	var r Request
	switch {
	case len(b) < 2 || b[1]&respBit != 0:
		return r, fail(0, "not a request")
	}
	r.Op = b[1] & 0x7f
	if b[0] != Version {
		return r, fail(UnsuppVersion, "unsupported version")
	}
	if len(b) < HeaderLen || len(b) > MaxMessage || len(b)%4 != 0 {
		return r, fail(MalformedRequest, "bad length")
	}
	r.Lifetime = binary.BigEndian.Uint32(b[4:])
	r.Client = addr16(b[8:24])
	body := b[HeaderLen:]
	need := 0
	switch r.Op {
	case OpAnnounce:
	case OpMap:
		need = mapLen
	case OpPeer:
		need = peerLen
	default:
		return r, fail(UnsuppOpcode, "unsupported opcode")
	}
	if len(body) < need {
		return r, fail(MalformedRequest, "opcode data cut short")
	}
	r.opData = body[:need]
	if need > 0 {
		copy(r.Nonce[:], body)
		r.Proto = body[12]
		r.Internal = binary.BigEndian.Uint16(body[16:])
		r.Suggested = binary.BigEndian.Uint16(body[18:])
		r.SuggestIP = addr16(body[20:36])
	}
	if r.Op == OpPeer {
		r.RemotePort = binary.BigEndian.Uint16(body[36:])
		r.Remote = addr16(body[40:56])
	}
	for opts := body[need:]; len(opts) > 0; {
		if len(opts) < 4 {
			return r, fail(MalformedOption, "option header cut short")
		}
		n := int(binary.BigEndian.Uint16(opts[2:]))
		padded := (n + 3) &^ 3
		if len(opts) < 4+padded {
			return r, fail(MalformedOption, "option longer than the message")
		}
		r.Options = append(r.Options, Option{Code: opts[0], Data: opts[4 : 4+n]})
		opts = opts[4+padded:]
	}
	return r, nil
}

// addr16 reads an IPv4-mapped IPv6 address as IPv4 (an IPv6 one stays).
func addr16(b []byte) netip.Addr {
	return netip.AddrFrom16([16]byte(b)).Unmap()
}

func put16(b []byte, a netip.Addr) {
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	v := a.As16() // IPv4-mapped for an IPv4 address
	copy(b, v[:])
}

// AppendResponse appends a response header and the opcode data.
func AppendResponse(b []byte, op, result uint8, lifetime, epoch uint32, opData []byte) []byte {
	b = append(b, Version, op|respBit, 0, result)
	b = binary.BigEndian.AppendUint32(b, lifetime)
	b = binary.BigEndian.AppendUint32(b, epoch)
	b = append(b, make([]byte, 12)...)
	return append(b, opData...)
}

// MapData builds MAP's opcode data (PEER's is this followed by the remote
// peer's port and address).
func MapData(nonce [12]byte, proto uint8, internal, external uint16, extIP netip.Addr) []byte {
	b := make([]byte, mapLen)
	copy(b, nonce[:])
	b[12] = proto
	binary.BigEndian.PutUint16(b[16:], internal)
	binary.BigEndian.PutUint16(b[18:], external)
	put16(b[20:], extIP)
	return b
}

// AppendRequest appends a request (for clients and tests).
func AppendRequest(b []byte, op uint8, lifetime uint32, client netip.Addr, opData []byte, opts ...Option) []byte {
	b = append(b, Version, op, 0, 0)
	b = binary.BigEndian.AppendUint32(b, lifetime)
	var a [16]byte
	put16(a[:], client)
	b = append(b, a[:]...)
	b = append(b, opData...)
	for _, o := range opts {
		b = append(b, o.Code, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(len(o.Data)))
		b = append(b, o.Data...)
		b = append(b, make([]byte, (4-len(o.Data)%4)%4)...)
	}
	return b
}

// PeerData builds PEER's opcode data.
func PeerData(nonce [12]byte, proto uint8, internal, external uint16, extIP netip.Addr, remotePort uint16, remote netip.Addr) []byte {
	b := append(MapData(nonce, proto, internal, external, extIP), make([]byte, 20)...)
	binary.BigEndian.PutUint16(b[36:], remotePort)
	put16(b[40:], remote)
	return b
}

// Response is a parsed response (for clients and tests).
type Response struct {
	Op, Result      uint8
	Lifetime, Epoch uint32
	Nonce           [12]byte
	Proto           uint8
	Internal        uint16
	External        uint16
	ExternalIP      netip.Addr
}

// ParseResponse reads a response.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < HeaderLen || b[0] != Version || b[1]&respBit == 0 {
		return Response{}, errors.New("pcp: not a response")
	}
	r := Response{Op: b[1] &^ respBit, Result: b[3], Lifetime: binary.BigEndian.Uint32(b[4:]), Epoch: binary.BigEndian.Uint32(b[8:])}
	if body := b[HeaderLen:]; (r.Op == OpMap || r.Op == OpPeer) && len(body) >= mapLen {
		copy(r.Nonce[:], body)
		r.Proto = body[12]
		r.Internal = binary.BigEndian.Uint16(body[16:])
		r.External = binary.BigEndian.Uint16(body[18:])
		r.ExternalIP = addr16(body[20:36])
	}
	return r, nil
}

// errorLifetime is how long a client should take an error to hold.
const errorLifetime = 30

// Server answers PCP requests.
type Server struct {
	Manager *portmap.Manager
	Public  func() netip.Addr
	Epoch   func(now time.Time) uint32
	// Outbound finds a LAN endpoint's live mapping for PEER (nil: PEER
	// is answered NO_RESOURCES).
	Outbound func(proto uint8, host netip.Addr, port uint16) (uint16, bool)
	// PeerLifetime is what PEER answers as the lifetime of a live mapping
	// (the engine's idle timeout keeps it while used).
	PeerLifetime time.Duration
}

// Answer returns the response to a datagram from client, or nil.
func (s *Server) Answer(now time.Time, client netip.Addr, b []byte) []byte {
	epoch := s.Epoch(now)
	r, err := Parse(b)
	var pe *ParseError
	if errors.As(err, &pe) {
		if pe.Code == 0 {
			return nil
		}
		return AppendResponse(nil, r.Op, pe.Code, errorLifetime, epoch, r.opData)
	}
	if r.Client != client {
		return AppendResponse(nil, r.Op, AddressMismatch, errorLifetime, epoch, r.opData)
	}
	exact := false
	host := client // the internal host: the client, or THIRD_PARTY's
	var seen [2]int
	for _, o := range r.Options {
		if o.Code == OptThirdParty || o.Code == OptPreferFailure {
			seen[o.Code-1]++
		}
	}
	if seen[0] > 1 || seen[1] > 1 {
		// Each may appear once (RFC 6887 sections 13.1, 13.2).
		return AppendResponse(nil, r.Op, MalformedOption, errorLifetime, epoch, r.opData)
	}
	for _, o := range r.Options {
		switch {
		case o.Code == OptThirdParty && r.Op != OpAnnounce:
			// RFC 6887 13.1: 16 octets, never the sender's own address;
			// refused unless the configuration allows it (a host maps
			// only to itself by default).
			switch {
			case len(o.Data) != 16:
				return AppendResponse(nil, r.Op, MalformedOption, errorLifetime, epoch, r.opData)
			case addr16(o.Data) == client:
				return AppendResponse(nil, r.Op, MalformedRequest, errorLifetime, epoch, r.opData)
			case s.Manager == nil || !s.Manager.ThirdPartyAllowed():
				return AppendResponse(nil, r.Op, NotAuthorized, errorLifetime, epoch, r.opData)
			}
			host = addr16(o.Data)
		case o.Code == OptPreferFailure && r.Op == OpMap:
			if len(o.Data) != 0 {
				return AppendResponse(nil, r.Op, MalformedOption, errorLifetime, epoch, r.opData)
			}
			exact = true
		case o.Code < 128:
			// FILTER (not offered) and unknown mandatory options.
			return AppendResponse(nil, r.Op, UnsuppOption, errorLifetime, epoch, r.opData)
		}
	}
	switch r.Op {
	case OpAnnounce:
		return AppendResponse(nil, OpAnnounce, Success, 0, epoch, nil)
	case OpPeer:
		return s.peer(r, host, epoch)
	}
	return s.mapping(now, r, host, exact, epoch)
}

func (s *Server) mapping(now time.Time, r Request, host netip.Addr, exact bool, epoch uint32) []byte {
	errResp := func(code uint8) []byte { return AppendResponse(nil, OpMap, code, errorLifetime, epoch, r.opData) }
	pub := s.Public()
	switch {
	case r.Proto == 0:
		// All protocols (and so all ports) of a host would be a DMZ.
		return errResp(NotAuthorized)
	case r.Proto != portmap.TCP && r.Proto != portmap.UDP:
		return errResp(UnsuppProtocol)
	case r.Internal == 0 && r.Lifetime != 0:
		return errResp(MalformedRequest)
	case exact && r.SuggestIP.IsValid() && !r.SuggestIP.IsUnspecified() && r.SuggestIP != pub:
		return errResp(CannotProvideExternal)
	}
	if r.Lifetime == 0 {
		_, err := s.Manager.Delete(now, host, "pcp", r.Proto, r.Internal, false, &r.Nonce)
		switch {
		case errors.Is(err, portmap.ErrNonce), errors.Is(err, portmap.ErrOtherProtocol):
			return errResp(NotAuthorized)
		case err != nil && !errors.Is(err, portmap.ErrNoSuchLease):
			return errResp(NetworkFailure)
		}
		return AppendResponse(nil, OpMap, Success, 0, epoch, MapData(r.Nonce, r.Proto, r.Internal, 0, pub))
	}
	l, err := s.Manager.Map(now, portmap.Request{
		Client: r.Client, Host: host, ThirdParty: host != r.Client, Proto: r.Proto, Inside: r.Internal, Outside: r.Suggested, Exact: exact,
		Lease: time.Duration(r.Lifetime) * time.Second, By: "pcp", Desc: "PCP", Nonce: r.Nonce,
	})
	if err != nil {
		return errResp(code(err))
	}
	return AppendResponse(nil, OpMap, Success, uint32(l.Left(now)/time.Second), epoch, MapData(r.Nonce, r.Proto, r.Internal, l.Outside, pub))
}

func (s *Server) peer(r Request, host netip.Addr, epoch uint32) []byte {
	errResp := func(code uint8) []byte { return AppendResponse(nil, OpPeer, code, errorLifetime, epoch, r.opData) }
	switch {
	case r.Proto != portmap.TCP && r.Proto != portmap.UDP:
		return errResp(UnsuppProtocol)
	case r.Internal == 0 || r.RemotePort == 0 || !r.Remote.Is4():
		return errResp(MalformedRequest)
	}
	if s.Outbound == nil {
		return errResp(NoResources)
	}
	ext, ok := s.Outbound(r.Proto, host, r.Internal)
	if !ok {
		// passgate makes a flow's mapping from its first packet; PEER
		// reports one, it does not make one ahead of the traffic.
		return errResp(NoResources)
	}
	life := min(r.Lifetime, uint32(s.PeerLifetime/time.Second))
	return AppendResponse(nil, OpPeer, Success, life, epoch, PeerData(r.Nonce, r.Proto, r.Internal, ext, s.Public(), r.RemotePort, r.Remote))
}

// Announcement is the unsolicited ANNOUNCE response sent to the LAN
// (224.0.0.1:5350) after a restart, so clients refresh their mappings.
func Announcement(epoch uint32) []byte {
	return AppendResponse(nil, OpAnnounce, Success, 0, epoch, nil)
}

func code(err error) uint8 {
	switch {
	case errors.Is(err, portmap.ErrNotAuthorized), errors.Is(err, portmap.ErrNotLAN), errors.Is(err, portmap.ErrNonce), errors.Is(err, portmap.ErrOtherProtocol):
		return NotAuthorized
	case errors.Is(err, portmap.ErrHostLimit):
		return UserExQuota
	case errors.Is(err, portmap.ErrNoPort), errors.Is(err, portmap.ErrTotalLimit):
		return NoResources
	case errors.Is(err, portmap.ErrLowPort), errors.Is(err, portmap.ErrReserved), errors.Is(err, portmap.ErrConflict):
		return CannotProvideExternal
	case errors.Is(err, portmap.ErrInvalid):
		return MalformedRequest
	}
	return NetworkFailure
}
