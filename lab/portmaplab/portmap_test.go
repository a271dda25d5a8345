//go:build lab

package portmaplab

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
	"passgate/portmap/pcp"
)

// One lab (prefix pgpm) and one passgate daemon with PCP, NAT-PMP and UPnP
// on and a static forward of TCP 8080 to lan1:80. lan1 and lan2 run a
// small server (the test binary, "serve") that answers "lanN tcp" on TCP
// and "lanN udp" on UDP; srv1 on the WAN connects to the public ports.

const prefix = "pgpm"

// self is the test binary, which the LAN hosts run as their servers.
var self string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper(os.Args[1:]))
	}
	var err error
	if self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	labtest.Main(m)
}

func config(sock, wan string) string {
	return fmt.Sprintf(`{
  "lan": {"interface": %q, "address": %q},
  "wan": {"interface": %q, "address": %q},
  "port_forwards": [{"name": "web", "proto": "tcp", "outside_port": 8080, "host": %q, "inside_port": 80}],
  "port_mapping": {"pcp": true, "natpmp": true, "upnp": true, "max_lease": "2h", "max_per_host": 8},
  "admin": {"enabled": false},
  "control_socket": %q
}
`, lab.LANIface, lab.LANCIDR, lab.WANIface, wan, lab.LAN1, sock)
}

type env struct {
	t   *testing.T
	l   *lab.Lab
	dir string
	g   *labtest.Gate
	wan string // wan.address; lab.WANCIDR if empty
}

// run runs a command in node (15 s at most) and returns its output.
func (e *env) run(node string, args ...string) (string, error) {
	return labtest.Run(e.l, 15*time.Second, node, args[0], args[1:]...)
}

// upnpc runs upnpc in node. -i: miniupnpc calls an IGD whose public
// address is reserved (the lab's 203.0.113.1 is TEST-NET-3) "not
// connected" and stops without it.
func (e *env) upnpc(node string, args ...string) (string, error) {
	return e.run(node, append([]string{"upnpc", "-i"}, args...)...)
}

// help runs the test binary as a helper in node.
func (e *env) help(node, mode string, args ...string) (string, error) {
	return e.run(node, append([]string{"env", helperEnv + "=" + mode, self}, args...)...)
}

// reaches says whether srv1 gets through the public port to a LAN
// server, and returns what it answered.
func (e *env) reaches(proto string, port int) (string, bool) {
	addr := fmt.Sprintf("%s:%d", lab.WANAddr, port)
	if proto == "tcp" {
		out, err := e.help(lab.Server1, "tcpget", addr)
		return strings.TrimSpace(out), err == nil
	}
	out, err := e.help(lab.Server1, "udpx", addr, hex.EncodeToString([]byte("hello")), "1500")
	if err != nil {
		return out, false
	}
	b, _ := hex.DecodeString(strings.TrimSpace(out))
	return string(b), true
}

func (e *env) mustReach(proto string, port int, want string) {
	e.t.Helper()
	if got, ok := e.reaches(proto, port); !ok || got != want {
		e.t.Fatalf("srv1 to %s %s:%d: %q (ok %v), want %q", proto, lab.WANAddr, port, got, ok, want)
	}
}

func (e *env) mustNotReach(proto string, port int) {
	e.t.Helper()
	if got, ok := e.reaches(proto, port); ok {
		e.t.Fatalf("srv1 still reaches %s %s:%d: %q", proto, lab.WANAddr, port, got)
	}
}

func (e *env) mappings() control.Mappings {
	e.t.Helper()
	out, err := labtest.Run(e.l, 10*time.Second, lab.Router, e.g.Bin, "mappings", "--json", "--control", e.g.Sock)
	if err != nil {
		e.t.Fatalf("passgate mappings: %v\n%s", err, out)
	}
	var m control.Mappings
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		e.t.Fatalf("passgate mappings --json: %v\n%s", err, out)
	}
	return m
}

func (e *env) find(proto string, port uint16) (control.Mapping, bool) {
	for _, m := range e.mappings().Mappings {
		if m.Proto == proto && m.OutsidePort == port {
			return m, true
		}
	}
	return control.Mapping{}, false
}

func (e *env) start() {
	sock := filepath.Join(e.dir, "passgate.sock")
	wan := e.wan
	if wan == "" {
		wan = lab.WANCIDR
	}
	e.g = labtest.StartGateT(context.Background(), e.t, e.l, labtest.GateOptions{Bin: labtest.Passgate(e.t), Dir: e.dir, Config: config(sock, wan), Sock: sock})
}

func setup(t *testing.T) *env {
	labtest.Passgate(t) // built before the lab's clock starts
	e := &env{t: t, l: labtest.Up(t, prefix, 3*time.Minute), dir: t.TempDir()}
	os.Chmod(e.dir, 0o755)
	var g labtest.Group
	t.Cleanup(g.StopAll)
	for _, h := range []struct{ node, name string }{{lab.Lan1, "lan1"}, {lab.Lan2, "lan2"}} {
		p := g.Add(labtest.StartWithT(t, e.l, h.node, labtest.Options{Env: []string{helperEnv + "=serve"}}, self, h.name, "5000", "5001"))
		if err := p.WaitLine("serving", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	return e
}

// pcpMap is a PCP MAP request from client (to itself unless third
// names another host in a THIRD_PARTY option).
func pcpMap(client string, nonce byte, proto uint8, in, out uint16, life uint32, third string) []byte {
	var opts []pcp.Option
	if third != "" {
		a := netip.MustParseAddr(third).As16()
		opts = append(opts, pcp.Option{Code: pcp.OptThirdParty, Data: a[:]})
	}
	return pcp.AppendRequest(nil, pcp.OpMap, life, netip.MustParseAddr(client), pcp.MapData([12]byte{nonce}, proto, in, out, netip.Addr{}), opts...)
}

// pcpAsk sends a PCP request from node and parses the answer.
func (e *env) pcpAsk(node string, req []byte) pcp.Response {
	e.t.Helper()
	out, err := e.help(node, "udpx", lab.LANGateway+":5351", hex.EncodeToString(req), "2000")
	if err != nil {
		e.t.Fatalf("PCP from %s: %v\n%s", node, err, out)
	}
	b, _ := hex.DecodeString(strings.TrimSpace(out))
	r, err := pcp.ParseResponse(b)
	if err != nil {
		e.t.Fatalf("PCP answer % x: %v", b, err)
	}
	return r
}

func TestPortMapping(t *testing.T) {
	e := setup(t)
	// Before any mapping nothing reaches lan1's server from the WAN.
	e.mustNotReach("tcp", 40000)

	t.Run("upnpc", func(t *testing.T) {
		e.t = t
		out, err := e.upnpc(lab.Lan1, "-e", "lab tcp", "-a", lab.LAN1, "5000", "40000", "TCP", "600")
		if err != nil || !strings.Contains(out, "external "+lab.WANAddr+":40000 TCP is redirected to internal "+lab.LAN1+":5000") {
			t.Fatalf("upnpc -a TCP: %v\n%s", err, out)
		}
		if !strings.Contains(out, "ExternalIPAddress = "+lab.WANAddr) {
			t.Errorf("upnpc did not read the public address:\n%s", out)
		}
		out, err = e.upnpc(lab.Lan1, "-e", "lab udp", "-a", lab.LAN1, "5001", "40001", "UDP", "600")
		if err != nil || !strings.Contains(out, "is redirected to internal "+lab.LAN1+":5001") {
			t.Fatalf("upnpc -a UDP: %v\n%s", err, out)
		}
		e.mustReach("tcp", 40000, "lan1 tcp")
		e.mustReach("udp", 40001, "lan1 udp")
		// Hairpin: lan2 reaches the mapping through the public address.
		if out, err := e.help(lab.Lan2, "tcpget", lab.WANAddr+":40000"); err != nil || strings.TrimSpace(out) != "lan1 tcp" {
			t.Fatalf("hairpin from lan2: %v %q", err, out)
		}
		out, err = e.upnpc(lab.Lan1, "-l")
		if err != nil || !strings.Contains(out, "TCP 40000->"+lab.LAN1+":5000") || !strings.Contains(out, "UDP 40001->"+lab.LAN1+":5001") || !strings.Contains(out, "'lab tcp'") {
			t.Fatalf("upnpc -l: %v\n%s", err, out)
		}
		if m, ok := e.find("tcp", 40000); !ok || m.By != "upnp" || m.Host != netip.MustParseAddr(lab.LAN1) || m.InsidePort != 5000 || m.Description != "lab tcp" || m.LeaseLeftSec > 600 || m.LeaseLeftSec < 590 {
			t.Fatalf("passgate mappings: %+v %v", m, ok)
		}
		// lan2 asking for a mapping to lan1: 606 Action not authorized.
		out, _ = e.upnpc(lab.Lan2, "-a", lab.LAN1, "22", "40022", "TCP", "600")
		if !strings.Contains(out, "606") {
			t.Fatalf("lan2 for lan1: want 606\n%s", out)
		}
		// Over the static forward: 718 (IGD:1) or 729 (IGD:2).
		out, _ = e.upnpc(lab.Lan2, "-a", lab.LAN2, "80", "8080", "TCP", "600")
		if !strings.Contains(out, "718") && !strings.Contains(out, "729") {
			t.Fatalf("over the static forward: want 718 or 729\n%s", out)
		}
		if _, ok := e.find("tcp", 40022); ok {
			t.Fatal("a refused mapping is listed")
		}
		for _, d := range [][]string{{"40000", "TCP"}, {"40001", "UDP"}} {
			if out, err := e.upnpc(lab.Lan1, "-d", d[0], d[1]); err != nil || !strings.Contains(out, "UPNP_DeletePortMapping() returned : 0") {
				t.Fatalf("upnpc -d %v: %v\n%s", d, err, out)
			}
		}
		e.mustNotReach("tcp", 40000)
		e.mustNotReach("udp", 40001)
	})

	t.Run("natpmpc", func(t *testing.T) {
		e.t = t
		out, err := e.run(lab.Lan1, "natpmpc", "-g", lab.LANGateway)
		if err != nil || !strings.Contains(out, "Public IP address : "+lab.WANAddr) {
			t.Fatalf("natpmpc: %v\n%s", err, out)
		}
		out, err = e.run(lab.Lan1, "natpmpc", "-g", lab.LANGateway, "-a", "40002", "5000", "tcp", "3600")
		if err != nil || !strings.Contains(out, "Mapped public port 40002 protocol TCP to local port 5000 liftime 3600") {
			t.Fatalf("natpmpc -a: %v\n%s", err, out)
		}
		e.mustReach("tcp", 40002, "lan1 tcp")
		// A short lease: reached, then not once it expired.
		out, err = e.run(lab.Lan2, "natpmpc", "-g", lab.LANGateway, "-a", "40003", "5001", "udp", "3")
		if err != nil || !strings.Contains(out, "Mapped public port 40003 protocol UDP to local port 5001 liftime 3") {
			t.Fatalf("natpmpc -a short: %v\n%s", err, out)
		}
		e.mustReach("udp", 40003, "lan2 udp")
		time.Sleep(4500 * time.Millisecond)
		e.mustNotReach("udp", 40003)
		if _, ok := e.find("udp", 40003); ok {
			t.Fatal("expired mapping still listed")
		}
		// Deletion: lifetime 0.
		if out, err := e.run(lab.Lan1, "natpmpc", "-g", lab.LANGateway, "-a", "40002", "5000", "tcp", "0"); err != nil {
			t.Fatalf("natpmpc delete: %v\n%s", err, out)
		}
		e.mustNotReach("tcp", 40002)
	})

	t.Run("pcp", func(t *testing.T) {
		e.t = t
		r := e.pcpAsk(lab.Lan1, pcpMap(lab.LAN1, 1, 6, 5000, 40004, 600, ""))
		if r.Result != pcp.Success || r.External != 40004 || r.ExternalIP != netip.MustParseAddr(lab.WANAddr) || r.Lifetime != 600 {
			t.Fatalf("PCP MAP: %+v", r)
		}
		e.mustReach("tcp", 40004, "lan1 tcp")
		// upnpc on the same host has no nonce: it can neither take the
		// mapping over (718, or 729 on IGD:2) nor delete it (606).
		out, _ := e.upnpc(lab.Lan1, "-e", "taken", "-a", lab.LAN1, "5001", "40004", "TCP", "600")
		if !strings.Contains(out, "718") && !strings.Contains(out, "729") {
			t.Fatalf("upnpc over the PCP mapping: want 718 or 729\n%s", out)
		}
		out, _ = e.upnpc(lab.Lan1, "-d", "40004", "TCP")
		if !strings.Contains(out, "606") {
			t.Fatalf("upnpc -d of the PCP mapping: want 606\n%s", out)
		}
		if m, ok := e.find("tcp", 40004); !ok || m.By != "pcp" || m.InsidePort != 5000 || m.LeaseLeftSec < 590 {
			t.Fatalf("the PCP mapping after upnpc: %+v %v", m, ok)
		}
		e.mustReach("tcp", 40004, "lan1 tcp")
		// lan2 for lan1: the client field must be the sender (ADDRESS_MISMATCH)
		// and THIRD_PARTY is refused (NOT_AUTHORIZED).
		if r := e.pcpAsk(lab.Lan2, pcpMap(lab.LAN1, 2, 6, 22, 40022, 600, "")); r.Result != pcp.AddressMismatch {
			t.Fatalf("lan2 naming lan1: %+v", r)
		}
		if r := e.pcpAsk(lab.Lan2, pcpMap(lab.LAN2, 2, 6, 22, 40022, 600, lab.LAN1)); r.Result != pcp.NotAuthorized {
			t.Fatalf("lan2 third party for lan1: %+v", r)
		}
		// The static forward's port with PREFER_FAILURE: CANNOT_PROVIDE_EXTERNAL.
		req := pcp.AppendRequest(nil, pcp.OpMap, 600, netip.MustParseAddr(lab.LAN2), pcp.MapData([12]byte{2}, 6, 80, 8080, netip.Addr{}), pcp.Option{Code: pcp.OptPreferFailure})
		if r := e.pcpAsk(lab.Lan2, req); r.Result != pcp.CannotProvideExternal {
			t.Fatalf("over the static forward: %+v", r)
		}
		if r := e.pcpAsk(lab.Lan1, pcpMap(lab.LAN1, 1, 6, 5000, 0, 0, "")); r.Result != pcp.Success || r.Lifetime != 0 {
			t.Fatalf("PCP delete: %+v", r)
		}
		e.mustNotReach("tcp", 40004)
	})

	t.Run("nothing on the WAN", func(t *testing.T) {
		e.t = t
		for _, probe := range []struct{ addr, msg string }{
			{lab.WANAddr + ":5351", "0000"}, // NAT-PMP public address request
			{lab.WANAddr + ":5351", hex.EncodeToString(pcpMap(lab.Srv1, 1, 6, 1, 1, 60, ""))},
			{lab.WANAddr + ":1900", hex.EncodeToString([]byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n"))},
			{"239.255.255.250:1900", hex.EncodeToString([]byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n"))},
		} {
			if out, err := e.help(lab.Server1, "udpx", probe.addr, probe.msg, "1500"); err == nil {
				t.Errorf("srv1 got an answer from %s: %s", probe.addr, out)
			}
		}
		if out, err := e.help(lab.Server1, "tcpget", lab.WANAddr+":5431"); err == nil {
			t.Errorf("srv1 reached the UPnP HTTP port: %s", out)
		}
	})

	t.Run("events", func(t *testing.T) {
		e.t = t
		evs, err := e.g.Events(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, ev := range evs {
			kinds[ev.Kind]++
		}
		if kinds["mapping_made"] == 0 || kinds["mapping_refused"] == 0 || kinds["mapping_deleted"] == 0 || kinds["mapping_expired"] == 0 {
			t.Fatalf("event kinds %v", kinds)
		}
		if !slices.ContainsFunc(evs, func(ev control.Event) bool {
			return ev.Kind == "mapping_refused" && strings.Contains(ev.Message, "upnp delete of pcp mapping TCP outside port 40004")
		}) {
			t.Errorf("no event for upnpc's refused delete of the PCP mapping: %+v", evs)
		}
	})

	t.Run("restart", func(t *testing.T) {
		e.t = t
		r := e.pcpAsk(lab.Lan1, pcpMap(lab.LAN1, 3, 17, 5001, 40005, 3600, ""))
		if r.Result != pcp.Success || r.External != 40005 {
			t.Fatalf("PCP MAP: %+v", r)
		}
		e.mustReach("udp", 40005, "lan1 udp")
		before, _ := e.find("udp", 40005)
		epochBefore, askedBefore := r.Epoch, time.Now()
		// lan3 listens for the announcements on 224.0.0.1:5350.
		lis := labtest.StartWithT(t, e.l, lab.Lan3, labtest.Options{Env: []string{helperEnv + "=listen"}}, self, "5350", "20000")
		defer lis.Stop()
		if err := lis.WaitLine("listening", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		// And for SSDP's NOTIFY on 239.255.255.250:1900.
		ssdp := labtest.StartWithT(t, e.l, lab.Lan3, labtest.Options{Env: []string{helperEnv + "=listen"}}, self, "1900", "20000", "239.255.255.250")
		defer ssdp.Stop()
		if err := ssdp.WaitLine("listening", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		e.g.Stop()
		byebye := hex.EncodeToString([]byte("NTS: ssdp:byebye"))
		if err := ssdp.WaitFor(5*time.Second, "SSDP byebye", func() bool { return strings.Contains(ssdp.Output(), byebye) }); err != nil {
			t.Fatalf("%v\n%s", err, ssdp.Output())
		}
		e.start()
		alive := hex.EncodeToString([]byte("NTS: ssdp:alive"))
		if err := ssdp.WaitFor(5*time.Second, "SSDP alive", func() bool { return strings.Contains(ssdp.Output(), alive) }); err != nil {
			t.Fatalf("%v\n%s", err, ssdp.Output())
		}
		after, ok := e.find("udp", 40005)
		if !ok || after.Host != before.Host || after.InsidePort != 5001 || !after.Expires.Equal(before.Expires) || after.By != "pcp" {
			t.Fatalf("after the restart: %+v %v, before %+v", after, ok, before)
		}
		e.mustReach("udp", 40005, "lan1 udp")
		// The leases survived, so the epoch goes on (RFC 6887 8.5): the
		// refresh's epoch has grown by the time passed, not restarted at
		// 0 (which would tell the client its mappings were lost).
		r = e.pcpAsk(lab.Lan1, pcpMap(lab.LAN1, 3, 17, 5001, 40005, 3600, ""))
		if grown := int64(r.Epoch) - int64(epochBefore); r.Result != pcp.Success || grown+2 < int64(time.Since(askedBefore)/time.Second) {
			t.Fatalf("after the restart epoch %d, before %d, %s ago: %+v", r.Epoch, epochBefore, time.Since(askedBefore), r)
		}
		// The announcements: NAT-PMP's public address (opcode 128) and PCP's
		// ANNOUNCE (version 2, opcode 0x80), from the router.
		err := lis.WaitFor(5*time.Second, "announcements", func() bool {
			out := lis.Output()
			return strings.Contains(out, lab.LANGateway+":5351 0080") && strings.Contains(out, lab.LANGateway+":5351 0280")
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, lis.Output())
		}
		var wan [4]byte
		copy(wan[:], netip.MustParseAddr(lab.WANAddr).AsSlice())
		if !strings.Contains(lis.Output(), hex.EncodeToString(wan[:])) {
			t.Errorf("NAT-PMP announcement without the public address:\n%s", lis.Output())
		}
	})

	// Restarted with another public address (wan.address changed, as an
	// ISP's new lease would): the leases stay, but they now point at an
	// address the clients no longer know, so the epoch starts again at 0
	// (RFC 6887 8.5, RFC 6886 3.6) and the announcements on the LAN carry
	// the new address; the clients then map again (before, the epoch
	// went on from the old address's).
	t.Run("new public address", func(t *testing.T) {
		e.t = t
		e.start() // the last subtest's passgate ended with it
		r := e.pcpAsk(lab.Lan1, pcpMap(lab.LAN1, 3, 17, 5001, 40005, 3600, ""))
		if r.Result != pcp.Success || r.Epoch < 5 {
			t.Fatalf("PCP MAP before: %+v (the test needs an epoch of 5 s at least)", r)
		}
		lis := labtest.StartWithT(t, e.l, lab.Lan3, labtest.Options{Env: []string{helperEnv + "=listen"}}, self, "5350", "20000")
		defer lis.Stop()
		if err := lis.WaitLine("listening", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		e.g.Stop()
		e.wan = "203.0.113.2/24"
		e.start()
		want := hex.EncodeToString(netip.MustParseAddr("203.0.113.2").AsSlice())
		var got []string
		err := lis.WaitFor(5*time.Second, "NAT-PMP announcement of 203.0.113.2", func() bool {
			got = got[:0]
			for _, line := range strings.Split(lis.Output(), "\n") {
				if h, ok := strings.CutPrefix(line, lab.LANGateway+":5351 0080"); ok && len(h) == 20 && strings.HasSuffix(h, want) {
					got = append(got, h)
				}
			}
			return len(got) > 0
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, lis.Output())
		}
		b, _ := hex.DecodeString(got[0])
		if epoch := binary.BigEndian.Uint32(b[2:6]); epoch > 2 {
			t.Fatalf("NAT-PMP announcement of the new address: epoch %d (before the restart %d), want 0 (a new epoch)", epoch, r.Epoch)
		}
		if _, ok := e.find("udp", 40005); !ok {
			t.Fatal("the lease did not survive the restart")
		}
		if r2 := e.pcpAsk(lab.Lan1, pcpMap(lab.LAN1, 3, 17, 5001, 40005, 3600, "")); r2.Result != pcp.Success || r2.Epoch > 3 {
			t.Fatalf("PCP MAP after: %+v, want a new epoch", r2)
		}
	})

}
