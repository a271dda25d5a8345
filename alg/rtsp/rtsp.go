// Package rtsp is passgate's RTSP helper (RFC 2326). An RTSP client
// announces in its SETUP request's Transport header the UDP ports it wants
// RTP and RTCP on (client_port=a-b); behind NAT those are private ports
// the server cannot reach. The helper rewrites them, in SETUP requests
// from a LAN host, to public ports it expects RTP and RTCP on from the
// server's address, rewrites a destination= naming the host's own
// address, and maps client_port in the server's reply back to the inside
// ports. For a server behind a port forward it does the same for the
// server_port and source= of its replies. Interleaved RTSP-over-TCP,
// multicast and specs naming another address pass untouched; lengths may
// change, and the engine adjusts TCP sequence numbers.
package rtsp

import (
	"bytes"
	"net/netip"
	"strconv"

	"passgate/alg/internal/ascii"
	"passgate/nat"
	"passgate/packet"
)

// Ports are the RTSP control ports.
const (
	Port    = 554
	AltPort = 8554
)

const (
	maxSpecs = 8  // transport-specs read per Transport header
	maxMaps  = 64 // client_port rewrites remembered, over all flows
)

// Helper is the RTSP helper. Register one with nat.Engine.RegisterHelpers.
type Helper struct {
	buf   []byte
	specs [maxSpecs]Spec
	maps  [maxMaps]portMap
	next  int
}

// portMap is one client_port rewrite, to map the server's echo back.
type portMap struct {
	flow         nat.FlowRef
	used         bool
	inLo, inHi   uint16
	pubLo, pubHi uint16
}

func (*Helper) Name() string    { return "rtsp" }
func (*Helper) DefaultOn() bool { return false }
func (*Helper) Wants(proto uint8, port uint16) bool {
	return proto == packet.ProtoTCP && (port == Port || port == AltPort)
}

// Ended forgets a control connection's rewrites.
func (h *Helper) Ended(f nat.FlowRef) {
	for i := range h.maps {
		if h.maps[i].used && h.maps[i].flow == f {
			h.maps[i] = portMap{}
		}
	}
}

func tag(f nat.FlowRef) uint64 { return uint64(uint32(f.ID))<<32 | uint64(f.Gen) }

// Inspect rewrites the Transport header of a message at the start of the
// segment. Requests and replies are sent one per segment by every client
// and server in practice; a header cut by a segment end is left alone and
// counted.
func (h *Helper) Inspect(p *nat.HelperPacket) {
	pl := p.Payload
	if len(pl) < 6 || pl[0] == '$' {
		return // interleaved binary data
	}
	reply := bytes.HasPrefix(pl, []byte("RTSP/"))
	switch {
	case p.FromLAN && ascii.HasPrefixFold(pl, "SETUP "):
		h.transport(p, h.setupFromLAN)
	case p.FromLAN && ascii.HasPrefixFold(pl, "TEARDOWN "):
		// The session ends: media not started yet never will.
		p.Forget(tag(p.Flow))
	case !p.FromLAN && reply:
		h.transport(p, h.replyToLAN)
	case p.FromLAN && reply:
		h.transport(p, h.replyFromServer)
	}
}

// transport finds the Transport header, lets edit change its specs, and
// replaces the payload if anything changed.
func (h *Helper) transport(p *nat.HelperPacket, edit func(p *nat.HelperPacket, s *Spec) bool) {
	pl := p.Payload
	vs, ve, ok := findHeader(pl, "transport:")
	if !ok {
		return
	}
	if ve < 0 {
		p.Unparsed() // cut by the segment end
		return
	}
	val := pl[vs:ve]
	specs := h.specs[:]
	n, ok := ParseTransport(val, specs)
	if !ok {
		p.Unparsed()
		return
	}
	changed := false
	for i := range specs[:n] {
		if edit(p, &specs[i]) {
			changed = true
		}
	}
	if !changed {
		return
	}
	out := append(h.buf[:0], pl[:vs]...)
	out = AppendTransport(out, val, specs[:n])
	out = append(out, pl[ve:]...)
	h.buf = out
	p.SetPayload(out)
}

// usable says whether a spec is plain unicast UDP with ports.
func usable(s *Spec) bool {
	return !s.Interleaved && !s.TCP && !s.Multicast
}

// setupFromLAN rewrites a LAN client's client_port to expected public
// ports.
func (h *Helper) setupFromLAN(p *nat.HelperPacket, s *Spec) bool {
	if !usable(s) || s.Client.N == 0 || (s.HasDest && s.Dest != p.Inside.Addr()) {
		return false
	}
	in := p.Inside.Addr()
	t := tag(p.Flow)
	lo, ok := p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: p.Remote.Addr(), Inside: netip.AddrPortFrom(in, s.Client.Lo), Tag: t})
	if !ok {
		return false
	}
	hi := lo
	if s.Client.N == 2 {
		if hi, ok = p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: p.Remote.Addr(), Inside: netip.AddrPortFrom(in, s.Client.Hi), Tag: t}); !ok {
			return false
		}
	}
	m := &h.maps[h.next]
	h.next = (h.next + 1) % maxMaps
	*m = portMap{flow: p.Flow, used: true, inLo: s.Client.Lo, inHi: s.Client.Hi, pubLo: lo, pubHi: hi}
	s.SetClient(lo, hi)
	if s.HasDest {
		s.SetDest(p.Outside.Addr())
	}
	return true
}

// replyToLAN maps the client_port the server echoes back to the inside
// ports.
func (h *Helper) replyToLAN(p *nat.HelperPacket, s *Spec) bool {
	if !usable(s) || s.Client.N == 0 {
		return false
	}
	for i := range h.maps {
		m := &h.maps[i]
		if m.used && m.flow == p.Flow && m.pubLo == s.Client.Lo && (s.Client.N == 1 || m.pubHi == s.Client.Hi) {
			s.SetClient(m.inLo, m.inHi)
			if s.HasDest && s.Dest == p.Outside.Addr() {
				s.SetDest(p.Inside.Addr())
			}
			return true
		}
	}
	return false
}

// replyFromServer rewrites the server_port (and a source= naming its own
// address) of a server behind a port forward, expecting the client's RTP
// and RTCP there.
func (h *Helper) replyFromServer(p *nat.HelperPacket, s *Spec) bool {
	if !usable(s) || s.Server.N == 0 || (s.HasSource && s.Source != p.Inside.Addr()) {
		return false
	}
	in := p.Inside.Addr()
	t := tag(p.Flow)
	lo, ok := p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: p.Remote.Addr(), Inside: netip.AddrPortFrom(in, s.Server.Lo), Tag: t})
	if !ok {
		return false
	}
	hi := lo
	if s.Server.N == 2 {
		if hi, ok = p.Expect(nat.Expect{Proto: packet.ProtoUDP, Remote: p.Remote.Addr(), Inside: netip.AddrPortFrom(in, s.Server.Hi), Tag: t}); !ok {
			return false
		}
	}
	s.SetServer(lo, hi)
	if s.HasSource {
		s.SetSource(p.Outside.Addr())
	}
	return true
}

// findHeader finds header name (lower case, with its colon) among the
// message's header lines and returns the value's bounds, spaces trimmed;
// ve is -1 when the line is not complete in b.
func findHeader(b []byte, name string) (vs, ve int, ok bool) {
	for start := 0; start < len(b); {
		end := bytes.IndexByte(b[start:], '\n')
		if end < 0 {
			end = len(b) - start
		}
		line := b[start : start+end]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return 0, 0, false // end of the headers
		}
		if ascii.HasPrefixFold(line, name) {
			vs = start + len(name)
			for vs < len(b) && (b[vs] == ' ' || b[vs] == '\t') {
				vs++
			}
			if start+end >= len(b) {
				return vs, -1, true
			}
			ve = start + end
			if ve > vs && b[ve-1] == '\r' {
				ve--
			}
			for ve > vs && (b[ve-1] == ' ' || b[ve-1] == '\t') {
				ve--
			}
			return vs, ve, true
		}
		start += end + 1
	}
	return 0, 0, false
}

// PortRange is a client_port or server_port value: N is 0 when absent, 1
// for a single port, 2 for a range Lo-Hi.
type PortRange struct {
	Lo, Hi uint16
	N      int
}

// Spec is one transport-spec of a Transport header (RFC 2326 12.39).
type Spec struct {
	Interleaved bool // interleaved=: media on the RTSP connection
	TCP         bool // lower transport TCP (RTP/AVP/TCP)
	Multicast   bool
	Client      PortRange
	Server      PortRange
	HasDest     bool
	Dest        netip.Addr
	HasSource   bool
	Source      netip.Addr

	start, end             int    // the spec within the header value
	clientAt, serverAt     [2]int // value bounds within the header value
	destAt, sourceAt       [2]int
	newClient, newServer   PortRange
	newDest, newSource     netip.Addr
	editClient, editServer bool
	editDest, editSource   bool
}

// SetClient replaces the client_port value (a single port stays single).
func (s *Spec) SetClient(lo, hi uint16) {
	s.newClient, s.editClient = PortRange{lo, hi, s.Client.N}, true
}

// SetServer replaces the server_port value.
func (s *Spec) SetServer(lo, hi uint16) {
	s.newServer, s.editServer = PortRange{lo, hi, s.Server.N}, true
}

// SetDest replaces the destination= address.
func (s *Spec) SetDest(a netip.Addr) { s.newDest, s.editDest = a, true }

// SetSource replaces the source= address.
func (s *Spec) SetSource(a netip.Addr) { s.newSource, s.editSource = a, true }

// ParseTransport reads a Transport header value: transport-specs
// separated by commas, each a protocol/profile[/lower] followed by
// parameters separated by semicolons. It fills specs and returns how many
// it read; ok is false when there are more specs than fit, or a
// client_port, server_port, destination or source value is malformed.
// Other parameters are not checked. It does not allocate.
func ParseTransport(val []byte, specs []Spec) (n int, ok bool) {
	for start := 0; start <= len(val); {
		end := bytes.IndexByte(val[start:], ',')
		if end < 0 {
			end = len(val)
		} else {
			end += start
		}
		if n == len(specs) {
			return n, false
		}
		s := &specs[n]
		*s = Spec{start: start, end: end}
		if !parseSpec(val, s) {
			return n, false
		}
		n++
		start = end + 1
	}
	return n, true
}

func parseSpec(val []byte, s *Spec) bool {
	first := true
	for ps := s.start; ps <= s.end; {
		pe := bytes.IndexByte(val[ps:s.end], ';')
		if pe < 0 {
			pe = s.end
		} else {
			pe += ps
		}
		off := ps
		for off < pe && (val[off] == ' ' || val[off] == '\t') {
			off++
		}
		param := bytes.TrimRight(val[off:pe], " \t")
		if first {
			// RTP/AVP[/UDP|/TCP]
			if i := bytes.LastIndexByte(param, '/'); i > 0 && ascii.EqualFold(param[i+1:], "tcp") {
				s.TCP = true
			}
			first = false
		} else {
			key, v := param, []byte(nil)
			vo := off + len(param)
			if i := bytes.IndexByte(param, '='); i >= 0 {
				key, v = bytes.Trim(param[:i], " \t"), bytes.Trim(param[i+1:], " \t")
				vo = off + i + 1
				for vo < pe && (val[vo] == ' ' || val[vo] == '\t') {
					vo++
				}
			}
			at := [2]int{vo, vo + len(v)}
			switch {
			case ascii.EqualFold(key, "interleaved"):
				s.Interleaved = true
			case ascii.EqualFold(key, "multicast"):
				s.Multicast = true
			case ascii.EqualFold(key, "client_port"):
				r, ok := parseRange(v)
				if !ok || s.Client.N != 0 {
					return false
				}
				s.Client, s.clientAt = r, at
			case ascii.EqualFold(key, "server_port"):
				r, ok := parseRange(v)
				if !ok || s.Server.N != 0 {
					return false
				}
				s.Server, s.serverAt = r, at
			case ascii.EqualFold(key, "destination"):
				if len(v) == 0 {
					break // "destination" alone: the client's own address
				}
				if s.HasDest {
					return false
				}
				// A host name or an IPv6 address stays an invalid Addr:
				// another address than the inside one.
				s.HasDest, s.destAt = true, at
				s.Dest, _ = parseIPv4(v)
			case ascii.EqualFold(key, "source"):
				if len(v) == 0 || s.HasSource {
					return false
				}
				s.HasSource, s.sourceAt = true, at
				s.Source, _ = parseIPv4(v)
			}
		}
		ps = pe + 1
	}
	return true
}

// parseRange reads "a" or "a-b", ports 1-65535.
func parseRange(v []byte) (PortRange, bool) {
	i := bytes.IndexByte(v, '-')
	if i < 0 {
		p, ok := parsePort(v)
		return PortRange{p, p, 1}, ok
	}
	lo, ok1 := parsePort(v[:i])
	hi, ok2 := parsePort(v[i+1:])
	return PortRange{lo, hi, 2}, ok1 && ok2
}

func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return uint16(n), n > 0 && n <= 65535
}

// parseIPv4 reads a dotted quad without allocating.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	k, n, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || k == 4 {
				return netip.Addr{}, false
			}
			a[k] = byte(n)
			k, n, digits = k+1, 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || digits == 3 {
			return netip.Addr{}, false
		}
		if digits > 0 && n == 0 {
			return netip.Addr{}, false // leading zero
		}
		n = n*10 + int(c-'0')
		digits++
		if n > 255 {
			return netip.Addr{}, false
		}
	}
	if k != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// AppendTransport appends the header value val with the specs' edits
// applied (specs as ParseTransport returned them for val).
func AppendTransport(dst, val []byte, specs []Spec) []byte {
	pos := 0
	for i := range specs {
		s := &specs[i]
		var ed [4]struct {
			at   [2]int
			kind int
		}
		n := 0
		add := func(on bool, at [2]int, kind int) {
			if on {
				ed[n].at, ed[n].kind = at, kind
				n++
			}
		}
		add(s.editClient, s.clientAt, 0)
		add(s.editServer, s.serverAt, 1)
		add(s.editDest && s.HasDest, s.destAt, 2)
		add(s.editSource && s.HasSource, s.sourceAt, 3)
		// In order of position (a spec has few parameters).
		for a := 1; a < n; a++ {
			for b := a; b > 0 && ed[b].at[0] < ed[b-1].at[0]; b-- {
				ed[b], ed[b-1] = ed[b-1], ed[b]
			}
		}
		for _, e := range ed[:n] {
			dst = append(dst, val[pos:e.at[0]]...)
			switch e.kind {
			case 0:
				dst = appendRange(dst, s.newClient)
			case 1:
				dst = appendRange(dst, s.newServer)
			case 2:
				dst = s.newDest.AppendTo(dst)
			case 3:
				dst = s.newSource.AppendTo(dst)
			}
			pos = e.at[1]
		}
	}
	return append(dst, val[pos:]...)
}

func appendRange(dst []byte, r PortRange) []byte {
	dst = strconv.AppendUint(dst, uint64(r.Lo), 10)
	if r.N == 2 {
		dst = append(dst, '-')
		dst = strconv.AppendUint(dst, uint64(r.Hi), 10)
	}
	return dst
}
