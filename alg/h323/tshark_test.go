//go:build lab

package h323

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestTshark checks the rewritten call with Wireshark's own H.225.0 and
// H.245 dissectors: the packets that left the engine are written to a
// pcap and tshark must find the public address and ports where the phone
// put its private ones, and nothing malformed. tshark dissects TPKT/Q.931
// on TCP 1720 by default; the H.245 connection is named with -d.
// Debian: apt-get install tshark.
func TestTshark(t *testing.T) {
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal("tshark is needed (apt-get install tshark)")
	}
	_, pkts := callFlow(t)
	pcap := writePcap(t, t.TempDir(), pkts)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-r", pcap, "-d", "tcp.port==40002,h245"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if p, err := exec.Command(bin, "-G", "protocols").Output(); err != nil || !strings.Contains(string(p), "\th225\n") || !strings.Contains(string(p), "\th245\n") {
		t.Fatalf("tshark has no H.225/H.245 dissector (%v)", err)
	}

	// Per frame: protocol column, H.245 media addresses and ports, malformed marker.
	fields := run("-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "_ws.col.Protocol",
		"-e", "h245.ip4_network", "-e", "h245.tsapIdentifier", "-e", "_ws.malformed")
	want := map[string]string{
		"4":  "H.225.0|203.0.113.1,203.0.113.1,203.0.113.1|5001,5000,5001|", // Setup's fastStart
		"5":  "H.225.0|||",                                                  // the callee's Connect
		"9":  "H.245|203.0.113.1|5003|",                                     // OpenLogicalChannel
		"10": "H.245|203.0.113.1,203.0.113.1|5004,5005|",                    // OpenLogicalChannelAck
		"12": "H.225.0|||",                                                  // ReleaseComplete
	}
	for _, line := range strings.Split(strings.TrimSpace(fields), "\n") {
		num, rest, _ := strings.Cut(line, "|")
		if w, ok := want[num]; ok {
			if rest != w {
				t.Errorf("frame %s: tshark shows %q, want %q", num, rest, w)
			}
			delete(want, num)
		}
		if strings.Contains(rest, "malformed") {
			t.Errorf("frame %s malformed: %s", num, rest)
		}
	}
	if len(want) != 0 {
		t.Errorf("frames missing from tshark's output: %v", want)
	}

	// The h245Address in the Setup, from the verbose tree.
	verbose := run("-V", "-O", "q931,h225,h245", "-Y", "frame.number==4")
	m := regexp.MustCompile(`h245Address: ipAddress \(0\)\s+ipAddress\s+ip: (\S+)\s+port: (\d+)`).FindStringSubmatch(verbose)
	if m == nil || m[1] != "203.0.113.1" || m[2] != "40002" {
		t.Fatalf("tshark's h245Address: %v\n%s", m, verbose)
	}
	for _, re := range []string{`mediaChannel: unicastAddress \(0\)\s+unicastAddress: iPAddress \(0\)\s+iPAddress\s+network: 203\.0\.113\.1\s+tsapIdentifier: 5000`,
		`mediaControlChannel: unicastAddress \(0\)\s+unicastAddress: iPAddress \(0\)\s+iPAddress\s+network: 203\.0\.113\.1\s+tsapIdentifier: 5001`} {
		if !regexp.MustCompile(re).MatchString(verbose) {
			t.Errorf("tshark's Setup lacks %s", re)
		}
	}
	if regexp.MustCompile(`(ip|network): 192\.168\.`).MatchString(verbose) {
		t.Error("a private address is left in the Setup")
	}
}

// tsharkFields returns a function that writes packets to a pcap and has
// tshark print, per frame, the protocol column, the fields asked for and
// the malformed marker (a malformed frame fails the test), keyed by frame
// number.
func tsharkFields(t *testing.T) func(pkts [][]byte, args ...string) map[string]string {
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatal("tshark is needed (apt-get install tshark)")
	}
	return func(pkts [][]byte, args ...string) map[string]string {
		t.Helper()
		pcap := writePcap(t, t.TempDir(), pkts)
		args = append([]string{"-r", pcap, "-d", "udp.port==1719,h225", "-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "_ws.col.Protocol"}, args...)
		out, err := exec.Command(bin, append(args, "-e", "_ws.malformed")...).Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, out)
		}
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			num, rest, _ := strings.Cut(line, "|")
			if strings.Contains(rest, "alformed") {
				t.Errorf("frame %s malformed: %s", num, rest)
			}
			m[num] = rest
		}
		return m
	}
}

// TestTsharkProgress checks a rewritten Progress (the message body's
// extension alternative, an open type) with Wireshark's dissectors: the
// h245Address and the fastStart media addresses must read 203.0.113.1 and
// the public ports, with and without the H.235 fields (h245SecurityMode,
// one ClearToken, three CryptoH323Tokens) Progress-UUIE has before
// fastStart, and nothing be malformed or left undecoded.
func TestTsharkProgress(t *testing.T) {
	fields := tsharkFields(t)
	for _, c := range []struct {
		h235 sec235
		want string
	}{
		{h235None, "H.225.0|7|203.0.113.1|41000|||203.0.113.1,203.0.113.1,203.0.113.1|7001,7000,7001|"},
		{h235Tokens, "H.225.0|7|203.0.113.1|41000|1|3|203.0.113.1,203.0.113.1,203.0.113.1|7001,7000,7001|"},
	} {
		_, pkts := progressFlow(t, c.h235)
		// Frame 5 is the gateway's Progress (body 7: progress). The last
		// field, the expert info group, is empty: nothing undecoded.
		got := fields(pkts, "-e", "h225.h323_message_body", "-e", "h225.h245Ip", "-e", "h225.h245IpPort",
			"-e", "h225.tokens", "-e", "h225.cryptoTokens", "-e", "h245.ip4_network", "-e", "h245.tsapIdentifier",
			"-e", "_ws.expert.group")
		if w := c.want + "|"; got["5"] != w {
			t.Errorf("h235 %d: tshark shows %q, want %q", c.h235, got["5"], w)
		}
	}
}

// TestTsharkRASAndTunnel checks the rewritten RegistrationRequest and the
// OpenLogicalChannel and ...Ack tunnelled in H.225.0 with Wireshark's
// dissectors: the RRQ's callSignalAddress and rasAddress, and the
// tunnelled media addresses, must read 203.0.113.1 and nothing be
// malformed. RAS is named with -d (tshark also finds it on 1719 by
// default); tunnelled H.245 is dissected inside h245Control.
func TestTsharkRASAndTunnel(t *testing.T) {
	fields := tsharkFields(t)
	_, ras := rasFlow(t)
	got := fields(ras, "-e", "h225.RasMessage", "-e", "h225.ipV4", "-e", "h225.ipV4_port", "-e", "h225.timeToLive")
	// Frame 1: registrationRequest (3), callSignalAddress then rasAddress.
	if w := "H.225.0|3|203.0.113.1,203.0.113.1|1720,1719|300|"; got["1"] != w {
		t.Errorf("RRQ: tshark shows %q, want %q", got["1"], w)
	}

	_, tun := tunnelFlow(t)
	got = fields(tun, "-e", "h225.h245Tunnelling", "-e", "h245.ip4_network", "-e", "h245.tsapIdentifier")
	for num, w := range map[string]string{
		"4": "H.225.0/H.245|1|203.0.113.1|5011|",                  // Setup tunnelling an OpenLogicalChannel
		"5": "H.225.0/H.245|1|203.0.113.1,203.0.113.1|5012,5013|", // empty tunnelling an OpenLogicalChannelAck
	} {
		if got[num] != w {
			t.Errorf("frame %s: tshark shows %q, want %q", num, got[num], w)
		}
	}
}
