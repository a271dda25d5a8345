package sip

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"passgate/nat"
	"passgate/nat/nattest"
	"passgate/packet"
	. "passgate/packet/pkttest"
)

const sec = nat.Time(1e9)

const (
	phone   = "192.168.50.10"
	other   = "192.168.50.11"
	pub     = "203.0.113.1"
	proxy   = "203.0.113.10"
	mediaGW = "203.0.113.20"
)

func engine(t testing.TB, on bool) *nat.Engine {
	t.Helper()
	mod := func(c *nat.Config) { c.Helpers = map[string]nat.Switch{"sip": nat.On} }
	if !on {
		mod = nil
	}
	return nattest.Engine(t, mod, &Helper{})
}

// msg builds a SIP message from lines joined with CRLF, a blank line and
// body, with "Content-Length: auto" filled in.
func msg(body string, lines ...string) string {
	h := strings.Join(lines, "\r\n")
	h = strings.ReplaceAll(h, "Content-Length: auto", "Content-Length: "+strconv.Itoa(len(body)))
	h = strings.ReplaceAll(h, "l: auto", "l: "+strconv.Itoa(len(body)))
	return h + "\r\n\r\n" + body
}

func sdpBody(addr string, port int) string {
	return "v=0\r\n" +
		"o=user1 53655765 2353687637 IN IP4 " + addr + "\r\n" +
		"s=-\r\n" +
		"c=IN IP4 " + addr + "\r\n" +
		"t=0 0\r\n" +
		"m=audio " + strconv.Itoa(port) + " RTP/AVP 8\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n"
}

func invite(callID, via, contact, body string) string {
	return msg(body,
		"INVITE sip:service@203.0.113.10:5060 SIP/2.0",
		"Via: SIP/2.0/UDP "+via+";branch=z9hG4bK-1",
		"From: sipp <sip:sipp@192.168.50.10:5060>;tag=1",
		"To: service <sip:service@203.0.113.10:5060>",
		"Call-ID: "+callID,
		"CSeq: 1 INVITE",
		"Contact: <sip:sipp@"+contact+">",
		"Max-Forwards: 70",
		"Content-Type: application/sdp",
		"Content-Length: auto")
}

// udp passes a datagram and returns what left the engine.
func udp(t *testing.T, e *nat.Engine, now nat.Time, from nat.Iface, src, dst, payload string) ([]byte, nat.Verdict) {
	t.Helper()
	b := UDP(src, dst, []byte(payload))
	v := e.Process(now, from, b)
	switch v.Action {
	case nat.Forward:
		return b[:packet.IPv4(b).TotalLen()], v
	case nat.Consumed:
		em := e.Emitted()
		if len(em) != 1 {
			t.Fatalf("consumed with %d emitted packets", len(em))
		}
		out := append([]byte(nil), em[0].Frame[nat.EtherHeadroom:]...)
		e.ResetEmitted()
		return out, v
	}
	return nil, v
}

func mustUDP(t *testing.T, e *nat.Engine, now nat.Time, from nat.Iface, src, dst, payload string) []byte {
	t.Helper()
	out, v := udp(t, e, now, from, src, dst, payload)
	if out == nil {
		t.Fatalf("%s -> %s: verdict %+v (%v)", src, dst, v, v.Reason)
	}
	IPv4(t, out) // checksums right
	return out
}

func udpPayload(b []byte) string { return string(packet.UDP(packet.IPv4(b).Payload()).Payload()) }

// checkLength asserts Content-Length matches the body.
func checkLength(t *testing.T, m string) {
	t.Helper()
	i := strings.Index(m, "\r\n\r\n")
	if i < 0 {
		t.Fatalf("no header end in %q", m)
	}
	body := m[i+4:]
	for _, l := range strings.Split(m[:i], "\r\n") {
		n, v, ok := strings.Cut(l, ":")
		if ok && (strings.EqualFold(n, "Content-Length") || strings.EqualFold(n, "l")) {
			if got, _ := strconv.Atoi(strings.TrimSpace(v)); got != len(body) {
				t.Fatalf("Content-Length %d, body %d bytes:\n%s", got, len(body), m)
			}
			return
		}
	}
}

// occupy makes another LAN host take public port port first, so the
// phone's own port is not preserved.
func occupy(t *testing.T, e *nat.Engine, port int) {
	t.Helper()
	mustUDP(t, e, 0, nat.LAN, fmt.Sprintf("%s:%d", other, port), "203.0.113.99:9", "x")
}

// mappedPort returns the public port a LAN endpoint got.
func mappedPort(t *testing.T, e *nat.Engine, inside string) uint16 {
	t.Helper()
	ap := netip.MustParseAddrPort(inside)
	var port uint16
	e.Flows(sec, func(f nat.FlowInfo) bool {
		if f.Inside == ap {
			port = f.Outside.Port()
			return false
		}
		return true
	})
	if port == 0 {
		t.Fatalf("no flow for %s", inside)
	}
	return port
}

func TestRewriteTable(t *testing.T) {
	type tc struct {
		name      string
		occupy    []int                           // public ports other hosts take first
		in        string                          // from phone:5060 to proxy:5060
		want      func(sig, rtp, rtcp int) string // the expected rewrite
		expect    bool                            // RTP must be expected
		unchanged bool
	}
	body := sdpBody(phone, 6000)
	tests := []tc{
		{
			name: "invite, ports kept",
			in:   invite("c1@x", phone+":5060", phone+":5060", body),
			want: func(int, int, int) string {
				return invite("c1@x", pub+":5060", pub+":5060", sdpBody(pub, 6000))
			},
			expect: true,
		},
		{
			name:   "invite, ports taken outside",
			occupy: []int{5060, 6000, 6001},
			in:     invite("c2@x", phone+":5060", phone+":5060", body),
			want: func(sig, rtp, rtcp int) string {
				b := sdpBody(pub, rtp)
				if rtcp != rtp+1 {
					b = strings.Replace(b, "RTP/AVP 8\r\n", fmt.Sprintf("RTP/AVP 8\r\na=rtcp:%d\r\n", rtcp), 1)
				}
				return invite("c2@x", fmt.Sprintf("%s:%d", pub, sig), fmt.Sprintf("%s:%d", pub, sig), b)
			},
			expect: true,
		},
		{
			name:   "contact without port gets the public one",
			occupy: []int{5060},
			in:     invite("c3@x", phone, phone, body),
			want: func(sig, rtp, rtcp int) string {
				return invite("c3@x", fmt.Sprintf("%s:%d", pub, sig), fmt.Sprintf("%s:%d", pub, sig), sdpBody(pub, 6000))
			},
			expect: true,
		},
		{
			name: "addresses made public with STUN stay",
			in:   invite("c4@x", "198.51.100.7:40000", "198.51.100.7:40000", sdpBody("198.51.100.7", 40002)),
			want: func(int, int, int) string {
				return invite("c4@x", "198.51.100.7:40000", "198.51.100.7:40000", sdpBody("198.51.100.7", 40002))
			},
			unchanged: true,
		},
		{
			name: "another port of the phone keeps its port",
			in:   invite("c5@x", phone+":5070", phone+":5070", body),
			want: func(int, int, int) string {
				return invite("c5@x", pub+":5070", pub+":5070", sdpBody(pub, 6000))
			},
			expect: true,
		},
		{
			name: "compact forms and a folded Via",
			in: msg(body,
				"INVITE sip:service@203.0.113.10 SIP/2.0",
				"v: SIP/2.0/UDP",
				"   "+phone+":5060;branch=z9hG4bK-2",
				"f: <sip:a@example.org>;tag=9",
				"t: <sip:service@203.0.113.10>",
				"i: c6@x",
				"CSeq: 1 INVITE",
				"m: \"A, B\" <sip:a@"+phone+":5060;transport=udp>;expires=60, sip:b@"+phone,
				"c: application/sdp",
				"l: auto"),
			want: func(int, int, int) string {
				return msg(sdpBody(pub, 6000),
					"INVITE sip:service@203.0.113.10 SIP/2.0",
					"v: SIP/2.0/UDP",
					"   "+pub+":5060;branch=z9hG4bK-2",
					"f: <sip:a@example.org>;tag=9",
					"t: <sip:service@203.0.113.10>",
					"i: c6@x",
					"CSeq: 1 INVITE",
					"m: \"A, B\" <sip:a@"+pub+":5060;transport=udp>;expires=60, sip:b@"+pub,
					"c: application/sdp",
					"l: auto")
			},
			expect: true,
		},
		{
			name: "options without body",
			in: msg("",
				"OPTIONS sip:203.0.113.10 SIP/2.0",
				"VIA: SIP/2.0/UDP "+phone+":5060;branch=z9hG4bK-3;rport",
				"Call-ID: c7@x",
				"CSeq: 1 OPTIONS",
				"CONTACT: <sip:"+phone+":5060>",
				"Content-Length: 0"),
			want: func(int, int, int) string {
				return msg("",
					"OPTIONS sip:203.0.113.10 SIP/2.0",
					"VIA: SIP/2.0/UDP "+pub+":5060;branch=z9hG4bK-3;rport",
					"Call-ID: c7@x",
					"CSeq: 1 OPTIONS",
					"CONTACT: <sip:"+pub+":5060>",
					"Content-Length: 0")
			},
		},
		{
			name: "SDP with a video stream and media-level c=",
			in: invite("c8@x", phone+":5060", phone+":5060", "v=0\r\no=- 1 1 IN IP4 "+phone+"\r\ns=-\r\nt=0 0\r\n"+
				"m=audio 7000 RTP/AVP 0\r\nc=IN IP4 "+phone+"\r\nm=video 7002 RTP/AVP 96\r\nc=IN IP4 "+phone+"\r\nm=application 7004 udp x\r\n"),
			want: func(int, int, int) string {
				return invite("c8@x", pub+":5060", pub+":5060", "v=0\r\no=- 1 1 IN IP4 "+pub+"\r\ns=-\r\nt=0 0\r\n"+
					"m=audio 7000 RTP/AVP 0\r\nc=IN IP4 "+pub+"\r\nm=video 7002 RTP/AVP 96\r\nc=IN IP4 "+pub+"\r\nm=application 7004 udp x\r\n")
			},
			expect: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine(t, true)
			for _, p := range tt.occupy {
				occupy(t, e, p)
			}
			out := mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", tt.in)
			sig := int(packet.UDP(packet.IPv4(out).Payload()).SrcPort())
			rtp, rtcp := 6000, 6001
			got := udpPayload(out)
			if tt.expect {
				// The media ports the engine handed out are the mapped ones.
				rtp, rtcp = expectedPorts(t, got)
			}
			want := tt.want(sig, rtp, rtcp)
			if got != want {
				t.Fatalf("rewritten:\n%s\nwant:\n%s", got, want)
			}
			checkLength(t, got)
			st := e.HelperStats()["sip"]
			if tt.unchanged && st.Rewrites != 0 {
				t.Fatalf("rewrites %d, want 0", st.Rewrites)
			}
			if tt.expect && st.Expectations == 0 {
				t.Fatalf("no expectations")
			}
			if !tt.expect && st.Expectations != 0 {
				t.Fatalf("%d expectations, want none", st.Expectations)
			}
			if st.Unparsed != 0 {
				t.Fatalf("unparsed %d", st.Unparsed)
			}
		})
	}
}

// expectedPorts reads the first m= port and its RTCP port from SDP.
func expectedPorts(t *testing.T, m string) (int, int) {
	t.Helper()
	i := strings.Index(m, "\nm=")
	if i < 0 {
		t.Fatalf("no m= in %q", m)
	}
	f := strings.Fields(m[i+1:])
	rtp, _ := strconv.Atoi(f[1])
	rtcp := rtp + 1
	if j := strings.Index(m, "a=rtcp:"); j >= 0 {
		rtcp, _ = strconv.Atoi(strings.Fields(m[j+7:])[0])
	}
	return rtp, rtcp
}

// TestMediaExpected: the far end's RTP and RTCP reach the phone at the
// ports written into the SDP, with parity kept, even when the phone's own
// ports are taken outside.
func TestMediaExpected(t *testing.T) {
	e := engine(t, true)
	occupy(t, e, 6000)
	occupy(t, e, 6001)
	out := mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", invite("m1@x", phone+":5060", phone+":5060", sdpBody(phone, 6000)))
	rtp, rtcp := expectedPorts(t, udpPayload(out))
	if rtp == 6000 || rtp%2 != 0 || rtcp%2 != 1 {
		t.Fatalf("RTP %d RTCP %d: parity not kept or port not remapped", rtp, rtcp)
	}
	in := mustUDP(t, e, 2*sec, nat.WAN, proxy+":30000", fmt.Sprintf("%s:%d", pub, rtp), "rtp")
	IPv4(t, in, Dst(phone+":6000"), Src(proxy+":30000"))
	in = mustUDP(t, e, 2*sec, nat.WAN, proxy+":30001", fmt.Sprintf("%s:%d", pub, rtcp), "rtcp")
	IPv4(t, in, Dst(phone+":6001"))
	// The phone's own RTP to the far end leaves from the same public port.
	o := mustUDP(t, e, 3*sec, nat.LAN, phone+":6000", proxy+":30000", "rtp")
	IPv4(t, o, Src(fmt.Sprintf("%s:%d", pub, rtp)))
	if st := e.HelperStats()["sip"]; st.Expected != 2 {
		t.Fatalf("expected flows %d, want 2", st.Expected)
	}
}

// TestAnswerTeachesRemoteMedia: the 200 OK's SDP names a media gateway
// other than the proxy; its RTP is admitted.
func TestAnswerTeachesRemoteMedia(t *testing.T) {
	e := engine(t, true)
	out := mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", invite("a1@x", phone+":5060", phone+":5060", sdpBody(phone, 6000)))
	rtp, _ := expectedPorts(t, udpPayload(out))
	ok := msg(sdpBody(mediaGW, 20000),
		"SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP "+pub+":5060;branch=z9hG4bK-1;received=203.0.113.1;rport=5060",
		"Call-ID: a1@x",
		"CSeq: 1 INVITE",
		"Contact: <sip:"+proxy+":5060>",
		"Content-Type: application/sdp",
		"Content-Length: auto")
	back := mustUDP(t, e, 2*sec, nat.WAN, proxy+":5060", pub+":5060", ok)
	// Only the phone's own Via is restored; the SDP is the far end's.
	want := strings.Replace(ok, pub+":5060;branch=z9hG4bK-1;received="+pub, phone+":5060;branch=z9hG4bK-1;received="+phone, 1)
	if udpPayload(back) != want {
		t.Fatalf("answer to the phone:\n%s\nwant:\n%s", udpPayload(back), want)
	}
	in := mustUDP(t, e, 3*sec, nat.WAN, mediaGW+":20000", fmt.Sprintf("%s:%d", pub, rtp), "rtp")
	IPv4(t, in, Dst(phone+":6000"))
}

// TestCallEnds: BYE, CANCEL and a final error answer to the INVITE take
// the call's pending expectations and its media flows away; a 2xx then a
// failed re-INVITE does not.
func TestCallEnds(t *testing.T) {
	bye := func(id string) string {
		return msg("", "BYE sip:service@203.0.113.10 SIP/2.0", "Via: SIP/2.0/UDP "+phone+":5060;branch=z9hG4bK-9", "Call-ID: "+id, "CSeq: 2 BYE", "Content-Length: 0")
	}
	cancel := func(id string) string {
		return msg("", "CANCEL sip:service@203.0.113.10 SIP/2.0", "Via: SIP/2.0/UDP "+phone+":5060;branch=z9hG4bK-1", "Call-ID: "+id, "CSeq: 1 CANCEL", "Content-Length: 0")
	}
	answer := func(id string, code int) string {
		return msg("", fmt.Sprintf("SIP/2.0 %d X", code), "Via: SIP/2.0/UDP "+pub+":5060;branch=z9hG4bK-1", "Call-ID: "+id, "CSeq: 1 INVITE", "Content-Length: 0")
	}
	for _, tt := range []struct {
		name    string
		fromLAN bool
		end     func(id string) []string
		gone    bool
	}{
		{"BYE from the phone", true, func(id string) []string { return []string{bye(id)} }, true},
		{"BYE from the far end", false, func(id string) []string {
			return []string{answer(id, 200), msg("", "BYE sip:sipp@"+pub+":5060 SIP/2.0", "Via: SIP/2.0/UDP "+proxy+":5060;branch=z9hG4bK-7", "Call-ID: "+id, "CSeq: 1 BYE", "Content-Length: 0")}
		}, true},
		{"CANCEL", true, func(id string) []string { return []string{cancel(id)} }, true},
		{"486 Busy", false, func(id string) []string { return []string{answer(id, 486)} }, true},
		{"180 then 200 keeps", false, func(id string) []string { return []string{answer(id, 180), answer(id, 200)} }, false},
		{"failed re-INVITE keeps", false, func(id string) []string { return []string{answer(id, 200), answer(id, 491)} }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := engine(t, true)
			id := "end-" + tt.name
			out := mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", invite(id, phone+":5060", phone+":5060", sdpBody(phone, 6000)))
			rtp, _ := expectedPorts(t, udpPayload(out))
			// The phone's media is flowing: its RTP flow must end with
			// the call too, not only the pending expectations.
			mustUDP(t, e, sec, nat.LAN, phone+":6000", proxy+":30000", "rtp-out")
			for _, m := range tt.end(id) {
				if m[:3] == "BYE" || m[:6] == "CANCEL" {
					if tt.fromLAN {
						mustUDP(t, e, 2*sec, nat.LAN, phone+":5060", proxy+":5060", m)
						continue
					}
				}
				mustUDP(t, e, 2*sec, nat.WAN, proxy+":5060", pub+":5060", m)
			}
			_, v := udp(t, e, 3*sec, nat.WAN, proxy+":30000", fmt.Sprintf("%s:%d", pub, rtp), "rtp")
			if tt.gone && v.Action == nat.Forward {
				t.Fatalf("RTP admitted after the call ended")
			}
			if !tt.gone && v.Action != nat.Forward {
				t.Fatalf("RTP dropped (%v) while the call lives", v.Reason)
			}
		})
	}
}

// TestRegisterKeepsMapping: a REGISTER's Contact is rewritten, a refresh
// gets the same public port, and the registrar's INVITE reaches the phone
// after the UDP flow itself would have timed out; a de-registration lets
// the mapping go.
func TestRegisterKeepsMapping(t *testing.T) {
	e := engine(t, true)
	occupy(t, e, 5060)
	reg := func(cseq, expires int) string {
		return msg("",
			"REGISTER sip:203.0.113.10 SIP/2.0",
			"Via: SIP/2.0/UDP "+phone+":5060;branch=z9hG4bK-r"+strconv.Itoa(cseq),
			"From: <sip:alice@203.0.113.10>;tag=r",
			"To: <sip:alice@203.0.113.10>",
			"Call-ID: reg-1@x",
			fmt.Sprintf("CSeq: %d REGISTER", cseq),
			"Contact: <sip:alice@"+phone+":5060>",
			fmt.Sprintf("Expires: %d", expires),
			"Content-Length: 0")
	}
	out := mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", reg(1, 3600))
	port := mappedPort(t, e, phone+":5060")
	if port == 5060 {
		t.Fatal("port 5060 was taken; the test needs a remapped port")
	}
	wantContact := fmt.Sprintf("Contact: <sip:alice@%s:%d>", pub, port)
	if !strings.Contains(udpPayload(out), wantContact) {
		t.Fatalf("REGISTER not rewritten:\n%s", udpPayload(out))
	}
	// A refresh 4 minutes later: the same mapping, the same Contact.
	out = mustUDP(t, e, 241*sec, nat.LAN, phone+":5060", proxy+":5060", reg(2, 3600))
	if !strings.Contains(udpPayload(out), wantContact) || mappedPort(t, e, phone+":5060") != port {
		t.Fatalf("refresh changed the mapping:\n%s", udpPayload(out))
	}
	// 10 minutes of silence: the UDP flow (5 minutes) is gone, the
	// registration is not; the registrar's INVITE gets in.
	now := 841 * sec
	e.Expire(now)
	inv := msg("", "INVITE sip:alice@"+pub+fmt.Sprintf(":%d", port)+" SIP/2.0", "Via: SIP/2.0/UDP "+proxy+":5060;branch=z9hG4bK-i", "Call-ID: in-1@x", "CSeq: 1 INVITE", "Content-Length: 0")
	in := mustUDP(t, e, now, nat.WAN, proxy+":5060", fmt.Sprintf("%s:%d", pub, port), inv)
	IPv4(t, in, Dst(phone+":5060"))
	// It came on a flow of its own; its Request-URI is restored all the same.
	if got := udpPayload(in); !strings.HasPrefix(got, "INVITE sip:alice@"+phone+":5060 SIP/2.0\r\n") {
		t.Fatalf("INVITE to the phone:\n%s", got)
	}
	checkLength(t, udpPayload(in))
	// De-register; once the flow times out nothing gets in.
	mustUDP(t, e, now+sec, nat.LAN, phone+":5060", proxy+":5060", reg(3, 0))
	now += 700 * sec
	e.Expire(now)
	if _, v := udp(t, e, now, nat.WAN, proxy+":5060", fmt.Sprintf("%s:%d", pub, port), inv); v.Action == nat.Forward {
		t.Fatal("INVITE admitted after de-registration and timeout")
	}
}

// TestOffByDefault: without the switch the INVITE passes untouched.
func TestOffByDefault(t *testing.T) {
	e := engine(t, false)
	in := invite("off@x", phone+":5060", phone+":5060", sdpBody(phone, 6000))
	out := mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", in)
	if udpPayload(out) != in {
		t.Fatal("rewritten with the helper off")
	}
	if st := e.HelperStats()["sip"]; st.On || st.Flows != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUnparsedCounted: what the helper cannot read passes untouched and is
// counted.
func TestUnparsedCounted(t *testing.T) {
	for i, p := range []string{
		"\x00\x01binary junk on 5060",
		"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP " + phone + ":5060\r\n", // no blank line
		"INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n",
		"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort", // body shorter than announced
		invite("bad-sdp@x", phone+":5060", phone+":5060", "this is not sdp\r\n"),
	} {
		e := engine(t, true)
		out := mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", p)
		st := e.HelperStats()["sip"]
		if st.Unparsed != 1 {
			t.Fatalf("case %d: unparsed %d, want 1", i, st.Unparsed)
		}
		if i < 4 && udpPayload(out) != p {
			t.Fatalf("case %d changed", i)
		}
	}
	// A keep-alive is not a message and not counted.
	e := engine(t, true)
	mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", "\r\n\r\n")
	if st := e.HelperStats()["sip"]; st.Unparsed != 0 {
		t.Fatalf("keep-alive counted as unparsed")
	}
}

// TestTCP: an INVITE over TCP whose length changes; the phone's next
// segment and the proxy's acknowledgement are moved by the change; two
// messages in one segment are both rewritten.
func TestTCP(t *testing.T) {
	e := engine(t, true)
	lanSeq, rSeq := uint32(1000), uint32(5000)
	send := func(fromLAN bool, flags uint8, payload string) []byte {
		t.Helper()
		var b []byte
		from := nat.LAN
		if fromLAN {
			b = TCP(phone+":40000", proxy+":5060", flags, lanSeq, rSeq, nil, []byte(payload))
			lanSeq += uint32(len(payload))
		} else {
			b = TCP(proxy+":5060", pub+":40000", flags, rSeq, lanSeq, nil, []byte(payload))
			rSeq += uint32(len(payload))
			from = nat.WAN
		}
		if flags&packet.TCPSyn != 0 {
			if fromLAN {
				lanSeq++
			} else {
				rSeq++
			}
		}
		b = nattest.Pass(t, e, sec, from, b)
		IPv4(t, b)
		return b
	}
	send(true, packet.TCPSyn, "")
	send(false, packet.TCPSyn|packet.TCPAck, "")
	send(true, packet.TCPAck, "")
	inv := strings.ReplaceAll(invite("tcp-1@x", phone+":40000", phone+":40000", sdpBody(phone, 6000)), "SIP/2.0/UDP", "SIP/2.0/TCP")
	out := send(true, packet.TCPAck|packet.TCPPsh, inv)
	seg := packet.TCP(packet.IPv4(out).Payload())
	got := string(seg.Payload())
	if !strings.Contains(got, "Via: SIP/2.0/TCP "+pub+":40000;") || !strings.Contains(got, "c=IN IP4 "+pub) {
		t.Fatalf("TCP INVITE not rewritten:\n%s", got)
	}
	checkLength(t, got)
	delta := len(got) - len(inv)
	if delta == 0 {
		t.Fatal("the test needs a length change")
	}
	// The proxy acks what it received, in its numbering.
	serverNext := seg.Seq() + uint32(len(seg.Payload()))
	ack := TCP(proxy+":5060", pub+":40000", packet.TCPAck, rSeq, serverNext, nil, nil)
	if v := e.Process(sec, nat.WAN, ack); v.Action != nat.Forward {
		t.Fatal(v)
	}
	if a := packet.TCP(packet.IPv4(ack).Payload()).Ack(); a != lanSeq {
		t.Fatalf("ack to the phone %d, want %d", a, lanSeq)
	}
	// Two messages (ACK and a re-INVITE) in one segment.
	ackMsg := msg("", "ACK sip:service@203.0.113.10 SIP/2.0", "Via: SIP/2.0/TCP "+phone+":40000;branch=z9hG4bK-a", "Call-ID: tcp-1@x", "CSeq: 1 ACK", "Content-Length: 0")
	reinv := strings.ReplaceAll(invite("tcp-1@x", phone+":40000", phone+":40000", sdpBody(phone, 6000)), "CSeq: 1", "CSeq: 2")
	before := lanSeq
	out = send(true, packet.TCPAck|packet.TCPPsh, ackMsg+reinv)
	seg = packet.TCP(packet.IPv4(out).Payload())
	if seg.Seq() != before+uint32(delta) {
		t.Fatalf("seq %d, want %d", seg.Seq(), before+uint32(delta))
	}
	got = string(seg.Payload())
	if strings.Count(got, pub+":40000") != 3 || strings.Count(got, "IN IP4 "+pub) != 2 {
		t.Fatalf("both messages not rewritten:\n%s", got)
	}
	second := got[strings.Index(got, "INVITE"):]
	checkLength(t, second)
}

// BenchmarkUntouched is the per-packet cost on a SIP message that needs
// no rewrite (an in-dialog ACK from a phone whose addresses are public).
func BenchmarkUntouched(b *testing.B) {
	e := engine(b, true)
	m := msg("",
		"ACK sip:service@203.0.113.10:5060 SIP/2.0",
		"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1;rport",
		"From: sipp <sip:sipp@198.51.100.7:5060>;tag=1",
		"To: service <sip:service@203.0.113.10:5060>;tag=2",
		"Call-ID: bench@x",
		"CSeq: 1 ACK",
		"Contact: <sip:sipp@198.51.100.7:5060>",
		"Max-Forwards: 70",
		"Content-Length: 0")
	seg := UDP(phone+":5060", proxy+":5060", []byte(m))
	p := append([]byte(nil), seg...)
	e.Process(0, nat.LAN, p)
	if st := e.HelperStats()["sip"]; st.Flows != 1 || st.Rewrites != 0 || st.Unparsed != 0 {
		b.Fatalf("stats %+v", st)
	}
	nattest.Bench(b, e, sec, nat.LAN, seg, nat.Forward)
}
