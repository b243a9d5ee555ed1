// Package cli holds what the three binaries share: logging set-up, signal
// handling and flag-set construction that stays clear of the global flag
// set (the platform attestation libraries register global flags).
package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// NewFlagSet returns a flag set that reports errors instead of exiting.
func NewFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// Logger returns a text logger on w at the named level.
func Logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Fail prints err for a person and returns the exit status 1.
func Fail(w io.Writer, prog string, err error) int {
	fmt.Fprintf(w, "%s: %v\n", prog, err)
	return 1
}

// Version is the binary's version line: the module version and the VCS
// revision (and whether the tree was modified) from the build info the Go
// toolchain embeds.
func Version(prog string) string {
	version, revision, modified := "(devel)", "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
		return fmt.Sprintf("%s %s, revision %s%s, %s", prog, version, revision, modified, bi.GoVersion)
	}
	return fmt.Sprintf("%s %s, revision %s", prog, version, revision)
}

// IsVersion reports whether args ask only for the version.
func IsVersion(args []string) bool {
	return len(args) == 1 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version")
}

// Exit statuses every binary uses.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // a failure or a refusal (a FAIL verdict, a device that failed)
	ExitUsage   = 2 // the command line is wrong
)

// ParseStatus is the exit status for a flag.Parse error: 0 when the user
// asked for -h/--help (the usage was printed), ExitUsage otherwise (the
// flag package printed what was wrong).
func ParseStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	return ExitUsage
}

// UsageError prints what is wrong with the command line and where to
// look, and returns ExitUsage.
func UsageError(w io.Writer, prog, format string, args ...any) int {
	fmt.Fprintf(w, "%s: %s (see %s --help)\n", prog, fmt.Sprintf(format, args...), prog)
	return ExitUsage
}

// DecodeHex decodes the hex value of a flag, with the one wording every
// binary uses for a bad one.
func DecodeHex(flagName, s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	b, err := hex.DecodeString(t)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%s: %q is not hex (want an even number of the digits 0-9 and a-f)", flagName, s)
	}
	return b, nil
}
