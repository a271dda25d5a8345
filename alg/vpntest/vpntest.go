// Package vpntest drives the VPN passthrough helpers (alg/ipsec,
// alg/pptp, alg/l2tp) through a real nat.Engine for tests: an engine on
// the lab addresses with the three registered, builders of IKE, ESP, GRE,
// PPTP and L2TP messages, and a PPTP client's control connection.
package vpntest

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"passgate/alg/ipsec"
	"passgate/alg/l2tp"
	"passgate/alg/pptp"
	"passgate/nat"
	"passgate/packet"
	"passgate/packet/pkttest"
)

// Sec is one second of engine time.
const Sec = nat.Time(1e9)

// LabConfig is the lab configuration: LAN 192.168.50.1/24, WAN
// 203.0.113.1/24 with a gateway, 1024 flows.
func LabConfig() nat.Config {
	return nat.Config{
		LANAddr:    netip.MustParsePrefix("192.168.50.1/24"),
		WANAddr:    netip.MustParsePrefix("203.0.113.1/24"),
		WANGateway: netip.MustParseAddr("203.0.113.254"),
		MaxFlows:   1024,
	}
}

// Helpers returns fresh IPsec, PPTP and L2TP passthrough helpers.
func Helpers() []nat.Helper {
	return []nat.Helper{&ipsec.Helper{}, &pptp.Helper{}, &l2tp.Helper{}}
}

// NewEngine makes an engine on LabConfig, first passed to mod (when not
// nil), with the passthrough helpers registered.
func NewEngine(t testing.TB, mod func(*nat.Config)) *nat.Engine {
	t.Helper()
	cfg := LabConfig()
	if mod != nil {
		mod(&cfg)
	}
	e, err := nat.New(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.RegisterHelpers(Helpers()...)
	return e
}

// Pass runs a packet through and requires it to be forwarded out want.
func Pass(t testing.TB, e *nat.Engine, now nat.Time, from nat.Iface, b []byte, want nat.Iface) []byte {
	t.Helper()
	v := e.Process(now, from, b)
	if v.Action != nat.Forward {
		t.Fatalf("verdict %+v (reason %v), want forward", v, v.Reason)
	}
	if v.Out != want {
		t.Fatalf("out %v, want %v", v.Out, want)
	}
	return b
}

// Dropped runs a packet through and requires it dropped for why.
func Dropped(t testing.TB, e *nat.Engine, now nat.Time, from nat.Iface, b []byte, why nat.DropReason) {
	t.Helper()
	v := e.Process(now, from, b)
	if v.Action != nat.Drop || v.Reason != why {
		t.Fatalf("verdict %+v (reason %v), want drop %v", v, v.Reason, why)
	}
}

// Itoa formats a port.
func Itoa(p uint16) string { return strconv.Itoa(int(p)) }

// Contains is strings.Contains.
func Contains(s, sub string) bool { return strings.Contains(s, sub) }

// IKEMsg builds an IKEv2 message header (padded to size) with the given
// SPIs, a request or a response.
func IKEMsg(spiI, spiR uint64, response bool, size int) []byte {
	b := make([]byte, max(28, size))
	binary.BigEndian.PutUint64(b[0:], spiI)
	binary.BigEndian.PutUint64(b[8:], spiR)
	b[16], b[17], b[18] = 33, 0x20, 34
	if response {
		b[19] = 0x20
	} else {
		b[19] = 0x08
	}
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b
}

// ESP builds a raw ESP packet with a SPI and a payload.
func ESP(src, dst string, spi uint32, payload string) []byte {
	body := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint32(body, spi)
	binary.BigEndian.PutUint32(body[4:], 1)
	copy(body[8:], payload)
	b := pkttest.UDP(src+":1", dst+":1", body)
	// Turn the UDP packet into ESP: same bytes after the IP header.
	ip := packet.IPv4(b)
	copy(ip.Payload(), body)
	b = b[:20+len(body)]
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[9] = packet.ProtoESP
	packet.IPv4(b).ComputeChecksum()
	return b
}

// ESPSPI reads the SPI of an ESP packet.
func ESPSPI(b []byte) uint32 { return binary.BigEndian.Uint32(packet.IPv4(b).Payload()) }

// PPTPMsg builds a control message.
func PPTPMsg(typ uint16, callID, peer uint16, result byte) []byte {
	lengths := map[uint16]int{1: 156, 2: 156, 7: 168, 8: 32, 12: 16, 13: 148}
	b := make([]byte, lengths[typ])
	binary.BigEndian.PutUint16(b[0:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint32(b[4:], pptp.MagicCookie)
	binary.BigEndian.PutUint16(b[8:], typ)
	binary.BigEndian.PutUint16(b[12:], callID)
	binary.BigEndian.PutUint16(b[14:], peer)
	if len(b) > 16 {
		b[16] = result
	}
	return b
}

// GRE builds an enhanced GRE packet of PPTP with a key (call id).
func GRE(src, dst string, key uint16, payload string) []byte {
	body := make([]byte, 12+len(payload))
	body[0], body[1] = 0x30, 0x01
	binary.BigEndian.PutUint16(body[2:], pptp.GREProtoPPP)
	binary.BigEndian.PutUint16(body[4:], uint16(len(payload)))
	binary.BigEndian.PutUint16(body[6:], key)
	binary.BigEndian.PutUint32(body[8:], 1)
	copy(body[12:], payload)
	b := ESP(src, dst, 0x100, string(make([]byte, len(body)-8)))
	copy(packet.IPv4(b).Payload(), body)
	b[9] = packet.ProtoGRE
	packet.IPv4(b).ComputeChecksum()
	return b
}

// GREKey reads the key of a GRE packet.
func GREKey(b []byte) uint16 { return binary.BigEndian.Uint16(packet.IPv4(b).Payload()[6:]) }

// TCPPayload is a TCP packet's payload.
func TCPPayload(b []byte) []byte { return packet.TCP(packet.IPv4(b).Payload()).Payload() }

// PPTPClient drives one client's control connection to 203.0.113.10
// through the engine.
type PPTPClient struct {
	T          testing.TB
	E          *nat.Engine
	Host       string
	Port       uint16
	Pub        string // the client's public endpoint, once connected
	CSeq, SSeq uint32
}

// Out sends a segment from the client and requires it forwarded.
func (c *PPTPClient) Out(now nat.Time, payload []byte, flags uint8) []byte {
	b := pkttest.TCP(c.Host+":"+Itoa(c.Port), "203.0.113.10:1723", flags, c.CSeq, c.SSeq, nil, payload)
	c.CSeq += uint32(len(payload))
	return Pass(c.T, c.E, now, nat.LAN, b, nat.WAN)
}

// In sends a segment from the server and requires it forwarded.
func (c *PPTPClient) In(now nat.Time, payload []byte, flags uint8) []byte {
	b := pkttest.TCP("203.0.113.10:1723", c.Pub, flags, c.SSeq, c.CSeq, nil, payload)
	c.SSeq += uint32(len(payload))
	return Pass(c.T, c.E, now, nat.WAN, b, nat.LAN)
}

// Connect opens the connection: handshake, Start-Control-Connection.
func (c *PPTPClient) Connect() {
	o := c.Out(0, nil, packet.TCPSyn)
	c.Pub = "203.0.113.1:" + Itoa(packet.TCP(packet.IPv4(o).Payload()).SrcPort())
	c.CSeq++
	c.In(0, nil, packet.TCPSyn|packet.TCPAck)
	c.SSeq++
	c.Out(0, PPTPMsg(1, 0, 0, 0), packet.TCPAck)
	c.In(0, PPTPMsg(2, 0, 0, 1), packet.TCPAck)
}

// ConnectQuiet sets up a control connection and a call (client call id
// 0x0100, server's 0x0700) without asserting (for fuzzers' and
// benchmarks' starting state).
func (c *PPTPClient) ConnectQuiet() {
	send := func(from nat.Iface, b []byte) { c.E.Process(0, from, b) }
	send(nat.LAN, pkttest.TCP(c.Host+":"+Itoa(c.Port), "203.0.113.10:1723", packet.TCPSyn, c.CSeq, 0, nil, nil))
	c.CSeq++
	send(nat.WAN, pkttest.TCP("203.0.113.10:1723", "203.0.113.1:"+Itoa(c.Port), packet.TCPSyn|packet.TCPAck, c.SSeq, c.CSeq, nil, nil))
	c.SSeq++
	m := PPTPMsg(7, 0x0100, 0, 0)
	send(nat.LAN, pkttest.TCP(c.Host+":"+Itoa(c.Port), "203.0.113.10:1723", packet.TCPAck, c.CSeq, c.SSeq, nil, m))
	c.CSeq += uint32(len(m))
	r := PPTPMsg(8, 0x0700, 0x0100, 1)
	send(nat.WAN, pkttest.TCP("203.0.113.10:1723", "203.0.113.1:"+Itoa(c.Port), packet.TCPAck, c.SSeq, c.CSeq, nil, r))
}

// L2TPSCCRQ builds an SCCRQ assigning tunnel id tid, in a hidden AVP if
// hidden.
func L2TPSCCRQ(tid uint16, hidden bool) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, 0xc802)
	avp := func(attr uint16, hid bool, v ...byte) {
		w := uint16(0x8000) | uint16(6+len(v))
		if hid {
			w |= 0x4000
		}
		a := make([]byte, 6)
		binary.BigEndian.PutUint16(a, w)
		binary.BigEndian.PutUint16(a[4:], attr)
		b = append(b, append(a, v...)...)
	}
	avp(0, false, 0, 1)
	avp(9, hidden, byte(tid>>8), byte(tid))
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// L2TPTo builds a control message header to tunnel tid.
func L2TPTo(tid uint16) []byte {
	return []byte{0xc8, 0x02, 0, 12, byte(tid >> 8), byte(tid), 0, 0, 0, 0, 0, 0}
}
