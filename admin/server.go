package admin

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ServerOptions make the admin HTTP handler.
type ServerOptions struct {
	Service *Service
	Auth    *Auth
	// Web serves every path outside /api/ and /metrics: the admin page
	// (package admin/web). Nil: a plain page saying the UI is not built.
	Web    http.Handler
	Logger *slog.Logger
	// MetricsLocalhost lets clients on 127.0.0.1 read /metrics without a
	// token (admin.metrics_localhost).
	MetricsLocalhost bool
	// Hosts are the names the admin certificate names (the user's own,
	// for a real domain): the Host check accepts them besides addresses
	// and local names.
	Hosts []string

	metricsGap time.Duration // tests: the pacing of /metrics; 0: metricsGap
}

// NewHandler is the admin server's handler: the REST API under /api/v1/,
// Prometheus metrics on /metrics (with an API token as a bearer token, or
// a session; from 127.0.0.1 without one if MetricsLocalhost; gathered at
// most once a second and answered at most ten times a second per client
// address), and the web page everywhere else. Every response forbids
// framing, MIME sniffing and caching (but the static assets), tells
// browsers to keep to https (HSTS), and a request whose Host is a name
// that could belong to someone else's site is refused (DNS rebinding).
func NewHandler(o ServerOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", NewAPI(o.Service, o.Auth))
	gap := metricsGap
	if o.metricsGap != 0 {
		gap = o.metricsGap
	}
	mux.Handle("GET /metrics", newPacer(gap, metricsMaxWait).paced(o.Auth.requireMetrics(MetricsHandler(o.Service), o.MetricsLocalhost)))
	web := o.Web
	if web == nil {
		web = http.HandlerFunc(notBuilt)
	}
	mux.Handle("/", web)
	return securityHeaders(mux, o.Hosts...)
}

func notBuilt(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintln(w, "passgate: admin UI not built into this binary. The REST API is under /api/v1/ (docs/api.md).")
}

func securityHeaders(h http.Handler, names ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store") // the static assets say no-cache instead
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !hostAllowed(r.Host, names...) {
			http.Error(w, "Misdirected request: reach the admin page by its IP address (or a local name such as router.lan)", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hostAllowed accepts a Host header that cannot be a name under someone
// else's control: an IP address, a name without dots (router), localhost,
// or a name under a suffix nobody can register (.lan, .local, .home.arpa,
// .internal, .localhost), made of the characters of a hostname only; or
// one of names (the certificate's: "*.example.com" matches one label). A
// page on another site that rebinds its own name to the router's address
// therefore cannot talk to the admin server.
func hostAllowed(host string, names ...string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return true // HTTP/1.0 without Host
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	// Only what a hostname holds: "evil.example?.lan" ends in .lan but a
	// browser sent to https://evil.example?.lan/ goes to evil.example.
	if strings.ContainsFunc(host, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '.' && r != '_'
	}) {
		return false
	}
	if !strings.Contains(host, ".") {
		return true
	}
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			if label, parent, ok := strings.Cut(host, "."); ok && label != "" && parent == rest {
				return true
			}
		} else if host == n {
			return true
		}
	}
	for _, suffix := range []string{".lan", ".local", ".home.arpa", ".internal", ".localhost"} {
		if strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

// Listen opens the admin server's TCP socket.
func Listen(addr netip.AddrPort) (net.Listener, error) {
	ln, err := net.Listen("tcp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("admin server: %w", err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx is done; ln is the TLS listener
// (NewTLSOnlyListener).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          stdlog.New(serverLog{log}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("admin server listening", "url", "https://"+ln.Addr().String()+"/")
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("admin server shutdown: %w", err)
	}
	return nil
}

// serverLog takes the http server's own log lines: warnings, but a failed
// TLS handshake (anyone on the LAN can fail one in a loop) only at debug.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		l.log.Debug(msg)
	} else {
		l.log.Warn(msg)
	}
	return len(p), nil
}
