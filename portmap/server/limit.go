package server

import (
	"net"
	"net/netip"
	"sync"
)

// Limits of the UPnP HTTP server's connections: a LAN host holding
// connections open (slowloris: each waits up to the header timeout, and a
// host can open thousands) would otherwise cost the router a goroutine and
// its buffers for each.
const (
	MaxHTTPConns        = 128
	MaxHTTPConnsPerHost = 16
)

// limitListener closes at once a connection past its limits: total
// connections open, and open from one address.
type limitListener struct {
	net.Listener
	total, perHost int
	mu             sync.Mutex
	open           map[netip.Addr]int
	n              int
}

func newLimitListener(ln net.Listener, total, perHost int) *limitListener {
	return &limitListener{Listener: ln, total: total, perHost: perHost, open: map[netip.Addr]int{}}
}

// Accept returns the next connection within the limits.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var a netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			a = ta.AddrPort().Addr().Unmap()
		}
		l.mu.Lock()
		ok := l.n < l.total && l.open[a] < l.perHost
		if ok {
			l.n++
			l.open[a]++
		}
		l.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l, a: a}, nil
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	a    netip.Addr
	once sync.Once
}

// Close releases the connection's place.
func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.n--
		if c.l.open[c.a]--; c.l.open[c.a] <= 0 {
			delete(c.l.open, c.a)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
