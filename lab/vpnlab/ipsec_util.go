package vpnlab

// IPsec harness for the namespace lab: strongSwan (charon with the
// kernel-libipsec plugin, one instance per namespace), the crafted-packet
// tool ipsec_tool.py (raw ESP, IKE from port 500, AH, with scapy), and a
// starter for passgate in the router namespace. Everything here is named
// ipsec* because the package is shared with the PPTP and L2TP harnesses.

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// ipsecToolScript is ipsec_tool.py, written next to each test's files.
//
//go:embed ipsec_tool.py
var ipsecToolScript []byte

const (
	ipsecCharonPath  = "/usr/lib/ipsec/charon"
	ipsecSwanctlPath = "/usr/sbin/swanctl"
	ipsecPluginDir   = "/usr/lib/ipsec/plugins"

	// ipsecInnerServer is the address inside the tunnels at the server (on
	// its loopback); ipsecInnerNet the server side's traffic selector.
	ipsecInnerServer = "10.99.0.1"
	ipsecInnerNet    = "10.99.0.0/24"
	// ipsecPool hands each client its own virtual IP (10.99.1.1, .2, ...).
	ipsecPool = "10.99.1.0/24"

	ipsecPSK       = "0x7061737367617465206c61622070736b" // "passgate lab psk"
	ipsecServerID  = "srv1.passgate.lab"
	ipsecConnName  = "home"
	ipsecChildName = "net"

	// ipsecKeepAlive is charon's NAT-T keepalive interval (strongswan.conf
	// charon.keep_alive) unless a test asks for another; "0s" turns the
	// keepalives off.
	ipsecKeepAlive = "20s"

	// ipsecCharonLoad are the only plugins each charon loads. kernel-libipsec
	// does ESP in userspace over a TUN device (this kernel has no ESP
	// module); kernel-netlink still provides addresses and routes.
	ipsecCharonLoad = "random nonce openssl pem pkcs1 x509 pubkey kdf hmac sha1 sha2 aes gcm " +
		"kernel-libipsec kernel-netlink socket-default vici"
)

// ipsecFile is a file the harness needs and the Debian package holding it.
type ipsecFile struct{ Path, Package string }

var ipsecFiles = []ipsecFile{
	{ipsecCharonPath, "strongswan-charon"},
	{ipsecSwanctlPath, "strongswan-swanctl"},
	{ipsecPluginDir + "/libstrongswan-vici.so", "strongswan-swanctl"},
	{ipsecPluginDir + "/libstrongswan-socket-default.so", "strongswan-libcharon"},
	{ipsecPluginDir + "/libstrongswan-kernel-libipsec.so", "libcharon-extra-plugins"},
	{ipsecPluginDir + "/libstrongswan-kernel-netlink.so", "libstrongswan"},
	{ipsecPluginDir + "/libstrongswan-openssl.so", "libstrongswan-standard-plugins"},
	{ipsecPluginDir + "/libstrongswan-gcm.so", "libstrongswan-standard-plugins"},
	{"/usr/lib/python3/dist-packages/scapy/__init__.py", "python3-scapy"},
	{lab.Python, "python3"},
	{"/usr/bin/unshare", "util-linux"},
	{"/usr/bin/ping", "iputils-ping"},
	{"/usr/sbin/nft", "nftables"},
}

// ipsecMissingPackages lists the Debian packages of the absent files.
func ipsecMissingPackages() []string {
	seen := map[string]bool{}
	var pkgs []string
	for _, f := range ipsecFiles {
		if _, err := os.Stat(f.Path); err != nil && !seen[f.Package] {
			seen[f.Package] = true
			pkgs = append(pkgs, f.Package)
		}
	}
	return pkgs
}

// ipsecEnsurePackages installs, with apt-get, whatever the harness lacks.
// The lab runs as root on Debian, so tests install rather than skip.
func ipsecEnsurePackages(ctx context.Context) error {
	pkgs := ipsecMissingPackages()
	if len(pkgs) == 0 {
		return nil
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=120"}, args...)...)
		cmd.Env = env
		cmd.WaitDelay = 5 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, labtest.Tail(string(out), 2000))
		}
		return nil
	}
	if err := run("install", "-y", "--no-install-recommends", pkgs[0]); err != nil {
		// The package lists may be missing or stale: update once, retry all.
		if err := run("update"); err != nil {
			return err
		}
	}
	if err := run(append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...); err != nil {
		return err
	}
	if still := ipsecMissingPackages(); len(still) > 0 {
		return fmt.Errorf("ipsec lab: still missing after apt-get install: %v", still)
	}
	return nil
}

// ipsecWriteTool writes ipsec_tool.py into dir and returns its path.
func ipsecWriteTool(dir string) (string, error) {
	p := filepath.Join(dir, "ipsec_tool.py")
	return p, os.WriteFile(p, ipsecToolScript, 0o755)
}

// ipsecTempDir makes a short directory under /tmp: unix socket paths are
// limited to 108 bytes, and t.TempDir paths can be long.
func ipsecTempDir(tag string) (string, error) {
	d, err := os.MkdirTemp("", "pgipsec-"+tag+"-")
	if err != nil {
		return "", err
	}
	return d, os.Chmod(d, 0o755)
}

// ---------------------------------------------------------------- processes

// ipsecStartProc starts name args... in node with extra environment
// variables. ip netns exec, unshare and sh -c exec all replace themselves,
// so the PID labtest ends it by is the program's own. The process outlives
// ctx: end it with Stop.
func ipsecStartProc(l *lab.Lab, node string, env []string, name string, args ...string) (*labtest.Proc, error) {
	return labtest.StartWith(l, node, labtest.Options{Env: env}, name, args...)
}

// ---------------------------------------------------------------- strongSwan

// ipsecCharon is one charon daemon in one lab namespace, with its own
// strongswan.conf (STRONGSWAN_CONF), swanctl.conf, vici socket and a
// private /run.
type ipsecCharon struct {
	Node string
	Dir  string // its configuration, log and vici socket
	URI  string // unix://Dir/charon.vici
	proc *labtest.Proc
	l    *lab.Lab
}

// ipsecStrongswanConf is the whole strongswan.conf of one instance, with
// keepAlive as its NAT-T keepalive interval.
func ipsecStrongswanConf(dir, keepAlive string) string {
	return fmt.Sprintf(`# passgate IPsec lab: one charon per namespace
charon {
	load_modular = no
	load = %s
	port = 500
	port_nat_t = 4500
	# Fail fast when the NAT loses packets: ~8 s instead of minutes.
	retransmit_timeout = 1.0
	retransmit_base = 1.4
	retransmit_tries = 3
	keep_alive = %s
	install_routes = yes
	install_virtual_ip = yes
	plugins {
		vici {
			socket = unix://%s/charon.vici
		}
	}
	filelog {
		charon {
			path = %s/charon.log
			time_format = %%H:%%M:%%S
			flush_line = yes
			default = 1
			ike = 2
			net = 2
			esp = 1
		}
	}
	syslog {
		daemon {
			default = -1
		}
	}
}
swanctl {
	load = pem pkcs1 x509 pubkey openssl random nonce
}
`, ipsecCharonLoad, keepAlive, dir, dir)
}

// ipsecCharonScript runs inside `ip netns exec NS unshare -m`: a private
// tmpfs on /run (charon's pid file is /var/run/charon.pid, and /var/run is
// /run) so instances never collide, /dev/net/tun for libipsec, then exec
// charon so the PID stays the same.
const ipsecCharonScript = `set -e
if [ ! -c /dev/net/tun ]; then mkdir -p /dev/net; mknod -m 0666 /dev/net/tun c 10 200; fi
mount -t tmpfs -o mode=0755 pgipsec-run /run
exec ` + ipsecCharonPath

// ipsecStartCharon starts charon in node with the given swanctl.conf and
// NAT-T keepalive interval, waits for its vici socket and loads the
// configuration.
func ipsecStartCharon(ctx context.Context, l *lab.Lab, node, swanctlConf, keepAlive string) (*ipsecCharon, error) {
	dir, err := ipsecTempDir(node)
	if err != nil {
		return nil, err
	}
	c := &ipsecCharon{Node: node, Dir: dir, URI: "unix://" + dir + "/charon.vici", l: l}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "swanctl"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(ipsecStrongswanConf(dir, keepAlive)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "swanctl", "swanctl.conf"), []byte(swanctlConf), 0o600); err != nil {
		return nil, err
	}
	c.proc, err = ipsecStartProc(l, node, []string{"STRONGSWAN_CONF=" + filepath.Join(dir, "strongswan.conf")},
		"unshare", "-m", "--propagation", "private", "sh", "-c", ipsecCharonScript)
	if err != nil {
		return nil, err
	}
	// Wait for vici to answer.
	for {
		if _, err := c.swanctl(ctx, "--stats"); err == nil {
			break
		}
		if c.proc.Exited() {
			return nil, fmt.Errorf("charon in %s exited: %v\n%s\n%s", node, c.proc.Err(), c.proc.Stderr.String(), c.Log())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("charon in %s: vici socket never answered: %w\n%s", node, ctx.Err(), c.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := c.swanctl(ctx, "--load-all", "--noprompt", "--file", filepath.Join(dir, "swanctl", "swanctl.conf")); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// swanctl runs swanctl against this instance. It runs outside the lab's
// namespaces: the vici socket is a path in the shared filesystem.
func (c *ipsecCharon) swanctl(ctx context.Context, args ...string) (string, error) {
	// swanctl takes --uri after the command.
	args = append(args, "--uri", c.URI)
	cmd := exec.CommandContext(ctx, ipsecSwanctlPath, args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.Dir, "strongswan.conf"), "SWANCTL_DIR="+filepath.Join(c.Dir, "swanctl"))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: swanctl %s: %w\n%s%s", c.Node, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// ipsecStartResponder starts the server: charon on addr in node, with
// ipsecInnerServer on the node's loopback as the address inside the
// tunnels, a pool of virtual IPs and a PSK accepted from any identity.
func ipsecStartResponder(ctx context.Context, l *lab.Lab, node, addr string) (*ipsecCharon, error) {
	if _, err := l.Run(ctx, node, "ip", "addr", "replace", ipsecInnerServer+"/32", "dev", "lo"); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`connections {
	rw {
		version = 2
		local_addrs = %s
		pools = clients
		proposals = aes128-sha256-ecp256,aes128-sha256-modp2048
		dpd_delay = 0
		local {
			auth = psk
			id = %s
		}
		remote {
			auth = psk
		}
		children {
			%s {
				local_ts = %s
				esp_proposals = aes128gcm16,aes128-sha256
			}
		}
	}
}
pools {
	clients {
		addrs = %s
	}
}
secrets {
	ike-lab {
		secret = %s
	}
}
`, addr, ipsecServerID, ipsecChildName, ipsecInnerNet, ipsecPool, ipsecPSK)
	return ipsecStartCharon(ctx, l, node, conf, ipsecKeepAlive)
}

// ipsecStartInitiator starts a client: charon on localAddr in node, with
// connection ipsecConnName to serverAddr (child ipsecChildName covering
// ipsecInnerNet), identity id, asking for a virtual IP, sending NAT-T
// keepalives every keepAlive ("0s": none) while behind a NAT.
func ipsecStartInitiator(ctx context.Context, l *lab.Lab, node, localAddr, serverAddr, id, keepAlive string) (*ipsecCharon, error) {
	conf := fmt.Sprintf(`connections {
	%s {
		version = 2
		local_addrs = %s
		remote_addrs = %s
		vips = 0.0.0.0
		proposals = aes128-sha256-ecp256
		dpd_delay = 0
		local {
			auth = psk
			id = %s
		}
		remote {
			auth = psk
			id = %s
		}
		children {
			%s {
				remote_ts = %s
				esp_proposals = aes128gcm16
			}
		}
	}
}
secrets {
	ike-lab {
		secret = %s
	}
}
`, ipsecConnName, localAddr, serverAddr, id, ipsecServerID, ipsecChildName, ipsecInnerNet, ipsecPSK)
	return ipsecStartCharon(ctx, l, node, conf, keepAlive)
}

// Initiate brings up child (and its IKE SA) and waits for the outcome,
// at most until ctx's deadline.
func (c *ipsecCharon) Initiate(ctx context.Context, child string) (string, error) {
	timeout := 20
	if d, ok := ctx.Deadline(); ok {
		timeout = max(1, min(timeout, int(time.Until(d).Seconds())-1))
	}
	return c.swanctl(ctx, "--initiate", "--child", child, "--timeout", strconv.Itoa(timeout))
}

// Log returns charon's log file.
func (c *ipsecCharon) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "charon.log"))
	return string(b)
}

// PID is charon's process id.
func (c *ipsecCharon) PID() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.PID()
}

// Stop ends charon by its PID and removes its directory.
func (c *ipsecCharon) Stop() {
	if c.proc != nil {
		c.proc.Stop()
	}
	if c.Dir != "" {
		os.RemoveAll(c.Dir)
	}
}

// ipsecIKESA is one IKE SA as `swanctl --list-sas` reports it.
type ipsecIKESA struct {
	Name         string
	State        string // ESTABLISHED, CONNECTING, ...
	LocalHost    string
	LocalPort    int
	RemoteHost   string
	RemotePort   int
	LocalID      string
	RemoteID     string
	Initiator    bool
	InitiatorSPI string
	ResponderSPI string
	NATLocal     bool // this end is behind a NAT
	NATRemote    bool // the peer is behind a NAT
	NATAny       bool // either end is (or NAT-T was forced)
	LocalVIPs    []string
	RemoteVIPs   []string
	Children     []ipsecChildSA
}

// ipsecChildSA is one CHILD_SA of an IKE SA.
type ipsecChildSA struct {
	Name       string
	State      string // INSTALLED, ...
	Mode       string
	Protocol   string // ESP
	Encap      bool   // UDP-encapsulated (NAT-T)
	SPIIn      string
	SPIOut     string
	BytesIn    uint64
	BytesOut   uint64
	PacketsIn  uint64
	PacketsOut uint64
	LocalTS    []string
	RemoteTS   []string
}

// ListSAs returns the daemon's IKE SAs.
func (c *ipsecCharon) ListSAs(ctx context.Context) ([]ipsecIKESA, error) {
	out, err := c.swanctl(ctx, "--list-sas", "--pretty")
	if err != nil {
		return nil, err
	}
	return ipsecParseListSAs(out)
}

// ipsecViciSection is a section of swanctl's --pretty dump of a vici
// message: key = value pairs, lists and nested sections.
type ipsecViciSection struct {
	Name     string
	Values   map[string]string
	Lists    map[string][]string
	Sections []*ipsecViciSection
}

func ipsecNewSection(name string) *ipsecViciSection {
	return &ipsecViciSection{Name: name, Values: map[string]string{}, Lists: map[string][]string{}}
}

// ipsecParseVici parses swanctl --pretty output into a root section whose
// sections are the messages ("list-sa event", "list-sas reply").
func ipsecParseVici(text string) (*ipsecViciSection, error) {
	root := ipsecNewSection("")
	stack := []*ipsecViciSection{root}
	listKey := "" // the list being read, in the innermost section
	inList := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		cur := stack[len(stack)-1]
		switch {
		case line == "":
		case inList:
			if line == "]" {
				inList = false
			} else {
				cur.Lists[listKey] = append(cur.Lists[listKey], line)
			}
		case line == "}":
			if len(stack) == 1 {
				return nil, fmt.Errorf("vici dump line %d: unbalanced }", n)
			}
			stack = stack[:len(stack)-1]
		case strings.HasSuffix(line, " {"):
			s := ipsecNewSection(strings.TrimSuffix(line, " {"))
			cur.Sections = append(cur.Sections, s)
			stack = append(stack, s)
		case strings.HasSuffix(line, " ["):
			listKey, inList = strings.TrimSuffix(strings.TrimSuffix(line, " ["), " ="), true
			cur.Lists[listKey] = []string{}
		default:
			k, v, ok := strings.Cut(line, " = ")
			if !ok {
				// An empty value: "key =" once trimmed.
				if k2, ok2 := strings.CutSuffix(line, " ="); ok2 {
					cur.Values[k2] = ""
					continue
				}
				return nil, fmt.Errorf("vici dump line %d: cannot parse %q", n, line)
			}
			cur.Values[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(stack) != 1 || inList {
		return nil, errors.New("vici dump: truncated")
	}
	return root, nil
}

// ipsecParseListSAs turns swanctl --list-sas --pretty output into SAs.
func ipsecParseListSAs(text string) ([]ipsecIKESA, error) {
	root, err := ipsecParseVici(text)
	if err != nil {
		return nil, err
	}
	var sas []ipsecIKESA
	for _, msg := range root.Sections {
		if msg.Name != "list-sa event" {
			continue
		}
		for _, s := range msg.Sections {
			sa := ipsecIKESA{
				Name:         s.Name,
				State:        s.Values["state"],
				LocalHost:    s.Values["local-host"],
				RemoteHost:   s.Values["remote-host"],
				LocalID:      s.Values["local-id"],
				RemoteID:     s.Values["remote-id"],
				Initiator:    s.Values["initiator"] == "yes",
				InitiatorSPI: s.Values["initiator-spi"],
				ResponderSPI: s.Values["responder-spi"],
				NATLocal:     s.Values["nat-local"] == "yes",
				NATRemote:    s.Values["nat-remote"] == "yes",
				NATAny:       s.Values["nat-any"] == "yes",
				LocalVIPs:    s.list("local-vips"),
				RemoteVIPs:   s.list("remote-vips"),
			}
			sa.LocalPort, _ = strconv.Atoi(s.Values["local-port"])
			sa.RemotePort, _ = strconv.Atoi(s.Values["remote-port"])
			for _, cs := range s.Sections {
				if cs.Name != "child-sas" {
					continue
				}
				for _, ch := range cs.Sections {
					u := func(k string) uint64 { v, _ := strconv.ParseUint(ch.Values[k], 10, 64); return v }
					sa.Children = append(sa.Children, ipsecChildSA{
						Name:       ch.Values["name"],
						State:      ch.Values["state"],
						Mode:       ch.Values["mode"],
						Protocol:   ch.Values["protocol"],
						Encap:      ch.Values["encap"] == "yes",
						SPIIn:      ch.Values["spi-in"],
						SPIOut:     ch.Values["spi-out"],
						BytesIn:    u("bytes-in"),
						BytesOut:   u("bytes-out"),
						PacketsIn:  u("packets-in"),
						PacketsOut: u("packets-out"),
						LocalTS:    ch.list("local-ts"),
						RemoteTS:   ch.list("remote-ts"),
					})
				}
			}
			sas = append(sas, sa)
		}
	}
	return sas, nil
}

func (s *ipsecViciSection) list(key string) []string { return s.Lists[key] }

// ---------------------------------------------------------------- crafted packets

// ipsecToolServer is ipsec_tool.py's server mode in one node.
type ipsecToolServer struct {
	proc *labtest.Proc
}

// ipsecToolEvent is one line the tool's server printed.
type ipsecToolEvent struct {
	Event    string `json:"event"` // esp, ike, ah, ike-bad, ike-ignored
	Src      string `json:"src"`
	Sport    int    `json:"sport"`
	SPI      string `json:"spi"`       // esp, ah: the SPI received
	ReplySPI string `json:"reply_spi"` // esp: the SPI of the answer
	Seq      uint32 `json:"seq"`
	Payload  string `json:"payload"`
	ISPI     string `json:"ispi"`    // ike: initiator SPI
	RSPI     string `json:"rspi"`    // ike: responder SPI answered
	RSPIIn   string `json:"rspi_in"` // ike: responder SPI in the request
	Exch     int    `json:"exch"`
	ID       int    `json:"id"`
}

// ipsecStartToolServer starts the crafted-packet server on addr in node and
// waits until its sockets are bound.
func ipsecStartToolServer(ctx context.Context, l *lab.Lab, node, tool, addr string) (*ipsecToolServer, error) {
	p, err := ipsecStartProc(l, node, nil, lab.Python, "-u", tool, "server", "--addr", addr)
	if err != nil {
		return nil, err
	}
	if err := p.WaitLine("ready", time.Until(deadline(ctx, 30*time.Second))); err != nil {
		p.Stop()
		return nil, err
	}
	return &ipsecToolServer{proc: p}, nil
}

// Events returns every packet the server has reported so far.
func (s *ipsecToolServer) Events() ([]ipsecToolEvent, error) {
	var evs []ipsecToolEvent
	for _, line := range strings.Split(s.proc.Stdout.String(), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e ipsecToolEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("tool server line %q: %w", line, err)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// Output is the server's stdout and stderr, for failure messages.
func (s *ipsecToolServer) Output() string {
	return s.proc.Stdout.String() + s.proc.Stderr.String()
}

// Stop ends the server by its PID.
func (s *ipsecToolServer) Stop() { s.proc.Stop() }

// ipsecESPReply is one ESP packet a client received.
type ipsecESPReply struct {
	Src     string `json:"src"`
	SPI     string `json:"spi"`
	Seq     uint32 `json:"seq"`
	Payload string `json:"payload"`
}

// ipsecESPResult is what the tool's esp mode prints.
type ipsecESPResult struct {
	Sent    int             `json:"sent"`
	SPI     string          `json:"spi"`
	Replies []ipsecESPReply `json:"replies"`
}

// ipsecIKEReply is one IKE header a client received.
type ipsecIKEReply struct {
	Src   string `json:"src"`
	Sport int    `json:"sport"`
	ISPI  string `json:"ispi"`
	RSPI  string `json:"rspi"`
	Exch  int    `json:"exch"`
	Flags int    `json:"flags"`
	ID    int    `json:"id"`
}

// ipsecIKEResult is what the tool's ike mode prints: Replies are the
// answers to its requests in order, Others anything else that arrived.
type ipsecIKEResult struct {
	Sport   int             `json:"sport"`
	ISPI    string          `json:"ispi"`
	Sent    int             `json:"sent"`
	Replies []ipsecIKEReply `json:"replies"`
	Others  []ipsecIKEReply `json:"others"`
}

// ipsecToolJSON runs one client mode of the tool in node and decodes its
// JSON answer into v.
func ipsecToolJSON(ctx context.Context, l *lab.Lab, node, tool string, v any, args ...string) error {
	cmd := l.Cmd(ctx, node, lab.Python, append([]string{tool}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: ipsec_tool %s: %w\nstdout: %s\nstderr: %s", node, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("%s: ipsec_tool %s: bad JSON %q: %w", node, strings.Join(args, " "), stdout.String(), err)
	}
	return nil
}

// ipsecPing pings dst count times from node and returns how many of those
// echoes (icmp_seq 1 to count) dst answered. With -w ping waits up to 15 s
// for late replies (without it, it waits for the last one only 0.2 s after
// sending it, which a loaded machine can miss), sending more echoes
// meanwhile; a lost echo still counts as unanswered.
func ipsecPing(ctx context.Context, l *lab.Lab, node, dst string, count int) (int, string) {
	out, _ := l.Run(ctx, node, "ping", labtest.PingArgs(count, dst, 15*time.Second)...)
	return labtest.PingAnswered(out, dst, count), out
}

// ---------------------------------------------------------------- passgate

// ipsecPassgateBinEnv names a prebuilt passgate binary to use instead of
// building ./cmd/passgate (e.g. to check that the tests catch a broken
// engine, or to test a release build).
const ipsecPassgateBinEnv = "PG_IPSEC_PASSGATE_BIN"

// ipsecBuildPassgate builds ./cmd/passgate into dir, unless
// $PG_IPSEC_PASSGATE_BIN names a binary.
func ipsecBuildPassgate(ctx context.Context, dir string) (string, error) {
	if bin := os.Getenv(ipsecPassgateBinEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("$%s: %w", ipsecPassgateBinEnv, err)
		}
		return bin, nil
	}
	return labtest.BuildPassgate(ctx, dir)
}

// ipsecPassgate is passgate running in the lab's router namespace.
type ipsecPassgate struct{ *labtest.Gate }

// ipsecMerge merges src into dst, descending into objects.
func ipsecMerge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				ipsecMerge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// ipsecStartPassgate writes a configuration (the lab's interfaces and
// addresses, a control socket in dir, then extra merged over it: e.g. the
// passthrough switches), starts `passgate run` in the router namespace and
// waits until it forwards. dir should be short (the socket path).
func ipsecStartPassgate(ctx context.Context, l *lab.Lab, bin, dir string, extra map[string]any) (*ipsecPassgate, error) {
	sock := filepath.Join(dir, "passgate.sock")
	cfg := map[string]any{
		"lan":            map[string]any{"interface": lab.LANIface, "address": lab.LANCIDR},
		"wan":            map[string]any{"interface": lab.WANIface, "address": lab.WANCIDR},
		"control_socket": sock,
	}
	ipsecMerge(cfg, extra)
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	g, err := labtest.StartGate(ctx, l, labtest.GateOptions{
		Bin: bin, Dir: dir, Config: string(b), Sock: sock, Args: []string{"--log-level", "debug"},
		Wait: time.Until(deadline(ctx, time.Minute)),
	})
	if err != nil {
		return nil, err
	}
	return &ipsecPassgate{g}, nil
}

// deadline is ctx's deadline, or d from now if it has none.
func deadline(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// Conntrack runs `passgate conntrack --json`, for failure messages: it
// shows whatever fields the running version has.
func (p *ipsecPassgate) Conntrack(ctx context.Context) string {
	out, err := p.CLI(ctx, "conntrack", "--json")
	if err != nil {
		return fmt.Sprintf("passgate conntrack: %v\n%s", err, out)
	}
	return string(out)
}

// PID is passgate's process id.
func (p *ipsecPassgate) PID() int { return p.Proc.PID() }

// Exited reports whether passgate has ended.
func (p *ipsecPassgate) Exited() bool { return p.Proc.Exited() }
