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

// response builds a response to the phone whose top Via is via.
func response(status, cseq, via string, extra ...string) string {
	lines := append([]string{
		"SIP/2.0 " + status,
		"Via: " + via,
		"From: sipp <sip:sipp@192.168.50.10:5060>;tag=1",
		"To: service <sip:service@203.0.113.10:5060>;tag=2",
		"Call-ID: r@x",
		"CSeq: " + cseq,
	}, extra...)
	return msg("", append(lines, "Content-Length: auto")...)
}

func register(via, contact string) string {
	return msg("",
		"REGISTER sip:203.0.113.10 SIP/2.0",
		"Via: SIP/2.0/UDP "+via+";branch=z9hG4bK-r1;rport",
		"From: <sip:alice@203.0.113.10>;tag=r",
		"To: <sip:alice@203.0.113.10>",
		"Call-ID: reg-r@x",
		"CSeq: 1 REGISTER",
		"Contact: <sip:alice@"+contact+">",
		"Expires: 3600",
		"Content-Length: 0")
}

// TestRestoreTable: what comes back from the far end to the phone has the
// addresses the helper made public restored, and nothing else: a
// response's top Via (with received= and rport=) and a registrar's
// Contact bindings, a request's Request-URI. Each case sends the phone's
// messages out first, then one message in from the proxy to the public
// signalling port P; the lengths and checksums of what reaches the phone
// are checked.
func TestRestoreTable(t *testing.T) {
	body := sdpBody(mediaGW, 20000)
	ok200 := func(via string) string {
		return msg(body,
			"SIP/2.0 200 OK",
			"Via: "+via,
			"From: sipp <sip:sipp@192.168.50.10:5060>;tag=1",
			"To: service <sip:service@203.0.113.10:5060>;tag=2",
			"Call-ID: r1@x",
			"CSeq: 1 INVITE",
			"Contact: <sip:service@"+proxy+":5060>",
			"Content-Type: application/sdp",
			"Content-Length: auto")
	}
	inviteTo := func(uri, to string) string {
		return msg(sdpBody(mediaGW, 20000),
			"INVITE "+uri+" SIP/2.0",
			"Via: SIP/2.0/UDP "+proxy+":5060;branch=z9hG4bK-in",
			"From: <sip:bob@203.0.113.10>;tag=b",
			"To: <"+to+">",
			"Call-ID: in-r@x",
			"CSeq: 1 INVITE",
			"Contact: <sip:bob@"+proxy+":5060>",
			"Content-Type: application/sdp",
			"Content-Length: auto")
	}
	phoneInvite := invite("r1@x", phone+":5060", phone+":5060", sdpBody(phone, 6000))
	pp := func(port int) string { return fmt.Sprintf("%s:%d", pub, port) }
	for _, tt := range []struct {
		name    string
		occupy  []int
		out     []string           // the phone's messages, first
		in      func(P int) string // the proxy's message to pub:P
		want    func(P int) string // what the phone gets; nil: unchanged
		changed bool               // the helper must have rewritten it
	}{
		{
			name: "200 OK to INVITE, port kept",
			out:  []string{phoneInvite},
			in: func(P int) string {
				return ok200("SIP/2.0/UDP " + pp(P) + ";branch=z9hG4bK-1;received=" + pub + ";rport=" + fmt.Sprint(P))
			},
			want: func(int) string {
				return ok200("SIP/2.0/UDP " + phone + ":5060;branch=z9hG4bK-1;received=" + phone + ";rport=5060")
			},
			changed: true,
		},
		{
			name:   "200 OK to INVITE, port remapped",
			occupy: []int{5060},
			out:    []string{phoneInvite},
			in: func(P int) string {
				return ok200("SIP/2.0/UDP " + pp(P) + " ; rport = " + fmt.Sprint(P) + " ; branch=z9hG4bK-1;received=" + pub)
			},
			want: func(int) string {
				return ok200("SIP/2.0/UDP " + phone + ":5060 ; rport = 5060 ; branch=z9hG4bK-1;received=" + phone)
			},
			changed: true,
		},
		{
			name:   "received and rport naming others stay",
			occupy: []int{5060},
			out:    []string{phoneInvite},
			in: func(P int) string {
				return ok200("SIP/2.0/UDP " + pp(P) + ";branch=z9hG4bK-1;received=198.51.100.7;rport=7777;x=\"a;rport=1\"")
			},
			want: func(int) string {
				return ok200("SIP/2.0/UDP " + phone + ":5060;branch=z9hG4bK-1;received=198.51.100.7;rport=7777;x=\"a;rport=1\"")
			},
			changed: true,
		},
		{
			name:    "sent without a port, restored with the phone's",
			occupy:  []int{5060},
			out:     []string{invite("r1@x", phone, phone, sdpBody(phone, 6000))},
			in:      func(P int) string { return ok200("SIP/2.0/UDP " + pp(P) + ";branch=z9hG4bK-1") },
			want:    func(int) string { return ok200("SIP/2.0/UDP " + phone + ":5060;branch=z9hG4bK-1") },
			changed: true,
		},
		{
			name:    "portless public sent-by is port 5060",
			out:     []string{phoneInvite},
			in:      func(int) string { return ok200("SIP/2.0/UDP " + pub + ";branch=z9hG4bK-1") },
			want:    func(int) string { return ok200("SIP/2.0/UDP " + phone + ";branch=z9hG4bK-1") },
			changed: true,
		},
		{
			name: "Via naming another address is untouched",
			out:  []string{phoneInvite},
			in: func(P int) string {
				return ok200("SIP/2.0/UDP 198.51.100.7:" + fmt.Sprint(P) + ";branch=z9hG4bK-1;received=" + pub)
			},
		},
		{
			name:   "public address with another port is untouched",
			occupy: []int{5060},
			out:    []string{phoneInvite},
			in:     func(int) string { return ok200("SIP/2.0/UDP " + pub + ":5060;branch=z9hG4bK-1") },
		},
		{
			name:   "Via naming a port not the flow's: the address alone comes back",
			occupy: []int{5060},
			out:    []string{invite("r1@x", phone+":5070", phone+":5070", sdpBody(phone, 6000))},
			in: func(P int) string {
				return ok200("SIP/2.0/UDP " + pub + ":5070;branch=z9hG4bK-1;received=" + pub + ";rport=" + fmt.Sprint(P))
			},
			want: func(int) string {
				return ok200("SIP/2.0/UDP " + phone + ":5070;branch=z9hG4bK-1;received=" + phone + ";rport=5060")
			},
			changed: true,
		},
		{
			name:   "and not with yet another port",
			occupy: []int{5060},
			out:    []string{invite("r1@x", phone+":5070", phone+":5070", sdpBody(phone, 6000))},
			in:     func(int) string { return ok200("SIP/2.0/UDP " + pub + ":5080;branch=z9hG4bK-1") },
		},
		{
			name: "only the top Via is the phone's",
			out:  []string{phoneInvite},
			in: func(P int) string {
				return ok200("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-p, SIP/2.0/UDP " + pp(P) + ";branch=z9hG4bK-1")
			},
		},
		{
			name: "a phone that wrote its public address itself (STUN) keeps it",
			out:  []string{invite("r1@x", pub+":5060", pub+":5060", sdpBody(pub, 6000))},
			in:   func(P int) string { return ok200("SIP/2.0/UDP " + pp(P) + ";branch=z9hG4bK-1;rport=5060") },
		},
		{
			name:   "compact Via and several values in one header",
			occupy: []int{5060},
			out:    []string{phoneInvite},
			in: func(P int) string {
				return msg("", "SIP/2.0 180 Ringing", "v: SIP/2.0/UDP "+pp(P)+";branch=z9hG4bK-1,SIP/2.0/UDP "+pp(P)+";branch=z9hG4bK-0", "i: r1@x", "CSeq: 1 INVITE", "l: auto")
			},
			want: func(P int) string {
				return msg("", "SIP/2.0 180 Ringing", "v: SIP/2.0/UDP "+phone+":5060;branch=z9hG4bK-1,SIP/2.0/UDP "+pp(P)+";branch=z9hG4bK-0", "i: r1@x", "CSeq: 1 INVITE", "l: auto")
			},
			changed: true,
		},
		{
			name:   "200 OK to REGISTER: Via and the phone's binding",
			occupy: []int{5060},
			out:    []string{register(phone+":5060", phone+":5060")},
			in: func(P int) string {
				return response("200 OK", "1 REGISTER", "SIP/2.0/UDP "+pp(P)+";branch=z9hG4bK-r1;received="+pub+";rport="+fmt.Sprint(P),
					"Contact: <sip:alice@"+pp(P)+">;expires=3600, <sip:alice@198.51.100.7:5060>;expires=100")
			},
			want: func(int) string {
				return response("200 OK", "1 REGISTER", "SIP/2.0/UDP "+phone+":5060;branch=z9hG4bK-r1;received="+phone+";rport=5060",
					"Contact: <sip:alice@"+phone+":5060>;expires=3600, <sip:alice@198.51.100.7:5060>;expires=100")
			},
			changed: true,
		},
		{
			name:   "INVITE to the public contact: Request-URI restored, To kept",
			occupy: []int{5060},
			out:    []string{register(phone+":5060", phone+":5060")},
			in:     func(P int) string { return inviteTo("sip:alice@"+pp(P)+";transport=udp", "sip:alice@"+pp(P)) },
			want: func(P int) string {
				return inviteTo("sip:alice@"+phone+":5060;transport=udp", "sip:alice@"+pp(P))
			},
			changed: true,
		},
		{
			name:    "INVITE to the public contact, port kept",
			out:     []string{register(phone+":5060", phone)},
			in:      func(int) string { return inviteTo("sip:alice@"+pub, "sip:alice@"+pub) },
			want:    func(int) string { return inviteTo("sip:alice@"+phone, "sip:alice@"+pub) },
			changed: true,
		},
		{
			name:   "INVITE to another public port is untouched",
			occupy: []int{5060},
			out:    []string{register(phone+":5060", phone+":5060")},
			in:     func(int) string { return inviteTo("sip:alice@"+pub+":5060", "sip:alice@"+pub) },
		},
		{
			name:   "INVITE to a public contact the phone wrote itself is untouched",
			occupy: []int{5060},
			out:    []string{register(phone+":5060", "PUBLIC")},
			in:     func(P int) string { return inviteTo("sip:alice@"+pp(P), "sip:alice@"+pp(P)) },
		},
		{
			name:   "a phone that turned to its public address (STUN) keeps it",
			occupy: []int{5060},
			out:    []string{register(phone+":5060", phone+":5060"), strings.Replace(register("PUBLIC", "PUBLIC"), "CSeq: 1", "CSeq: 2", 1)},
			in: func(P int) string {
				return response("200 OK", "2 REGISTER", "SIP/2.0/UDP "+pp(P)+";branch=z9hG4bK-r1;rport="+fmt.Sprint(P), "Contact: <sip:alice@"+pp(P)+">;expires=3600")
			},
		},
		{
			name:   "nor its Request-URI",
			occupy: []int{5060},
			out:    []string{register(phone+":5060", phone+":5060"), strings.Replace(register("PUBLIC", "PUBLIC"), "CSeq: 1", "CSeq: 2", 1)},
			in:     func(P int) string { return inviteTo("sip:alice@"+pp(P), "sip:alice@"+pp(P)) },
		},
		{
			name:   "in-dialog request to the phone's private contact is untouched",
			occupy: []int{5060},
			out:    []string{phoneInvite},
			in: func(int) string {
				return msg("", "BYE sip:sipp@"+phone+":5060 SIP/2.0", "Via: SIP/2.0/UDP "+proxy+":5060;branch=z9hG4bK-b", "Call-ID: r1@x", "CSeq: 2 BYE", "Content-Length: 0")
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := engine(t, true)
			for _, p := range tt.occupy {
				occupy(t, e, p)
			}
			var P int
			for _, m := range tt.out {
				if strings.Contains(m, "PUBLIC") {
					// The phone learned its mapping (STUN) before.
					mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":3478", "stun")
					m = strings.ReplaceAll(m, "PUBLIC", pp(int(mappedPort(t, e, phone+":5060"))))
				}
				mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", m)
				P = int(mappedPort(t, e, phone+":5060"))
			}
			if len(tt.occupy) > 0 && P == 5060 {
				t.Fatal("the test needs a remapped signalling port")
			}
			before := e.HelperStats()["sip"]
			in := tt.in(P)
			out := mustUDP(t, e, 2*sec, nat.WAN, proxy+":5060", pp(P), in)
			IPv4(t, out, Src(proxy+":5060"), Dst(phone+":5060")) // lengths and checksums too
			got := udpPayload(out)
			want := in
			if tt.want != nil {
				want = tt.want(P)
			}
			if got != want {
				t.Fatalf("to the phone:\n%s\nwant:\n%s", got, want)
			}
			checkLength(t, got)
			if n := packet.UDP(packet.IPv4(out).Payload()).Length(); int(n) != 8+len(want) {
				t.Fatalf("UDP length %d, want %d", n, 8+len(want))
			}
			st := e.HelperStats()["sip"]
			if rw := st.Rewrites - before.Rewrites; (rw != 0) != tt.changed {
				t.Fatalf("rewrites %d, changed %v", rw, tt.changed)
			}
			if st.Unparsed != 0 {
				t.Fatalf("unparsed %d", st.Unparsed)
			}
		})
	}
}

// TestRestoreUnparsed: a message from the far end the helper cannot read
// reaches the phone untouched and is counted.
func TestRestoreUnparsed(t *testing.T) {
	e := engine(t, true)
	mustUDP(t, e, sec, nat.LAN, phone+":5060", proxy+":5060", invite("u@x", phone+":5060", phone+":5060", sdpBody(phone, 6000)))
	for i, p := range []string{
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + pub + ":5060\r\n",                  // no blank line
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + pub + ":5060\r\nl: 9\r\n\r\nshort", // body shorter than announced
	} {
		before := e.HelperStats()["sip"]
		out := mustUDP(t, e, 2*sec, nat.WAN, proxy+":5060", pub+":5060", p)
		st := e.HelperStats()["sip"]
		if udpPayload(out) != p || st.Unparsed != before.Unparsed+1 || st.Rewrites != before.Rewrites {
			t.Fatalf("case %d: %+v\n%s", i, st, udpPayload(out))
		}
	}
}

// TestRestoreTCP: over TCP the response's Via grows back to the private
// address; the proxy's next segment and the phone's acknowledgement are
// moved by the change, on top of the phone's own INVITE having shrunk.
func TestRestoreTCP(t *testing.T) {
	e := engine(t, true)
	lanSeq, rSeq := uint32(1000), uint32(5000) // each side's own numbering
	var outShift, inShift uint32               // what the helper added to each direction
	const lanPort = "40000"
	send := func(fromLAN bool, flags uint8, payload string) packet.TCP {
		t.Helper()
		var b []byte
		from := nat.LAN
		wantSeq, wantAck := lanSeq+outShift, rSeq // as the proxy sees them
		if fromLAN {
			b = TCP(phone+":"+lanPort, proxy+":5060", flags, lanSeq, rSeq+inShift, nil, []byte(payload))
		} else {
			b = TCP(proxy+":5060", pub+":"+lanPort, flags, rSeq, lanSeq+outShift, nil, []byte(payload))
			wantSeq, wantAck = rSeq+inShift, lanSeq // as the phone sees them
			from = nat.WAN
		}
		b = nattest.Pass(t, e, sec, from, b)
		IPv4(t, b)
		seg := packet.TCP(packet.IPv4(b).Payload())
		if flags&packet.TCPSyn == 0 && (seg.Seq() != wantSeq || seg.Ack() != wantAck) {
			t.Fatalf("seq %d ack %d, want %d %d", seg.Seq(), seg.Ack(), wantSeq, wantAck)
		}
		d := uint32(len(seg.Payload()) - len(payload))
		if fromLAN {
			lanSeq += uint32(len(payload))
			outShift += d
		} else {
			rSeq += uint32(len(payload))
			inShift += d
		}
		if flags&packet.TCPSyn != 0 {
			if fromLAN {
				lanSeq++
			} else {
				rSeq++
			}
		}
		return seg
	}
	send(true, packet.TCPSyn, "")
	send(false, packet.TCPSyn|packet.TCPAck, "")
	send(true, packet.TCPAck, "")
	inv := strings.ReplaceAll(invite("tcp-r@x", phone+":"+lanPort, phone+":"+lanPort, sdpBody(phone, 6000)), "SIP/2.0/UDP", "SIP/2.0/TCP")
	seg := send(true, packet.TCPAck|packet.TCPPsh, inv)
	if !strings.Contains(string(seg.Payload()), "Via: SIP/2.0/TCP "+pub+":"+lanPort+";") || outShift == 0 {
		t.Fatalf("INVITE not rewritten (shift %d):\n%s", int32(outShift), seg.Payload())
	}
	P := mappedPort(t, e, phone+":"+lanPort)
	if fmt.Sprint(P) != lanPort {
		t.Fatalf("public port %d, the test expects %s", P, lanPort)
	}
	via := func(host string) string {
		return fmt.Sprintf("SIP/2.0/TCP %s:%s;branch=z9hG4bK-1;received=%s;rport=%s", host, lanPort, host, lanPort)
	}
	trying := response("100 Trying", "1 INVITE", via(pub))
	seg = send(false, packet.TCPAck|packet.TCPPsh, trying)
	if got, want := string(seg.Payload()), response("100 Trying", "1 INVITE", via(phone)); got != want {
		t.Fatalf("100 to the phone:\n%s\nwant:\n%s", got, want)
	}
	if inShift == 0 {
		t.Fatal("the test needs a length change")
	}
	// Two messages in one segment, both restored; the segment is moved
	// by the first change.
	ok := response("200 OK", "1 INVITE", via(pub))
	bye := msg("", "BYE sip:sipp@"+pub+":"+lanPort+" SIP/2.0", "Via: SIP/2.0/TCP "+proxy+":5060;branch=z9hG4bK-b", "Call-ID: r@x", "CSeq: 2 BYE", "Content-Length: 0")
	seg = send(false, packet.TCPAck|packet.TCPPsh, ok+bye)
	got := string(seg.Payload())
	wantOK := response("200 OK", "1 INVITE", via(phone))
	wantBye := strings.Replace(bye, "sip:sipp@"+pub, "sip:sipp@"+phone, 1)
	if got != wantOK+wantBye {
		t.Fatalf("200 and BYE to the phone:\n%s\nwant:\n%s", got, wantOK+wantBye)
	}
	checkLength(t, got[:len(wantOK)])
	// The phone acknowledges all it got, in its numbering; the proxy sees
	// its own (checked in send), and the phone's next message follows.
	send(true, packet.TCPAck, "")
	ack := msg("", "ACK sip:service@203.0.113.10 SIP/2.0", "Via: SIP/2.0/TCP "+phone+":"+lanPort+";branch=z9hG4bK-a", "Call-ID: r@x", "CSeq: 1 ACK", "Content-Length: 0")
	send(true, packet.TCPAck|packet.TCPPsh, ack)
	send(false, packet.TCPAck, "")
}

// BenchmarkRestore is the per-packet cost of a response whose Via and
// received= the helper restores (the payload grows, so it leaves in an
// emitted copy).
func BenchmarkRestore(b *testing.B) {
	e := engine(b, true)
	out := UDP(phone+":5060", proxy+":5060", []byte(invite("bench@x", phone+":5060", phone+":5060", sdpBody(phone, 6000))))
	e.Process(0, nat.LAN, out)
	e.ResetEmitted()
	m := response("200 OK", "1 INVITE", "SIP/2.0/UDP "+pub+":5060;branch=z9hG4bK-1;received="+pub+";rport=5060")
	seg := UDP(proxy+":5060", pub+":5060", []byte(m))
	nattest.Bench(b, e, sec, nat.WAN, seg, nat.Consumed)
	b.StopTimer()
	if st := e.HelperStats()["sip"]; st.Rewrites < uint64(b.N) || st.Unparsed != 0 {
		b.Fatalf("stats %+v", st)
	}
}
