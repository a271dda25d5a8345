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

// Limits of SSDP answers: an M-SEARCH for ssdp:all (about 100 bytes) gets
// 18 answers (about 6 KB), so a LAN host spoofing another's address could
// use the router to flood it sixtyfold. Discovery needs a few searches a
// second at most.
const (
	MaxSearchesPerHost = 4  // M-SEARCHes answered a second for one address
	MaxSearches        = 32 // for all addresses together
)

// searchLimiter counts the M-SEARCHes answered in the current second.
type searchLimiter struct {
	mu     sync.Mutex
	second int64
	total  int
	per    map[netip.Addr]int
}

// allow says whether an M-SEARCH from a at now (Unix seconds) is answered.
func (l *searchLimiter) allow(now int64, a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now != l.second || l.per == nil {
		l.second, l.total, l.per = now, 0, map[netip.Addr]int{}
	}
	if l.total >= MaxSearches || l.per[a] >= MaxSearchesPerHost {
		return false
	}
	l.total++
	l.per[a]++
	return true
}
