package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// Client talks to a running passgate over its control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient makes a client for the socket at path.
func NewClient(path string) *Client {
	d := net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Status fetches GET /v1/status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.get(ctx, "/v1/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Flows fetches GET /v1/flows, filtered by the server.
func (c *Client) Flows(ctx context.Context, ff FlowFilter) ([]Flow, error) {
	q := url.Values{}
	if ff.Host.IsValid() {
		q.Set("host", ff.Host.String())
	}
	if ff.Proto != "" {
		q.Set("proto", ff.Proto)
	}
	var flows []Flow
	if err := c.get(ctx, "/v1/flows", q, &flows); err != nil {
		return nil, err
	}
	return flows, nil
}

// PPPoE fetches GET /v1/pppoe: the PPPoE relay and its sessions.
func (c *Client) PPPoE(ctx context.Context) (*PPPoE, error) {
	var p PPPoE
	if err := c.get(ctx, "/v1/pppoe", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Events reads GET /v1/events.
func (c *Client) Events(ctx context.Context) ([]Event, error) {
	evs := []Event{}
	if err := c.get(ctx, "/v1/events", nil, &evs); err != nil {
		return nil, err
	}
	return evs, nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	u := "http://passgate" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	resp, body, err := c.fetch(req, path, 256<<20)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("control %s: %s", path, e.Error)
		}
		return fmt.Errorf("control %s: HTTP %s", path, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("control %s: decoding response: %w", path, err)
	}
	return nil
}

// fetch sends req (for path) and reads at most limit bytes of the answer.
func (c *Client) fetch(req *http.Request, path string, limit int64) (*http.Response, []byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, c.connError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, nil, fmt.Errorf("control %s: reading response: %w", path, err)
	}
	return resp, data, nil
}

// connError explains a failure to reach the daemon.
func (c *Client) connError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op // drop the URL wrapping: the socket path says it all
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("control socket %s: cannot connect (is passgate running?): %w", c.path, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("control socket %s: permission denied (it is readable by its owner only; try as root)", c.path)
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}
