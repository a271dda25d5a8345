package sip

import (
	"fmt"
	"strings"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

// FuzzSIP feeds SIP payloads to the parser and through the engine over
// UDP and TCP: nothing panics, the packets that leave have right
// checksums, and a rewritten datagram parses again with a Content-Length
// that matches its body.
func FuzzSIP(f *testing.F) {
	for _, s := range []string{
		invite("f1@x", phone+":5060", phone+":5060", sdpBody(phone, 6000)),
		"REGISTER sip:203.0.113.10 SIP/2.0\r\nv: SIP/2.0/UDP 192.168.50.10\r\ni: r@x\r\nm: <sip:a@192.168.50.10>\r\nExpires: 60\r\nl: 0\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.1:5060\r\nCall-ID: f1@x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 56\r\n\r\nv=0\r\nc=IN IP4 203.0.113.20\r\nm=audio 20000 RTP/AVP 0\r\n\r\n",
		"BYE sip:x SIP/2.0\r\nCall-ID: f1@x\r\nCSeq: 2 BYE\r\n\r\n",
		"\r\n\r\n", // a keep-alive
		"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP\r\n 192.168.50.10:5060\r\n\tmore\r\n\r\n",                   // folded lines
		"INVITE sip:x SIP/2.0\r\nContact: \"a,\\\"<b>\" <sip:192.168.50.10:5060>, *\r\n\r\n",                  // quoted comma, escaped quote, star
		"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.50.10:5060\r\n",                                     // malformed: no blank line
		"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort",                                             // malformed: body shorter than Content-Length
		"INVITE sip:x SIP/2.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",                            // malformed: two different lengths
		"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5060\r\nContact: <sip:[::1\r\n\r\n",                   // malformed: IPv6 reference cut
		"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/ UDP 192.168.50.10:\r\nContact: <sip:u@192.168.50.10:>\r\n\r\n", // malformed: empty ports
		"SIP/2.0 2x0 OK\r\n\r\n", // malformed: status not a number
		"\x00\x01\x02",           // malformed: binary
		"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.050.10:5060\r\nContact: <sip:192.168.50.10:99999>\r\n\r\n", // malformed: leading zero, port out of range
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(invite("t@x", phone+":40000", phone+":40000", sdpBody(phone, 6000))+"ACK sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"), true)
	f.Add([]byte("INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 192.168.50.10:40000\r\n\r\n"), true) // malformed: TCP without Content-Length
	f.Fuzz(func(t *testing.T, payload []byte, tcp bool) {
		if len(payload) > 1400 {
			return
		}
		var m message
		if err := parse(payload, &m, tcp); err == nil {
			if m.body.s > m.body.e || m.body.e > len(payload) || m.end > len(payload) {
				t.Fatalf("spans out of range: %+v", m)
			}
		}
		e := engine(t, true)
		var out []byte
		var v nat.Verdict
		if tcp {
			e.Process(0, nat.LAN, TCP(phone+":40000", proxy+":5060", packet.TCPSyn, 1, 0, nil, nil))
			seg := TCP(phone+":40000", proxy+":5060", packet.TCPAck, 2, 1, nil, payload)
			v = e.Process(sec, nat.LAN, seg)
			out = seg
		} else {
			seg := UDP(phone+":5060", proxy+":5060", payload)
			v = e.Process(sec, nat.LAN, seg)
			out = seg
		}
		out, ok := nattest.Output(e, v, out)
		if !ok {
			t.Fatalf("verdict %+v", v)
		}
		IPv4(t, out, Src(pub))
		if !tcp && e.HelperStats()["sip"].Rewrites > 0 {
			got := []byte(udpPayload(out))
			var m2 message
			if err := parse(got, &m2, false); err != nil {
				t.Fatalf("rewritten message does not parse: %v\n%q", err, got)
			}
			if m.clen >= 0 && m2.clen != m2.body.e-m2.body.s {
				t.Fatalf("Content-Length %d, body %d", m2.clen, m2.body.e-m2.body.s)
			}
		}
	})
}

// FuzzSDP feeds SDP bodies to the parser and, inside an INVITE, through
// the engine: nothing panics, spans stay in range, and the rewritten
// INVITE's Content-Length matches its body.
func FuzzSDP(f *testing.F) {
	for _, s := range []string{
		sdpBody(phone, 6000),
		"v=0\no=- 1 1 IN IP4 192.168.50.10\ns=-\nc=IN IP4 192.168.50.10/127\nt=0 0\nm=audio 6000/2 RTP/AVP 0\na=rtcp:6001\nm=video 0 RTP/AVP 96\n", // LF only, TTL, port count, a=rtcp, disabled stream
		"v=0\r\nc=IN IP4 192.168.50.10\r\nm=audio 6000 RTP/AVP 0\r\nm=video 6002 RTP/AVP 96\r\nc=IN IP4 198.51.100.7\r\n",                          // session and media c=, one public
		"v=0\r\nm=audio 65535 RTP/AVP 0\r\nc=IN IP4 192.168.50.10",                                                                                 // last line without newline, top port
		"v=0\r\nc=IN IP6 ::1\r\nm=audio 6000 RTP/AVP 0\r\n",                                                                                        // IPv6: left alone
		"x=0\r\n",                            // malformed: does not start with v=
		"v=0\r\no=short\r\n",                 // malformed: o= with too few fields
		"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", // malformed: port out of range
		"v=0\r\nm=audio\r\n",                 // malformed: m= without a port
		"v=0\r\nc=\r\n",                      // malformed: empty c=
		"v=0\r\nthis is not a line\r\n",      // malformed: not type=value
		"v=0\r\n" + strings.Repeat("m=audio 1 RTP/AVP 0\r\n", 9), // malformed: more m= sections than read
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1000 {
			return
		}
		var s sdp
		if err := parseSDP(body, &s); err == nil {
			for _, sp := range []span{s.origin, s.conn} {
				if sp.s > sp.e || sp.e > len(body) {
					t.Fatalf("span %v out of range", sp)
				}
			}
			for _, md := range s.media[:s.n] {
				if md.port.e > len(body) || md.conn.e > len(body) || md.lineEnd > len(body) || md.portVal > 65535 {
					t.Fatalf("media %+v out of range", md)
				}
			}
		}
		e := engine(t, true)
		in := invite("sdp@x", phone+":5060", phone+":5060", string(body))
		seg := UDP(phone+":5060", proxy+":5060", []byte(in))
		v := e.Process(sec, nat.LAN, seg)
		out, ok := nattest.Output(e, v, seg)
		if !ok {
			t.Fatalf("verdict %+v", v)
		}
		IPv4(t, out, Src(pub+":5060"))
		var m message
		got := []byte(udpPayload(out))
		if err := parse(got, &m, false); err != nil {
			t.Fatalf("rewritten INVITE does not parse: %v", err)
		}
		if m.clen != m.body.e-m.body.s {
			t.Fatalf("Content-Length %d, body %d", m.clen, m.body.e-m.body.s)
		}
	})
}

// FuzzSIPInbound feeds SIP payloads from the far end to a phone whose
// Via and Contact the helper made public (on a remapped port), over UDP
// and TCP: nothing panics, the Via parameter spans stay in range, what
// reaches the phone has right checksums, and a restored datagram parses
// again with a Content-Length that matches its body.
func FuzzSIPInbound(f *testing.F) {
	for _, s := range []string{
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.1:{P};branch=z9hG4bK-1;received=203.0.113.1;rport={P}\r\nCall-ID: f1@x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 55\r\n\r\nv=0\r\nc=IN IP4 203.0.113.20\r\nm=audio 20000 RTP/AVP 0\r\n\r\n",
		"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 203.0.113.1:{P} ; rport = {P} ;x=\"a;received=1\", SIP/2.0/UDP 203.0.113.1:{P}\r\nm: <sip:a@203.0.113.1:{P}>;expires=60, sip:b@203.0.113.1\r\nl: 0\r\n\r\n",
		"INVITE sip:alice@203.0.113.1:{P};transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060\r\nTo: <sip:alice@203.0.113.1:{P}>\r\nl: 0\r\n\r\n",
		"INVITE sips:203.0.113.1 SIP/2.0\r\nl: 0\r\n\r\n",
		"SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 203.0.113.1:{P};rport;received\r\nl: 0\r\n\r\n", // parameters without values
		"SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 203.0.113.1:{P};rport=99999999999;received=203.0.113.1.5\r\n\r\n",
		"SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 203.0.113.1:{P};x=\"unterminated\r\n\r\n",
		"INVITE  SIP/2.0\r\n\r\n", // empty Request-URI
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("SIP/2.0 100 Trying\r\nVia: SIP/2.0/TCP 203.0.113.1:{P};received=203.0.113.1\r\nl: 0\r\n\r\nBYE sip:u@203.0.113.1:{P} SIP/2.0\r\nl: 0\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, payload []byte, tcp bool) {
		if len(payload) > 1400 {
			return
		}
		e := engine(t, true)
		var in []byte
		if tcp {
			c := &nattest.Conn{T: t, E: e, LAN: phone + ":40000", Remote: proxy + ":5060", LANSeq: 1, RSeq: 1000, Now: sec, Check: true}
			c.Send(true, packet.TCPSyn, "")
			c.Pub = fmt.Sprintf("%s:%d", pub, mappedPort(t, e, c.LAN))
			c.Send(false, packet.TCPSyn|packet.TCPAck, "")
			c.Send(true, packet.TCPAck, strings.ReplaceAll(invite("fi@x", phone+":40000", phone+":40000", ""), "SIP/2.0/UDP", "SIP/2.0/TCP"))
			payload = withPort(payload, c.Pub)
			in = TCP(c.Remote, c.Pub, packet.TCPAck, c.RSeq, c.LANSeq, nil, payload)
		} else {
			occupy(t, e, 5060)
			mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", register(phone+":5060", phone+":5060"))
			to := fmt.Sprintf("%s:%d", pub, mappedPort(t, e, phone+":5060"))
			payload = withPort(payload, to)
			in = UDP(proxy+":5060", to, payload)
		}
		var m message
		if err := parse(payload, &m, tcp); err == nil {
			if m.uri.s > m.uri.e || m.uri.e > len(payload) {
				t.Fatalf("Request-URI %v out of range", m.uri)
			}
			for i := 0; i < m.nvia; i++ {
				values(payload, m.via[i], func(v span) bool {
					if host, port, ok := viaSentBy(payload, v); ok {
						r, p := viaParams(payload, v, max(host.e, port.e))
						for _, sp := range []span{r, p} {
							if sp != (span{}) && (sp.s > sp.e || sp.s < v.s || sp.e > v.e) {
								t.Fatalf("Via parameter %v outside %v", sp, v)
							}
						}
					}
					return true
				})
			}
		}
		before := e.HelperStats()["sip"].Rewrites
		v := e.Process(2*sec, nat.WAN, in)
		out, ok := nattest.Output(e, v, in)
		if !ok {
			t.Fatalf("verdict %+v", v)
		}
		IPv4(t, out, Dst(phone))
		if !tcp && e.HelperStats()["sip"].Rewrites > before {
			got := []byte(udpPayload(out))
			var m2 message
			if err := parse(got, &m2, false); err != nil {
				t.Fatalf("restored message does not parse: %v\n%q", err, got)
			}
			if m.clen >= 0 && m2.clen != m2.body.e-m2.body.s {
				t.Fatalf("Content-Length %d, body %d", m2.clen, m2.body.e-m2.body.s)
			}
		}
	})
}

// withPort puts the public port of to in place of "{P}" in payload.
func withPort(payload []byte, to string) []byte {
	_, port, _ := strings.Cut(to, ":")
	return []byte(strings.ReplaceAll(string(payload), "{P}", port))
}
