// Package ftp is passgate's FTP helper (RFC 959, RFC 2428): it rewrites the
// data-connection addresses a LAN host announces on the control
// connection (PORT and EPRT from a client, 227 and 229 replies from a
// server behind a port forward) to its public address and port, and
// expects the data connection there. It rewrites only an address equal to
// the LAN host's own, so an address the client already made public passes
// untouched; lengths may change, and the engine adjusts TCP sequence
// numbers.
package ftp

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"

	"passgate/alg/internal/ascii"
	"passgate/nat"
	"passgate/packet"
)

// Port is the FTP control port.
const Port = 21

// Helper is the FTP helper. Register one with nat.Engine.RegisterHelpers.
type Helper struct {
	buf [1600]byte // the rewritten payload, reused
}

func (*Helper) Name() string    { return "ftp" }
func (*Helper) DefaultOn() bool { return true }
func (*Helper) Wants(proto uint8, port uint16) bool {
	return proto == packet.ProtoTCP && port == Port
}

// Inspect rewrites the first data-address line of a segment sent by the
// LAN host. Commands and replies are short and sent one per segment by
// every client and server in practice; a line cut by a segment end is left
// alone and counted.
func (h *Helper) Inspect(p *nat.HelperPacket) {
	if !p.FromLAN {
		return
	}
	pl := p.Payload
	for start := 0; start < len(pl); {
		end := bytes.IndexByte(pl[start:], '\n')
		if end < 0 {
			if looksLikeAddress(pl[start:]) {
				p.Unparsed()
			}
			return
		}
		line := pl[start : start+end+1]
		if out, ok := h.rewrite(p, line); ok {
			n := copy(h.buf[:], pl[:start])
			n += copy(h.buf[n:], out)
			n += copy(h.buf[n:], pl[start+end+1:])
			p.SetPayload(h.buf[:n])
			return
		}
		start += end + 1
	}
}

func looksLikeAddress(b []byte) bool {
	return ascii.HasPrefixFold(b, "PORT ") || ascii.HasPrefixFold(b, "EPRT ") || ascii.HasPrefixFold(b, "227 ") || ascii.HasPrefixFold(b, "229 ")
}

// rewrite returns the replacement for one line, or ok=false to leave it.
func (h *Helper) rewrite(p *nat.HelperPacket, line []byte) ([]byte, bool) {
	ap, kind, found := dataAddress(line, p.Inside.Addr())
	if !found {
		return nil, false
	}
	if !ap.IsValid() {
		p.Unparsed()
		return nil, false
	}
	pub, ok := h.expect(p, ap)
	if !ok {
		return nil, false
	}
	a, port := pub.Addr().As4(), pub.Port()
	switch kind {
	case "PORT":
		return fmt.Appendf(nil, "PORT %d,%d,%d,%d,%d,%d\r\n", a[0], a[1], a[2], a[3], port>>8, port&0xff), true
	case "EPRT":
		return fmt.Appendf(nil, "EPRT |1|%s|%d|\r\n", pub.Addr(), port), true
	case "227":
		return fmt.Appendf(nil, "227 Entering Passive Mode (%d,%d,%d,%d,%d,%d).\r\n", a[0], a[1], a[2], a[3], port>>8, port&0xff), true
	}
	return fmt.Appendf(nil, "229 Entering Extended Passive Mode (|||%d|)\r\n", port), true
}

// dataAddress finds the data-connection address a line announces: found
// says the line is one of PORT, EPRT, 227 or 229; an invalid ap means it
// could not be read. A 229 names only a port, on the sender's own address
// (inside).
func dataAddress(line []byte, inside netip.Addr) (ap netip.AddrPort, kind string, found bool) {
	var ok bool
	switch {
	case ascii.HasPrefixFold(line, "PORT "):
		ap, ok = parseHostPort(bytes.TrimSpace(line[5:]))
		kind = "PORT"
	case ascii.HasPrefixFold(line, "EPRT "):
		ap, ok = parseEPRT(bytes.TrimSpace(line[5:]))
		kind = "EPRT"
	case bytes.HasPrefix(line, []byte("227 ")):
		kind = "227"
		if i, j := bytes.IndexByte(line, '('), bytes.IndexByte(line, ')'); i >= 0 && j > i {
			ap, ok = parseHostPort(line[i+1 : j])
		}
	case bytes.HasPrefix(line, []byte("229 ")):
		kind = "229"
		if i := bytes.Index(line, []byte("(|||")); i >= 0 {
			if j := bytes.IndexByte(line[i+4:], '|'); j >= 0 {
				port, err := strconv.ParseUint(string(line[i+4:i+4+j]), 10, 16)
				ap, ok = netip.AddrPortFrom(inside, uint16(port)), err == nil && port != 0
			}
		}
	default:
		return netip.AddrPort{}, "", false
	}
	if !ok {
		return netip.AddrPort{}, kind, true
	}
	return ap, kind, true
}

// expect registers the data connection the peer will open to ap and
// returns the public address to announce instead. Addresses other than the
// LAN host's own are left as they are.
func (h *Helper) expect(p *nat.HelperPacket, ap netip.AddrPort) (netip.AddrPort, bool) {
	if ap.Addr() != p.Inside.Addr() {
		return netip.AddrPort{}, false
	}
	port, ok := p.Expect(nat.Expect{Proto: packet.ProtoTCP, Remote: p.Remote.Addr(), Inside: ap})
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(p.Outside.Addr(), port), true
}

// parseHostPort reads "h1,h2,h3,h4,p1,p2".
func parseHostPort(b []byte) (netip.AddrPort, bool) {
	var v [6]int
	parts := bytes.Split(bytes.TrimSpace(b), []byte(","))
	if len(parts) != 6 {
		return netip.AddrPort{}, false
	}
	for i, part := range parts {
		n, err := strconv.Atoi(string(bytes.TrimSpace(part)))
		if err != nil || n < 0 || n > 255 {
			return netip.AddrPort{}, false
		}
		v[i] = n
	}
	a := netip.AddrFrom4([4]byte{byte(v[0]), byte(v[1]), byte(v[2]), byte(v[3])})
	return netip.AddrPortFrom(a, uint16(v[4]<<8|v[5])), v[4]<<8|v[5] != 0
}

// parseEPRT reads "|1|a.b.c.d|port|" (IPv4 only: passgate is IPv4).
func parseEPRT(b []byte) (netip.AddrPort, bool) {
	if len(b) < 4 {
		return netip.AddrPort{}, false
	}
	d := b[0]
	f := bytes.Split(b[1:], []byte{d})
	if len(f) < 4 || string(f[0]) != "1" {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(string(f[1]))
	if err != nil || !a.Is4() {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(string(f[2]), 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(port)), true
}
