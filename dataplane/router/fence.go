package router

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The fence keeps the kernel out of the forwarded path: a netdev table with
// an ingress chain per interface that drops IPv4. AF_PACKET taps run before
// netdev ingress, so passgate still sees every packet, while the kernel no
// longer answers them (TCP RST, port unreachable, echo replies) nor routes
// them. ARP still reaches the kernel.

// DefaultFenceTable is the nftables table passgate owns.
const DefaultFenceTable = "passgate"

func fenceScript(table string, ifaces [2]string) string {
	var b strings.Builder
	// Adding then deleting clears a table left by a crashed run and works
	// whether or not one exists, in one transaction.
	fmt.Fprintf(&b, "add table netdev %s\ndelete table netdev %s\n", table, table)
	fmt.Fprintf(&b, "table netdev %s {\n", table)
	for i, name := range ifaces {
		fmt.Fprintf(&b, "\tchain %s_ingress {\n\t\ttype filter hook ingress device %s priority -500; policy accept;\n\t\tmeta protocol ip counter drop\n\t}\n",
			[2]string{"lan", "wan"}[i], strconv.Quote(name))
	}
	b.WriteString("}\n")
	return b.String()
}

func runNft(ctx context.Context, script string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// installFence creates (or recreates) the table.
func installFence(ctx context.Context, table string, ifaces [2]string) error {
	if err := runNft(ctx, fenceScript(table, ifaces)); err != nil {
		return fmt.Errorf("fencing the kernel off %s and %s: %w", ifaces[0], ifaces[1], err)
	}
	return nil
}

// removeFence deletes the table; a table already gone is not an error.
func removeFence(table string) error {
	script := fmt.Sprintf("add table netdev %s\ndelete table netdev %s\n", table, table)
	if err := runNft(context.Background(), script); err != nil {
		return fmt.Errorf("removing nftables table netdev %s: %w", table, err)
	}
	return nil
}
