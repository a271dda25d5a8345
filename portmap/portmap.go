// Package portmap is the router side of port mapping for LAN applications:
// PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD, whose wire formats live
// in the subpackages pcp, natpmp and upnp. This package owns what the three
// share: the leases, the policy that decides who may map what, and their
// persistence. The mappings themselves are dynamic forwards in the engine
// (nat.DynamicForward), reached through the Table interface.
//
// The policy is secure by default: a LAN host maps only to itself (the
// IGD v2 rule, kept for every protocol); no outside port below 1024 unless
// AllowLowPorts; never a port a configured forward, a VPN passthrough or the
// router itself uses; at most MaxPerHost mappings a host; every lease is
// clamped to MaxLease (a requested lease of 0, "forever" in IGD v1, gets
// MaxLease too) and the answer says what was granted.
//
// Leases are saved atomically (a temporary file of mode 0600, synced,
// renamed over the old one, then the directory synced) after every change,
// and loaded at start: a lease survives a restart and still expires at its
// time. The file also keeps the start of the epoch PCP and NAT-PMP report
// (RFC 6887 section 8.5, RFC 6886 section 3.6) and the public address:
// while the leases survive, the epoch goes on counting across restarts;
// when they are lost (no file, an unreadable or corrupted one, a saved
// lease dropped) or the public address changed, it starts again at 0,
// which tells the clients to map again. A corrupted file does not stop passgate: it is
// logged, kept aside as FILE.corrupt, and no lease is loaded; a saved lease
// the policy refuses (not a LAN host, a duplicate, over max_per_host) is
// dropped and logged.
package portmap

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"passgate/nat"
)

// Protocol numbers of the mappings.
const (
	TCP uint8 = 6
	UDP uint8 = 17
)

// Config is the policy.
type Config struct {
	LAN           netip.Prefix  // the router's LAN address and prefix: hosts allowed to ask
	MaxLease      time.Duration // default DefaultMaxLease
	MaxPerHost    int           // default DefaultMaxPerHost
	MaxMappings   int           // all hosts together; default DefaultMaxMappings
	AllowLowPorts bool          // outside ports below 1024
	// AllowThirdParty lets a LAN host map ports for another LAN host with
	// PCP's THIRD_PARTY option (RFC 6887 section 13.1); off by default,
	// and never through NAT-PMP or UPnP.
	AllowThirdParty bool
	// RouterPorts are the ports the router itself serves (the admin
	// page, the mapping servers); no mapping takes them.
	RouterPorts []uint16
	// Public is the router's public address, saved with the leases: when
	// the saved one differs, the mappings point at an address the clients
	// no longer hold, so the epoch starts again (RFC 6887 section 8.5,
	// RFC 6886 section 3.6). It changes while running only by SetPublic.
	Public netip.Addr
}

// Defaults.
const (
	DefaultMaxLease   = 2 * time.Hour
	DefaultMaxPerHost = 32
	// DefaultMaxMappings bounds the mappings of all hosts together: UDP
	// requests are easily sent from spoofed LAN sources, so max_per_host
	// alone would let one host hold max_per_host for every LAN address.
	DefaultMaxMappings = 1024
)

func (c Config) withDefaults() Config {
	if c.MaxLease <= 0 {
		c.MaxLease = DefaultMaxLease
	}
	if c.MaxPerHost <= 0 {
		c.MaxPerHost = DefaultMaxPerHost
	}
	if c.MaxMappings <= 0 {
		c.MaxMappings = DefaultMaxMappings
	}
	return c
}

// Table is where the mappings take effect: the engine, behind the data
// plane's lock.
type Table interface {
	AddDynamicForward(nat.DynamicForward) error
	DeleteDynamicForward(proto uint8, outside uint16) bool
}

// Lease is one mapping a LAN host holds.
type Lease struct {
	Proto       uint8      `json:"proto"`
	Host        netip.Addr `json:"host"`
	Inside      uint16     `json:"inside_port"`
	Outside     uint16     `json:"outside_port"`
	By          string     `json:"by"` // "pcp", "natpmp", "upnp"
	Description string     `json:"description,omitempty"`
	Expires     time.Time  `json:"expires"`
	Nonce       [12]byte   `json:"nonce,omitzero"` // PCP's mapping nonce
}

// Left is the lease time left at now, never negative.
func (l Lease) Left(now time.Time) time.Duration { return max(l.Expires.Sub(now), 0) }

// Request asks for a mapping.
type Request struct {
	Client  netip.Addr // the address the request came from
	Host    netip.Addr // the internal host it names (PCP, UPnP); invalid = Client
	Proto   uint8
	Inside  uint16
	Outside uint16        // suggested; 0 = any
	Exact   bool          // only the suggested outside port will do (UPnP AddPortMapping, PCP PREFER_FAILURE)
	Lease   time.Duration // 0 = the maximum
	By      string
	Desc    string
	Nonce   [12]byte
	// ThirdParty: Host may differ from Client (PCP's THIRD_PARTY), if
	// the configuration allows it.
	ThirdParty bool
}

// Refusals; each protocol answers them with its own code.
var (
	ErrNotAuthorized = errors.New("a host may map ports only to itself")
	ErrNotLAN        = errors.New("the client is not on the LAN")
	ErrLowPort       = errors.New("outside ports below 1024 are not mapped (allow_low_ports is off)")
	ErrReserved      = errors.New("the outside port belongs to a configured port forward, a VPN passthrough or the router")
	ErrConflict      = errors.New("the outside port is mapped to another host or port")
	ErrHostLimit     = errors.New("the host holds the most mappings allowed (max_per_host)")
	ErrTotalLimit    = errors.New("the LAN holds the most mappings allowed (max_mappings)")
	ErrNoPort        = errors.New("no free outside port")
	ErrInvalid       = errors.New("invalid mapping request")
	ErrNoSuchLease   = errors.New("no such mapping")
	ErrNonce         = errors.New("the mapping belongs to a PCP client: only a request with its nonce changes or deletes it")
	ErrOtherProtocol = errors.New("the mapping was made with UPnP or NAT-PMP: PCP does not take it over")
	ErrUPnPLease     = errors.New("the mapping was made with UPnP: only UPnP deletes it (a NAT-PMP request's source is easily forged)")
)

// Event is something the event log should say: a mapping made, refused,
// deleted or expired.
type Event struct {
	Time    time.Time
	Kind    string // "mapping_made", "mapping_refused", "mapping_deleted", "mapping_expired"
	Host    netip.Addr
	Message string
}

// Manager holds the leases. It is safe for concurrent use.
type Manager struct {
	mu     sync.Mutex
	cfg    Config
	table  Table
	path   string // "" = not saved
	leases []Lease
	log    *slog.Logger
	notify func(Event)
	// epochStart is when the epoch of PCP and NAT-PMP began: kept across
	// restarts with the leases, now when they were lost.
	epochStart time.Time
	// syncDir makes a rename in dir durable (tests watch it).
	syncDir func(dir string) error
	// The saves of the current second (saveBudget at most; the rest
	// wait, dirty, for the next Expire or Flush).
	saveSecond time.Time
	saves      int
	dirty      bool
	// The refusals of the current second told (refusalBudget at most)
	// and not told.
	refusalSecond time.Time
	refusals      int
	untold        int
}

// refusalBudget is how many refusals a second the event log is told of;
// the rest are counted and summed up in one event the next second, so a
// host flooding refused requests cannot push the event log's other
// entries (its own mapping_made, say) out of the log, nor flood the log.
const refusalBudget = 16

// saveBudget is how many times a second the leases file is written: a
// LAN host flooding requests (each add, refresh or delete changes the
// leases) must not turn into a flood of file writes and fsyncs.
const saveBudget = 8

// New makes a Manager and installs the leases saved at path (if path is
// not empty) that have not expired by now; ones the table now refuses
// are dropped and reported. notify may be nil.
func New(cfg Config, table Table, path string, now time.Time, log *slog.Logger, notify func(Event)) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if notify == nil {
		notify = func(Event) {}
	}
	m := &Manager{cfg: cfg.withDefaults(), table: table, path: path, log: log, notify: notify, epochStart: now, syncDir: syncDir}
	if path == "" {
		return m, nil
	}
	saved, err := load(path)
	if err != nil {
		// The leases are lost: start without them (the epoch at 0 tells
		// the clients), keeping a corrupted file aside for a look.
		m.log.Error("saved port mappings lost", "err", err)
		m.event(now, "mapping_refused", netip.Addr{}, "saved port mappings not loaded: %v", err)
		if errors.Is(err, errCorrupt) {
			if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
				m.log.Error("corrupted leases file not moved aside", "err", rerr)
			}
		}
		saved = file{}
	}
	if es := saved.EpochStart; !es.IsZero() && !es.After(now) {
		m.epochStart = es
	}
	if was, is := saved.Public, m.cfg.Public; was.IsValid() && is.IsValid() && was != is {
		// Renumbered while stopped (a new address from the ISP, a
		// changed wan.address): the clients must map again.
		m.log.Info("public address changed since the leases were saved: the PCP and NAT-PMP epoch starts again", "was", was, "now", is)
		m.epochStart = now
	}
	for _, l := range saved.Leases {
		if !l.Expires.After(now) {
			m.event(now, "mapping_expired", l.Host, "%s expired while passgate was stopped", describe(l))
			continue
		}
		if l.Expires.After(now.Add(m.cfg.MaxLease)) {
			l.Expires = now.Add(m.cfg.MaxLease)
		}
		err := m.check(l.Host, l.Host, l.Proto, l.Outside, true, false)
		switch {
		case err != nil:
		case l.Inside == 0 || l.Outside == 0:
			err = ErrInvalid
		case slices.ContainsFunc(m.leases, func(o Lease) bool { return o.Proto == l.Proto && o.Outside == l.Outside }):
			err = ErrConflict
		default:
			err = m.admit(l, m.leases)
		}
		if err != nil {
			m.event(now, "mapping_refused", l.Host, "saved %s dropped: %v", describe(l), err)
			// That mapping is lost: the epoch starts again so its
			// client maps again (the others just refresh).
			m.epochStart = now
			continue
		}
		m.leases = append(m.leases, l)
	}
	return m, m.save()
}

// Reconfigure changes the policy; leases it no longer allows end. The
// public address stays (SetPublic changes it).
func (m *Manager) Reconfigure(cfg Config, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg.Public = m.cfg.Public
	m.cfg = cfg.withDefaults()
	kept := m.leases[:0]
	for _, l := range m.leases {
		err := m.check(l.Host, l.Host, l.Proto, l.Outside, true, false)
		if err == nil {
			// A configured forward may now own the port: install says.
			err = m.admit(l, kept)
		}
		if err != nil {
			m.table.DeleteDynamicForward(l.Proto, l.Outside)
			m.event(now, "mapping_deleted", l.Host, "%s ended by the new configuration: %v", describe(l), err)
			continue
		}
		if l.Expires.After(now.Add(m.cfg.MaxLease)) {
			l.Expires = now.Add(m.cfg.MaxLease)
		}
		kept = append(kept, l)
	}
	m.leases = kept
	m.saveLogged(now)
}

// SetPublic records a new public address of the router. When it replaces
// another, the epoch starts again at now (RFC 6887 section 8.5: the
// clients, told by the announcements, map again) and that is saved; it
// reports whether the address changed. The first address set (none was
// known) changes no epoch.
func (m *Manager) SetPublic(a netip.Addr, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.cfg.Public
	if !a.IsValid() || a == was {
		return false
	}
	m.cfg.Public = a
	if was.IsValid() {
		m.log.Info("public address changed: the PCP and NAT-PMP epoch starts again", "was", was, "now", a)
		m.epochStart = now
	}
	m.saveLogged(now)
	return true
}

// Public is the router's public address (Config.Public, SetPublic).
func (m *Manager) Public() netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.Public
}

// EpochStart is when the epoch PCP and NAT-PMP report began: kept across
// a restart that kept the leases and the public address.
func (m *Manager) EpochStart() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.epochStart
}

// MaxLease is the longest lease granted.
func (m *Manager) MaxLease() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.MaxLease
}

// ThirdPartyAllowed says whether PCP's THIRD_PARTY is allowed.
func (m *Manager) ThirdPartyAllowed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.AllowThirdParty
}

// lanHost says whether a is a host of the LAN: in the prefix, not the
// router, and not the prefix's network or broadcast address (a mapping to
// the broadcast address would send the Internet's packets to every host).
func (m *Manager) lanHost(a netip.Addr) bool {
	p := m.cfg.LAN
	if !a.Is4() || !p.Contains(a) || a == p.Addr() {
		return false
	}
	if p.Bits() > 30 {
		return true // /31 and /32: no network or broadcast address
	}
	v := a.As4()
	n := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	hostBits := uint32(1)<<(32-p.Bits()) - 1
	return n&hostBits != 0 && n&hostBits != hostBits
}

// check is the policy for a mapping of outside port out (0: any); third
// says the request is PCP's THIRD_PARTY.
func (m *Manager) check(client, host netip.Addr, proto uint8, out uint16, exact, third bool) error {
	switch {
	case proto != TCP && proto != UDP:
		return ErrInvalid
	case !m.lanHost(client):
		return ErrNotLAN
	case host != client && !(third && m.cfg.AllowThirdParty):
		return ErrNotAuthorized
	case !m.lanHost(host):
		return ErrNotLAN
	case !exact || out == 0:
		return nil
	case out < 1024 && !m.cfg.AllowLowPorts:
		return ErrLowPort
	case slices.Contains(m.cfg.RouterPorts, out):
		return ErrReserved
	}
	return nil
}

func (m *Manager) install(l Lease) error {
	err := m.table.AddDynamicForward(nat.DynamicForward{Proto: l.Proto, Outside: l.Outside, Host: l.Host, Inside: l.Inside, By: l.By, Description: l.Description})
	switch {
	case errors.Is(err, nat.ErrForwardReserved):
		return ErrReserved
	case errors.Is(err, nat.ErrForwardInUse):
		return ErrConflict
	case err != nil:
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// Map makes or refreshes a mapping. A host's existing mapping of the same
// protocol and inside port (PCP, NAT-PMP) or outside port (UPnP, exact)
// is refreshed; the lease granted is the request's clamped to MaxLease
// (0 = MaxLease): the answer carries it.
func (m *Manager) Map(now time.Time, r Request) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !r.Host.IsValid() {
		r.Host = r.Client
	}
	r.Desc = cleanDescription(r.Desc)
	l, err := m.mapLocked(now, r)
	if err != nil {
		if m.refusalTold(now) {
			m.event(now, "mapping_refused", r.Client, "%s %s %s:%d (outside %d) refused: %v", r.By, protoName(r.Proto), r.Host, r.Inside, r.Outside, err)
		}
		return Lease{}, err
	}
	m.saveLogged(now)
	return l, nil
}

func (m *Manager) mapLocked(now time.Time, r Request) (Lease, error) {
	if !r.Host.IsValid() {
		r.Host = r.Client
	}
	if r.Inside == 0 {
		return Lease{}, ErrInvalid
	}
	if err := m.check(r.Client, r.Host, r.Proto, r.Outside, r.Exact, r.ThirdParty); err != nil {
		return Lease{}, err
	}
	lease := r.Lease
	if lease <= 0 || lease > m.cfg.MaxLease {
		lease = m.cfg.MaxLease
	}
	// An existing lease of this host: refresh it.
	for i := range m.leases {
		l := &m.leases[i]
		if l.Proto != r.Proto || l.Host != r.Host {
			continue
		}
		// UPnP's AddPortMapping names the outside port (and may point it
		// at another inside port); the others name the inside port.
		if r.Exact && l.Outside != r.Outside || !r.Exact && l.Inside != r.Inside {
			continue
		}
		if err := mayChange(*l, r.By, &r.Nonce); err != nil {
			return Lease{}, err
		}
		if l.By == "upnp" && r.By == "natpmp" {
			// A UDP request, its source easily forged: it may keep the
			// UPnP lease alive, not shorten it (nor delete it: Delete).
			if e := now.Add(lease); e.After(l.Expires) {
				l.Expires = e
			}
			return *l, nil
		}
		if l.Inside != r.Inside {
			nl := *l
			nl.Inside = r.Inside
			if err := m.install(nl); err != nil {
				return Lease{}, err
			}
		}
		l.Inside, l.Expires, l.By, l.Nonce = r.Inside, now.Add(lease), r.By, r.Nonce
		if r.Desc != "" {
			l.Description = r.Desc
		}
		return *l, nil
	}
	if m.count(r.Host) >= m.cfg.MaxPerHost {
		return Lease{}, ErrHostLimit
	}
	if len(m.leases) >= m.cfg.MaxMappings {
		return Lease{}, ErrTotalLimit
	}
	l := Lease{Proto: r.Proto, Host: r.Host, Inside: r.Inside, By: r.By, Description: r.Desc, Expires: now.Add(lease), Nonce: r.Nonce}
	for _, out := range m.candidates(r) {
		if m.check(r.Client, r.Host, r.Proto, out, true, r.ThirdParty) != nil || !r.Exact && m.held(r.Proto, out) {
			// A port another lease of this host holds is not free either:
			// the engine would let the host repoint it.
			continue
		}
		l.Outside = out
		err := m.install(l)
		if err == nil {
			m.leases = append(m.leases, l)
			m.event(now, "mapping_made", l.Host, "%s mapped %s for %s", l.By, describe(l), lease)
			return l, nil
		}
		if r.Exact || errors.Is(err, ErrInvalid) {
			return Lease{}, err
		}
	}
	if r.Exact {
		return Lease{}, m.check(r.Client, r.Host, r.Proto, r.Outside, true, r.ThirdParty)
	}
	return Lease{}, ErrNoPort
}

// candidates are the outside ports to try: the suggested one, the inside
// port, then a walk of the high ports starting from a place that depends on
// the host and port.
func (m *Manager) candidates(r Request) []uint16 {
	if r.Exact {
		return []uint16{r.Outside}
	}
	var c []uint16
	for _, p := range []uint16{r.Outside, r.Inside} {
		if p != 0 && !slices.Contains(c, p) {
			c = append(c, p)
		}
	}
	a := r.Host.As4()
	start := (uint32(a[3])*7919 + uint32(r.Inside)*31) % 64512
	for i := uint32(0); i < 256; i++ {
		c = append(c, uint16(1024+(start+i*257)%64512))
	}
	return c
}

func (m *Manager) count(host netip.Addr) int { return countIn(m.leases, host) }

// held says whether a lease holds outside port out.
func (m *Manager) held(proto uint8, out uint16) bool {
	return slices.ContainsFunc(m.leases, func(l Lease) bool { return l.Proto == proto && l.Outside == out })
}

// mayChange says whether a request of protocol by (PCP's with nonce) may
// change or delete l, a lease of its host. A PCP lease belongs to its
// nonce (RFC 6887 section 11.3): no request without it changes it, not
// another PCP client's, nor NAT-PMP's or UPnP's, which carry none (RFC
// 6970's interworking function maps its own UPnP requests to PCP with its
// own nonce, and is refused the same way). A lease made without a nonce
// (UPnP, NAT-PMP) is shared by those two from its host, as on other
// routers (a program often asks with both for the same port), but PCP
// does not take it over: that would bind it to a nonce its maker does not
// know and lock the maker out, and a PCP request's UDP source is easily
// forged. For that reason too NAT-PMP may only keep a UPnP lease alive,
// not shorten or delete it (mapLocked, Delete): a UPnP request comes over
// TCP, which a host forging its neighbour's address cannot open.
func mayChange(l Lease, by string, nonce *[12]byte) error {
	switch {
	case l.By == "pcp" && (by != "pcp" || nonce == nil || *nonce != l.Nonce):
		return ErrNonce
	case l.By != "pcp" && by == "pcp":
		return fmt.Errorf("%w (made with %s)", ErrOtherProtocol, l.By)
	}
	return nil
}

// countIn is how many of leases host holds.
func countIn(leases []Lease, host netip.Addr) int {
	n := 0
	for _, l := range leases {
		if l.Host == host {
			n++
		}
	}
	return n
}

// admit takes back a lease that passed check (restored at start, or kept
// under a new configuration) next to held, the leases taken back so far:
// within the per-host and total limits, it installs it in the engine.
func (m *Manager) admit(l Lease, held []Lease) error {
	switch {
	case countIn(held, l.Host) >= m.cfg.MaxPerHost:
		return ErrHostLimit
	case len(held) >= m.cfg.MaxMappings:
		return ErrTotalLimit
	}
	return m.install(l)
}

// Delete removes a host's mapping, found by protocol and inside port
// (NAT-PMP, PCP; inside 0: every mapping of the protocol, or of both
// protocols with proto 0) or by outside port (UPnP: byOutside). by is the
// protocol asking ("pcp", "natpmp", "upnp") and nonce PCP's. Only the host
// that holds a mapping may delete it, and only as mayChange allows: a PCP
// mapping only with its nonce (neither NAT-PMP nor UPnP, which pass none,
// can delete it), a UPnP or NAT-PMP one not with PCP. A refusal goes to
// the event log.
func (m *Manager) Delete(now time.Time, client netip.Addr, by string, proto uint8, port uint16, byOutside bool, nonce *[12]byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	var err error
	var refused Lease
	kept := m.leases[:0]
	for _, l := range m.leases {
		match := (proto == 0 || l.Proto == proto) && (byOutside && l.Outside == port || !byOutside && (port == 0 || l.Inside == port))
		switch {
		case !match:
		case l.Host != client:
			if byOutside {
				err, refused = ErrNotAuthorized, l
			}
			match = false
		default:
			e := mayChange(l, by, nonce)
			if e == nil && l.By == "upnp" && by == "natpmp" {
				e = ErrUPnPLease
			}
			if e != nil {
				err, refused, match = e, l, false
			}
		}
		if !match {
			kept = append(kept, l)
			continue
		}
		m.table.DeleteDynamicForward(l.Proto, l.Outside)
		m.event(now, "mapping_deleted", l.Host, "%s deleted by %s", describe(l), client)
		n++
	}
	m.leases = kept
	if n > 0 {
		m.saveLogged(now)
		return n, nil
	}
	if err == nil {
		return 0, ErrNoSuchLease
	}
	if m.refusalTold(now) {
		m.event(now, "mapping_refused", client, "%s delete of %s mapping %s refused: %v", by, refused.By, describe(refused), err)
	}
	return 0, err
}

// Remove deletes a mapping by protocol and outside port whoever holds it
// (the administrator's delete).
func (m *Manager) Remove(now time.Time, proto uint8, outside uint16) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, l := range m.leases {
		if l.Proto == proto && l.Outside == outside {
			m.table.DeleteDynamicForward(l.Proto, l.Outside)
			m.leases = slices.Delete(m.leases, i, i+1)
			m.event(now, "mapping_deleted", l.Host, "%s deleted by the administrator", describe(l))
			m.saveLogged(now)
			return nil
		}
	}
	return ErrNoSuchLease
}

// refusalTold says whether a refusal at now goes to the event log; a new
// second first sums up the refusals of the last not told.
func (m *Manager) refusalTold(now time.Time) bool {
	m.sumUpRefusals(now)
	if m.refusals >= refusalBudget {
		m.untold++
		return false
	}
	m.refusals++
	return true
}

// sumUpRefusals starts the count again in a new second, first telling
// how many of the last were not told.
func (m *Manager) sumUpRefusals(now time.Time) {
	sec := now.Truncate(time.Second)
	if sec.Equal(m.refusalSecond) {
		return
	}
	if m.untold > 0 {
		m.event(now, "mapping_refused", netip.Addr{}, "%d more refused mapping requests not logged one by one (more than %d a second)", m.untold, refusalBudget)
	}
	m.refusalSecond, m.refusals, m.untold = sec, 0, 0
}

// Expire ends the leases whose time has come and returns how many.
func (m *Manager) Expire(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sumUpRefusals(now)
	n := 0
	kept := m.leases[:0]
	for _, l := range m.leases {
		if l.Expires.After(now) {
			kept = append(kept, l)
			continue
		}
		m.table.DeleteDynamicForward(l.Proto, l.Outside)
		m.event(now, "mapping_expired", l.Host, "%s expired", describe(l))
		n++
	}
	m.leases = kept
	if n > 0 || m.dirty {
		m.saveLogged(now)
	}
	return n
}

// Leases lists the leases by protocol and outside port.
func (m *Manager) Leases() []Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.leases)
	slices.SortFunc(out, func(a, b Lease) int {
		return int(uint32(a.Proto)<<16|uint32(a.Outside)) - int(uint32(b.Proto)<<16|uint32(b.Outside))
	})
	return out
}

// Find returns a lease by protocol and outside port.
func (m *Manager) Find(proto uint8, outside uint16) (Lease, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.leases {
		if l.Proto == proto && l.Outside == outside {
			return l, true
		}
	}
	return Lease{}, false
}

func (m *Manager) event(now time.Time, kind string, host netip.Addr, format string, args ...any) {
	ev := Event{Time: now, Kind: kind, Host: host, Message: fmt.Sprintf(format, args...)}
	m.log.Info(ev.Message, "event", kind, "host", host)
	m.notify(ev)
}

// maxDescription is the longest description kept, in bytes.
const maxDescription = 256

// cleanDescription keeps a description a LAN program gave (UPnP's
// NewPortMappingDescription) safe to show: no control characters (a
// terminal escape sequence, a newline forging a line in `passgate
// mappings`), no bidirectional overrides (text shown reversed), valid
// UTF-8, at most maxDescription bytes.
func cleanDescription(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxDescription {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func describe(l Lease) string {
	s := fmt.Sprintf("%s outside port %d to %s:%d", protoName(l.Proto), l.Outside, l.Host, l.Inside)
	if l.Description != "" {
		s += fmt.Sprintf(" (%q)", l.Description)
	}
	return s
}

func protoName(p uint8) string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("protocol %d", p)
}

type file struct {
	EpochStart time.Time  `json:"epoch_start,omitzero"`
	Public     netip.Addr `json:"public,omitzero"`
	Leases     []Lease    `json:"leases"`
}

var errCorrupt = errors.New("corrupted leases file")

func load(path string) (file, error) {
	var f file
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("portmap: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return file{}, fmt.Errorf("portmap: %s: %w: %v", path, errCorrupt, err)
	}
	return f, nil
}

// syncDir syncs a directory, so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// save writes the leases atomically: a temporary file beside path (mode
// 0600), synced, renamed over it, and the directory synced so the rename
// itself is durable.
func (m *Manager) save() error {
	if m.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(file{EpochStart: m.epochStart, Public: m.cfg.Public, Leases: m.leases}, "", "  ")
	if err != nil {
		return fmt.Errorf("portmap: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(m.path), filepath.Base(m.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("portmap: saving leases: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), m.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("portmap: saving leases: %w", err)
	}
	if err := m.syncDir(filepath.Dir(m.path)); err != nil {
		return fmt.Errorf("portmap: saving leases: syncing the directory: %w", err)
	}
	return nil
}

// saveLogged saves the leases, or, past saveBudget saves in the second
// of now, leaves them for the next Expire or Flush.
func (m *Manager) saveLogged(now time.Time) {
	if sec := now.Truncate(time.Second); !sec.Equal(m.saveSecond) {
		m.saveSecond, m.saves = sec, 0
	}
	if m.saves >= saveBudget {
		m.dirty = true
		return
	}
	m.saves++
	m.dirty = false
	if err := m.save(); err != nil {
		m.log.Error("leases not saved", "err", err)
	}
}

// Flush saves the leases if a change is not saved yet (at stop).
func (m *Manager) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirty {
		m.dirty = false
		if err := m.save(); err != nil {
			m.log.Error("leases not saved", "err", err)
		}
	}
}
