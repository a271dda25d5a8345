package admin

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"passgate/config"
)

// The admin server speaks TLS only. Its certificate is the user's own
// (admin.tls_cert and admin.tls_key) or one passgate makes at first start:
// ECDSA P-256, self-signed, for the listen address, its key mode 0600 next
// to the authentication state file. People check its SHA-256 fingerprint,
// which passgate prints at start and `passgate status` shows, against what
// their browser says.

// Certificate files made next to the configuration file FILE.
const (
	CertSuffix = ".tls.crt"
	KeySuffix  = ".tls.key"
)

// CertPaths are the self-signed certificate's files for configPath.
func CertPaths(configPath string) (cert, key string) {
	return configPath + CertSuffix, configPath + KeySuffix
}

// Cert is the admin server's certificate and what people check it by.
type Cert struct {
	TLS tls.Certificate
	// Fingerprint is the SHA-256 of the certificate, as browsers show it:
	// 32 hex bytes separated by colons.
	Fingerprint string
	// SPKI is the base64 SHA-256 of the public key (what Chromium's
	// --ignore-certificate-errors-spki-list and HPKP-style pins take).
	SPKI string
	// SelfSigned says passgate made it.
	SelfSigned bool
	CertFile   string
}

// LoadCert reads the user's certificate and key (PEM).
func LoadCert(certFile, keyFile string) (*Cert, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("admin TLS certificate %s: %w", certFile, err)
	}
	return newCert(c, false, certFile)
}

// LoadOrCreateCert reads the self-signed certificate at certFile and
// keyFile, or makes one for ip (valid 10 years) when there is none or the
// one there does not name ip.
func LoadOrCreateCert(certFile, keyFile string, ip netip.Addr, log *slog.Logger) (*Cert, error) {
	_, errC := os.Stat(certFile)
	_, errK := os.Stat(keyFile)
	if errC == nil && errK == nil {
		if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(keyFile, 0o600); err != nil {
				return nil, fmt.Errorf("admin TLS key %s: %w", keyFile, err)
			}
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("admin TLS certificate %s (remove it and its key to make a new one): %w", certFile, err)
		}
		cert, err := newCert(c, true, certFile)
		if err != nil {
			return nil, err
		}
		unconstrained := cert.TLS.Leaf.IsCA && len(cert.TLS.Leaf.PermittedIPRanges) == 0
		if !unconstrained && (!ip.IsValid() || cert.TLS.Leaf.VerifyHostname(ip.String()) == nil) {
			return cert, nil
		}
		// The LAN address changed since it was made (browsers would refuse
		// the old one), or it was made before the name constraints: make
		// a new one.
		if log != nil {
			log.Warn("the admin certificate does not name the listen address or is an unconstrained CA: making a new one", "file", certFile, "address", ip.String())
		}
	}
	if errC != nil && !errors.Is(errC, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin TLS certificate: %w", errC)
	}
	if errK != nil && !errors.Is(errK, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin TLS key: %w", errK)
	}
	certPEM, keyPEM, err := selfSigned(ip, time.Now())
	if err != nil {
		return nil, err
	}
	// The key first: a certificate without its key is no use.
	if err := writeFileSynced(keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("admin TLS key: %w", err)
	}
	if err := writeFileSynced(certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("admin TLS certificate: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("admin TLS certificate: %w", err)
	}
	out, err := newCert(c, true, certFile)
	if err == nil && log != nil {
		log.Info("made a self-signed certificate for the admin page", "file", certFile, "sha256", out.Fingerprint)
	}
	return out, err
}

func newCert(c tls.Certificate, self bool, file string) (*Cert, error) {
	if len(c.Certificate) == 0 {
		return nil, errors.New("admin TLS certificate: the file holds no certificate")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("admin TLS certificate: %w", err)
	}
	c.Leaf = leaf
	sum := sha256.Sum256(leaf.Raw)
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return &Cert{TLS: c, Fingerprint: Fingerprint(sum[:]), SPKI: base64.StdEncoding.EncodeToString(spki[:]), SelfSigned: self, CertFile: file}, nil
}

// Fingerprint writes a digest as browsers show it: AB:CD:...
func Fingerprint(sum []byte) string {
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// selfSigned makes a P-256 certificate for ip and 127.0.0.1.
func selfSigned(ip netip.Addr, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("admin TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("admin TLS certificate: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4()}
	if ip.IsValid() && ip != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		ips = append(ips, ip.AsSlice())
	}
	// It is a CA so that it can be a trust anchor; its name constraints
	// keep anyone who trusts it from trusting anything else its key would
	// sign: only its own addresses and localhost.
	var permitted []*net.IPNet
	for _, a := range ips {
		permitted = append(permitted, &net.IPNet{IP: a, Mask: net.CIDRMask(8*len(a), 8*len(a))})
	}
	name := "passgate"
	if ip.IsValid() {
		name = "passgate " + ip.String()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"passgate (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so a browser or curl can take it as its own anchor (--cacert)
		IPAddresses:           ips,
		DNSNames:              []string{"localhost"},

		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{"localhost"},
		PermittedIPRanges:           permitted,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("admin TLS certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("admin TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// writeFileSynced writes a file atomically with mode perm, fsyncing it and
// its directory; every error is returned.
func writeFileSynced(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(perm))
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	if _, err := pf.Write(data); err != nil {
		return err
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return config.SyncDir(dir)
}

// TLSConfig is the admin server's TLS: 1.2 and up, HTTP/1.1.
func (c *Cert) TLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.TLS},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
}

// CertNames are the DNS names of cfg's first certificate: the names the
// admin server answers to besides addresses and local names.
func CertNames(cfg *tls.Config) []string {
	if cfg == nil || len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return nil
	}
	leaf := cfg.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Certificates[0].Certificate[0]); err != nil {
			return nil
		}
	}
	return leaf.DNSNames
}

// tlsOnlyListener is the admin server's listener: at most max connections
// open at once (more wait in the kernel's backlog, as with
// netutil.LimitListener), of which one client address holds at most
// perAddrLimit(max) (its others are closed at once, so one host cannot
// lock the owner out), and on each one the first byte decides: a TLS
// handshake goes on to the HTTP server, anything else (plain HTTP) is
// answered with a redirect to https and closed, never served.
type tlsOnlyListener struct {
	inner net.Listener
	tls   *tls.Config
	sem   chan struct{}
	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
	log   *slog.Logger
	wait  time.Duration // for the first byte

	names   []string // the certificate's DNS names (CertNames)
	perAddr int
	addrMu  sync.Mutex
	byAddr  map[netip.Addr]int // open connections by client address
}

// perAddrLimit is how many of max connections one client address may
// hold: a quarter, but at least what a browser opens to one site (6,
// here 8), and never more than max.
func perAddrLimit(total int) int {
	return min(total, max(total/4, 8))
}

// sniffTimeout bounds how long a connection may take to send its first
// byte, and a plain HTTP request to arrive; maxPlainRequest bounds what
// is read of that request (its header: it gets only a redirect).
const (
	sniffTimeout    = 10 * time.Second
	maxPlainRequest = 16 << 10
)

// NewTLSOnlyListener wraps ln: TLS with cfg, plain HTTP redirected, at
// most max connections at once.
func NewTLSOnlyListener(ln net.Listener, cfg *tls.Config, max int, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.Default()
	}
	if max < 1 {
		max = 1
	}
	l := &tlsOnlyListener{inner: ln, tls: cfg, sem: make(chan struct{}, max), conns: make(chan net.Conn),
		errc: make(chan error, 1), done: make(chan struct{}), log: log, wait: sniffTimeout,
		perAddr: perAddrLimit(max), byAddr: map[netip.Addr]int{}, names: CertNames(cfg)}
	go l.acceptLoop()
	return l
}

func (l *tlsOnlyListener) acceptLoop() {
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return
		}
		c, err := l.inner.Accept()
		if err != nil {
			<-l.sem
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		ip := remoteIP(c)
		if !l.take(ip) {
			c.Close()
			<-l.sem
			l.log.Debug("admin connection refused: this address holds its share of connections", "client", ip.String(), "share", l.perAddr)
			continue
		}
		go l.classify(&limitedConn{Conn: c, release: func() { l.give(ip); <-l.sem }})
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// take counts a connection from ip; false if ip holds its share already.
func (l *tlsOnlyListener) take(ip netip.Addr) bool {
	l.addrMu.Lock()
	defer l.addrMu.Unlock()
	if l.byAddr[ip] >= l.perAddr {
		return false
	}
	l.byAddr[ip]++
	return true
}

func (l *tlsOnlyListener) give(ip netip.Addr) {
	l.addrMu.Lock()
	defer l.addrMu.Unlock()
	if l.byAddr[ip]--; l.byAddr[ip] <= 0 {
		delete(l.byAddr, ip)
	}
}

// classify reads the first byte: 0x16 starts a TLS handshake record.
func (l *tlsOnlyListener) classify(c *limitedConn) {
	c.SetReadDeadline(time.Now().Add(l.wait))
	br := bufio.NewReader(c.Conn)
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.r = br
	if b[0] == 0x16 {
		c.SetReadDeadline(time.Time{})
		select {
		case l.conns <- tls.Server(c, l.tls):
		case <-l.done:
			c.Close()
		}
		return
	}
	l.redirect(c, br)
}

// redirect answers one plain HTTP request with a redirect to the same
// path over https, and closes the connection.
func (l *tlsOnlyListener) redirect(c *limitedConn, br *bufio.Reader) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(br, maxPlainRequest)))
	if err != nil {
		c.SetWriteDeadline(time.Now().Add(l.wait))
		fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 36\r\n\r\nthe admin page speaks only https://\n")
		return
	}
	c.SetWriteDeadline(time.Now().Add(l.wait))
	fmt.Fprint(c, redirectResponse(req, c.LocalAddr(), l.names...))
}

// redirectResponse is the answer to plain HTTP: 308 to https on the same
// host (the Host header when it is one the admin server answers to, else
// the address the client reached) and the same path.
func redirectResponse(req *http.Request, local net.Addr, names ...string) string {
	host := req.Host
	if host == "" || !hostAllowed(host, names...) || strings.ContainsAny(host, "\r\n/\\@ \t") {
		host = local.String()
	}
	path := req.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		path = "/"
	}
	if q := req.URL.RawQuery; q != "" && !strings.ContainsAny(q, "\r\n") {
		path += "?" + q
	}
	loc := "https://" + host + path
	body := "the admin page speaks only https: " + loc + "\n"
	return fmt.Sprintf("HTTP/1.1 308 Permanent Redirect\r\nLocation: %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", loc, len(body), body)
}

func (l *tlsOnlyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsOnlyListener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *tlsOnlyListener) Addr() net.Addr { return l.inner.Addr() }

// limitedConn gives its listener slot back once, when closed, and reads
// through the reader that peeked at its first byte.
type limitedConn struct {
	net.Conn
	r       *bufio.Reader
	once    sync.Once
	release func()
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.r != nil {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
