package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"passgate/admin"
	"passgate/config"
	"passgate/control"
)

// The commands that change the running configuration talk to the daemon's
// admin API over the control socket (root only): the same calls, checks and
// errors as the admin page and /api/v1.

// stdin is where passwd reads a password when it is not a terminal.
var stdin io.Reader = os.Stdin

// adminArgs parses what every admin command takes: positional arguments
// with --json and --control SOCKET anywhere among them, and the flags
// extra (if not nil) adds.
func adminArgs(name, synopsis string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (pos []string, asJSON bool, sock string, err error) {
	fs := newFlagSet(name, stderr, synopsis)
	j := fs.Bool("json", false, "print JSON")
	so := controlFlag(fs)
	if extra != nil {
		extra(fs)
	}
	pos, err = parseArgs(fs, args)
	return pos, *j, *so, err
}

// parseArgs parses flags placed anywhere among the arguments
// ("passthrough pptp off --json") and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errReported
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func adminCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// adminCall is what the calls of one admin command share: the client on
// the control socket, their deadline, and where and how they print.
type adminCall struct {
	ctx            context.Context
	c              *control.Client
	asJSON         bool
	stdout, stderr io.Writer
}

// dialAdmin parses args as adminArgs does (no extra flags) and makes the
// command's client; cancel ends its deadline.
func dialAdmin(name, synopsis string, args []string, stdout, stderr io.Writer) (a *adminCall, pos []string, cancel context.CancelFunc, err error) {
	pos, asJSON, sock, err := adminArgs(name, synopsis, args, stderr, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := adminCtx()
	return &adminCall{ctx: ctx, c: control.NewClient(sock), asJSON: asJSON, stdout: stdout, stderr: stderr}, pos, cancel, nil
}

// call calls the admin API (control.Client.Do), printing a refusal's
// field errors (reportAdmin).
func (a *adminCall) call(method, path string, in, out any) error {
	if err := a.c.Do(a.ctx, method, path, in, out); err != nil {
		return reportAdmin(a.stderr, err)
	}
	return nil
}

// changed prints a change's answer resp: as JSON with --json, else the
// changes it lists, or none when there are none.
func (a *adminCall) changed(resp any, ch admin.Changes, none string) error {
	if a.asJSON {
		return writeJSON(a.stdout, resp)
	}
	printChanges(a.stdout, ch, none)
	return nil
}

// reportAdmin prints field errors one per line, like config check.
func reportAdmin(stderr io.Writer, err error) error {
	if es := config.AsErrors(err); len(es) > 0 {
		for _, e := range es {
			fmt.Fprintln(stderr, e)
		}
		return errReported
	}
	return err
}

func printChanges(w io.Writer, ch admin.Changes, none string) {
	if len(ch) == 0 {
		fmt.Fprintln(w, none)
		return
	}
	for _, c := range ch {
		fmt.Fprintln(w, c)
	}
}

func cmdPassthrough(args []string, stdout, stderr io.Writer) error {
	a, pos, cancel, err := dialAdmin("passthrough", "[NAME [on|off]] [--json] [--control SOCKET]", args, stdout, stderr)
	if err != nil {
		return err
	}
	defer cancel()
	switch len(pos) {
	case 0, 1:
		var list []admin.Passthrough
		if err := a.call(http.MethodGet, control.AdminPath("passthrough"), nil, &list); err != nil {
			return err
		}
		if len(pos) == 1 {
			var one []admin.Passthrough
			for _, p := range list {
				if p.Name == strings.ToLower(pos[0]) {
					one = append(one, p)
				}
			}
			if len(one) == 0 {
				return fmt.Errorf("passthrough: no passthrough %q (want one of %s): %w", pos[0], passthroughList(list), errUsage)
			}
			list = one
		}
		if a.asJSON {
			return writeJSON(stdout, list)
		}
		printPassthroughs(stdout, list)
		return nil
	case 2:
		var on bool
		switch strings.ToLower(pos[1]) {
		case "on", "enable", "true", "1":
			on = true
		case "off", "disable", "false", "0":
		default:
			return fmt.Errorf("passthrough %s: want on or off, not %q: %w", pos[0], pos[1], errUsage)
		}
		var resp admin.PassthroughResponse
		if err := a.call(http.MethodPut, control.AdminPath("passthrough", strings.ToLower(pos[0])), admin.PassthroughRequest{Enabled: &on}, &resp); err != nil {
			return err
		}
		if a.asJSON {
			return writeJSON(stdout, resp)
		}
		printChanges(stdout, resp.Changes, fmt.Sprintf("%s is %s already", resp.Passthrough.Label, onOff(resp.Passthrough.On)))
		if resp.Passthrough.Warning != "" && resp.Passthrough.On {
			fmt.Fprintln(stdout, "warning:", resp.Passthrough.Warning)
		}
		return nil
	}
	return fmt.Errorf("passthrough: want [NAME [on|off]]: %w", errUsage)
}

func passthroughList(list []admin.Passthrough) string {
	names := make([]string, len(list))
	for i, p := range list {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func printPassthroughs(w io.Writer, list []admin.Passthrough) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPASSTHROUGH\tSTATE\tDEFAULT\tWHAT IT DOES")
	for _, p := range list {
		state := onOff(p.On)
		if !p.Available {
			state = "not available"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Label, state, onOff(p.Default), p.Description)
	}
	tw.Flush()
}

func cmdForward(args []string, stdout, stderr io.Writer) error {
	const synopsis = "list | add NAME tcp|udp PORT[-PORT] HOST[:PORT] | del NAME  [--json] [--control SOCKET]"
	a, pos, cancel, err := dialAdmin("forward", synopsis, args, stdout, stderr)
	if err != nil {
		return err
	}
	defer cancel()
	if len(pos) == 0 {
		pos = []string{"list"}
	}
	switch pos[0] {
	case "list", "ls":
		if len(pos) != 1 {
			return fmt.Errorf("forward list: unexpected argument %q: %w", pos[1], errUsage)
		}
		var list []config.PortForward
		if err := a.call(http.MethodGet, control.AdminPath("forwards"), nil, &list); err != nil {
			return err
		}
		if a.asJSON {
			return writeJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPROTO\tOUTSIDE PORT\tHOST\tINSIDE PORT")
		for _, pf := range list {
			inside := pf.InsidePorts()
			if inside == "" {
				inside = "same"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", pf.Name, pf.Proto, pf.OutsidePort, pf.Host, inside)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d port forwards\n", len(list))
		return nil
	case "add":
		if len(pos) != 5 {
			return fmt.Errorf("forward add: want NAME tcp|udp PORT[-PORT] HOST[:PORT]: %w", errUsage)
		}
		pf := config.PortForward{Name: pos[1], Proto: strings.ToLower(pos[2]), OutsidePort: config.PortSpec(pos[3]), Host: pos[4]}
		if h, p, ok := strings.Cut(pos[4], ":"); ok {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("forward add: inside port %q is not a number: %w", p, errUsage)
			}
			pf.Host, pf.InsidePort = h, n
		}
		var resp admin.ForwardResponse
		if err := a.call(http.MethodPost, control.AdminPath("forwards"), pf, &resp); err != nil {
			return err
		}
		return a.changed(resp, resp.Changes, "nothing changed")
	case "del", "delete", "rm":
		if len(pos) != 2 {
			return fmt.Errorf("forward del: want NAME: %w", errUsage)
		}
		var resp admin.ChangesResponse
		if err := a.call(http.MethodDelete, control.AdminPath("forwards", pos[1]), nil, &resp); err != nil {
			return err
		}
		return a.changed(resp, resp.Changes, "nothing changed")
	}
	return fmt.Errorf("forward: unknown subcommand %q (want list, add or del): %w", pos[0], errUsage)
}

func cmdDMZ(args []string, stdout, stderr io.Writer) error {
	a, pos, cancel, err := dialAdmin("dmz", "[IP|off] [--json] [--control SOCKET]", args, stdout, stderr)
	if err != nil {
		return err
	}
	defer cancel()
	switch len(pos) {
	case 0:
		var d admin.DMZBody
		if err := a.call(http.MethodGet, control.AdminPath("dmz"), nil, &d); err != nil {
			return err
		}
		if a.asJSON {
			return writeJSON(stdout, d)
		}
		host := "off"
		if d.Host != nil && *d.Host != "" {
			host = *d.Host
		}
		fmt.Fprintf(stdout, "DMZ host: %s\n", host)
		return nil
	case 1:
		host := pos[0]
		if strings.EqualFold(host, "off") || strings.EqualFold(host, "none") {
			host = ""
		}
		var resp admin.DMZResponse
		if err := a.call(http.MethodPut, control.AdminPath("dmz"), admin.DMZBody{Host: &host}, &resp); err != nil {
			return err
		}
		return a.changed(resp, resp.Changes, "DMZ host unchanged")
	}
	return fmt.Errorf("dmz: want [IP|off]: %w", errUsage)
}

// authTarget is where passwd and token act: the running daemon over its
// control socket, or, when none answers and --config names the file, the
// authentication state file next to it.
type authTarget struct {
	client *control.Client
	auth   *admin.Auth // set when writing the file directly
}

func openAuthTarget(ctx context.Context, sock, cfgPath string, stderr io.Writer) (*authTarget, error) {
	c := control.NewClient(sock)
	if c.Available(ctx) {
		return &authTarget{client: c}, nil
	}
	if cfgPath == "" {
		_, err := c.Status(ctx)
		return nil, fmt.Errorf("%w\n(with passgate stopped, --config FILE writes the state file next to FILE instead)", err)
	}
	a, err := admin.NewAuth(admin.AuthPath(cfgPath))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "passgate is not answering on %s: writing %s directly\n", sock, a.Path())
	return &authTarget{auth: a}, nil
}

func cmdPasswd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("passwd", stderr, "[--control SOCKET] [--config FILE]")
	sock := controlFlag(fs)
	cfgPath := fs.String("config", "", "configuration `file`: with passgate stopped, write the state file next to it")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	ctx, cancel := adminCtx()
	defer cancel()
	t, err := openAuthTarget(ctx, *sock, *cfgPath, stderr)
	if err != nil {
		return err
	}
	pw, err := readNewPassword(stderr)
	if err != nil {
		return err
	}
	if t.auth != nil {
		err = t.auth.ResetPassword(pw)
	} else {
		err = t.client.Do(ctx, http.MethodPut, control.AdminPath("password"), admin.PasswordRequest{Password: pw}, nil)
	}
	if err != nil {
		return reportAdmin(stderr, err)
	}
	fmt.Fprintln(stdout, "admin password set; every admin session ended and every API token revoked")
	return nil
}

// readNewPassword reads the password twice from a terminal, without echo,
// or once from standard input when it is not a terminal (scripts).
func readNewPassword(stderr io.Writer) (string, error) {
	f, isFile := stdin.(*os.File)
	if isFile {
		if old, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			read := func(prompt string) (string, error) {
				fmt.Fprint(stderr, prompt)
				noEcho := *old
				noEcho.Lflag &^= unix.ECHO
				noEcho.Lflag |= unix.ICANON | unix.ISIG
				if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &noEcho); err != nil {
					return "", fmt.Errorf("terminal: %w", err)
				}
				line, err := bufio.NewReader(f).ReadString('\n')
				unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, old)
				fmt.Fprintln(stderr)
				if err != nil {
					return "", fmt.Errorf("reading the password: %w", err)
				}
				return strings.TrimRight(line, "\r\n"), nil
			}
			pw, err := read(fmt.Sprintf("New admin password (at least %d characters): ", admin.MinPasswordLen))
			if err != nil {
				return "", err
			}
			if err := admin.CheckPassword(pw); err != nil {
				return "", err
			}
			again, err := read("Again: ")
			if err != nil {
				return "", err
			}
			if again != pw {
				return "", errors.New("the two passwords differ")
			}
			return pw, nil
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if err := admin.CheckPassword(pw); err != nil {
		return "", err
	}
	return pw, nil
}

func cmdToken(args []string, stdout, stderr io.Writer) error {
	const synopsis = "create NAME [--days N] [--scope admin|read] | list | revoke ID  [--json] [--control SOCKET] [--config FILE]"
	var cfgPath, scope *string
	var days *int
	pos, asJSON, sock, err := adminArgs("token", synopsis, args, stderr, func(f *flag.FlagSet) {
		cfgPath = f.String("config", "", "configuration `file`: with passgate stopped, write the state file next to it")
		days = f.Int("days", 90, "create: the token expires after this many `days`")
		scope = f.String("scope", admin.ScopeAdmin, "create: what the token may do (its `scope`): admin (everything but change the password) or read (status, flows, events, configuration, mappings, /metrics; no change)")
	})
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("token: want create NAME, list or revoke ID: %w", errUsage)
	}
	ctx, cancel := adminCtx()
	defer cancel()
	t, err := openAuthTarget(ctx, sock, *cfgPath, stderr)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "create", "new":
		if len(pos) != 2 {
			return fmt.Errorf("token create: want NAME (what the token is for): %w", errUsage)
		}
		var resp admin.TokenResponse
		if t.auth != nil {
			resp.Token, resp.TokenInfo, err = t.auth.CreateToken(pos[1], time.Duration(*days)*24*time.Hour, *scope)
		} else {
			err = t.client.Do(ctx, http.MethodPost, control.AdminPath("tokens"), admin.TokenRequest{Name: pos[1], ExpiresDays: *days, Scope: *scope}, &resp)
		}
		if err != nil {
			return reportAdmin(stderr, err)
		}
		if asJSON {
			return writeJSON(stdout, resp)
		}
		fmt.Fprintln(stdout, resp.Token)
		fmt.Fprintf(stderr, "API token %s (%s, scope %s) created, expires %s; it is shown this once only.\nUse it as: curl --cacert CERT -H 'Authorization: Bearer TOKEN' https://LAN-ADDRESS:8080/api/v1/status\n", resp.ID, resp.Name, resp.Scope, resp.Expires.Local().Format(time.DateTime))
		return nil
	case "list", "ls":
		var list []admin.TokenInfo
		if t.auth != nil {
			list = t.auth.Tokens()
		} else if err := t.client.Do(ctx, http.MethodGet, control.AdminPath("tokens"), nil, &list); err != nil {
			return reportAdmin(stderr, err)
		}
		if asJSON {
			return writeJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tCREATED\tEXPIRES")
		for _, e := range list {
			exp := e.Expires.Local().Format(time.DateTime)
			if e.Expired {
				exp += " (expired)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Name, e.Scope, e.Created.Local().Format(time.DateTime), exp)
		}
		tw.Flush()
		return nil
	case "revoke", "del", "delete", "rm":
		if len(pos) != 2 {
			return fmt.Errorf("token revoke: want ID: %w", errUsage)
		}
		if t.auth != nil {
			err = t.auth.RevokeToken(pos[1])
		} else {
			err = t.client.Do(ctx, http.MethodDelete, control.AdminPath("tokens", pos[1]), nil, nil)
		}
		if err != nil {
			return reportAdmin(stderr, err)
		}
		fmt.Fprintf(stdout, "API token %s revoked\n", pos[1])
		return nil
	}
	return fmt.Errorf("token: unknown subcommand %q (want create, list or revoke): %w", pos[0], errUsage)
}
