//go:build lab

package vpnlab

// The PPTP harness: pptpEnv (pptp_util.go) with a lab of its own. The
// PPTP ends themselves are passgate/lab/vpnpeer's.

import (
	"context"

	"passgate/lab"
)

// pptpUpLab brings a lab up and hands back a fresh environment whose
// processes end before the lab goes down (call the returned func last).
func pptpUpLab(ctx context.Context, prefix, dir string) (*pptpEnv, func(), error) {
	l, err := lab.Up(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	e, err := pptpNewEnv(ctx, l, dir)
	if err != nil {
		l.Down()
		return nil, nil, err
	}
	return e, func() {
		e.StopAll()
		l.Down()
	}, nil
}
