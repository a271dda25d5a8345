// Command passgate is the one binary of the passgate NAT gateway: it runs the
// gateway (run), reads a running one over its control socket (status,
// conntrack), checks configuration files (config check), runs the lab
// demonstration (demo) and prints its version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"passgate/config"
	"passgate/control"
	"passgate/dataplane/router"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `passgate: a userspace NAT gateway

Usage:
  passgate run [--config FILE] [--lan IFACE --lan-addr CIDR --wan IFACE --wan-addr CIDR]
               [--wan-gateway IP] [--control SOCKET] [--workers N] [--log-level LEVEL]
  passgate status [--json] [--control SOCKET]
  passgate conntrack [--json] [--host IP] [--proto tcp|udp|icmp|gre|esp] [--vpn] [--control SOCKET]
  passgate events [--json] [--control SOCKET]
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
	case "demo":
		err = runDemo(rest)
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
	// load reads the file (if any) and applies the flags over it; SIGHUP
	// runs it again to apply a changed file while running.
	load := func() (*config.Settings, error) {
		c := &config.Config{}
		if *cfgPath != "" {
			var err error
			if c, err = config.Load(*cfgPath); err != nil {
				return nil, err
			}
		}
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
		return c.Validate()
	}
	name := *cfgPath
	if name == "" {
		name = "flags"
	}
	settings, err := load()
	if err != nil {
		return reportConfig(stderr, name, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Take the control socket first: a second instance fails here, before
	// touching the interfaces.
	ln, err := control.Listen(settings.ControlSocket)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer ln.Close()

	opts := settings.RouterOptions()
	opts.Logger = log
	r, err := router.New(opts)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	be := &backend{r: r, settings: settings, started: time.Now()}
	cctx, cancelControl := context.WithCancel(ctx)
	controlDone := make(chan error, 1)
	go func() { controlDone <- control.ServeListener(cctx, ln, be, log) }()

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
			reload(log, name, load, r)
		}
	}()

	runErr := r.Run(ctx)
	cancelControl()
	if err := <-controlDone; err != nil {
		log.Warn("control API", "err", err)
	}
	if runErr != nil {
		return fmt.Errorf("run: %w", runErr)
	}
	return nil
}

// reload applies the configuration again while running. A bad one is
// refused, its errors logged by field, and the running one stays.
func reload(log *slog.Logger, name string, load func() (*config.Settings, error), r *router.Router) {
	s, err := load()
	if err == nil {
		err = r.Reconfigure(s.NAT)
	}
	if err != nil {
		for _, e := range config.AsErrors(err) {
			log.Error("configuration refused; the running one stays", "source", name, "error", e.Error())
		}
		if len(config.AsErrors(err)) == 0 {
			log.Error("configuration refused; the running one stays", "source", name, "error", err)
		}
		return
	}
	p := s.NAT.Passthrough
	log.Info("configuration applied", "source", name,
		"ipsec", p.IPsec.Enabled(true), "pptp", p.PPTP.Enabled(true), "l2tp", p.L2TP.Enabled(true))
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
