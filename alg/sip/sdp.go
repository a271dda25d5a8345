package sip

// The SDP parser (RFC 4566): the lines passgate rewrites or reads, o=, c=
// and m= (and whether a media section has its own a=rtcp), as offsets into
// the body. It does not allocate.

import (
	"errors"

	"passgate/alg/internal/ascii"
)

var errSDP = errors.New("sip: malformed SDP")

// maxMedia is the most m= sections read; more make the SDP unparsed.
const maxMedia = 8

type media struct {
	kind    span // "audio", "video", ...
	port    span // the port's digits
	portVal int
	conn    span // the media-level c= address, empty if none
	lineEnd int  // just after the m= line's newline
	nl      span // the m= line's line break ("\r\n" or "\n")
	rtcp    bool // the section has an a=rtcp attribute
}

type sdp struct {
	origin span // o= unicast address, empty if none
	conn   span // session-level c= address, empty if none
	media  [maxMedia]media
	n      int
}

// parseSDP reads an SDP body b; offsets are relative to b.
func parseSDP(b []byte, s *sdp) error {
	*s = sdp{}
	pos := 0
	first := true
	for pos < len(b) {
		le := lineEnd(b, pos)
		next := le + 1
		if le < 0 {
			le, next = len(b), len(b)
		}
		line := trimCR(b[pos:le])
		if len(line) == 0 {
			pos = next
			continue
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return errSDP
		}
		if first && line[0] != 'v' {
			return errSDP
		}
		first = false
		val := line[2:]
		base := pos + 2
		switch line[0] {
		case 'o':
			// o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>
			f, ok := field(val, 5)
			if !ok {
				return errSDP
			}
			s.origin = span{base + f.s, base + f.e}
		case 'c':
			// c=<nettype> <addrtype> <address>[/ttl[/n]]
			f, ok := field(val, 2)
			if !ok {
				return errSDP
			}
			if j := indexByte(f.of(val), '/'); j >= 0 {
				f.e = f.s + j
			}
			sp := span{base + f.s, base + f.e}
			if s.n == 0 {
				s.conn = sp
			} else {
				s.media[s.n-1].conn = sp
			}
		case 'm':
			// m=<media> <port>[/<number of ports>] <proto> <fmt> ...
			if s.n == maxMedia {
				return errSDP
			}
			k, ok1 := field(val, 0)
			p, ok2 := field(val, 1)
			if !ok1 || !ok2 {
				return errSDP
			}
			if j := indexByte(p.of(val), '/'); j >= 0 {
				p.e = p.s + j
			}
			n, ok := atoi(p.of(val))
			if !ok || n > 65535 {
				return errSDP
			}
			nl := span{pos + len(line), next}
			s.media[s.n] = media{kind: span{base + k.s, base + k.e}, port: span{base + p.s, base + p.e}, portVal: n, lineEnd: next, nl: nl}
			s.n++
		case 'a':
			if s.n > 0 && ascii.HasPrefixFold(val, "rtcp:") {
				s.media[s.n-1].rtcp = true
			}
		}
		pos = next
	}
	if first {
		return errSDP
	}
	return nil
}

// field returns the span of the i-th space-separated field of l.
func field(l []byte, i int) (span, bool) {
	pos := 0
	for k := 0; ; k++ {
		for pos < len(l) && l[pos] == ' ' {
			pos++
		}
		s := pos
		for pos < len(l) && l[pos] != ' ' {
			pos++
		}
		if s == pos {
			return span{}, false
		}
		if k == i {
			return span{s, pos}, true
		}
	}
}

// addr is the media address of section i: its own c= or the session's.
func (s *sdp) addr(b []byte, i int) ([4]byte, bool) {
	c := s.media[i].conn
	if c.e == c.s {
		c = s.conn
	}
	if c.e == c.s {
		return [4]byte{}, false
	}
	return parseIPv4(c.of(b))
}

// rtp reports whether section i is an audio or video stream.
func (s *sdp) rtp(b []byte, i int) bool {
	k := s.media[i].kind.of(b)
	return eqFold(k, "audio") || eqFold(k, "video")
}
