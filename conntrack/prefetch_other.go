//go:build !amd64

package conntrack

// prefetch is a no-op where passgate has no prefetch instruction of its
// own (prefetch_amd64.s): Warm then only computes where the lines are.
func prefetch(p *uintptr, n int) {}
