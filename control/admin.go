package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"passgate/config"
)

// The control socket also carries the admin REST API (package admin, the
// same calls as the admin page's /api/v1/), for the CLI: passthrough,
// forward, dmz, passwd, token. The socket is mode 0600, so only root gets
// in, and it needs no login there.

// AdminPrefix is where the admin API lives on the control socket.
const AdminPrefix = "/api/"

// WithAdmin serves read (NewHandler) and, under /api/, admin. A nil admin
// answers /api/ with 503: the daemon runs without a configuration file to
// save changes to.
func WithAdmin(read, admin http.Handler) http.Handler {
	mux := http.NewServeMux()
	if admin == nil {
		admin = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusServiceUnavailable, APIErrors{Errors: []APIError{{
				Message: "changes are not available: passgate runs without a configuration file (passgate run --config FILE) to save them to",
			}}})
		})
	}
	mux.Handle(AdminPrefix, admin)
	mux.Handle("/", read)
	return mux
}

// ServeHandler serves h on l until ctx is done (ServeListener is it for
// the read API alone).
func ServeHandler(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("control API listening", "socket", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("control API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil { // closes l, which unlinks the socket file
		return fmt.Errorf("control API shutdown: %w", err)
	}
	return nil
}

// APIError is one item of the admin API's error answer.
type APIError struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// APIErrors is the admin API's error answer: {"errors":[...]}.
type APIErrors struct {
	Errors []APIError `json:"errors"`
}

// StatusError is an admin API call's failure: the HTTP status and the
// errors it answered. Field errors (validation) are also config.Errors
// through errors.As.
type StatusError struct {
	Code   int
	Errors []APIError
}

func (e *StatusError) Error() string {
	parts := make([]string, 0, len(e.Errors))
	for _, x := range e.Errors {
		if x.Field != "" {
			parts = append(parts, x.Field+": "+x.Message)
		} else {
			parts = append(parts, x.Message)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	}
	return strings.Join(parts, "\n")
}

// As lets errors.As find config.Errors in a 400 answer with fields.
func (e *StatusError) As(target any) bool {
	t, ok := target.(*config.Errors)
	if !ok || e.Code != http.StatusBadRequest {
		return false
	}
	var es config.Errors
	for _, x := range e.Errors {
		if x.Field == "" {
			return false
		}
		es = append(es, &config.FieldError{Field: x.Field, Msg: x.Message})
	}
	if len(es) == 0 {
		return false
	}
	*t = es
	return true
}

// Do calls the admin API on the control socket: method on path (under
// /api/v1/), in as the JSON body (nil: none), the JSON answer decoded into
// out (nil: ignored). A refusal is a *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("control: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://passgate"+path, body)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, data, err := c.fetch(req, path, 64<<20)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		se := &StatusError{Code: resp.StatusCode}
		var ae APIErrors
		if json.Unmarshal(data, &ae) == nil && len(ae.Errors) > 0 {
			se.Errors = ae.Errors
		} else if e := (apiError{}); json.Unmarshal(data, &e) == nil && e.Error != "" {
			se.Errors = []APIError{{Message: e.Error}}
		}
		return se
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("control %s: decoding response: %w", path, err)
		}
	}
	return nil
}

// Available reports whether a daemon answers on the socket.
func (c *Client) Available(ctx context.Context) bool {
	_, err := c.Status(ctx)
	return err == nil
}

// escape is url.PathEscape, for names in paths.
func escape(s string) string { return url.PathEscape(s) }

// AdminPath builds an admin API path from parts, escaping each:
// AdminPath("forwards", "my game") is "/api/v1/forwards/my%20game".
func AdminPath(parts ...string) string {
	p := "/api/v1"
	for _, s := range parts {
		p += "/" + escape(s)
	}
	return p
}
