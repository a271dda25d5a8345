package vpnpeer

// Crafted IPsec packets: ipsec_tool.py (with scapy) sends raw ESP, IKE from
// port 500 and AH from a LAN host, and answers them on a server as a real
// peer would, choosing its own SPIs. strongSwan here always wraps ESP in
// UDP (kernel-libipsec), so raw ESP through a NAT comes only from the tool.

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"passgate/lab"
)

// toolScript is ipsec_tool.py.
//
//go:embed ipsec_tool.py
var toolScript []byte

// WriteTool writes ipsec_tool.py into dir and returns its path.
func WriteTool(dir string) (string, error) {
	p := filepath.Join(dir, "ipsec_tool.py")
	return p, os.WriteFile(p, toolScript, 0o755)
}

// ToolServer is ipsec_tool.py's server mode in one node.
type ToolServer struct {
	proc Proc
}

// ToolEvent is one line the tool's server printed.
type ToolEvent struct {
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

// StartToolServer starts the crafted-packet server on addr in node, with
// its IKE socket on ikePort (500 unless the node runs an IKE daemon), and
// waits until its sockets are bound.
func StartToolServer(ctx context.Context, env Env, node, tool, addr string, ikePort int) (*ToolServer, error) {
	p, err := env.Start(node, nil, "", lab.Python, "-u", tool, "server", "--addr", addr, "--ike-port", strconv.Itoa(ikePort))
	if err != nil {
		return nil, err
	}
	err = lab.Poll(ctx, 30*time.Second, func() (bool, string) {
		if p.Exited() {
			return true, ""
		}
		return strings.Contains(p.Output(), "ready\n"), "ipsec_tool server not ready: " + p.Output()
	})
	if err == nil && p.Exited() {
		err = fmt.Errorf("exited: %v\n%s", p.Err(), p.Output())
	}
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: ipsec_tool server on %s: %w", node, addr, err)
	}
	return &ToolServer{proc: p}, nil
}

// Events returns every packet the server has reported so far.
func (s *ToolServer) Events() ([]ToolEvent, error) {
	var evs []ToolEvent
	for _, line := range strings.Split(s.proc.Output(), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e ToolEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("tool server line %q: %w", line, err)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// Output is the server's stdout and stderr, for failure messages.
func (s *ToolServer) Output() string { return s.proc.Output() }

// Stop ends the server by its PID.
func (s *ToolServer) Stop() { s.proc.Stop() }

// ESPReply is one ESP packet a client received.
type ESPReply struct {
	Src     string `json:"src"`
	SPI     string `json:"spi"`
	Seq     uint32 `json:"seq"`
	Payload string `json:"payload"`
}

// ESPResult is what the tool's esp mode prints.
type ESPResult struct {
	Sent    int        `json:"sent"`
	SPI     string     `json:"spi"`
	Replies []ESPReply `json:"replies"`
}

// IKEReply is one IKE header a client received.
type IKEReply struct {
	Src   string `json:"src"`
	Sport int    `json:"sport"`
	ISPI  string `json:"ispi"`
	RSPI  string `json:"rspi"`
	Exch  int    `json:"exch"`
	Flags int    `json:"flags"`
	ID    int    `json:"id"`
}

// IKEResult is what the tool's ike mode prints: Replies are the
// answers to its requests in order, Others anything else that arrived.
type IKEResult struct {
	Sport   int        `json:"sport"`
	ISPI    string     `json:"ispi"`
	Sent    int        `json:"sent"`
	Replies []IKEReply `json:"replies"`
	Others  []IKEReply `json:"others"`
}

// ToolJSON runs one client mode of the tool in node and decodes its
// JSON answer into v.
func ToolJSON(ctx context.Context, l *lab.Lab, node, tool string, v any, args ...string) error {
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
