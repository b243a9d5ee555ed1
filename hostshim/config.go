package hostshim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/doe/yamlerr"
)

// Defaults of the configuration file.
const (
	DefaultRunDir          = "/run/devattest"
	DefaultMetricsListen   = "127.0.0.1:9464"
	DefaultExchangeTimeout = 2 * time.Second
	DefaultWait            = 5 * time.Second
	DefaultShutdownGrace   = 10 * time.Second
	DefaultIdleTimeout     = 10 * time.Minute
	// DefaultMaxConnections is a listener's connections at once: one
	// holder and a few waiting is all one guest needs.
	DefaultMaxConnections = 8
	// MetricsDisabled as metrics.listen turns the metrics and health
	// listener off.
	MetricsDisabled = "none"
)

// Backends a listener's VF can have.
const (
	BackendSysfs  = "sysfs"  // a real VF: /sys/bus/pci/devices/<BDF>/config
	BackendDevsim = "devsim" // an in-process emulated VF (wired in by cmd)
	BackendSocket = "socket" // a responder speaking the socket framing
)

// Config is the shim daemon's configuration file (YAML). See
// cmd/devattest-shim/devattest-shim.example.yaml for a commented example.
type Config struct {
	// RunDir holds the claim (lock) files of the VFs (default /run/devattest).
	RunDir string `yaml:"run_dir"`
	// SysfsRoot is where PCI devices are listed (default /sys/bus/pci/devices).
	SysfsRoot string `yaml:"sysfs_root"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `yaml:"log_level"`
	// ShutdownGrace bounds how long a graceful stop waits for in-flight
	// exchanges (default 10s).
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Metrics is the HTTP listener for /metrics and /healthz.
	Metrics MetricsConfig `yaml:"metrics"`
	// Listeners are the guest-facing listeners, one per VF.
	Listeners []ListenerConfig `yaml:"listeners"`
}

// MetricsConfig places the HTTP listener for /metrics and /healthz.
type MetricsConfig struct {
	// Listen is HOST:PORT (default 127.0.0.1:9464), or "none".
	Listen string `yaml:"listen"`
	// AllowNonLoopback must be set for an address other than loopback.
	AllowNonLoopback bool `yaml:"allow_non_loopback"`
}

// ListenerConfig serves one VF to one guest.
type ListenerConfig struct {
	// Name identifies the listener in logs, metrics and reloads; unique.
	Name string `yaml:"name"`
	// Guest labels the guest in the audit log (default: Name).
	Guest string `yaml:"guest"`
	// VF is the device served.
	VF VFConfig `yaml:"vf"`
	// Listen is where the guest connects.
	Listen ListenConfig `yaml:"listen"`
	// AllowedTypes is the DOE protocol allowlist in ParseProtocol's syntax
	// (default discovery, cma, secured-cma).
	AllowedTypes []string `yaml:"allowed_types"`
	// MaxObjectBytes bounds request objects (default 64 KiB).
	MaxObjectBytes int `yaml:"max_object_bytes"`
	// Rate (frames per second) and Burst limit the guest over all its
	// connections to this listener; 0: no limit.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// MaxConnections bounds the listener's connections open at once,
	// holding or waiting (default DefaultMaxConnections); more are
	// refused at once.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout ends a connection that sends no frame for this long
	// (default 10m).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHold is how long one connection may keep the VF while another
	// waits for it (default 1m).
	MaxHold Duration `yaml:"max_hold"`
	// AuditLinesPerSecond bounds the guest's audit log (default 50;
	// repeated refusals are summed up beyond it).
	AuditLinesPerSecond int `yaml:"audit_lines_per_second"`
	// ExchangeTimeout bounds one exchange with the VF (default 2s).
	ExchangeTimeout Duration `yaml:"exchange_timeout"`
	// Wait bounds how long a connection waits for a mailbox another holds
	// (default 5s).
	Wait Duration `yaml:"wait"`
	// MaxConsecutiveFailures marks the VF wedged (unhealthy) after this
	// many failed exchanges in a row (0: the mediator's default).
	MaxConsecutiveFailures int `yaml:"max_consecutive_failures"`
}

// VFConfig names the device behind a listener.
type VFConfig struct {
	// Backend is sysfs, devsim or socket.
	Backend string `yaml:"backend"`
	// BDF is the PCI address of a sysfs VF (0000:0d:00.0).
	BDF string `yaml:"bdf"`
	// Address of a socket backend: HOST:PORT or unix:PATH.
	Address string `yaml:"address"`
	// AllowKernelDriver lets the shim serve a sysfs VF that a host kernel
	// driver is bound to (off: such a VF is refused, since the kernel may
	// use the same DOE mailbox).
	AllowKernelDriver bool `yaml:"allow_kernel_driver"`
	// CAOut, for a devsim backend, is where to write the emulated VF's
	// root certificate (DER, or PEM if it ends in .pem).
	CAOut string `yaml:"ca_out"`

	// Filled in by Validate from the rest of the configuration.

	// SysfsRoot is Config.SysfsRoot.
	SysfsRoot string `yaml:"-"`
	// Canonical is a socket backend's address in one spelling
	// (CanonicalSocketAddress): what the shim dials, claims and names.
	Canonical string `yaml:"-"`
	// Listener is the listener's name (a devsim VF is one per listener).
	Listener string `yaml:"-"`
}

// ID names the VF for claims, logs and metrics: the canonical BDF of a
// sysfs VF, "socket:" and the canonical address (CanonicalSocketAddress)
// for a socket backend, "devsim:LISTENER" for an emulated one. Two
// spellings of one VF have one ID, so they share one claim.
func (v VFConfig) ID() string {
	switch v.Backend {
	case BackendSysfs:
		if bdf, err := doe.ParseBDF(v.BDF); err == nil {
			return bdf
		}
		return v.BDF
	case BackendSocket:
		if v.Canonical != "" {
			return "socket:" + v.Canonical
		}
		return "socket:" + v.Address
	case BackendDevsim:
		return "devsim:" + v.Listener
	}
	return v.Backend
}

// ListenConfig is exactly one of its fields.
type ListenConfig struct {
	Vsock *VsockListen `yaml:"vsock"`
	Unix  *UnixListen  `yaml:"unix"`
	TCP   *TCPListen   `yaml:"tcp"`
}

// String is the address as logs show it.
func (l ListenConfig) String() string {
	switch {
	case l.Vsock != nil:
		return fmt.Sprintf("vsock:%d:%d", l.Vsock.CID, l.Vsock.Port)
	case l.Unix != nil:
		return "unix:" + l.Unix.Path
	case l.TCP != nil:
		return "tcp:" + l.TCP.Address
	}
	return "(none)"
}

// VsockListen listens on a vsock port of the host and accepts connections
// from one guest CID only.
type VsockListen struct {
	CID  uint32 `yaml:"cid"`
	Port uint32 `yaml:"port"`
}

// UnixListen listens on a unix socket.
type UnixListen struct {
	Path string `yaml:"path"`
	// Mode is the socket file's permission bits, octal ("0660"; default 0600).
	Mode string `yaml:"mode"`
	// Owner and Group are names or numeric ids. Owner is applied only when
	// the shim runs as root; Group also when the shim is a member of it.
	// A group-writable mode needs Group: whoever may write the socket
	// may connect, so the group must be named, not inherited.
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	// AllowWorldWritable must be set for a mode that lets every local
	// user connect.
	AllowWorldWritable bool `yaml:"allow_world_writable"`
}

// TCPListen listens on TCP: for development and for guests reached over
// a host-only network.
type TCPListen struct {
	Address string `yaml:"address"`
	// AllowNonLoopback must be set for an address other than loopback.
	AllowNonLoopback bool `yaml:"allow_non_loopback"`
}

// Duration is a time.Duration written as "2s" or "500ms". A value that
// does not parse is kept and reported by Validate with its key.
type Duration struct {
	D   time.Duration
	raw string
	err error
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		d.raw, d.err = "", fmt.Errorf("line %d: want a duration such as 2s or 500ms", n.Line)
		return nil
	}
	d.raw = n.Value
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.err = fmt.Errorf("line %d: %q is not a duration such as 2s or 500ms", n.Line, n.Value)
		return nil
	}
	d.D, d.err = v, nil
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.D.String(), nil }

// ErrConfig marks every configuration error.
var ErrConfig = errors.New("hostshim: configuration")

// LoadConfig reads and validates a configuration file. Unknown keys are
// refused with their line; every bad value is refused with its key and
// the reason.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates a configuration document.
func ParseConfig(b []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrConfig)
		}
		return nil, fmt.Errorf("%w: %s", ErrConfig, yamlerr.Explain(b, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks every value and fills in defaults. Its error lists every
// problem, each with its key and the reason.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.RunDir == "" {
		c.RunDir = DefaultRunDir
	} else if !filepath.IsAbs(c.RunDir) {
		bad("run_dir", "%q is not an absolute path", c.RunDir)
	}
	if c.SysfsRoot == "" {
		c.SysfsRoot = doe.SysfsRoot
	} else if !filepath.IsAbs(c.SysfsRoot) {
		bad("sysfs_root", "%q is not an absolute path", c.SysfsRoot)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	} else if _, err := ParseLogLevel(c.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}
	checkDuration(bad, "shutdown_grace", &c.ShutdownGrace, DefaultShutdownGrace)
	switch c.Metrics.Listen {
	case "":
		c.Metrics.Listen = DefaultMetricsListen
	case MetricsDisabled:
	default:
		if err := checkTCPAddress(c.Metrics.Listen, c.Metrics.AllowNonLoopback); err != nil {
			bad("metrics.listen", "%v", err)
		}
	}
	if len(c.Listeners) == 0 {
		bad("listeners", "at least one listener is required")
	}
	names := make(map[string]int)
	vfs := make(map[string]string)
	addrs := make(map[string]string)
	var tcps []tcpListenAddr
	for i := range c.Listeners {
		l := &c.Listeners[i]
		key := fmt.Sprintf("listeners[%d]", i)
		if l.Name != "" {
			key = fmt.Sprintf("listeners[%d] (%s)", i, l.Name)
		}
		lbad := func(sub, format string, args ...any) { bad(key+"."+sub, format, args...) }
		switch {
		case l.Name == "":
			lbad("name", "required")
		case !namePattern.MatchString(l.Name):
			lbad("name", "%q: use letters, digits, '.', '_' and '-' (at most 64)", l.Name)
		default:
			if j, dup := names[l.Name]; dup {
				lbad("name", "%q is also the name of listeners[%d]", l.Name, j)
			}
			names[l.Name] = i
		}
		if l.Guest == "" {
			l.Guest = l.Name
		}
		l.VF.SysfsRoot, l.VF.Listener = c.SysfsRoot, l.Name
		l.validateVF(lbad)
		if id := l.VF.ID(); l.VF.Backend != BackendDevsim {
			if other, dup := vfs[id]; dup {
				lbad("vf", "%s is already served by listener %q; a VF belongs to one guest", id, other)
			}
			vfs[id] = l.Name
		}
		if a := l.validateListen(lbad); a != "" {
			if other, dup := addrs[a]; dup {
				lbad("listen", "%s is also the address of listener %q", a, other)
			}
			addrs[a] = l.Name
			if l.Listen.TCP != nil {
				if ta, err := resolveTCP(l.Listen.TCP.Address); err != nil {
					lbad("listen.tcp.address", "%v", err)
				} else {
					for _, o := range tcps {
						if o.overlaps(ta) && o.spelled != l.Listen.TCP.Address {
							lbad("listen", "%s overlaps %s of listener %q", l.Listen.TCP.Address, o.spelled, o.name)
						}
					}
					ta.spelled, ta.name = l.Listen.TCP.Address, l.Name
					tcps = append(tcps, ta)
				}
			}
		}
		if l.AllowedTypes == nil {
			l.AllowedTypes = []string{"discovery", "cma", "secured-cma"}
		} else if len(l.AllowedTypes) == 0 {
			lbad("allowed_types", "empty: nothing would be forwarded")
		}
		for j, s := range l.AllowedTypes {
			if _, err := ParseProtocol(s); err != nil {
				lbad(fmt.Sprintf("allowed_types[%d]", j), "%v", err)
			}
		}
		switch {
		case l.MaxObjectBytes == 0:
			l.MaxObjectBytes = DefaultMaxObjectSize
		case l.MaxObjectBytes < doe.HeaderSize || l.MaxObjectBytes > doe.MaxObjectSize:
			lbad("max_object_bytes", "%d is outside %d..%d", l.MaxObjectBytes, doe.HeaderSize, doe.MaxObjectSize)
		}
		if l.Rate < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) {
			lbad("rate", "%v: want a finite number of exchanges per second, 0 for no limit", l.Rate)
		}
		if l.Burst < 0 {
			lbad("burst", "%d is negative", l.Burst)
		} else if l.Burst > 0 && l.Rate == 0 {
			lbad("burst", "goes with rate")
		}
		if l.MaxConsecutiveFailures < 0 {
			lbad("max_consecutive_failures", "%d is negative", l.MaxConsecutiveFailures)
		}
		switch {
		case l.MaxConnections == 0:
			l.MaxConnections = DefaultMaxConnections
		case l.MaxConnections < 0:
			lbad("max_connections", "%d is negative", l.MaxConnections)
		}
		switch {
		case l.AuditLinesPerSecond == 0:
			l.AuditLinesPerSecond = DefaultAuditLinesPerSecond
		case l.AuditLinesPerSecond < 0:
			lbad("audit_lines_per_second", "%d is negative", l.AuditLinesPerSecond)
		}
		checkDuration(lbad, "exchange_timeout", &l.ExchangeTimeout, DefaultExchangeTimeout)
		checkDuration(lbad, "wait", &l.Wait, DefaultWait)
		checkDuration(lbad, "idle_timeout", &l.IdleTimeout, DefaultIdleTimeout)
		checkDuration(lbad, "max_hold", &l.MaxHold, DefaultMaxHold)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

func checkDuration(bad func(key, format string, args ...any), key string, d *Duration, def time.Duration) {
	switch {
	case d.err != nil:
		bad(key, "%v", d.err)
	case d.D < 0:
		bad(key, "%v is negative", d.D)
	case d.D == 0:
		d.D = def
	}
}

func (l *ListenerConfig) validateVF(bad func(key, format string, args ...any)) {
	v := &l.VF
	extra := func(field, value string) {
		if value != "" {
			bad("vf."+field, "does not go with backend %s", v.Backend)
		}
	}
	switch v.Backend {
	case "":
		bad("vf.backend", "required: sysfs, devsim or socket")
	case BackendSysfs:
		if v.BDF == "" {
			bad("vf.bdf", "required with backend sysfs")
		} else if bdf, err := doe.ParseBDF(v.BDF); err != nil {
			bad("vf.bdf", "%v", err)
		} else {
			v.BDF = bdf
		}
		extra("address", v.Address)
		extra("ca_out", v.CAOut)
	case BackendSocket:
		if v.Address == "" {
			bad("vf.address", "required with backend socket")
		} else if c, err := CanonicalSocketAddress(v.Address); err != nil {
			bad("vf.address", "%v", err)
		} else {
			v.Canonical = c
		}
		extra("bdf", v.BDF)
		extra("ca_out", v.CAOut)
	case BackendDevsim:
		extra("bdf", v.BDF)
		extra("address", v.Address)
	default:
		bad("vf.backend", "%q: want sysfs, devsim or socket", v.Backend)
	}
	if v.AllowKernelDriver && v.Backend != BackendSysfs {
		bad("vf.allow_kernel_driver", "goes with backend sysfs")
	}
}

// validateListen checks the listen block and returns its address for the
// duplicate check ("" if it is invalid).
func (l *ListenerConfig) validateListen(bad func(key, format string, args ...any)) string {
	ls := l.Listen
	n := 0
	for _, set := range []bool{ls.Vsock != nil, ls.Unix != nil, ls.TCP != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		bad("listen", "want exactly one of vsock, unix and tcp, found %d", n)
		return ""
	}
	switch {
	case ls.Vsock != nil:
		switch cid := ls.Vsock.CID; {
		case cid == 0:
			bad("listen.vsock.cid", "required: the guest's CID (0 is the hypervisor)")
		case cid == 1:
			bad("listen.vsock.cid", "1 is the local loopback CID, not a guest")
		case cid == 2:
			bad("listen.vsock.cid", "2 is the host, not a guest")
		case cid == math.MaxUint32:
			bad("listen.vsock.cid", "%d is VMADDR_CID_ANY, not a guest", cid)
		}
		if p := ls.Vsock.Port; p == 0 || p == math.MaxUint32 {
			bad("listen.vsock.port", "want a fixed port number, got %d", p)
		}
		// Listeners share the host's vsock port space, whatever their guest.
		return fmt.Sprintf("vsock port %d", ls.Vsock.Port)
	case ls.Unix != nil:
		u := ls.Unix
		if u.Path == "" {
			bad("listen.unix.path", "required")
		} else if !filepath.IsAbs(u.Path) {
			bad("listen.unix.path", "%q is not an absolute path", u.Path)
		}
		if u.Mode != "" {
			switch m, err := ParseMode(u.Mode); {
			case err != nil:
				bad("listen.unix.mode", "%v", err)
			case m&0o002 != 0 && !u.AllowWorldWritable:
				bad("listen.unix.mode", "%s lets every local user connect; set allow_world_writable: true to mean it", u.Mode)
			case m&0o022 == 0o020 && u.Group == "": // world-writable, allowed, says it all
				bad("listen.unix.mode", "%s lets the socket's group connect: name that group with group:", u.Mode)
			}
		}
		if u.Owner != "" {
			if _, err := lookupID(u.Owner, false); err != nil {
				bad("listen.unix.owner", "%v", err)
			}
		}
		if u.Group != "" {
			if _, err := lookupID(u.Group, true); err != nil {
				bad("listen.unix.group", "%v", err)
			}
		}
		return "unix:" + cleanPath(u.Path)
	default:
		if err := checkTCPAddress(ls.TCP.Address, ls.TCP.AllowNonLoopback); err != nil {
			bad("listen.tcp.address", "%v", err)
			return ""
		}
		return "tcp:" + ls.TCP.Address
	}
}

// resolveTimeout bounds resolving a host name in the configuration.
const resolveTimeout = 2 * time.Second

// CanonicalSocketAddress spells a socket backend's address (doe.ParseAddr
// syntax) one way, so that the duplicate check and the claim see one VF
// however it is written: "unix:" and the cleaned absolute path, symlinks
// resolved where they exist; for TCP "tcp:IP:PORT", the host resolved
// (IPv4 first; the shim then dials that address, not the name) and the
// port as a number. localhost:13400, tcp:127.0.0.1:13400 and
// 127.0.0.1:13400 are all tcp:127.0.0.1:13400.
func CanonicalSocketAddress(addr string) (string, error) {
	network, address, err := doe.ParseAddr(addr)
	if err != nil {
		return "", err
	}
	if network == "unix" {
		return "unix:" + cleanPath(address), nil
	}
	ta, err := resolveTCP(address)
	if err != nil {
		return "", err
	}
	return "tcp:" + net.JoinHostPort(ta.ip.String(), strconv.Itoa(ta.port)), nil
}

// cleanPath is p absolute and clean, with its symlinks (of the file or,
// for a socket not created yet, of its directory) resolved.
func cleanPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(d, filepath.Base(p))
	}
	return filepath.Clean(p)
}

// tcpListenAddr is a TCP address resolved, for the overlap check.
type tcpListenAddr struct {
	ip            net.IP
	port          int
	spelled, name string
}

// overlaps says whether two TCP addresses can clash: the same port on
// the same address, or on the unspecified address (every interface).
func (a tcpListenAddr) overlaps(b tcpListenAddr) bool {
	return a.port == b.port && (a.ip.Equal(b.ip) || a.ip.IsUnspecified() || b.ip.IsUnspecified())
}

// resolveTCP resolves HOST:PORT to one IP (IPv4 first) and a port number.
func resolveTCP(addr string) (tcpListenAddr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return tcpListenAddr{}, fmt.Errorf("%q is not HOST:PORT: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	p, err := net.DefaultResolver.LookupPort(ctx, "tcp", port)
	if err != nil {
		return tcpListenAddr{}, fmt.Errorf("%q: port: %w", addr, err)
	}
	if host == "" {
		return tcpListenAddr{ip: net.IPv4zero, port: p}, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		return tcpListenAddr{ip: ip, port: p}, nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return tcpListenAddr{}, fmt.Errorf("%q: cannot resolve %s: %v", addr, host, err)
	}
	ip := ips[0]
	for _, c := range ips {
		if v4 := c.To4(); v4 != nil {
			ip = v4
			break
		}
	}
	return tcpListenAddr{ip: ip, port: p}, nil
}

// checkTCPAddress accepts HOST:PORT; a host other than a loopback address
// (or "localhost") needs allowNonLoopback.
func checkTCPAddress(addr string, allowNonLoopback bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number in 0..65535", addr, port)
	}
	if allowNonLoopback {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		if host == "" {
			host = "every interface"
		}
		return fmt.Errorf("%q listens on %s, not loopback; set allow_non_loopback: true to mean it", addr, host)
	}
	return nil
}

// ParseLogLevel parses debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// ParseMode parses an octal permission string such as "0660".
func ParseMode(s string) (os.FileMode, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal mode such as 0660", s)
	}
	return os.FileMode(v), nil
}

// lookupID resolves a user or group name, or a numeric id.
func lookupID(s string, group bool) (int, error) {
	if id, err := strconv.ParseUint(s, 10, 31); err == nil {
		return int(id), nil
	}
	var idStr string
	if group {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, fmt.Errorf("unknown group %q", s)
		}
		idStr = g.Gid
	} else {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, fmt.Errorf("unknown user %q", s)
		}
		idStr = u.Uid
	}
	id, err := strconv.Atoi(idStr)
	if err != nil {
		return 0, fmt.Errorf("%q has the non-numeric id %q", s, idStr)
	}
	return id, nil
}
