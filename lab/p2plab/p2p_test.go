//go:build lab

package p2plab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun"

	"passgate/lab"
	"passgate/lab/labtest"
)

const (
	prefix   = "pgp2p"
	stunPort = 3478
	peerEnv  = "P2P_PEER" // set: this test binary is a peer in a lab host
)

var filterings = []string{"endpoint-independent", "address-dependent", "address-and-port-dependent"}

func TestMain(m *testing.M) {
	if os.Getenv(peerEnv) != "" { // a peer (TestPeer) in a lab host
		os.Exit(m.Run())
	}
	labtest.Main(m)
}

// TestP2P brings the lab up once and runs every check under each
// filtering setting, with a passgate of its own for each.
func TestP2P(t *testing.T) {
	bin := labtest.Passgate(t)
	l := labtest.Up(t, prefix, 3*time.Minute)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	turn := labtest.StartWithT(t, l, lab.Server1, labtest.Options{Combined: true}, "turnserver",
		"-n", "-S", "--no-cli", "--no-tls", "--no-dtls", "-L", lab.Srv1, "-L", lab.Srv1b,
		"-p", fmt.Sprint(stunPort), "--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(dir, "turnserver.pid"), "--db", filepath.Join(dir, "turndb"))
	must(t, labtest.WaitListen(l, lab.Server1, "udp", lab.Srv1b, stunPort, 10*time.Second, turn))
	must(t, labtest.WaitListen(l, lab.Server1, "tcp", lab.Srv1, stunPort, 10*time.Second, turn))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("turnserver (tail):\n%s", turn.Tail(3000))
		}
	})

	for i, filt := range filterings {
		t.Run(filt, func(t *testing.T) {
			g := startGate(ctx, t, l, bin, dir, filt)
			ports := 40000 + 100*i // fresh local ports for each setting (TCP TIME_WAIT)
			t.Run("natdiscovery", func(t *testing.T) { natDiscovery(t, l, filt) })
			t.Run("rfc5780", func(t *testing.T) { rfc5780(t, l, self, filt) })
			t.Run("holepunch", func(t *testing.T) { holePunch(t, l, self, ports) })
			t.Run("tcp-simultaneous-open", func(t *testing.T) { tcpSimOpen(t, l, self, filt, g, ports+50) })
			t.Run("icmp-error", func(t *testing.T) { icmpError(t, l, self, ports+70) })
		})
	}
	t.Run("udp500-not-ike", func(t *testing.T) {
		g := startGate(ctx, t, l, bin, dir, "address-dependent")
		notIKE500(t, l, self, g)
	})
}

// notIKE500: lan1 and lan2 both send a datagram that is no IKE from port
// 500 to srv1's port 500; each gets its own outside port (not the shared
// 500) and its own answer, and passgate counts both.
func notIKE500(t *testing.T, l *lab.Lab, self string, g *labtest.Gate) {
	b, _ := json.Marshal(peerArgs{Mode: "echo500"})
	echo := labtest.StartWithT(t, l, lab.Server1, labtest.Options{Combined: true}, "env", peerEnv+"="+string(b), self, "-test.run=^TestPeer$")
	must(t, echo.WaitOutput("ready", 10*time.Second))
	srv := lab.Srv1 + ":500"
	ra, rb := runPair(t, l, self, peerArgs{Mode: "send500", Peer: srv}, peerArgs{Mode: "send500", Peer: srv})
	seen := map[string]bool{}
	for _, c := range []struct {
		r    peerResult
		host string
	}{{ra, lab.LAN1}, {rb, lab.LAN2}} {
		if c.r.From != srv {
			t.Errorf("%s's answer came from %q, want %s", c.host, c.r.From, srv)
		}
		as, ok := strings.CutPrefix(c.r.Got, "echo NOT-IKE from "+c.host+" seen from "+lab.WANAddr+":")
		if !ok || as == "500" || seen[as] {
			t.Errorf("%s got %q: want its own datagram, seen from an outside port of its own, not 500", c.host, c.r.Got)
		}
		seen[as] = true
	}
	st, err := g.Status(context.Background())
	must(t, err)
	if st.NAT.IKEFallback != 2 {
		t.Errorf("ike_fallback %d, want 2", st.NAT.IKEFallback)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func startGate(ctx context.Context, t *testing.T, l *lab.Lab, bin, dir, filt string) *labtest.Gate {
	t.Helper()
	cfg := map[string]any{
		"lan": map[string]any{"interface": lab.LANIface, "address": lab.LANCIDR},
		"wan": map[string]any{"interface": lab.WANIface, "address": lab.WANCIDR},
		"nat": map[string]any{"filtering": filt},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	g := labtest.StartGateT(ctx, t, l, labtest.GateOptions{Bin: bin, Dir: dir, Name: "passgate-" + filt, Config: string(b)})
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := g.CLI(context.Background(), "conntrack", "--json")
			t.Logf("flow table (%s):\n%s", filt, out)
		}
	})
	return g
}

// natDiscovery runs coturn's RFC 5780 client on lan1.
func natDiscovery(t *testing.T, l *lab.Lab, filt string) {
	out := labtest.RunT(t, l, 60*time.Second, lab.Lan1, "turnutils_natdiscovery", "-m", "-f", "-H", lab.Srv1)
	want := map[string]string{
		"endpoint-independent":       "NAT with Endpoint Independent Filtering!",
		"address-dependent":          "NAT with Address Dependent Filtering!",
		"address-and-port-dependent": "NAT with Address and Port Dependent Filtering!",
	}[filt]
	for _, w := range []string{"NAT with Endpoint Independent Mapping!", want, "UDP reflexive addr: " + lab.WANAddr + ":"} {
		if !strings.Contains(out, w) {
			t.Errorf("natdiscovery did not report %q:\n%s", w, out)
		}
	}
	// Its hairpinning test sends from a second socket to the first one's
	// mapping, which has sent to the STUN server only: two NATs pass
	// that only with endpoint-independent filtering.
	hairpin := strings.Contains(out, "Received a request (maybe a successful hairpinning)")
	if hairpin != (filt == "endpoint-independent") {
		t.Errorf("natdiscovery hairpinning reported %v under %s filtering:\n%s", hairpin, filt, out)
	}
}

// peerResult is what a peer reports.
type peerResult struct {
	Mapped    string // its public endpoint, from the STUN server
	Mapping   string `json:",omitempty"`
	Filtering string `json:",omitempty"`
	SelfFrom  string `json:",omitempty"` // the source of the self-probe's echo
	From      string `json:",omitempty"` // the source of what the peer received
	Got       string `json:",omitempty"` // what it received
	Count     int    `json:",omitempty"`
	Err       string `json:",omitempty"`
}

// peerArgs are what a peer is told to do.
type peerArgs struct {
	Mode  string // discover, punch, tcp
	Local int    // local port (punch, tcp)
	Peer  string // the other peer's public endpoint (punch, tcp)
}

// runPeer runs this test binary as a peer in node and returns its report.
func runPeer(l *lab.Lab, self, node string, a peerArgs, d time.Duration) (peerResult, error) {
	b, _ := json.Marshal(a)
	out, err := labtest.Stdout(l, d, node, "env", peerEnv+"="+string(b), self, "-test.run=^TestPeer$", "-test.count=1")
	var r peerResult
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			if jerr := json.Unmarshal([]byte(rest), &r); jerr != nil {
				return r, fmt.Errorf("%s: bad result %q: %v", node, rest, jerr)
			}
			if r.Err != "" {
				return r, fmt.Errorf("%s: %s", node, r.Err)
			}
			return r, nil
		}
	}
	return r, fmt.Errorf("%s: peer %+v gave no result (%v):\n%s", node, a, err, out)
}

// runPair runs two peers at once.
func runPair(t *testing.T, l *lab.Lab, self string, a, b peerArgs) (ra, rb peerResult) {
	t.Helper()
	var wg sync.WaitGroup
	var ea, eb error
	wg.Add(2)
	go func() { defer wg.Done(); ra, ea = runPeer(l, self, lab.Lan1, a, 60*time.Second) }()
	go func() { defer wg.Done(); rb, eb = runPeer(l, self, lab.Lan2, b, 60*time.Second) }()
	wg.Wait()
	if err := errors.Join(ea, eb); err != nil {
		t.Fatal(err)
	}
	return ra, rb
}

func rfc5780(t *testing.T, l *lab.Lab, self, filt string) {
	r, err := runPeer(l, self, lab.Lan1, peerArgs{Mode: "discover"}, 60*time.Second)
	must(t, err)
	if r.Mapping != "endpoint-independent" || r.Filtering != filt {
		t.Errorf("RFC 5780 client: mapping %q filtering %q, want endpoint-independent, %s", r.Mapping, r.Filtering, filt)
	}
	if !strings.HasPrefix(r.Mapped, lab.WANAddr+":") || r.SelfFrom != r.Mapped {
		t.Errorf("self-probe to the mapping %s came back from %q, want the mapping", r.Mapped, r.SelfFrom)
	}
}

func holePunch(t *testing.T, l *lab.Lab, self string, port int) {
	pubA, pubB := fmt.Sprintf("%s:%d", lab.WANAddr, port), fmt.Sprintf("%s:%d", lab.WANAddr, port+1)
	ra, rb := runPair(t, l, self,
		peerArgs{Mode: "punch", Local: port, Peer: pubB},
		peerArgs{Mode: "punch", Local: port + 1, Peer: pubA})
	if ra.Mapped != pubA || rb.Mapped != pubB {
		t.Errorf("mappings %s, %s: want the ports kept, %s, %s", ra.Mapped, rb.Mapped, pubA, pubB)
	}
	if ra.From != pubB || rb.From != pubA {
		t.Errorf("lan1 heard from %q, lan2 from %q: want each other's public endpoint %s, %s", ra.From, rb.From, pubB, pubA)
	}
	if !strings.HasPrefix(ra.Got, "punch from "+lab.LAN2) || !strings.HasPrefix(rb.Got, "punch from "+lab.LAN1) {
		t.Errorf("payloads %q, %q", ra.Got, rb.Got)
	}
}

// tcpSimOpen: lan1 and lan2 connect to each other's public TCP mapping at
// once, neither listening (RFC 5382 REQ-2 through the hairpin).
//
// A connect-only open needs each SYN to find the other peer's socket in
// SYN-SENT. A SYN that arrives first finds none, and the kernel answers
// it with RST|ACK, refusing the other's connect. Under address-dependent
// and address-and-port-dependent filtering passgate holds that first SYN
// (hairpin.go), so no kernel sees it and the open is certain. Under
// endpoint-independent filtering it is delivered, as two real NATs would,
// and peers that retried on refusal met only if two SYNs left within the
// hairpin's transit time of each other (tens of microseconds on AF_XDP,
// about 1.5 ms on AF_PACKET) among attempts 20-200 ms apart: 3 tries in
// 10 missed all 20 s, both kernels refusing ~180 SYNs each (nat's
// TestHairpinTCPSimultaneousOpenAfterRefusals replays such a miss). So
// each peer's host drops its own RSTs to the other's public endpoint
// (dropRSTs) while the pair connects once: the first SYN goes unanswered
// and its sender stays in SYN-SENT until the other's SYN meets it.
func tcpSimOpen(t *testing.T, l *lab.Lab, self string, filt string, g *labtest.Gate, port int) {
	pubA, pubB := fmt.Sprintf("%s:%d", lab.WANAddr, port), fmt.Sprintf("%s:%d", lab.WANAddr, port+1)
	rstA := dropRSTs(t, l, lab.Lan1, port, port+1)
	rstB := dropRSTs(t, l, lab.Lan2, port+1, port)
	ra, rb := runPair(t, l, self,
		peerArgs{Mode: "tcp", Local: port, Peer: pubB},
		peerArgs{Mode: "tcp", Local: port + 1, Peer: pubA})
	na, nb := rstA(), rstB()
	t.Logf("RSTs held back: lan1 %d, lan2 %d", na, nb)
	if filt != "endpoint-independent" && na+nb != 0 {
		// The hairpin held the first SYN: neither kernel saw a SYN it
		// was not expecting.
		t.Errorf("under %s filtering lan1 and lan2 answered %d and %d SYNs with RST: passgate did not hold the first", filt, na, nb)
	}
	if ra.Mapped != pubA || rb.Mapped != pubB {
		t.Errorf("TCP mappings %s, %s: want %s, %s", ra.Mapped, rb.Mapped, pubA, pubB)
	}
	if ra.From != pubB || rb.From != pubA {
		t.Errorf("lan1 connected to %q, lan2 to %q: want %s, %s", ra.From, rb.From, pubB, pubA)
	}
	if ra.Got != "hello from "+lab.LAN2 || rb.Got != "hello from "+lab.LAN1 {
		t.Errorf("lines %q, %q", ra.Got, rb.Got)
	}
	// One hairpin flow carried the connection, both ways.
	flows, err := g.Flows(context.Background())
	must(t, err)
	n := 0
	for _, f := range flows {
		if f.Origin == "hairpin" && f.Proto == "tcp" && (f.Outside.String() == pubA || f.Outside.String() == pubB) {
			n++
			if f.PacketsIn == 0 || f.PacketsOut == 0 {
				t.Errorf("hairpin flow %+v: a direction carried nothing", f)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d hairpin TCP flows between %s and %s, want 1", n, pubA, pubB)
	}
}

// dropRSTs makes node drop, until the test ends, the RSTs it answers
// unexpected SYNs with (RST|ACK, sequence 0) from its port local to the
// public endpoint WANAddr:peer, and returns a function that reads how
// many it dropped.
func dropRSTs(t *testing.T, l *lab.Lab, node string, local, peer int) func() int {
	t.Helper()
	table := fmt.Sprintf("p2p_norst_%d", local)
	labtest.RunT(t, l, 10*time.Second, node, "nft", fmt.Sprintf(
		"add table ip %[1]s; add chain ip %[1]s out { type filter hook output priority 0; }; "+
			"add rule ip %[1]s out ip daddr %[2]s tcp sport %[3]d tcp dport %[4]d tcp flags & rst == rst tcp sequence 0 counter drop",
		table, lab.WANAddr, local, peer))
	t.Cleanup(func() { labtest.Run(l, 10*time.Second, node, "nft", "delete table ip "+table) })
	return func() int {
		out := labtest.RunT(t, l, 10*time.Second, node, "nft", "list table ip "+table)
		var n int
		if i := strings.Index(out, "counter packets "); i < 0 {
			t.Fatalf("%s: no counter in\n%s", node, out)
		} else if _, err := fmt.Sscanf(out[i:], "counter packets %d", &n); err != nil {
			t.Fatalf("%s: %v in\n%s", node, err, out)
		}
		return n
	}
}

// icmpError: two sockets of lan1 punch a hole between their public
// mappings; one closes, and the other's next datagram draws the kernel's
// port unreachable, which passgate must bring back to the sender, about
// the datagram as it sent it, for its connected socket to be refused.
func icmpError(t *testing.T, l *lab.Lab, self string, port int) {
	r, err := runPeer(l, self, lab.Lan1, peerArgs{Mode: "icmp", Local: port}, 60*time.Second)
	must(t, err)
	if r.Got != "refused" {
		t.Errorf("after the peer socket closed: %q, want the port unreachable as ECONNREFUSED", r.Got)
	}
}

// TestPeer is the peer itself, when this binary runs in a lab host with
// $P2P_PEER set; otherwise it does nothing.
func TestPeer(t *testing.T) {
	spec := os.Getenv(peerEnv)
	if spec == "" {
		return
	}
	var a peerArgs
	var r peerResult
	err := json.Unmarshal([]byte(spec), &a)
	if err == nil {
		switch a.Mode {
		case "discover":
			r, err = discover()
		case "punch":
			r, err = punch(a)
		case "tcp":
			r, err = tcpOpen(a)
		case "icmp":
			r, err = icmpRefused(a)
		case "echo500":
			err = echo500()
		case "send500":
			r, err = send500(a)
		default:
			err = fmt.Errorf("unknown mode %q", a.Mode)
		}
	}
	if err != nil {
		r.Err = err.Error()
	}
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
}

var server = netip.AddrPortFrom(netip.MustParseAddr(lab.Srv1), stunPort)

// binding sends a Binding request (with CHANGE-REQUEST flags when
// change is not 0) from c to dst and waits for its answer up to d.
func binding(c *net.UDPConn, dst netip.AddrPort, change uint32, d time.Duration) (*stun.Message, netip.AddrPort, error) {
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if change != 0 {
		setters = append(setters, stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, byte(change)}})
	}
	req, err := stun.Build(setters...)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	deadline := time.Now().Add(d)
	buf := make([]byte, 1500)
	for try := 0; time.Now().Before(deadline); try++ {
		if _, err := c.WriteToUDPAddrPort(req.Raw, dst); err != nil {
			return nil, netip.AddrPort{}, err
		}
		c.SetReadDeadline(minTime(deadline, time.Now().Add(300*time.Millisecond)))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // resend
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil || m.TransactionID != req.TransactionID {
				continue
			}
			return m, from, nil
		}
	}
	return nil, netip.AddrPort{}, fmt.Errorf("no answer from %v", dst)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func mapped(m *stun.Message) (string, error) {
	var x stun.XORMappedAddress
	if err := x.GetFrom(m); err != nil {
		return "", err
	}
	return x.String(), nil
}

// discover is RFC 5780 section 4.3 (mapping), 4.4 (filtering) and the
// self-probe.
func discover() (peerResult, error) {
	var r peerResult
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return r, err
	}
	defer c.Close()
	m, _, err := binding(c, server, 0, 3*time.Second)
	if err != nil {
		return r, fmt.Errorf("test I: %w", err)
	}
	if r.Mapped, err = mapped(m); err != nil {
		return r, err
	}
	var other stun.OtherAddress
	if err := other.GetFrom(m); err != nil {
		return r, fmt.Errorf("no OTHER-ADDRESS: %w", err)
	}
	otherIP, _ := netip.AddrFromSlice(other.IP.To4())
	// Mapping: test II to the other address, the first port; test III to
	// the other address and port.
	m2, _, err := binding(c, netip.AddrPortFrom(otherIP, stunPort), 0, 3*time.Second)
	if err != nil {
		return r, fmt.Errorf("mapping test II: %w", err)
	}
	x2, _ := mapped(m2)
	r.Mapping = "endpoint-independent"
	if x2 != r.Mapped {
		m3, _, err := binding(c, netip.AddrPortFrom(otherIP, uint16(other.Port)), 0, 3*time.Second)
		if err != nil {
			return r, fmt.Errorf("mapping test III: %w", err)
		}
		r.Mapping = "address-and-port-dependent"
		if x3, _ := mapped(m3); x3 == x2 {
			r.Mapping = "address-dependent"
		}
	}
	// Self-probe: the same socket to its own mapping.
	pub, err := netip.ParseAddrPort(r.Mapped)
	if err != nil {
		return r, err
	}
	if _, err := c.WriteToUDPAddrPort([]byte("self-probe"), pub); err != nil {
		return r, err
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if string(buf[:n]) == "self-probe" {
			r.SelfFrom = from.String()
			break
		}
	}
	// Filtering, on a fresh mapping: test II asks for the answer from the
	// other address and port, test III from the other port.
	f, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return r, err
	}
	defer f.Close()
	if _, _, err := binding(f, server, 0, 3*time.Second); err != nil {
		return r, fmt.Errorf("filtering test I: %w", err)
	}
	r.Filtering = "endpoint-independent"
	if _, _, err := binding(f, server, 0x06, 2*time.Second); err != nil {
		r.Filtering = "address-dependent"
		if _, _, err := binding(f, server, 0x02, 2*time.Second); err != nil {
			r.Filtering = "address-and-port-dependent"
		}
	}
	return r, nil
}

// punch learns its mapping, then sends to the peer's public endpoint
// every 50 ms until it has heard the peer three times (and a little
// more, so the peer hears it too).
func punch(a peerArgs) (peerResult, error) {
	var r peerResult
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: a.Local})
	if err != nil {
		return r, err
	}
	defer c.Close()
	m, _, err := binding(c, server, 0, 3*time.Second)
	if err != nil {
		return r, err
	}
	if r.Mapped, err = mapped(m); err != nil {
		return r, err
	}
	peer, err := netip.ParseAddrPort(a.Peer)
	if err != nil {
		return r, err
	}
	me := localAddr()
	buf := make([]byte, 1500)
	end := time.Now().Add(10 * time.Second)
	var heard time.Time
	for seq := 0; time.Now().Before(end); seq++ {
		if !heard.IsZero() && time.Since(heard) > time.Second {
			break
		}
		if _, err := c.WriteToUDPAddrPort(fmt.Appendf(nil, "punch from %s seq %d", me, seq), peer); err != nil {
			return r, err
		}
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if !bytes.HasPrefix(buf[:n], []byte("punch from")) {
				continue
			}
			if r.Count == 0 {
				r.From, r.Got = from.String(), string(buf[:n])
			}
			r.Count++
			if r.Count == 3 {
				heard = time.Now()
			}
		}
	}
	if r.Count < 3 {
		return r, fmt.Errorf("heard the peer %d times (from %q)", r.Count, r.From)
	}
	return r, nil
}

// localAddr is the address of the host's eth0.
func localAddr() string {
	c, err := net.Dial("udp4", server.String())
	if err != nil {
		return "?"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		if serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		}
	})
	return errors.Join(err, serr)
}

// tcpOpen learns its TCP mapping with a Binding over TCP from its port,
// keeps that connection, then connects from the same port to the peer's
// public endpoint until the simultaneous open succeeds, and trades a
// line with it.
func tcpOpen(a peerArgs) (peerResult, error) {
	var r peerResult
	d := net.Dialer{LocalAddr: &net.TCPAddr{Port: a.Local}, Control: reuse, Timeout: 3 * time.Second}
	s, err := d.Dial("tcp4", server.String())
	if err != nil {
		return r, err
	}
	defer s.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if _, err := s.Write(req.Raw); err != nil {
		return r, err
	}
	s.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	n, err := s.Read(buf)
	if err != nil {
		return r, fmt.Errorf("TCP binding: %w", err)
	}
	m := &stun.Message{Raw: buf[:n]}
	if err := m.Decode(); err != nil {
		return r, err
	}
	if r.Mapped, err = mapped(m); err != nil {
		return r, err
	}
	// One connect: the other's SYN meets it in SYN-SENT (tcpSimOpen).
	d.Timeout = 20 * time.Second
	conn, err := d.Dial("tcp4", a.Peer)
	if err != nil {
		return r, fmt.Errorf("simultaneous open to %s: %w", a.Peer, err)
	}
	defer conn.Close()
	r.From = conn.RemoteAddr().String()
	fmt.Fprintf(conn, "hello from %s\n", localAddr())
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return r, fmt.Errorf("reading the peer's line: %w", err)
	}
	r.Got = strings.TrimSpace(line)
	time.Sleep(500 * time.Millisecond) // let the peer read ours
	return r, nil
}

// echo500 answers every datagram on port 500 with what it got and whom
// from, until it is stopped.
func echo500() error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 500})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("ready")
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		c.WriteToUDPAddrPort(fmt.Appendf(nil, "echo %s seen from %s", buf[:n], from), from)
	}
}

// send500 sends a datagram that is no IKE (byte 17 is no IKE version)
// from port 500 and reports the answer.
func send500(a peerArgs) (peerResult, error) {
	var r peerResult
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 500})
	if err != nil {
		return r, err
	}
	defer c.Close()
	dst, err := netip.ParseAddrPort(a.Peer)
	if err != nil {
		return r, err
	}
	msg := "NOT-IKE from " + localAddr()
	buf := make([]byte, 1500)
	for try := 0; try < 10; try++ {
		if _, err := c.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
			return r, err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err == nil {
			r.From, r.Got = from.String(), string(buf[:n])
			return r, nil
		}
	}
	return r, fmt.Errorf("no answer from %s", dst)
}

// icmpRefused: sockets on ports a.Local and a.Local+1 learn their
// mappings, punch (the second sends first, so that under any filtering
// the first's packet opens the flow), then the second closes and the
// first, connected to the second's mapping, sends again and reads.
func icmpRefused(a peerArgs) (peerResult, error) {
	var r peerResult
	s2, err := net.ListenUDP("udp4", &net.UDPAddr{Port: a.Local + 1})
	if err != nil {
		return r, err
	}
	defer s2.Close()
	m2, _, err := binding(s2, server, 0, 3*time.Second)
	if err != nil {
		return r, err
	}
	pub2s, _ := mapped(m2)
	pub2, err := netip.ParseAddrPort(pub2s)
	if err != nil {
		return r, err
	}
	s1, err := net.DialUDP("udp4", &net.UDPAddr{Port: a.Local}, net.UDPAddrFromAddrPort(pub2))
	if err != nil {
		return r, err
	}
	defer s1.Close()
	// s1, connected to pub2, gets its mapping from its first datagram;
	// s2 learns it from what arrives.
	buf := make([]byte, 1500)
	var pub1 netip.AddrPort
	for try := 0; try < 20 && !pub1.IsValid(); try++ {
		s1.Write([]byte("hello"))
		s2.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, from, err := s2.ReadFromUDPAddrPort(buf); err == nil {
			pub1 = from
		} else if !pub1.IsValid() {
			// Held: the second answers toward the first's mapping, which
			// keeps the LAN port.
			s2.WriteToUDPAddrPort([]byte("open"), netip.AddrPortFrom(pub2.Addr(), uint16(a.Local)))
		}
	}
	if !pub1.IsValid() {
		return r, fmt.Errorf("the sockets never reached each other")
	}
	r.Mapped, r.From = pub2.String(), pub1.String()
	for { // what s2 sent s1 while opening
		s1.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := s1.Read(buf); err != nil {
			break
		}
	}
	s2.Close()
	time.Sleep(200 * time.Millisecond)
	s1.Write([]byte("to a closed port"))
	s1.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = s1.Read(buf)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		r.Got = "refused"
	case err != nil:
		r.Got = err.Error()
	default:
		r.Got = "an answer"
	}
	return r, nil
}
