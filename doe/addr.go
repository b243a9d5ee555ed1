package doe

import (
	"context"
	"fmt"
	"net"
	"strings"
)

// ParseAddr turns a socket address as users write it into a network and
// address for package net: "unix:/path/to/sock", "tcp:HOST:PORT" or plain
// "HOST:PORT" (TCP).
func ParseAddr(s string) (network, address string, err error) {
	switch {
	case s == "":
		return "", "", fmt.Errorf("doe: empty socket address")
	case strings.HasPrefix(s, "unix:"):
		p := strings.TrimPrefix(s, "unix:")
		if p == "" {
			return "", "", fmt.Errorf("doe: %q: unix socket path is empty", s)
		}
		return "unix", p, nil
	case strings.HasPrefix(s, "tcp:"):
		s = strings.TrimPrefix(s, "tcp:")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("doe: %q is neither unix:PATH nor HOST:PORT: %w", s, err)
	}
	if port == "" {
		return "", "", fmt.Errorf("doe: %q: missing port", s)
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

// Listen listens on a socket address in ParseAddr's syntax.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, network, address)
}
