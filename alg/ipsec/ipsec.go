// Package ipsec reads the parts of IPsec that a NAT passing IPsec through
// needs: the IKE header (RFC 7296 section 3.1; IKEv1's ISAKMP header, RFC
// 2408, has the same layout for the fields used here), the non-ESP marker
// that separates IKE from ESP on the NAT-T port (RFC 3948 section 2.2), the
// NAT-T keepalive, and the ESP SPI (RFC 4303). It never decrypts anything
// and never allocates. Helper (passthrough.go) is IPsec passthrough, the
// nat helper built on them.
package ipsec

import (
	"encoding/binary"
	"errors"
)

// Ports of IKE and of NAT traversal.
const (
	IKEPort  = 500
	NATTPort = 4500
)

// IKEHeaderLen is the fixed IKE header length.
const IKEHeaderLen = 28

var (
	ErrShort   = errors.New("ipsec: message too short")
	ErrVersion = errors.New("ipsec: unknown IKE version")
	ErrLength  = errors.New("ipsec: IKE length field exceeds the datagram")
	ErrSPI     = errors.New("ipsec: reserved ESP SPI")
)

// IKE is a view over an IKE message header.
type IKE []byte

// ParseIKE checks the header: long enough, a known major version (1 or 2),
// and a length field that is at least the header. IKE messages carried in
// IP fragments are checked on the first fragment, so a length larger than
// what is present is accepted; a caller holding the whole datagram can
// compare Length with it.
func ParseIKE(b []byte) (IKE, error) {
	if len(b) < IKEHeaderLen {
		return nil, ErrShort
	}
	if v := b[17] >> 4; v != 1 && v != 2 {
		return nil, ErrVersion
	}
	if binary.BigEndian.Uint32(b[24:]) < IKEHeaderLen {
		return nil, ErrLength
	}
	return IKE(b), nil
}

// InitiatorSPI is the SPI (IKEv1: cookie) chosen by the exchange's
// original initiator; every message of the IKE SA carries it.
func (m IKE) InitiatorSPI() uint64 { return binary.BigEndian.Uint64(m[0:]) }

// ResponderSPI is zero in the first request of an IKE SA.
func (m IKE) ResponderSPI() uint64 { return binary.BigEndian.Uint64(m[8:]) }
func (m IKE) NextPayload() uint8   { return m[16] }
func (m IKE) MajorVersion() uint8  { return m[17] >> 4 }
func (m IKE) ExchangeType() uint8  { return m[18] }
func (m IKE) Flags() uint8         { return m[19] }
func (m IKE) MessageID() uint32    { return binary.BigEndian.Uint32(m[20:]) }
func (m IKE) Length() uint32       { return binary.BigEndian.Uint32(m[24:]) }

// IsResponse reports the IKEv2 Response flag.
func (m IKE) IsResponse() bool { return m.MajorVersion() == 2 && m.Flags()&0x20 != 0 }

// Kind of a datagram on the NAT-T port.
type Kind uint8

const (
	Keepalive  Kind = iota + 1 // one byte 0xFF (RFC 3948 section 2.3)
	IKEMessage                 // non-ESP marker, then IKE
	ESPMessage                 // an ESP packet: the SPI, never zero
	Invalid
)

// ClassifyNATT tells the kinds of UDP payload on port 4500 apart.
func ClassifyNATT(p []byte) Kind {
	switch {
	case len(p) == 1 && p[0] == 0xff:
		return Keepalive
	case len(p) >= 4 && binary.BigEndian.Uint32(p) == 0:
		if len(p) >= 4+IKEHeaderLen {
			return IKEMessage
		}
		return Invalid
	case len(p) >= 8:
		return ESPMessage
	}
	return Invalid
}

// ESPHeaderLen covers the SPI and the sequence number.
const ESPHeaderLen = 8

// ESPSPI returns the SPI of an ESP packet. SPI values 1-255 are reserved
// and 0 is never sent (RFC 4303 section 2.1); both are errors.
func ESPSPI(p []byte) (uint32, error) {
	if len(p) < ESPHeaderLen {
		return 0, ErrShort
	}
	spi := binary.BigEndian.Uint32(p)
	if spi < 256 {
		return 0, ErrSPI
	}
	return spi, nil
}
