//go:build lab

package vpnlab

// Shared helpers of the PPTP and L2TP lab harnesses: packages, building the
// pppd stand-in and passgate, background processes ended by PID, a private
// /run per daemon, the stand-in's frame logs, a small pcap reader with PPTP,
// GRE and L2TP parsers, and a passgate starter. Every name carries the pptp
// prefix; the IPsec harness of the same package has its own.

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
	"passgate/lab/vpnpeer"
)

// pptpStubPkg is the pppd stand-in.
const pptpStubPkg = "passgate/lab/vpnlab/pppstub"

// pptpEnv is the working directory of one test: built binaries, configs,
// logs and captures, plus the lab. The PPTP ends (pptpd, pptp under the
// stand-in) and their frame logs are passgate/lab/vpnpeer's, which
// `passgate demo` uses too.
type pptpEnv struct {
	*vpnpeer.PPTPSetup

	procs labtest.Group
}

// The stand-in's frame logs and the PPTP ends, as vpnpeer has them.
type (
	pptpStub   = vpnpeer.Stub
	pptpClient = vpnpeer.PPTPClient
)

var (
	pptpTail         = vpnpeer.TailFile
	pptpParseStubLog = vpnpeer.ParseStubLog
	pptpCheckPair    = vpnpeer.CheckPair
	pptpServerFor    = vpnpeer.ServerFor
	pptpWaitFrames   = vpnpeer.WaitFrames
	pptpDescribe     = vpnpeer.Describe
)

// pptpNewEnv builds the stand-in into dir and writes the run script. The
// lab is the caller's.
func pptpNewEnv(ctx context.Context, l *lab.Lab, dir string) (*pptpEnv, error) {
	stub := filepath.Join(dir, "pppstub")
	if err := labtest.GoBuild(ctx, pptpStubPkg, stub); err != nil {
		return nil, err
	}
	e := &pptpEnv{}
	setup, err := vpnpeer.NewPPTPSetup(vpnPeerEnv(l, &e.procs), dir, stub)
	if err != nil {
		return nil, err
	}
	e.PPTPSetup = setup
	return e, nil
}

// Start runs name args... in node (via ip netns exec, which execs, so the
// PID is the program's own), with extra environment env, output to
// logName in the environment's directory. StopAll ends it.
func (e *pptpEnv) Start(node, logName string, env []string, name string, args ...string) (*labtest.Proc, error) {
	p, err := labtest.StartWith(e.Lab, node, labtest.Options{Env: env, LogFile: e.Path(logName)}, name, args...)
	if err != nil {
		return nil, err
	}
	return e.procs.Add(p), nil
}

// StartPrivate is vpnpeer's StartPrivate (a private /run, and with pppd
// set, the stand-in overlaid as /usr/sbin/pppd), as a labtest process.
func (e *pptpEnv) StartPrivate(node, logName string, pppd bool, env []string, name string, args ...string) (*labtest.Proc, error) {
	p, err := e.PPTPSetup.StartPrivate(node, logName, pppd, env, name, args...)
	if err != nil {
		return nil, err
	}
	return p.(*labtest.Proc), nil
}

// StopAll ends every process Start made, newest first.
func (e *pptpEnv) StopAll() { e.procs.StopAll() }

// --- packet captures ---

// pptpCapture is a tcpdump writing a pcap file in a lab node.
type pptpCapture struct {
	Path string
	proc *labtest.Proc
}

// StartCapture runs tcpdump on iface in node with a capture filter, and
// waits until it listens. -Z root keeps tcpdump from dropping to its own
// user, who could not write the test's directory; --immediate-mode and -U
// hand over and write every packet at once (TPACKET_V3 otherwise holds
// packets in a block until its timeout, and a stop loses them).
func (e *pptpEnv) StartCapture(ctx context.Context, node, iface, name, filter string) (*pptpCapture, error) {
	c := &pptpCapture{Path: e.Path(name + ".pcap")}
	p, err := e.Start(node, name+".tcpdump.log", nil, "tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root", "-s", "0", "-w", c.Path, filter)
	if err != nil {
		return nil, err
	}
	c.proc = p
	err = labtest.Poll(ctx, 10*time.Second, func() (bool, string) {
		if done, err := p.Ended(); done {
			return true, fmt.Sprintf("tcpdump exited: %v", err)
		}
		return strings.Contains(p.Output(), "listening on"), "tcpdump not listening yet: " + p.Output()
	})
	if done, _ := p.Ended(); done || err != nil {
		return nil, fmt.Errorf("tcpdump on %s %s: %v: %s", node, iface, err, p.Output())
	}
	return c, nil
}

// Packets stops the capture, after a moment for the last packets, and
// reads it.
func (c *pptpCapture) Packets() ([]pptpPacket, error) {
	time.Sleep(300 * time.Millisecond)
	c.proc.Stop()
	return pptpReadPcap(c.Path)
}

// pptpPacket is an IPv4 packet from a capture.
type pptpPacket struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16 // TCP and UDP
	Payload          []byte // above TCP or UDP; the whole IP payload otherwise
}

// pptpReadPcap reads the IPv4 packets of a classic pcap file with Ethernet
// link type. Fragments other than the first are skipped.
func pptpReadPcap(path string) ([]pptpPacket, error) {
	frames, err := labtest.PcapFrames(path)
	if err != nil {
		return nil, err
	}
	var pkts []pptpPacket
	for _, frame := range frames {
		if p, ok := pptpParseFrame(frame); ok {
			pkts = append(pkts, p)
		}
	}
	return pkts, nil
}

func pptpParseFrame(f []byte) (pptpPacket, bool) {
	var p pptpPacket
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return p, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ihl < 20 || total < ihl || total > len(ip) {
		return p, false
	}
	if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
		return p, false // not the first fragment
	}
	p.Src = netip.AddrFrom4([4]byte(ip[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
	p.Proto = ip[9]
	body := ip[ihl:total]
	switch p.Proto {
	case 6:
		if len(body) < 20 {
			return p, false
		}
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(body), binary.BigEndian.Uint16(body[2:])
		doff := int(body[12]>>4) * 4
		if doff < 20 || doff > len(body) {
			return p, false
		}
		p.Payload = body[doff:]
	case 17:
		if len(body) < 8 {
			return p, false
		}
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(body), binary.BigEndian.Uint16(body[2:])
		p.Payload = body[8:]
	default:
		p.Payload = body
	}
	return p, true
}

// PPTP control message types (RFC 2637 section 2).
const (
	pptpOCRQ = 7 // Outgoing-Call-Request
	pptpOCRP = 8 // Outgoing-Call-Reply
)

// pptpCtrl is one PPTP control message seen in a capture.
type pptpCtrl struct {
	Src, Dst   netip.AddrPort
	Type       uint16
	CallID     uint16 // OCRQ, OCRP: the sender's call id
	PeerCallID uint16 // OCRP: the requester's call id
}

// pptpControlMessages parses the PPTP control messages in TCP payloads to
// or from port 1723 (several per segment; a message split over segments is
// skipped, which the lab's small messages never are).
func pptpControlMessages(pkts []pptpPacket) []pptpCtrl {
	var out []pptpCtrl
	for _, p := range pkts {
		if p.Proto != 6 || (p.SrcPort != 1723 && p.DstPort != 1723) {
			continue
		}
		b := p.Payload
		for len(b) >= 12 {
			n := int(binary.BigEndian.Uint16(b))
			if n < 12 || n > len(b) || binary.BigEndian.Uint32(b[4:]) != 0x1a2b3c4d {
				break
			}
			m := pptpCtrl{
				Src:  netip.AddrPortFrom(p.Src, p.SrcPort),
				Dst:  netip.AddrPortFrom(p.Dst, p.DstPort),
				Type: binary.BigEndian.Uint16(b[8:]),
			}
			if (m.Type == pptpOCRQ || m.Type == pptpOCRP) && n >= 16 {
				m.CallID = binary.BigEndian.Uint16(b[12:])
				if m.Type == pptpOCRP {
					m.PeerCallID = binary.BigEndian.Uint16(b[14:])
				}
			}
			out = append(out, m)
			b = b[n:]
		}
	}
	return out
}

// pptpGRE is one enhanced GRE (version 1, PPP) packet.
type pptpGRE struct {
	Src, Dst netip.Addr
	Key      uint16 // the call id of the receiver
	Data     bool   // carries a PPP payload (not just an acknowledgement)
}

// pptpGREPackets parses enhanced GRE (RFC 2637 section 4.1).
func pptpGREPackets(pkts []pptpPacket) []pptpGRE {
	var out []pptpGRE
	for _, p := range pkts {
		b := p.Payload
		if p.Proto != 47 || len(b) < 8 || b[1]&0x07 != 1 || binary.BigEndian.Uint16(b[2:]) != 0x880b {
			continue
		}
		out = append(out, pptpGRE{
			Src: p.Src, Dst: p.Dst,
			Key:  binary.BigEndian.Uint16(b[6:]),
			Data: binary.BigEndian.Uint16(b[4:]) > 0,
		})
	}
	return out
}

// pptpCall is one call as a capture shows it: the OCRQ's call id and the
// OCRP's, with the GRE keys seen each way.
type pptpCall struct {
	Client, Server   netip.Addr
	ClientCallID     uint16 // from the OCRQ (the client's id, as this capture sees it)
	ServerCallID     uint16 // from the OCRP
	ToClient, ToServ int    // GRE data packets with the matching key each way
}

// pptpCalls pairs OCRQ and OCRP in a capture by the OCRP's peer call id
// and counts the GRE data each way whose key is the receiver's call id.
func pptpCalls(pkts []pptpPacket) []pptpCall {
	var calls []pptpCall
	ctrl := pptpControlMessages(pkts)
	for _, rq := range ctrl {
		if rq.Type != pptpOCRQ {
			continue
		}
		for _, rp := range ctrl {
			if rp.Type == pptpOCRP && rp.Dst == rq.Src && rp.PeerCallID == rq.CallID {
				calls = append(calls, pptpCall{Client: rq.Src.Addr(), Server: rq.Dst.Addr(), ClientCallID: rq.CallID, ServerCallID: rp.CallID})
				break
			}
		}
	}
	for _, g := range pptpGREPackets(pkts) {
		for i := range calls {
			c := &calls[i]
			if !g.Data {
				continue
			}
			if g.Src == c.Server && g.Dst == c.Client && g.Key == c.ClientCallID {
				c.ToClient++
			}
			if g.Src == c.Client && g.Dst == c.Server && g.Key == c.ServerCallID {
				c.ToServ++
			}
		}
	}
	return calls
}

// l2tpMsg is one L2TP message (RFC 2661 section 3.1) seen in a capture.
type l2tpMsg struct {
	Src, Dst        netip.AddrPort
	Control         bool   // T bit: a control message (else data)
	TunnelID        uint16 // header: the receiver's tunnel id
	SessionID       uint16 // header: the receiver's session id
	Type            uint16 // control: Message Type AVP; 0 for a ZLB acknowledgement
	AssignedTunnel  uint16 // control: Assigned Tunnel ID AVP (SCCRQ, SCCRP), if any
	AssignedSession uint16 // control: Assigned Session ID AVP (ICRQ, ICRP), if any
	Hidden          bool   // control: some AVP was hidden
}

// L2TP message types used by the tests.
const (
	l2tpSCCRQ = 1
	l2tpSCCRP = 2
)

// l2tpMessages parses the L2TP messages on UDP 1701 (either end).
func l2tpMessages(pkts []pptpPacket) []l2tpMsg {
	var out []l2tpMsg
	for _, p := range pkts {
		if p.Proto != 17 || (p.SrcPort != 1701 && p.DstPort != 1701) {
			continue
		}
		b := p.Payload
		if len(b) < 6 || b[1]&0x0f != 2 {
			continue
		}
		flags := binary.BigEndian.Uint16(b)
		m := l2tpMsg{
			Src:     netip.AddrPortFrom(p.Src, p.SrcPort),
			Dst:     netip.AddrPortFrom(p.Dst, p.DstPort),
			Control: flags&0x8000 != 0,
		}
		off := 2
		if flags&0x4000 != 0 {
			off += 2
		}
		if len(b) < off+4 {
			continue
		}
		m.TunnelID, m.SessionID = binary.BigEndian.Uint16(b[off:]), binary.BigEndian.Uint16(b[off+2:])
		off += 4
		if !m.Control {
			out = append(out, m)
			continue
		}
		if flags&0x0800 != 0 {
			off += 4
		}
		if flags&0x0200 != 0 && len(b) >= off+2 {
			off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		}
		for off+6 <= len(b) {
			h := binary.BigEndian.Uint16(b[off:])
			n := int(h & 0x03ff)
			if n < 6 || off+n > len(b) {
				break
			}
			vendor, attr := binary.BigEndian.Uint16(b[off+2:]), binary.BigEndian.Uint16(b[off+4:])
			val := b[off+6 : off+n]
			if h&0x4000 != 0 {
				m.Hidden = true
			} else if vendor == 0 && len(val) >= 2 {
				switch attr {
				case 0:
					m.Type = binary.BigEndian.Uint16(val)
				case 9:
					m.AssignedTunnel = binary.BigEndian.Uint16(val)
				case 14:
					m.AssignedSession = binary.BigEndian.Uint16(val)
				}
			}
			off += n
		}
		out = append(out, m)
	}
	return out
}

// --- passgate ---

// pptpPassgate is passgate running in the lab's router namespace.
type pptpPassgate struct{ *labtest.Gate }

// StartPassgate writes config (a JSON object; "" means {}) to a file and
// runs passgate with it in the router namespace, on the lab's interfaces
// and addresses, then waits until its control socket answers. The name
// tells runs apart (its files are NAME.json, NAME.sock, NAME.log).
func (e *pptpEnv) StartPassgate(ctx context.Context, name, config string) (*pptpPassgate, error) {
	bin, err := labtest.PassgateBin()
	if err != nil {
		return nil, err
	}
	if config == "" {
		config = "{}"
	}
	os.Remove(e.Path(name + ".sock"))
	g, err := labtest.StartGate(ctx, e.Lab, labtest.GateOptions{
		Bin: bin, Dir: e.Dir, Name: name, Config: config, LogFile: true,
		Args: []string{
			"--lan", lab.LANIface, "--lan-addr", lab.LANCIDR,
			"--wan", lab.WANIface, "--wan-addr", lab.WANCIDR,
			"--log-level", "debug",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passgate %s: %w", name, err)
	}
	e.procs.Add(g.Proc)
	return &pptpPassgate{g}, nil
}

// LogPath is the file passgate's output goes to.
func (g *pptpPassgate) LogPath() string { return g.Proc.LogFile }

// Status is `passgate status --json`.
func (g *pptpPassgate) Status(ctx context.Context) (*control.Status, error) {
	var st control.Status
	return &st, g.CLIJSON(ctx, &st, "status")
}

// Flows is `passgate conntrack --json`.
func (g *pptpPassgate) Flows(ctx context.Context) ([]control.Flow, error) {
	var flows []control.Flow
	return flows, g.CLIJSON(ctx, &flows, "conntrack")
}

// pptpGREFlows lists the GRE flows whose inside address is host.
func pptpGREFlows(flows []control.Flow, host netip.Addr) []control.Flow {
	var found []control.Flow
	for _, f := range flows {
		if f.Inside.Addr() == host && f.Proto == "gre" {
			found = append(found, f)
		}
	}
	return found
}

// pptpDrops lists the engine's non-zero drop counters whose name contains
// every one of words, as "name=count", sorted.
func pptpDrops(st *control.Status, words ...string) []string {
	var out []string
	for name, v := range st.NAT.Drops {
		ok := v != 0
		for _, w := range words {
			ok = ok && strings.Contains(name, w)
		}
		if ok {
			out = append(out, fmt.Sprintf("%s=%d", name, v))
		}
	}
	sort.Strings(out)
	return out
}

// pptpFlowsText renders flows one per line.
func pptpFlowsText(flows []control.Flow) string {
	var b strings.Builder
	for _, f := range flows {
		fmt.Fprintf(&b, "%+v\n", f)
	}
	return b.String()
}

// pptpLogLines returns the lines of text matching re.
func pptpLogLines(text string, re *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}
