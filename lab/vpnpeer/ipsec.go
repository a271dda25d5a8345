package vpnpeer

// strongSwan: one charon per namespace (with the kernel-libipsec plugin:
// ESP in userspace over a TUN device, as this kernel has no ESP module),
// configured for one responder with a pool of virtual IPs and any number of
// initiators, all with one pre-shared key.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Where Debian keeps strongSwan's programs and plugins.
const (
	CharonPath  = "/usr/lib/ipsec/charon"
	SwanctlPath = "/usr/sbin/swanctl"
	PluginDir   = "/usr/lib/ipsec/plugins"
)

// The lab's IPsec setup.
const (
	// InnerServer is the address inside the tunnels at the server (on
	// its loopback); InnerNet the server side's traffic selector.
	InnerServer = "10.99.0.1"
	InnerNet    = "10.99.0.0/24"
	// Pool hands each client its own virtual IP (10.99.1.1, .2, ...).
	Pool = "10.99.1.0/24"

	psk = "0x7061737367617465206c61622070736b" // "passgate lab psk"
	// ServerID is the responder's identity; an initiator's is its own
	// (StartInitiator's id).
	ServerID = "srv1.passgate.lab"
	// ConnName is each initiator's connection, ChildName its CHILD_SA
	// (and the responder's), as Initiate takes it.
	ConnName  = "home"
	ChildName = "net"

	// KeepAlive is charon's NAT-T keepalive interval (strongswan.conf
	// charon.keep_alive) unless a test asks for another; "0s" turns the
	// keepalives off.
	KeepAlive = "20s"

	// charonLoad are the only plugins each charon loads. kernel-libipsec
	// does ESP in userspace over a TUN device (this kernel has no ESP
	// module); kernel-netlink still provides addresses and routes.
	charonLoad = "random nonce openssl pem pkcs1 x509 pubkey kdf hmac sha1 sha2 aes gcm " +
		"kernel-libipsec kernel-netlink socket-default vici"
)

// Charon is one charon daemon in one lab namespace, with its own
// strongswan.conf (STRONGSWAN_CONF), swanctl.conf, vici socket and a
// private /run.
type Charon struct {
	Node string
	Dir  string // its configuration, log and vici socket
	URI  string // unix://Dir/charon.vici
	proc Proc
}

// strongswanConf is the whole strongswan.conf of one instance, with
// keepAlive as its NAT-T keepalive interval.
func strongswanConf(dir, keepAlive string) string {
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
`, charonLoad, keepAlive, dir, dir)
}

// charonScript runs inside `ip netns exec NS unshare -m`: a private
// tmpfs on /run (charon's pid file is /var/run/charon.pid, and /var/run is
// /run) so instances never collide, /dev/net/tun for libipsec, then exec
// charon so the PID stays the same.
const charonScript = `set -e
if [ ! -c /dev/net/tun ]; then mkdir -p /dev/net; mknod -m 0666 /dev/net/tun c 10 200; fi
mount -t tmpfs -o mode=0755 pgipsec-run /run
exec ` + CharonPath

// startCharon starts charon in node with the given swanctl.conf and
// NAT-T keepalive interval, waits for its vici socket and loads the
// configuration.
func startCharon(ctx context.Context, env Env, node, swanctlConf, keepAlive string) (*Charon, error) {
	dir, err := TempDir(node)
	if err != nil {
		return nil, err
	}
	c := &Charon{Node: node, Dir: dir, URI: "unix://" + dir + "/charon.vici"}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "swanctl"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(strongswanConf(dir, keepAlive)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "swanctl", "swanctl.conf"), []byte(swanctlConf), 0o600); err != nil {
		return nil, err
	}
	c.proc, err = env.Start(node, []string{"STRONGSWAN_CONF=" + filepath.Join(dir, "strongswan.conf")}, "",
		"unshare", "-m", "--propagation", "private", "sh", "-c", charonScript)
	if err != nil {
		return nil, err
	}
	// Wait for vici to answer.
	for {
		if _, err := c.swanctl(ctx, "--stats"); err == nil {
			break
		}
		if c.proc.Exited() {
			return nil, fmt.Errorf("charon in %s exited:\n%s\n%s", node, c.proc.Output(), c.Log())
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
func (c *Charon) swanctl(ctx context.Context, args ...string) (string, error) {
	// swanctl takes --uri after the command.
	args = append(args, "--uri", c.URI)
	cmd := exec.CommandContext(ctx, SwanctlPath, args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.Dir, "strongswan.conf"), "SWANCTL_DIR="+filepath.Join(c.Dir, "swanctl"))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: swanctl %s: %w\n%s%s", c.Node, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// StartResponder starts the server: charon on addr in node, with
// InnerServer on the node's loopback as the address inside the
// tunnels, a pool of virtual IPs and a PSK accepted from any identity.
func StartResponder(ctx context.Context, env Env, node, addr string) (*Charon, error) {
	if _, err := env.Lab.Run(ctx, node, "ip", "addr", "replace", InnerServer+"/32", "dev", "lo"); err != nil {
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
`, addr, ServerID, ChildName, InnerNet, Pool, psk)
	return startCharon(ctx, env, node, conf, KeepAlive)
}

// StartInitiator starts a client: charon on localAddr in node, with
// connection ConnName to serverAddr (child ChildName covering
// InnerNet), identity id, asking for a virtual IP, sending NAT-T
// keepalives every keepAlive ("0s": none) while behind a NAT.
func StartInitiator(ctx context.Context, env Env, node, localAddr, serverAddr, id, keepAlive string) (*Charon, error) {
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
`, ConnName, localAddr, serverAddr, id, ServerID, ChildName, InnerNet, psk)
	return startCharon(ctx, env, node, conf, keepAlive)
}

// Initiate brings up child (and its IKE SA) and waits for the outcome,
// at most until ctx's deadline.
func (c *Charon) Initiate(ctx context.Context, child string) (string, error) {
	timeout := 20
	if d, ok := ctx.Deadline(); ok {
		timeout = max(1, min(timeout, int(time.Until(d).Seconds())-1))
	}
	return c.swanctl(ctx, "--initiate", "--child", child, "--timeout", strconv.Itoa(timeout))
}

// Log returns charon's log file.
func (c *Charon) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "charon.log"))
	return string(b)
}

// PID is charon's process id.
func (c *Charon) PID() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.PID()
}

// Stop ends charon by its PID and removes its directory.
func (c *Charon) Stop() {
	if c.proc != nil {
		c.proc.Stop()
	}
	if c.Dir != "" {
		os.RemoveAll(c.Dir)
	}
}

// IKESA is one IKE SA as `swanctl --list-sas` reports it.
type IKESA struct {
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
	Children     []ChildSA
}

// ChildSA is one CHILD_SA of an IKE SA.
type ChildSA struct {
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
func (c *Charon) ListSAs(ctx context.Context) ([]IKESA, error) {
	out, err := c.swanctl(ctx, "--list-sas", "--pretty")
	if err != nil {
		return nil, err
	}
	return ParseListSAs(out)
}

// viciSection is a section of swanctl's --pretty dump of a vici
// message: key = value pairs, lists and nested sections.
type viciSection struct {
	Name     string
	Values   map[string]string
	Lists    map[string][]string
	Sections []*viciSection
}

func newSection(name string) *viciSection {
	return &viciSection{Name: name, Values: map[string]string{}, Lists: map[string][]string{}}
}

// parseVici parses swanctl --pretty output into a root section whose
// sections are the messages ("list-sa event", "list-sas reply").
func parseVici(text string) (*viciSection, error) {
	root := newSection("")
	stack := []*viciSection{root}
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
			s := newSection(strings.TrimSuffix(line, " {"))
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

// ParseListSAs turns swanctl --list-sas --pretty output into SAs.
func ParseListSAs(text string) ([]IKESA, error) {
	root, err := parseVici(text)
	if err != nil {
		return nil, err
	}
	var sas []IKESA
	for _, msg := range root.Sections {
		if msg.Name != "list-sa event" {
			continue
		}
		for _, s := range msg.Sections {
			sa := IKESA{
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
					sa.Children = append(sa.Children, ChildSA{
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

func (s *viciSection) list(key string) []string { return s.Lists[key] }
