// Package control owns passgate's local control API: an HTTP server on a
// unix socket (mode 0600) that the running gateway exposes, with
// GET /v1/status, GET /v1/flows, GET /v1/pppoe, GET /v1/events, and GET and
// DELETE /v1/mappings, and the client the CLI uses to call them. It also owns the API's wire types
// (Status, Flow, Event, PPPoE, APIErrors): the control socket, the admin
// REST API and web pages (package admin), the CLI and the lab tests all use
// these, never the engine's or the router's own types, which carry no JSON
// tags. Control converts from those (FlowFrom, EventsFrom, NATStatsFrom,
// ARPStatsFrom), so it sits above nat and the data plane, and below admin
// and cmd/passgate.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"passgate/nat"
)

// Status is what GET /v1/status returns.
type Status struct {
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	UptimeSec float64   `json:"uptime_s"`
	Workers   int       `json:"workers"`
	// Driver is the packet driver in use: afxdp or afpacket.
	Driver string `json:"driver,omitempty"`
	// XDPMode is how the XDP program is attached (LAN/WAN: native or
	// generic) and whether the sockets run in copy or zero-copy mode, with
	// AF_XDP: "native/native, copy" on veth.
	XDPMode string `json:"xdp_mode,omitempty"`
	// DriverFallback is why driver auto did not take AF_XDP.
	DriverFallback string `json:"driver_fallback,omitempty"`
	// RxOffloads are the interfaces' receive offloads (GRO, LRO, VLAN
	// stripping) as passgate found them at start and what it did: state
	// "turned off" (turned back on at exit), "off" (found off), "on" (left
	// on: keep_rx_offloads, or the driver refused), "fixed on".
	RxOffloads []RxOffload `json:"rx_offloads,omitempty"`
	// Losses counts every frame lost on the way through, by reason: the
	// sockets' (rx_ring_full, rx_no_buffer, rx_invalid, tx_full,
	// tx_bad_frame, tx_down) and the interfaces' own drop counters since
	// start (IFACE_rx_dropped, IFACE_tx_dropped, from the kernel; on veth
	// rx_dropped includes what an AF_XDP socket had no buffer for).
	Losses     map[string]uint64 `json:"losses,omitempty"`
	Interfaces []Interface       `json:"interfaces"`
	NAT        NATStats          `json:"nat"`
	// Passthrough says which VPN passthroughs are on.
	Passthrough map[string]bool   `json:"passthrough"`
	Dataplane   map[string]uint64 `json:"dataplane,omitempty"`
	Sockets     []SocketStats     `json:"sockets"`
	// PPPoE is the relay's state, as GET /v1/pppoe returns it; the
	// handler fills it from Backend.PPPoE.
	PPPoE *PPPoE `json:"pppoe,omitempty"`
	// Admin is the admin server's address, its certificate's fingerprint
	// and, until the first password is set, the setup code. Only the
	// control socket (root) fills it, never the admin API.
	Admin *AdminInfo `json:"admin,omitempty"`
}

// RxOffload is one receive offload on one interface.
type RxOffload struct {
	Interface string `json:"interface"`
	Feature   string `json:"feature"`
	State     string `json:"state"`
}

// AdminInfo is the admin server as root sees it on `passgate status`.
type AdminInfo struct {
	URL string `json:"url,omitempty"` // "" when the admin server is off
	// Fingerprint is the SHA-256 of its TLS certificate (AB:CD:...);
	// SPKI the base64 SHA-256 of its public key.
	Fingerprint string `json:"cert_sha256,omitempty"`
	SPKI        string `json:"spki_sha256,omitempty"`
	CertFile    string `json:"cert_file,omitempty"`
	// SetupCode is what the first setup from the page or the API needs;
	// "" once a password is set.
	SetupCode string `json:"setup_code,omitempty"`
}

// PPPoE is what GET /v1/pppoe returns: whether the PPPoE relay is on, the
// sessions it relays and its counters (drops as "drop_REASON").
type PPPoE struct {
	On       bool              `json:"on"`
	Sessions []PPPoESession    `json:"sessions"`
	Counters map[string]uint64 `json:"counters,omitempty"`
}

// PPPoESession is one relayed PPPoE session.
type PPPoESession struct {
	ID          uint16  `json:"session_id"`
	Host        string  `json:"host_mac"` // the LAN host
	AC          string  `json:"ac_mac"`   // the access concentrator
	AgeSec      float64 `json:"age_s"`
	IdleSec     float64 `json:"idle_s"`
	FramesToWAN uint64  `json:"frames_to_wan"`
	FramesToLAN uint64  `json:"frames_to_lan"`
}

// Interface is one side of the gateway.
type Interface struct {
	Role    string   `json:"role"` // "lan" or "wan"
	Name    string   `json:"name"`
	Index   int      `json:"index"`
	Address string   `json:"address"` // router address with prefix length
	Gateway string   `json:"gateway,omitempty"`
	MAC     string   `json:"mac"`
	MTU     int      `json:"mtu"`
	ARP     ARPStats `json:"arp"`
}

// NATStats are the engine's counters, drops by reason name.
type NATStats struct {
	PacketsOut   uint64                    `json:"packets_lan_to_wan"`
	PacketsIn    uint64                    `json:"packets_wan_to_lan"`
	BytesOut     uint64                    `json:"bytes_lan_to_wan"`
	BytesIn      uint64                    `json:"bytes_wan_to_lan"`
	Drops        map[string]uint64         `json:"drops"`
	ICMPSent     uint64                    `json:"icmp_sent"`
	Flows        int                       `json:"flows"`
	FlowsByProto map[string]int            `json:"flows_by_proto"`
	Mappings     int                       `json:"mappings"`
	Created      uint64                    `json:"flows_created"`
	Expired      uint64                    `json:"flows_expired"`
	ESPAmbiguous uint64                    `json:"esp_ambiguous"`
	L2TPFallback uint64                    `json:"l2tp_fallback"`
	IKEFallback  uint64                    `json:"ike_fallback"`             // non-IKE from port 500 given its own port
	SharedToHost uint64                    `json:"shared_port_to_only_host"` // undemultiplexable on 500 or 1701, sent to the one host
	PPTPUnparsed uint64                    `json:"pptp_unparsed"`
	VPNSessions  map[string]int            `json:"vpn_sessions"`
	Helpers      map[string]HelperCounters `json:"helpers"`
	// Guards are what the limits against floods and spoofing did besides
	// dropping packets: flows ended early to make room, by what was full,
	// and RSTs passed on without ending their flow. Every key is listed.
	Guards map[string]uint64 `json:"guards"`
}

// NATStatsFrom converts the engine's counters. Every drop reason is listed,
// zero or not, so scripts can rely on the keys.
func NATStatsFrom(s nat.Stats) NATStats {
	out := NATStats{
		PacketsOut: s.Packets[0], PacketsIn: s.Packets[1],
		BytesOut: s.Bytes[0], BytesIn: s.Bytes[1],
		Drops:    make(map[string]uint64),
		ICMPSent: s.ICMPSent, Flows: s.Flows, FlowsByProto: s.FlowsByProto,
		Mappings: s.Mappings, Created: s.Created, Expired: s.Expired,
		ESPAmbiguous: s.ESPAmbiguous, L2TPFallback: s.L2TPFallback, PPTPUnparsed: s.PPTPUnparsed,
		IKEFallback: s.IKEFallback, SharedToHost: s.SharedToOnlyHost,
		VPNSessions: s.VPNSessions,
		Guards:      make(map[string]uint64, len(GuardNames())),
	}
	for i, v := range [...]uint64{s.EarlyDropTableFull, s.EarlyDropHostShare, s.EarlyDropMACShare, s.EarlyDropRuleShare, s.RSTInWindow, s.RSTOutOfWindow, s.TCPStateIgnored, s.ProhibitedSent, s.ProhibitedSuppressed} {
		out.Guards[GuardNames()[i]] = v
	}
	if s.Helpers != nil {
		out.Helpers = make(map[string]HelperCounters, len(s.Helpers))
		for name, h := range s.Helpers {
			out.Helpers[name] = HelperCounters{On: h.On, Flows: h.Flows, Rewrites: h.Rewrites,
				Expectations: h.Expectations, Expected: h.Expected, Unparsed: h.Unparsed}
		}
	}
	for _, r := range nat.DropReasons() {
		if r == nat.DropNone {
			continue
		}
		if int(r) < len(s.Drops) {
			out.Drops[r.String()] = s.Drops[r]
		}
	}
	if out.FlowsByProto == nil {
		out.FlowsByProto = map[string]int{}
	}
	return out
}

// GuardNames are the keys of NATStats.Guards, in this order: flows ended
// early to make room because the table, a host's, a MAC's or a rule's
// share was full, RSTs passed on without ending their flow, SYNs and
// FINs passed on without changing their flow's state, and the ICMP
// administratively prohibited errors sent to LAN hosts whose new flow a
// limit refused, and those the rate limits held back (RFC 5508 REQ-8).
func GuardNames() []string {
	return []string{
		"early_drop_table_full", "early_drop_host_share", "early_drop_mac_share", "early_drop_rule_share",
		"rst_in_window_passed", "rst_out_of_window_passed", "syn_fin_implausible_passed",
		"icmp_prohibited_sent", "icmp_prohibited_suppressed",
	}
}

// TotalDrops sums the drop counters.
func (s NATStats) TotalDrops() uint64 {
	var t uint64
	for _, v := range s.Drops {
		t += v
	}
	return t
}

// SocketStats are one packet socket's driver counters.
type SocketStats struct {
	Interface string `json:"interface"`
	Worker    int    `json:"worker"`
	Loop      string `json:"loop"` // the interface whose receive loop owns the socket
	Kind      string `json:"kind"` // rx, tx (AF_PACKET), xsk (AF_XDP), arp
	RxPackets uint64 `json:"rx_packets"`
	RxDrops   uint64 `json:"rx_drops"`
	RxFreezes uint64 `json:"rx_freezes"`
	TxPackets uint64 `json:"tx_packets"`
	TxErrors  uint64 `json:"tx_errors"`
}

// Backend is what the server reads: the running gateway.
type Backend interface {
	Status() Status
	// Flows calls fn for each flow until fn returns false.
	Flows(fn func(Flow) bool)
	// Events are recent events (what was blocked and why), oldest first.
	Events() []Event
	// PPPoE is the PPPoE relay's state and sessions.
	PPPoE() PPPoE
}

// FlowFilter selects flows: by an address on any side (inside, outside or
// remote) and by protocol name. Zero values match everything.
type FlowFilter struct {
	Host  netip.Addr
	Proto string
}

// BadParam is a query parameter a request cannot take, and why.
type BadParam struct {
	Field, Message string
}

// ParseFlowFilter reads the host and proto query parameters of GET
// /v1/flows (and the admin API's /api/v1/flows).
func ParseFlowFilter(q url.Values) (FlowFilter, *BadParam) {
	var ff FlowFilter
	if h := q.Get("host"); h != "" {
		a, err := netip.ParseAddr(h)
		if err != nil {
			return ff, &BadParam{Field: "host", Message: fmt.Sprintf("%q is not an IP address", h)}
		}
		ff.Host = a.Unmap()
	}
	if p := q.Get("proto"); p != "" {
		switch strings.ToLower(p) {
		case "tcp", "udp", "icmp", "gre", "esp":
			ff.Proto = strings.ToLower(p)
		default:
			return ff, &BadParam{Field: "proto", Message: fmt.Sprintf("%q is not tcp, udp, icmp, gre or esp", p)}
		}
	}
	return ff, nil
}

// Match reports whether f passes the filter.
func (ff FlowFilter) Match(f Flow) bool {
	if ff.Proto != "" && !strings.EqualFold(ff.Proto, f.Proto) {
		return false
	}
	if ff.Host.IsValid() && f.Inside.Addr() != ff.Host && f.Outside.Addr() != ff.Host && f.Remote.Addr() != ff.Host {
		return false
	}
	return true
}

// NewHandler serves the API for b.
func NewHandler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := b.Status()
		if st.PPPoE == nil {
			p := pppoeOf(b)
			st.PPPoE = &p
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/pppoe", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, pppoeOf(b))
	})
	mux.HandleFunc("GET /v1/flows", func(w http.ResponseWriter, r *http.Request) {
		ff, bad := ParseFlowFilter(r.URL.Query())
		if bad != nil {
			writeError(w, http.StatusBadRequest, bad.Field+": "+bad.Message)
			return
		}
		flows := []Flow{}
		b.Flows(func(f Flow) bool {
			if ff.Match(f) {
				flows = append(flows, f)
			}
			return true
		})
		writeJSON(w, http.StatusOK, flows)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		evs := b.Events()
		if evs == nil {
			evs = []Event{}
		}
		writeJSON(w, http.StatusOK, evs)
	})
	mux.HandleFunc("GET /v1/mappings", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, MappingsOf(b))
	})
	mux.HandleFunc("DELETE /v1/mappings/{proto}/{port}", func(w http.ResponseWriter, r *http.Request) {
		code, err := DeleteMappingOf(b, r.PathValue("proto"), r.PathValue("port"))
		if err != nil {
			writeError(w, code, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, MappingsOf(b))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// ErrNoMapping is a delete of a mapping that does not exist.
var ErrNoMapping = errors.New("no such mapping")

// MappingsOf reads b's port mappings, with [] rather than null for none.
func MappingsOf(b any) Mappings {
	var m Mappings
	if mp, ok := b.(Mapper); ok {
		m = mp.Mappings()
	}
	if m.Mappings == nil {
		m.Mappings = []Mapping{}
	}
	return m
}

// DeleteMappingOf deletes a mapping named by the path's protocol and
// port, returning the HTTP status of a failure.
func DeleteMappingOf(b any, proto, port string) (int, error) {
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return http.StatusBadRequest, fmt.Errorf("proto: %q is not tcp or udp", proto)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return http.StatusBadRequest, fmt.Errorf("port: %q is not a port 1-65535", port)
	}
	mp, ok := b.(Mapper)
	if !ok {
		return http.StatusNotFound, fmt.Errorf("%s %d: %w (port mapping is off)", proto, n, ErrNoMapping)
	}
	if err := mp.DeleteMapping(proto, uint16(n)); err != nil {
		if errors.Is(err, ErrNoMapping) {
			return http.StatusNotFound, err
		}
		return http.StatusInternalServerError, err
	}
	return http.StatusOK, nil
}

// pppoeOf reads the relay's state, with [] rather than null for no
// sessions so scripts can rely on the key.
func pppoeOf(b Backend) PPPoE {
	p := b.PPPoE()
	if p.Sessions == nil {
		p.Sessions = []PPPoESession{}
	}
	return p
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// Listen creates the socket's directory if needed, removes a stale socket
// left by a run that died (but refuses to steal one that answers), and
// listens with mode 0600.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: in use by another process", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control socket %s: probing the existing socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: removing stale socket: %w", path, err)
		}
	}
	// Create it private from the start: no window in which others connect.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// Serve listens on path and serves b until ctx is done, then shuts down
// and removes the socket.
func Serve(ctx context.Context, path string, b Backend, log *slog.Logger) error {
	l, err := Listen(path)
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, b, log)
}

// ServeListener serves b on l until ctx is done.
func ServeListener(ctx context.Context, l net.Listener, b Backend, log *slog.Logger) error {
	return ServeHandler(ctx, l, NewHandler(b), log)
}
