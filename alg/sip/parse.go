package sip

// The SIP message parser (RFC 3261 section 7): the start line, header
// fields by name (case-insensitive, with the compact forms), folded lines,
// and the body by Content-Length. It records offsets into the payload and
// never allocates.

import (
	"errors"

	"passgate/alg/internal/ascii"
)

var (
	errIncomplete = errors.New("sip: incomplete message")
	errMalformed  = errors.New("sip: malformed message")
)

// span is a byte range [s, e) of the payload.
type span struct{ s, e int }

func (s span) of(b []byte) []byte { return b[s.s:s.e] }

// The most header values of one kind the parser records; further ones are
// passed through untouched (a LAN host's own Via is the topmost).
const (
	maxVia     = 16
	maxContact = 8
)

// message is one parsed SIP message; offsets are relative to the buffer
// given to parse.
type message struct {
	request    bool
	method     []byte // the request's method
	uri        span   // the request's Request-URI
	status     int    // the response's status code
	cseqMethod []byte
	callID     []byte
	ctype      []byte
	clen       int  // Content-Length, -1 if absent
	clenSpan   span // the Content-Length value's digits
	expires    int  // Expires, -1 if absent
	via        [maxVia]span
	nvia       int
	contact    [maxContact]span
	ncontact   int
	body       span
	end        int // the end of the message: the next one starts here
}

// parse reads the message at the start of b. A stream (TCP) message needs
// a Content-Length and may be cut by the segment end (errIncomplete); a
// datagram's body is the rest of the datagram when Content-Length is
// absent (RFC 3261 section 18.3).
func parse(b []byte, m *message, stream bool) error {
	*m = message{clen: -1, expires: -1}
	eol := lineEnd(b, 0)
	if eol < 0 {
		if stream {
			return errIncomplete
		}
		return errMalformed
	}
	if !startLine(trimCR(b[:eol]), m) {
		return errMalformed
	}
	if m.request {
		// "METHOD SP Request-URI SP SIP/2.0": the line starts at 0.
		m.uri = span{len(m.method) + 1, len(trimCR(b[:eol])) - len(" SIP/2.0")}
	}
	pos := eol + 1
	var name, val span
	have := false
	for {
		le := lineEnd(b, pos)
		if le < 0 {
			if stream {
				return errIncomplete
			}
			return errMalformed
		}
		line := trimCR(b[pos:le])
		if len(line) == 0 { // the blank line ending the headers
			if have {
				if !m.header(b, name, val) {
					return errMalformed
				}
			}
			pos = le + 1
			break
		}
		if line[0] == ' ' || line[0] == '\t' { // a folded continuation
			if !have {
				return errMalformed
			}
			val.e = pos + len(line)
			pos = le + 1
			continue
		}
		if have && !m.header(b, name, val) {
			return errMalformed
		}
		c := indexByte(line, ':')
		if c <= 0 {
			return errMalformed
		}
		n := trimRight(line[:c])
		if len(n) == 0 || !isToken(n) {
			return errMalformed
		}
		name = span{pos, pos + len(n)}
		val = span{pos + c + 1, pos + len(line)}
		have = true
		pos = le + 1
	}
	m.body = span{pos, len(b)}
	switch {
	case m.clen >= 0:
		if len(b)-pos < m.clen {
			if stream {
				return errIncomplete
			}
			return errMalformed
		}
		m.body.e = pos + m.clen
	case stream:
		return errMalformed
	}
	m.end = m.body.e
	return nil
}

// startLine reads "METHOD URI SIP/2.0" or "SIP/2.0 CODE reason".
func startLine(l []byte, m *message) bool {
	if ascii.HasPrefixFold(l, "SIP/2.0 ") {
		r := l[8:]
		if len(r) < 3 || !isDigit(r[0]) || !isDigit(r[1]) || !isDigit(r[2]) || (len(r) > 3 && r[3] != ' ') {
			return false
		}
		m.status = int(r[0]-'0')*100 + int(r[1]-'0')*10 + int(r[2]-'0')
		return m.status >= 100
	}
	sp := indexByte(l, ' ')
	if sp <= 0 || !isToken(l[:sp]) || len(l) < sp+1+8 || !ascii.HasSuffixFold(l, " SIP/2.0") {
		return false
	}
	m.request = true
	m.method = l[:sp]
	return true
}

// header records one header field.
func (m *message) header(b []byte, name, val span) bool {
	n := name.of(b)
	v := trim(val.of(b))
	switch {
	case is(n, "via", 'v'):
		if m.nvia < maxVia {
			m.via[m.nvia] = val
			m.nvia++
		}
	case is(n, "contact", 'm'):
		if m.ncontact < maxContact {
			m.contact[m.ncontact] = val
			m.ncontact++
		}
	case is(n, "content-length", 'l'):
		x, ok := atoi(v)
		if !ok || (m.clen >= 0 && m.clen != x) {
			return false
		}
		m.clen = x
		s := val.s
		for b[s] == ' ' || b[s] == '\t' || b[s] == '\r' || b[s] == '\n' {
			s++
		}
		m.clenSpan = span{s, s + len(v)}
	case is(n, "content-type", 'c'):
		m.ctype = v
	case is(n, "call-id", 'i'):
		m.callID = v
	case is(n, "cseq", 0):
		// "CSeq: 1 INVITE"
		i := 0
		for i < len(v) && isDigit(v[i]) {
			i++
		}
		if i == 0 {
			return false
		}
		m.cseqMethod = trim(v[i:])
	case is(n, "expires", 0):
		if x, ok := atoi(v); ok {
			m.expires = x
		}
	}
	return true
}

// is reports whether a header name is long (lower case) or its compact form.
func is(n []byte, long string, compact byte) bool {
	if len(n) == 1 {
		return compact != 0 && ascii.Lower(n[0]) == compact
	}
	return len(n) == len(long) && ascii.HasPrefixFold(n, long)
}

// values calls fn with each comma-separated value of a header field,
// honouring quoted strings and <...> (a URI may hold commas). fn returns
// false to stop.
func values(b []byte, v span, fn func(span) bool) {
	start, inQ, inA := v.s, false, false
	for i := v.s; i < v.e; i++ {
		switch c := b[i]; {
		case inQ:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQ = false
			}
		case c == '"':
			inQ = true
		case c == '<':
			inA = true
		case c == '>':
			inA = false
		case c == ',' && !inA:
			if !fn(span{start, i}) {
				return
			}
			start = i + 1
		}
	}
	fn(span{start, v.e})
}

// lineEnd returns the index of the next '\n' at or after pos, or -1.
func lineEnd(b []byte, pos int) int {
	if pos > len(b) {
		return -1
	}
	i := indexByte(b[pos:], '\n')
	if i < 0 {
		return -1
	}
	return pos + i
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trim(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return trimRight(b)
}

func trimRight(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether b is an RFC 3261 token.
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c):
		case c == '-' || c == '.' || c == '!' || c == '%' || c == '*' || c == '_' || c == '+' || c == '`' || c == '\'' || c == '~':
		default:
			return false
		}
	}
	return len(b) > 0
}

func eqFold(b []byte, s string) bool { return len(b) == len(s) && ascii.HasPrefixFold(b, s) }

// atoi reads a non-negative decimal number of at most 9 digits.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseIPv4 reads a dotted quad without allocating.
func parseIPv4(b []byte) ([4]byte, bool) {
	var a [4]byte
	i := 0
	for k := 0; k < 4; k++ {
		if k > 0 {
			if i >= len(b) || b[i] != '.' {
				return a, false
			}
			i++
		}
		n, d := 0, 0
		for i < len(b) && isDigit(b[i]) && d < 4 {
			n = n*10 + int(b[i]-'0')
			i++
			d++
		}
		if d == 0 || d > 3 || n > 255 || (d > 1 && b[i-d] == '0') {
			return a, false
		}
		a[k] = byte(n)
	}
	return a, i == len(b)
}

// hostPort splits "host[:port]" at the start of b: the host's and the
// port's spans (port empty if absent), relative to b. The host ends at
// ':', ';', '?', '>', ',', or white space; an IPv6 reference is skipped
// whole.
func hostPort(b []byte) (host, port span, ok bool) {
	i := 0
	if len(b) > 0 && b[0] == '[' {
		j := indexByte(b, ']')
		if j < 0 {
			return host, port, false
		}
		i = j + 1
	} else {
		for i < len(b) && !isHostEnd(b[i]) {
			i++
		}
	}
	host = span{0, i}
	port = span{i, i}
	if i < len(b) && b[i] == ':' {
		j := i + 1
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		port = span{i + 1, j}
		if j == i+1 {
			return host, port, false
		}
	}
	return host, port, host.e > 0
}

func isHostEnd(c byte) bool {
	return c == ':' || c == ';' || c == '?' || c == '>' || c == ',' || isSpace(c)
}

// viaSentBy finds the sent-by of one Via value ("SIP/2.0/UDP host:port;
// params"): the host's and port's spans in b.
func viaSentBy(b []byte, v span) (host, port span, ok bool) {
	i := v.s
	// sent-protocol: three slash-separated tokens, white space allowed
	// around the slashes.
	for k := 0; k < 3; k++ {
		for i < v.e && isSpace(b[i]) {
			i++
		}
		if k > 0 {
			if i >= v.e || b[i] != '/' {
				return host, port, false
			}
			i++
			for i < v.e && isSpace(b[i]) {
				i++
			}
		}
		s := i
		for i < v.e && b[i] != '/' && !isSpace(b[i]) {
			i++
		}
		if i == s {
			return host, port, false
		}
	}
	s := i
	for i < v.e && isSpace(b[i]) {
		i++
	}
	if i == s || i >= v.e {
		return host, port, false
	}
	h, p, ok := hostPort(b[i:v.e])
	if !ok {
		return host, port, false
	}
	return span{i + h.s, i + h.e}, span{i + p.s, i + p.e}, true
}

// contactURI finds the host and port of the SIP URI in one Contact value
// (name-addr or addr-spec). sips reports the sips scheme (default port
// 5061). ok is false for "*" and for URIs other than sip: and sips:.
func contactURI(b []byte, v span) (host, port span, sips, ok bool) {
	val := b[v.s:v.e]
	// The URI is inside <...> if there is one outside quotes.
	start, end := 0, len(val)
	inQ := false
	for i := 0; i < len(val); i++ {
		c := val[i]
		if inQ {
			if c == '\\' {
				i++
			} else if c == '"' {
				inQ = false
			}
			continue
		}
		if c == '"' {
			inQ = true
		} else if c == '<' {
			j := indexByte(val[i:], '>')
			if j < 0 {
				return host, port, false, false
			}
			start, end = i+1, i+j
			break
		}
	}
	if inQ {
		return host, port, false, false
	}
	u := val[start:end]
	off := start
	for len(u) > 0 && isSpace(u[0]) {
		u = u[1:]
		off++
	}
	switch {
	case ascii.HasPrefixFold(u, "sip:"):
		u, off = u[4:], off+4
	case ascii.HasPrefixFold(u, "sips:"):
		u, off, sips = u[5:], off+5, true
	default:
		return host, port, false, false
	}
	// Skip the userinfo: up to '@', which cannot appear unescaped later.
	lim := len(u)
	if j := indexByte(u, '>'); j >= 0 {
		lim = j
	}
	if j := indexByte(u[:lim], '@'); j >= 0 {
		u, off = u[j+1:], off+j+1
	}
	h, p, ok := hostPort(u)
	if !ok {
		return host, port, false, false
	}
	base := v.s + off
	return span{base + h.s, base + h.e}, span{base + p.s, base + p.e}, sips, true
}

// viaParams finds the values of the received and rport parameters (RFC
// 3261 section 18.2.1, RFC 3581) of one Via value, whose parameters start
// at i (just after the sent-by). A parameter absent, or present without a
// value (a bare "rport"), gives an empty span. A quoted value (a generic
// parameter may have one) is skipped whole.
func viaParams(b []byte, v span, i int) (received, rport span) {
	for i < v.e {
		if b[i] != ';' {
			i++
			continue
		}
		i++
		for i < v.e && isSpace(b[i]) {
			i++
		}
		ns := i
		for i < v.e && b[i] != '=' && b[i] != ';' && !isSpace(b[i]) {
			i++
		}
		name := b[ns:i]
		for i < v.e && isSpace(b[i]) {
			i++
		}
		if i >= v.e || b[i] != '=' {
			continue
		}
		i++
		for i < v.e && isSpace(b[i]) {
			i++
		}
		vs := i
		if i < v.e && b[i] == '"' {
			for i++; i < v.e && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			i = min(i+1, v.e)
			continue // no address or port is quoted
		}
		for i < v.e && b[i] != ';' && !isSpace(b[i]) {
			i++
		}
		switch {
		case eqFold(name, "received"):
			received = span{vs, i}
		case eqFold(name, "rport"):
			rport = span{vs, i}
		}
	}
	return received, rport
}
