// Command passgate is the one binary of the passgate NAT gateway: it runs the
// gateway (run) with its admin page, reads and changes a running one over
// its control socket (status, conntrack, events, passthrough, forward, dmz,
// passwd, token), checks configuration files (config check), runs the lab
// demonstration (demo) and prints its version.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"passgate/admin"
	"passgate/admin/web"
	"passgate/alg"
	"passgate/config"
	"passgate/control"
	"passgate/dataplane/router"
	"passgate/lab/pppstub"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usage is the commands' summary; the passthrough names are alg.All's and
// the PPPoE relay's.
var usage = strings.ReplaceAll(usageText, "{NAMES}", strings.Join(append(alg.Names(), "pppoe"), " "))

const usageText = `passgate: a userspace NAT gateway

Usage:
  passgate run [--config FILE] [--lan IFACE --lan-addr CIDR --wan IFACE --wan-addr CIDR]
               [--wan-gateway IP] [--control SOCKET] [--workers N] [--log-level LEVEL] [--log-json]
               [--driver auto|afxdp|afpacket] [--offload=false] [--keep-rx-offloads]
  passgate status [--json] [--control SOCKET]
  passgate conntrack [--json] [--host IP] [--proto tcp|udp|icmp|gre|esp] [--vpn] [--control SOCKET]
  passgate conntrack --pppoe [--json] [--control SOCKET]
  passgate events [--json] [--control SOCKET]
  passgate passthrough [NAME [on|off]] [--json] [--control SOCKET]
                       NAME: {NAMES}
  passgate forward list | add NAME tcp|udp PORT[-PORT] HOST[:PORT] | del NAME [--json] [--control SOCKET]
  passgate dmz [IP|off] [--json] [--control SOCKET]
  passgate mappings [list | del tcp|udp PORT] [--json] [--control SOCKET]
  passgate passwd [--control SOCKET] [--config FILE]
  passgate token create NAME [--days N] [--scope admin|read] | list | revoke ID [--json] [--control SOCKET] [--config FILE]
  passgate config check FILE
  passgate demo [ARGS]
  passgate version

Run "passgate COMMAND -h" for the flags of a command.
`

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors whose message is a usage problem (exit status 2).
var errUsage = errors.New("usage")

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(rest, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "events":
		err = cmdEvents(rest, stdout, stderr)
	case "conntrack":
		err = cmdConntrack(rest, stdout, stderr)
	case "config":
		err = cmdConfig(rest, stdout, stderr)
	case "passthrough":
		err = cmdPassthrough(rest, stdout, stderr)
	case "forward", "forwards":
		err = cmdForward(rest, stdout, stderr)
	case "mappings", "mapping":
		err = cmdMappings(rest, stdout, stderr)
	case "dmz":
		err = cmdDMZ(rest, stdout, stderr)
	case "passwd", "password":
		err = cmdPasswd(rest, stdout, stderr)
	case "token", "tokens":
		err = cmdToken(rest, stdout, stderr)
	case "demo":
		err = runDemo(rest)
	case "pppstub":
		// Not in the usage: the demo's pppd stand-in (passgate/lab/pppstub).
		err = pppstub.Main(rest)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "passgate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "passgate:", strings.TrimSuffix(err.Error(), ": usage"))
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintln(stderr, "passgate:", err)
		return 1
	}
}

// errReported means the command already printed what went wrong.
var errReported = errors.New("reported")

func versionString() string {
	v := "passgate " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		v += " (" + bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += ", " + s.Value[:12]
			}
		}
		v += ")"
	}
	return v
}

func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("passgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: passgate %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and refuses stray arguments.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errReported // flag already printed the problem and the usage
	}
	if fs.NArg() > maxArgs {
		return fmt.Errorf("%s: unexpected argument %q: %w", fs.Name(), fs.Arg(maxArgs), errUsage)
	}
	return nil
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := newFlagSet("run", stderr, "[--config FILE] [flags]")
	cfgPath := fs.String("config", "", "configuration `file` (JSON); flags override it")
	lan := fs.String("lan", "", "LAN `interface`")
	lanAddr := fs.String("lan-addr", "", "router address on the LAN with prefix length (`CIDR`, e.g. 192.168.50.1/24)")
	wan := fs.String("wan", "", "WAN `interface`")
	wanAddr := fs.String("wan-addr", "", "router address on the WAN with prefix length (`CIDR`)")
	wanGW := fs.String("wan-gateway", "", "next hop for destinations off the WAN network (`IP`)")
	sock := fs.String("control", "", "control `socket` (default "+config.DefaultControlSocket+")")
	workers := fs.Int("workers", 0, "worker `count` (default: one per CPU)")
	driver := fs.String("driver", "", "packet `driver`: auto (AF_PACKET on veth or where XDP would be generic, else AF_XDP), afxdp or afpacket (default auto)")
	offload := fs.Bool("offload", true, "forward established TCP and UDP flows in the kernel (XDP program with AF_XDP, tc program with AF_PACKET); --offload=false turns it off")
	keepRx := fs.Bool("keep-rx-offloads", false, "leave the interfaces' GRO, LRO and VLAN stripping as they are (default: turned off while passgate runs)")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log as JSON instead of text")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("run: --log-level %q: %w", *logLevel, errUsage)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if *logJSON {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// overlay applies the flags over the file's configuration; they win
	// over it at every load, and saves keep the file's own values.
	overlay := func(c *config.Config) {
		if set["lan"] {
			c.LAN.Interface = *lan
		}
		if set["lan-addr"] {
			c.LAN.Address = *lanAddr
		}
		if set["wan"] {
			c.WAN.Interface = *wan
		}
		if set["wan-addr"] {
			c.WAN.Address = *wanAddr
		}
		if set["wan-gateway"] {
			c.WAN.Gateway = *wanGW
		}
		if set["control"] {
			c.ControlSocket = *sock
		}
		if set["workers"] {
			c.Workers = *workers
		}
		if set["driver"] {
			c.Driver = *driver
		}
		if set["offload"] {
			c.Offload = offload
		}
		if set["keep-rx-offloads"] {
			c.KeepRxOffloads = *keepRx
		}
	}
	validate := func(c config.Config) (*config.Settings, error) {
		cc := c.Clone()
		overlay(&cc)
		return cc.Validate()
	}
	name := *cfgPath
	if name == "" {
		name = "flags"
	}
	// The configuration file is the single source of truth: the store
	// loads it (or, if it is broken, its last good copy) and the admin
	// plane saves to it.
	var store *config.Store
	var fileCfg config.Config
	if *cfgPath != "" {
		store = config.NewStore(*cfgPath)
		store.Logger = log
		store.Check = func(c *config.Config) error {
			_, err := validate(*c)
			return err
		}
		c, _, err := store.LoadForStart()
		if err != nil {
			return reportConfig(stderr, name, err)
		}
		fileCfg = *c
	}
	settings, err := validate(fileCfg)
	if err != nil {
		return reportConfig(stderr, name, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Take the control socket first: a second instance fails here, before
	// touching the interfaces. It is a unix socket, out of the network's
	// reach; every network listener opens only once the fence is in place.
	gid, err := control.LookupGroup(settings.ControlGroup)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	rawLn, err := control.Listen(settings.ControlSocket)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer rawLn.Close()
	ln, err := control.Restrict(rawLn, settings.ControlSocket, control.PeerPolicy{GID: gid}, log)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}

	// The admin server opens from Ready, once Run has fenced the kernel
	// off: before that the kernel would answer for the LAN address alone.
	var adm adminServer
	opts := routerOptions(settings)
	opts.Logger = log
	opts.Ready = func(*router.Router) { adm.start() }
	r, err := router.New(opts)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	pm, pmDone, err := startPortMapping(ctx, log, r, settings, *cfgPath)
	if err != nil {
		return fmt.Errorf("run: port mapping: %w", err)
	}
	be := &backend{r: r, settings: func() config.Settings { return *settings }, started: time.Now(), portMapping: pm}

	// The admin plane needs the file to save changes to.
	var svc *admin.Service
	var auth *admin.Auth
	if store != nil {
		svc, err = admin.NewService(admin.Options{
			Backend: be, Reconfigure: func(s *config.Settings) error {
				if err := r.Reconfigure(s.NAT); err != nil {
					return err
				}
				pm.reconfigure(s)
				return nil
			}, SetPPPoERelay: r.SetPPPoERelay, Store: store,
			Config: fileCfg, Overlay: overlay, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		be.settings = svc.Settings
		auth, err = admin.NewAuth(admin.AuthPath(*cfgPath))
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		auth.SetLogger(log)
		if settings.Admin.Enabled {
			adm.prepare(log, r, settings, *cfgPath)
		} else {
			log.Info("admin server off (admin.enabled is false)")
		}
	} else {
		log.Info("admin server off: passgate runs without a configuration file (--config FILE) to save changes to")
	}

	cctx, cancelControl := context.WithCancel(ctx)
	var adminAPI http.Handler
	if svc != nil {
		adminAPI = admin.NewLocalAPI(svc, auth)
	}
	controlDone := make(chan error, 1)
	root := rootBackend{backend: be, admin: adm.info(auth)}
	go func() {
		controlDone <- control.ServeHandler(cctx, ln, control.WithAdmin(control.NewHandler(root), adminAPI), log)
	}()
	if adm.cert != nil {
		adm.ctx = cctx
		adm.handler = admin.NewHandler(admin.ServerOptions{Service: svc, Auth: auth, Web: web.Handler(svc, auth), Logger: log,
			MetricsLocalhost: settings.Admin.MetricsLocalhost, Hosts: admin.CertNames(adm.cert.TLSConfig())})
		adm.auth = auth
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if svc != nil {
				reloadFile(log, name, svc)
			} else {
				reload(log, name, func() (*config.Settings, error) { return validate(fileCfg) }, r)
			}
		}
	}()

	runErr := r.Run(ctx)
	cancelControl()
	if pmDone != nil {
		stop()
		<-pmDone // an error was logged when it happened
	}
	if err := <-controlDone; err != nil {
		log.Warn("control API", "err", err)
	}
	if err := adm.wait(); err != nil {
		log.Warn("admin server", "err", err)
	}
	if runErr != nil {
		return fmt.Errorf("run: %w", runErr)
	}
	return nil
}

// adminServer is the admin page's HTTPS server: prepared before the
// router runs (its certificate, its accept in the fence), started from
// the router's Ready, once the fence is in place.
type adminServer struct {
	log     *slog.Logger
	listen  netip.AddrPort
	max     int
	cert    *admin.Cert // nil: no admin server
	ctx     context.Context
	handler http.Handler
	auth    *admin.Auth
	url     string
	done    chan error // nil until started
}

// prepare loads or makes the certificate and lets the admin port through
// the fence on the LAN side. A failure is logged and the gateway runs
// without the admin page: the data plane matters more.
func (a *adminServer) prepare(log *slog.Logger, r *router.Router, s *config.Settings, cfgPath string) {
	a.log = log
	ap := s.Admin.Listen
	if !ap.IsValid() {
		log.Error("admin server off: admin.listen has no address")
		return
	}
	var cert *admin.Cert
	var err error
	if s.Admin.TLSCert != "" {
		cert, err = admin.LoadCert(s.Admin.TLSCert, s.Admin.TLSKey)
	} else {
		cf, kf := admin.CertPaths(cfgPath)
		cert, err = admin.LoadOrCreateCert(cf, kf, ap.Addr(), log)
	}
	if err != nil {
		log.Error("admin server off", "err", err)
		return
	}
	if ap.Addr() == s.NAT.LANAddr.Addr() {
		if err := r.AllowLANTCP(ap); err != nil {
			log.Error("admin server off", "err", err)
			return
		}
	}
	a.listen, a.max, a.cert = ap, s.Admin.MaxConnections, cert
	a.url = "https://" + ap.String() + "/"
}

// start opens the listener and serves (the router's Ready).
func (a *adminServer) start() {
	if a.cert == nil || a.handler == nil {
		return
	}
	a.done = make(chan error, 1)
	ln, err := admin.Listen(a.listen)
	if err != nil {
		a.log.Error("admin server off: cannot listen (is the LAN address configured on the interface?)", "listen", a.listen.String(), "err", err)
		a.done <- nil
		return
	}
	tl := admin.NewTLSOnlyListener(ln, a.cert.TLSConfig(), a.max, a.log)
	go func() { a.done <- admin.Serve(a.ctx, tl, a.handler, a.log) }()
	a.log.Info("admin page", "url", a.url, "cert_sha256", a.cert.Fingerprint, "cert", a.cert.CertFile, "max_connections", a.max)
	if code := a.auth.SetupCode(); code != "" {
		a.log.Warn("no admin password is set yet: open the admin page and give this setup code, or run passgate passwd on the router",
			"url", a.url, "setup_code", code)
	}
}

// wait returns the server's error once it has stopped.
func (a *adminServer) wait() error {
	if a.done == nil {
		return nil
	}
	return <-a.done
}

// info is what `passgate status` shows of the admin server.
func (a *adminServer) info(auth *admin.Auth) func() *control.AdminInfo {
	return func() *control.AdminInfo {
		if a.cert == nil {
			return nil
		}
		out := &control.AdminInfo{URL: a.url, Fingerprint: a.cert.Fingerprint, SPKI: a.cert.SPKI, CertFile: a.cert.CertFile}
		if auth != nil {
			out.SetupCode = auth.SetupCode()
		}
		return out
	}
}

// reload applies the flags' configuration again (no file: nothing
// changes but what the engine re-reads).
func reload(log *slog.Logger, name string, load func() (*config.Settings, error), r *router.Router) {
	s, err := load()
	if err == nil {
		err = r.Reconfigure(s.NAT)
	}
	if err != nil {
		logRefused(log, name, err)
		return
	}
	log.Info("configuration applied", "source", name)
}

// reloadFile applies the configuration file again while running (SIGHUP).
// A bad one is refused, its errors logged by field, and the running one
// stays.
func reloadFile(log *slog.Logger, name string, svc *admin.Service) {
	ch, err := svc.Reload()
	if err != nil {
		logRefused(log, name, err)
		return
	}
	cfg := svc.Settings().NAT
	attrs := []any{"source", name, "changes", len(ch)}
	for _, a := range alg.All() {
		if a.Kind == alg.Passthrough {
			attrs = append(attrs, a.Name, a.On(cfg))
		}
	}
	log.Info("configuration applied", attrs...)
}

func logRefused(log *slog.Logger, name string, err error) {
	for _, e := range config.AsErrors(err) {
		log.Error("configuration refused; the running one stays", "source", name, "error", e.Error())
	}
	if len(config.AsErrors(err)) == 0 {
		log.Error("configuration refused; the running one stays", "source", name, "error", err)
	}
}

// reportConfig prints configuration errors one per line.
func reportConfig(w io.Writer, name string, err error) error {
	es := config.AsErrors(err)
	if len(es) == 0 {
		return err
	}
	for _, e := range es {
		fmt.Fprintf(w, "%s: %s\n", name, e)
	}
	return errReported
}

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("config: want \"config check FILE\": %w", errUsage)
	}
	fs := newFlagSet("config check", stderr, "FILE")
	if err := parseFlags(fs, args[1:], 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("config check: want one FILE: %w", errUsage)
	}
	path := fs.Arg(0)
	c, err := config.Load(path)
	if err == nil {
		_, err = c.Validate()
	}
	if err != nil {
		if es := config.AsErrors(err); len(es) > 0 {
			for _, e := range es {
				fmt.Fprintln(stdout, e)
			}
			return errReported
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return nil
}

// routerOptions converts the settings for the data plane. The caller adds
// the clock and the logger. It lives here, not in config, so that config
// does not import the data plane.
func routerOptions(s *config.Settings) router.Options {
	nc := s.NAT
	nc.PortSeed = portSeed()
	return router.Options{
		LAN:     s.LANInterface,
		WAN:     s.WANInterface,
		NAT:     nc,
		Workers: s.Workers,
		Driver:  s.Driver,
		Offload: s.Offload,

		KeepRxOffloads: s.KeepRxOffloads,
		// The receive offloads' records beside the control socket, in
		// the runtime directory control.Listen made.
		StateDir: filepath.Dir(s.ControlSocket),

		PPPoERelay: s.PPPoERelay,
	}
}

// portSeed is a random seed for the engine's choice of outside ports
// (nat.Config.PortSeed); never 0, which would be the fixed one.
func portSeed() uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return binary.LittleEndian.Uint64(b[:]) | 1
}
