// Package admin is passgate's admin plane: the Service that reads the
// running gateway and changes its configuration (validated, saved
// atomically to the configuration file, applied live, all or nothing), the
// authentication of people and scripts (Auth), the REST API under /api/v1,
// the Prometheus metrics, and the HTTP server that puts them, and the web
// page of package admin/web, on the LAN address.
package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"passgate/config"
	"passgate/control"
)

// Options make a Service.
type Options struct {
	// Backend reads the running gateway: status, flows, events.
	Backend control.Backend
	// Reconfigure applies validated settings' engine configuration
	// (Settings.NAT) live (router.Reconfigure).
	Reconfigure func(*config.Settings) error
	// SetPPPoERelay switches the PPPoE relay live (router.SetPPPoERelay);
	// nil: the relay is shown as not available.
	SetPPPoERelay func(bool)
	// Store is the configuration file. NewService sets its Check to the
	// Service's validation (with Overlay) unless it has one.
	Store *config.Store
	// Config is the running configuration in file form: what Store loaded.
	Config config.Config
	// Overlay applies the command-line overrides of passgate run over a
	// configuration before it is validated; nil: none. The file keeps its
	// own values: Config() and saves are the file form, without them.
	Overlay func(*config.Config)
	Logger  *slog.Logger
}

// Service is the one Go API both the REST API and the web page use to read
// the running gateway and change its configuration. It is safe for
// concurrent use; changes are serialised.
type Service struct {
	backend     control.Backend
	reconfigure func(*config.Settings) error
	setPPPoE    func(bool)
	store       *config.Store
	overlay     func(*config.Config)
	log         *slog.Logger

	mu       sync.Mutex
	cfg      config.Config    // file form
	eff      config.Config    // effective: overlay and defaults applied
	settings *config.Settings // validated eff
}

// Changes are what an Apply changed, one human line each, e.g.
// "PPTP passthrough: on -> off" or
// "port forward web added: tcp 8080 -> 192.168.50.10:80", and after a
// forward added or changed that takes a port a VPN passthrough uses (UDP
// 500, 4500, 1701, TCP 1723), a line "note: ..." saying what that means
// (forwardNotes). Empty when nothing changed.
type Changes []string

// Errors the helpers return besides config.Errors.
var (
	// ErrNotFound: no port forward or passthrough of that name.
	ErrNotFound = errors.New("not found")
	// ErrNotAvailable: a passthrough helper this version does not have.
	ErrNotAvailable = errors.New("not available")
)

// NewService checks the running configuration and makes the Service.
func NewService(o Options) (*Service, error) {
	if o.Backend == nil || o.Reconfigure == nil || o.Store == nil {
		return nil, errors.New("admin: NewService needs a Backend, Reconfigure and a Store")
	}
	s := &Service{backend: o.Backend, reconfigure: o.Reconfigure, setPPPoE: o.SetPPPoERelay, store: o.Store, overlay: o.Overlay, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.store.Check == nil {
		s.store.Check = func(c *config.Config) error {
			_, _, err := s.validate(*c)
			return err
		}
	}
	eff, settings, err := s.validate(o.Config)
	if err != nil {
		return nil, fmt.Errorf("admin: running configuration: %w", err)
	}
	s.cfg, s.eff, s.settings = o.Config.Clone(), eff, settings
	for _, pf := range eff.PortForwards {
		for _, n := range forwardNotes(&eff, pf) {
			s.log.Warn("port forward on a VPN passthrough port", "note", strings.TrimPrefix(n, "note: "))
		}
	}
	return s, nil
}

// validate applies the overlay and the defaults to a copy of c and checks
// it.
func (s *Service) validate(c config.Config) (config.Config, *config.Settings, error) {
	cc := c.Clone()
	if s.overlay != nil {
		s.overlay(&cc)
	}
	settings, err := cc.Validate()
	return cc, settings, err
}

// Status is the running gateway's status.
func (s *Service) Status() control.Status { return s.backend.Status() }

// Flows lists the live flows that pass the filter, sorted by protocol,
// inside and remote endpoint.
// Mappings are the port mappings LAN applications made (PCP, NAT-PMP,
// UPnP) and which of the protocols are on.
func (s *Service) Mappings() control.Mappings { return control.MappingsOf(s.backend) }

// DeleteMapping deletes the mapping of an outside port ("tcp", "40000").
func (s *Service) DeleteMapping(proto, port string) error {
	_, err := control.DeleteMappingOf(s.backend, proto, port)
	if err == nil {
		s.log.Info("port mapping deleted", "proto", proto, "port", port)
	}
	return err
}

func (s *Service) Flows(f control.FlowFilter) []control.Flow {
	out := []control.Flow{}
	s.backend.Flows(func(fi control.Flow) bool {
		if f.Match(fi) {
			out = append(out, fi)
		}
		return true
	})
	slices.SortFunc(out, func(a, b control.Flow) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.Inside.Compare(b.Inside), a.Remote.Compare(b.Remote), a.Outside.Compare(b.Outside))
	})
	return out
}

// Events are the recent events (what was blocked and why), oldest first.
func (s *Service) Events() []control.Event {
	evs := s.backend.Events()
	if evs == nil {
		evs = []control.Event{}
	}
	return evs
}

// Config is the running configuration, file form: what the file says,
// without defaults filled in nor command-line overrides.
func (s *Service) Config() config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Clone()
}

// Settings is the running configuration validated, overrides and defaults
// applied.
func (s *Service) Settings() config.Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.settings
}

// Apply validates the whole new configuration, saves it atomically and
// applies it live (router.Reconfigure), all or nothing. On error the
// running configuration and the file stay as they were; the error is
// config.Errors naming fields when it is a validation error, including a
// change to a field that takes effect only at restart.
func (s *Service) Apply(c config.Config) (Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apply(c, "api")
}

// apply is Apply with s.mu held; source says who asked, for the log.
func (s *Service) apply(c config.Config, source string) (Changes, error) {
	eff, settings, err := s.validate(c)
	if err != nil {
		return nil, err
	}
	if es := restartOnly(s.settings, settings); len(es) > 0 {
		return nil, es
	}
	changes := diff(s.eff, eff)
	if len(changes) == 0 && sameJSON(s.cfg, c) {
		return changes, nil
	}
	if source != "file" {
		if err := s.store.Save(&c); err != nil {
			return nil, fmt.Errorf("admin: saving the configuration (nothing changed): %w", err)
		}
	}
	if err := s.reconfigure(settings); err != nil {
		if source != "file" {
			if rerr := s.store.Revert(); rerr != nil {
				s.log.Error("could not put the previous configuration file back after a refused apply", "file", s.store.Path(), "err", rerr)
			}
		}
		return nil, fmt.Errorf("admin: applying the configuration (the running one stays): %w", err)
	}
	if s.setPPPoE != nil && settings.PPPoERelay != s.settings.PPPoERelay {
		s.setPPPoE(settings.PPPoERelay)
	}
	s.cfg, s.eff, s.settings = c.Clone(), eff, settings
	if len(changes) == 0 {
		s.log.Info("configuration saved; nothing the gateway uses changed", "source", source)
	}
	for _, ch := range changes {
		if n, ok := strings.CutPrefix(ch, "note: "); ok {
			s.log.Warn("port forward on a VPN passthrough port", "source", source, "note", n)
			continue
		}
		s.log.Info("configuration changed", "source", source, "change", ch)
	}
	return changes, nil
}

// Reload reads the configuration file again and applies it, as SIGHUP
// does. A broken file is refused with its errors and the running
// configuration stays.
func (s *Service) Reload() (Changes, error) {
	c, err := s.store.Load()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apply(*c, "file")
}

// modify applies fn to a copy of the running configuration and applies the
// result.
func (s *Service) modify(source string, fn func(c *config.Config) error) (Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cfg.Clone()
	if err := fn(&c); err != nil {
		return nil, err
	}
	return s.apply(c, source)
}

// SetPassthrough switches one entry of the NAT Passthrough page on or off:
// ipsec, pptp, l2tp, the helpers this build has (sip, rtsp, h323, ftp,
// tftp) and the PPPoE relay. One that is not built is ErrNotAvailable; an
// unknown name is ErrNotFound.
func (s *Service) SetPassthrough(name string, on bool) (Changes, error) {
	d, ok := passthroughByName(name)
	if !ok {
		return nil, fmt.Errorf("passthrough %q: %w (want one of %s)", name, ErrNotFound, strings.Join(passthroughNames(), ", "))
	}
	if ok, why := s.available(d); !ok {
		return nil, fmt.Errorf("%s: %w: %s", d.label, ErrNotAvailable, why)
	}
	return s.modify("api", func(c *config.Config) error {
		v := on
		*d.field(c) = &v
		return nil
	})
}

// Forwards are the port forwarding rules, file form.
func (s *Service) Forwards() []config.PortForward {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.cfg.PortForwards)
	if out == nil {
		out = []config.PortForward{}
	}
	return out
}

// AddForward adds a port forwarding rule at the end. Validation errors name
// the rule as it will be in the file: port_forwards[N].field.
func (s *Service) AddForward(pf config.PortForward) (Changes, error) {
	return s.modify("api", func(c *config.Config) error {
		c.PortForwards = append(c.PortForwards, pf)
		return nil
	})
}

// UpdateForward replaces the rule called name (pf.Name empty keeps the
// name; another name renames it).
func (s *Service) UpdateForward(name string, pf config.PortForward) (Changes, error) {
	return s.modify("api", func(c *config.Config) error {
		i := forwardIndex(c, name)
		if i < 0 {
			return fmt.Errorf("port forward %q: %w", name, ErrNotFound)
		}
		if pf.Name == "" {
			pf.Name = name
		}
		c.PortForwards[i] = pf
		return nil
	})
}

// DeleteForward removes the rule called name.
func (s *Service) DeleteForward(name string) (Changes, error) {
	return s.modify("api", func(c *config.Config) error {
		i := forwardIndex(c, name)
		if i < 0 {
			return fmt.Errorf("port forward %q: %w", name, ErrNotFound)
		}
		c.PortForwards = slices.Delete(c.PortForwards, i, i+1)
		return nil
	})
}

// ForwardIndex is the index the rule called name has in the file, or -1.
func (s *Service) ForwardIndex(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return forwardIndex(&s.cfg, name)
}

func forwardIndex(c *config.Config, name string) int {
	return slices.IndexFunc(c.PortForwards, func(pf config.PortForward) bool { return pf.Name == name })
}

// DMZ is the DMZ host, "" when off.
func (s *Service) DMZ() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.DMZ
}

// SetDMZ sets the DMZ host, the LAN host that gets every unsolicited
// inbound packet no port forward claims; "" turns it off.
func (s *Service) SetDMZ(host string) (Changes, error) {
	return s.modify("api", func(c *config.Config) error {
		c.DMZ = strings.TrimSpace(host)
		return nil
	})
}

// restartOnly refuses changes to what the running gateway cannot change
// without a restart: interfaces, their addresses and MTUs, the table size,
// the workers, the control socket, the admin server and which port
// mapping protocols are served (their sockets and fence rules are made at
// start).
func restartOnly(old, nw *config.Settings) config.Errors {
	var es config.Errors
	check := func(field string, was, is any) {
		if was != is {
			es = append(es, &config.FieldError{Field: field,
				Msg: fmt.Sprintf("changes only at restart (running: %v); edit the configuration file and restart passgate", orNone(was))})
		}
	}
	check("lan.interface", old.LANInterface, nw.LANInterface)
	check("lan.address", old.NAT.LANAddr, nw.NAT.LANAddr)
	check("lan.mtu", old.NAT.LANMTU, nw.NAT.LANMTU)
	check("wan.interface", old.WANInterface, nw.WANInterface)
	check("wan.address", old.NAT.WANAddr, nw.NAT.WANAddr)
	check("wan.mtu", old.NAT.WANMTU, nw.NAT.WANMTU)
	check("nat.max_flows", old.NAT.MaxFlows, nw.NAT.MaxFlows)
	check("nat.max_flows_per_host", old.NAT.MaxFlowsPerHost, nw.NAT.MaxFlowsPerHost)
	check("workers", old.Workers, nw.Workers)
	check("driver", old.Driver, nw.Driver)
	check("offload", old.Offload, nw.Offload)
	check("keep_rx_offloads", old.KeepRxOffloads, nw.KeepRxOffloads)
	check("control_socket", old.ControlSocket, nw.ControlSocket)
	check("admin.enabled", old.Admin.Enabled, nw.Admin.Enabled)
	check("admin.listen", old.Admin.Listen, nw.Admin.Listen)
	check("admin.tls_cert", old.Admin.TLSCert, nw.Admin.TLSCert)
	check("admin.tls_key", old.Admin.TLSKey, nw.Admin.TLSKey)
	check("admin.max_connections", old.Admin.MaxConnections, nw.Admin.MaxConnections)
	check("admin.metrics_localhost", old.Admin.MetricsLocalhost, nw.Admin.MetricsLocalhost)
	check("control_group", old.ControlGroup, nw.ControlGroup)
	check("port_mapping.pcp", old.PortMapping.PCP, nw.PortMapping.PCP)
	check("port_mapping.natpmp", old.PortMapping.NATPMP, nw.PortMapping.NATPMP)
	check("port_mapping.upnp", old.PortMapping.UPnP, nw.PortMapping.UPnP)
	return es
}

func orNone(v any) any {
	if s := fmt.Sprint(v); s == "" || s == "invalid AddrPort" || s == "invalid Prefix" {
		return "none"
	}
	return v
}

func sameJSON(a, b config.Config) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// diff describes what changed between two effective configurations.
func diff(old, nw config.Config) Changes {
	ch := Changes{}
	ch = append(ch, switchChanges(&old, &nw)...)

	oldFw := map[string]config.PortForward{}
	for _, pf := range old.PortForwards {
		oldFw[pf.Name] = pf
	}
	newFw := map[string]bool{}
	for _, pf := range nw.PortForwards {
		newFw[pf.Name] = true
		was, ok := oldFw[pf.Name]
		switch {
		case !ok:
			ch = append(ch, fmt.Sprintf("port forward %s added: %s", pf.Name, ForwardText(pf)))
			ch = append(ch, forwardNotes(&nw, pf)...)
		case ForwardText(was) != ForwardText(pf):
			ch = append(ch, fmt.Sprintf("port forward %s changed: %s => %s", pf.Name, ForwardText(was), ForwardText(pf)))
			ch = append(ch, forwardNotes(&nw, pf)...)
		}
	}
	for _, pf := range old.PortForwards {
		if !newFw[pf.Name] {
			ch = append(ch, fmt.Sprintf("port forward %s removed: %s", pf.Name, ForwardText(pf)))
		}
	}
	if old.DMZ != nw.DMZ {
		ch = append(ch, fmt.Sprintf("DMZ host: %s -> %s", orOff(old.DMZ), orOff(nw.DMZ)))
	}

	// Everything else, by field path.
	strip := func(c config.Config) map[string]string {
		c.Passthrough, c.Helpers, c.PortForwards, c.DMZ = config.Passthrough{}, config.Helpers{}, nil, ""
		m := map[string]string{}
		b, _ := json.Marshal(c)
		var v any
		_ = json.Unmarshal(b, &v)
		flatten("", v, m)
		return m
	}
	om, nm := strip(old), strip(nw)
	var keys []string
	for k := range om {
		keys = append(keys, k)
	}
	for k := range nm {
		if _, ok := om[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if om[k] != nm[k] {
			ch = append(ch, fmt.Sprintf("%s: %s -> %s", k, orUnset(om[k]), orUnset(nm[k])))
		}
	}
	return ch
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case nil:
	default:
		b, _ := json.Marshal(x)
		out[prefix] = strings.Trim(string(b), `"`)
	}
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// ForwardText describes a rule: "tcp 8080 -> 192.168.50.10:80",
// "udp 27000-27010 -> 192.168.50.11:27000-27010".
func ForwardText(pf config.PortForward) string {
	out := string(pf.OutsidePort)
	in := ""
	lo, hi, ok := portRange(out)
	inside := pf.InsidePort
	if ok && inside == 0 {
		inside = lo
	}
	switch {
	case !ok:
		in = strconv.Itoa(inside)
	case lo == hi:
		in = strconv.Itoa(inside)
	default:
		in = fmt.Sprintf("%d-%d", inside, inside+hi-lo)
	}
	host := pf.Host
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	return fmt.Sprintf("%s %s -> %s:%s", strings.ToLower(pf.Proto), out, host, in)
}

func portRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	l, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, false
	}
	h := l
	if isRange {
		if h, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, false
		}
	}
	return l, h, true
}
