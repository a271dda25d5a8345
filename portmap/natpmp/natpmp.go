// Package natpmp is NAT-PMP (RFC 6886), version 0: the message formats and
// the answers to them, for a router's UDP port 5351. It reads and builds
// bytes and decides through a portmap.Manager; the sockets are elsewhere
// (portmap/server).
package natpmp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"passgate/portmap"
)

// Ports (RFC 6886 section 3).
const (
	ServerPort   = 5351
	ClientPort   = 5350
	Version      = 0
	OpAddress    = 0
	OpMapUDP     = 1
	OpMapTCP     = 2
	ResponseFlag = 128
)

// Result codes (RFC 6886 section 3.5).
const (
	Success           uint16 = 0
	UnsupportedVer    uint16 = 1
	NotAuthorized     uint16 = 2
	NetworkFailure    uint16 = 3
	OutOfResources    uint16 = 4
	UnsupportedOpcode uint16 = 5
)

// Request is a client's message.
type Request struct {
	Op        uint8
	Internal  uint16
	Suggested uint16
	Lifetime  uint32 // seconds; 0 = delete
}

// Errors of Parse; ErrVersion and ErrOpcode are answered with their result
// code, the others not at all.
var (
	ErrShort    = errors.New("natpmp: message too short")
	ErrVersion  = errors.New("natpmp: unsupported version")
	ErrOpcode   = errors.New("natpmp: unsupported opcode")
	ErrResponse = errors.New("natpmp: a response, not a request")
)

// Parse reads a request.
func Parse(b []byte) (Request, error) {
	if len(b) < 2 {
		return Request{}, ErrShort
	}
	r := Request{Op: b[1]}
	switch {
	case b[0] != Version:
		return r, ErrVersion
	case r.Op >= ResponseFlag:
		return r, ErrResponse
	case r.Op == OpAddress:
		return r, nil
	case r.Op != OpMapUDP && r.Op != OpMapTCP:
		return r, ErrOpcode
	case len(b) < 12:
		return r, ErrShort
	}
	r.Internal = binary.BigEndian.Uint16(b[4:])
	r.Suggested = binary.BigEndian.Uint16(b[6:])
	r.Lifetime = binary.BigEndian.Uint32(b[8:])
	return r, nil
}

// AppendHeader appends a response's common header: version, opcode+128,
// result code, seconds since the start of epoch.
func AppendHeader(b []byte, op uint8, result uint16, epoch uint32) []byte {
	b = append(b, Version, op|ResponseFlag)
	b = binary.BigEndian.AppendUint16(b, result)
	return binary.BigEndian.AppendUint32(b, epoch)
}

// AppendAddress appends a public address response (also the
// announcement's body).
func AppendAddress(b []byte, result uint16, epoch uint32, addr netip.Addr) []byte {
	b = AppendHeader(b, OpAddress, result, epoch)
	a := addr.As4()
	return append(b, a[:]...)
}

// AppendMap appends a mapping response.
func AppendMap(b []byte, op uint8, result uint16, epoch uint32, internal, external uint16, lifetime uint32) []byte {
	b = AppendHeader(b, op, result, epoch)
	b = binary.BigEndian.AppendUint16(b, internal)
	b = binary.BigEndian.AppendUint16(b, external)
	return binary.BigEndian.AppendUint32(b, lifetime)
}

// Server answers NAT-PMP requests.
type Server struct {
	Manager *portmap.Manager
	Public  func() netip.Addr // the router's public address
	Epoch   func(now time.Time) uint32
}

// Answer returns the response to a request from client, or nil when none
// is due (a malformed message, a response).
func (s *Server) Answer(now time.Time, client netip.Addr, b []byte) []byte {
	epoch := s.Epoch(now)
	r, err := Parse(b)
	switch {
	case errors.Is(err, ErrVersion):
		return AppendHeader(nil, r.Op, UnsupportedVer, epoch)
	case errors.Is(err, ErrOpcode):
		// RFC 6886 3.5: "the entire request MUST be returned to the
		// sender, with the top bit of the opcode set ... and the result
		// code set to 5" (no larger than the request: no amplifier).
		out := append(make([]byte, 0, max(len(b), 4)), b...)
		out = append(out, make([]byte, max(4-len(out), 0))...)
		out[1] |= ResponseFlag
		binary.BigEndian.PutUint16(out[2:], UnsupportedOpcode)
		return out
	case err != nil:
		return nil
	case r.Op == OpAddress:
		pub := s.Public()
		if !pub.Is4() {
			return AppendAddress(nil, NetworkFailure, epoch, netip.IPv4Unspecified())
		}
		return AppendAddress(nil, Success, epoch, pub)
	}
	proto := portmap.UDP
	if r.Op == OpMapTCP {
		proto = portmap.TCP
	}
	if r.Lifetime == 0 {
		// Deletion (section 3.4); internal port 0 deletes all of this
		// host's mappings of the protocol. Deleting nothing succeeds.
		_, err := s.Manager.Delete(now, client, "natpmp", proto, r.Internal, false, nil)
		if err != nil && !errors.Is(err, portmap.ErrNoSuchLease) {
			return AppendMap(nil, r.Op, code(err), epoch, r.Internal, 0, 0)
		}
		return AppendMap(nil, r.Op, Success, epoch, r.Internal, 0, 0)
	}
	l, err := s.Manager.Map(now, portmap.Request{
		Client: client, Proto: proto, Inside: r.Internal, Outside: r.Suggested,
		Lease: time.Duration(r.Lifetime) * time.Second, By: "natpmp", Desc: "NAT-PMP",
	})
	if err != nil {
		return AppendMap(nil, r.Op, code(err), epoch, r.Internal, 0, 0)
	}
	return AppendMap(nil, r.Op, Success, epoch, r.Internal, l.Outside, uint32(l.Left(now)/time.Second))
}

func code(err error) uint16 {
	switch {
	case errors.Is(err, portmap.ErrHostLimit), errors.Is(err, portmap.ErrNoPort), errors.Is(err, portmap.ErrTotalLimit):
		return OutOfResources
	case errors.Is(err, portmap.ErrInvalid):
		return NetworkFailure
	}
	return NotAuthorized
}
