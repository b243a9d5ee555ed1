package guest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/doe/yamlerr"
	"github.com/devattest/devattest/policy"
	"github.com/devattest/devattest/secchan"
)

// Config is the guest service's configuration (YAML):
//
//	platform: auto          # fake-snp, fake-tpm, snp, tdx, tpm or auto
//	ide: true               # key IDE on every device (default false)
//	tdisp: true             # then lock and start every device's TDISP interface (needs ide)
//	devices:
//	  - label: "0000:01:00.1"
//	    shim: vsock:2:7000  # unix:PATH, HOST:PORT or vsock:CID:PORT
//	    required: true      # default true
//	    trust_anchors: [/etc/devattest/vendor-root.pem]
//	policy: /etc/devattest/policy.yaml  # optional: device rules to enforce
//	remeasure_interval: 5m  # the daemon's periodic re-measurement (default 5m)
//	api:
//	  unix: /run/devattest/guest.sock  # the daemon's API socket (mode 0660)
//	  tcp: 127.0.0.1:7443              # optional; loopback unless allow_remote
//	  allow_remote: false
//
// Unknown keys are errors. Trust anchors come from the measured image,
// never from the host.
//
// With policy, the guest enforces that file's device rules (the format
// `devattest verify` reads) on its own evidence before it reports a device
// as attested: the rule's trust anchors, certificate rules and pin when it
// validates the chain, then version, algorithms, reference measurements,
// session and IDE. A device's anchors then come from its rule, so
// trust_anchors is not given with policy. The policy file's SHA-256 is
// part of the report's policy digest.
type Config struct {
	Platform string         `yaml:"platform"`
	IDE      bool           `yaml:"ide"`
	TDISP    bool           `yaml:"tdisp"`
	Devices  []DeviceConfig `yaml:"devices"`
	// Policy is the path of a policy file whose device rules the guest
	// enforces (relative to the configuration file).
	Policy string `yaml:"policy"`
	// PolicySHA256 is the SHA-256 of the policy file LoadPolicy read.
	PolicySHA256 []byte `yaml:"-"`
	// RemeasureInterval is how often the daemon re-measures each device
	// inside its session (default DefaultRemeasureInterval).
	RemeasureInterval time.Duration `yaml:"remeasure_interval"`
	// API is where the daemon serves its HTTP API.
	API APIConfig `yaml:"api"`
}

// APIConfig is the daemon's HTTP API listeners.
type APIConfig struct {
	// Unix is the path of the API's unix socket (created with mode 0660).
	Unix string `yaml:"unix"`
	// TCP is an optional TCP address; it must be a loopback address
	// unless AllowRemote is set.
	TCP string `yaml:"tcp"`
	// AllowRemote permits a non-loopback TCP address.
	AllowRemote bool `yaml:"allow_remote"`
}

// DefaultRemeasureInterval is the default of Config.RemeasureInterval.
const DefaultRemeasureInterval = 5 * time.Minute

// DeviceConfig is one assigned device.
type DeviceConfig struct {
	// Label is what the guest calls the device (e.g. its BDF).
	Label string `yaml:"label"`
	// Shim is the host shim's address for this device.
	Shim string `yaml:"shim"`
	// Required: the device must pass for Attest to succeed (default true).
	Required *bool `yaml:"required"`
	// TrustAnchors are PEM files of the roots the device's chain must
	// reach; relative paths are relative to the configuration file.
	TrustAnchors []string `yaml:"trust_anchors"`
	// IDE keys IDE on this device (also set by Config.IDE).
	IDE bool `yaml:"ide"`
	// TDISP locks, reads and starts the device's TEE device interface
	// after IDE keying (also set by Config.TDISP; needs IDE: the lock
	// binds the keyed stream). TDISPFunctionID is the interface's
	// function ID (default tdisp.DefaultFunctionID).
	TDISP           bool    `yaml:"tdisp"`
	TDISPFunctionID *uint32 `yaml:"tdisp_function_id"`

	// Anchors are the loaded trust anchors (LoadAnchors fills them from
	// TrustAnchors; tests may set them directly).
	Anchors []*x509.Certificate `yaml:"-"`
	// Policy, when set, is the policy whose rule for Label the device must
	// pass; its anchors replace Anchors (LoadConfig sets it from
	// Config.Policy; tests may set it directly).
	Policy *policy.Policy `yaml:"-"`
	// Capture, when set, records every DOE object exchanged with the
	// device (devattest-guest attest --pcap); it never fails an exchange.
	Capture *doe.PcapWriter `yaml:"-"`
	// KeyLog, when set, receives the secret of every session opened with
	// the device (--keylog). DANGER: it decrypts the session, IDE keys
	// included; debugging only.
	KeyLog func(secchan.SessionSecrets) `yaml:"-"`
}

// IsRequired reports whether the device must pass.
func (d *DeviceConfig) IsRequired() bool { return d.Required == nil || *d.Required }

// Platforms accepted in Config.Platform.
var platforms = []string{"auto", "snp", "tdx", "tpm", "fake-snp", "fake-tpm", "fake-tdx"}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("guest: bad configuration")

// ParseConfig parses and checks a configuration. Relative trust-anchor
// paths are resolved against dir; anchors are not loaded (LoadAnchors).
func ParseConfig(b []byte, dir string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrConfig, yamlerr.Explain(b, err))
	}
	if c.Platform == "" {
		c.Platform = "auto"
	}
	if !slices.Contains(platforms, c.Platform) {
		return nil, fmt.Errorf("%w: platform %q (want one of %s)", ErrConfig, c.Platform, strings.Join(platforms, ", "))
	}
	if len(c.Devices) == 0 {
		return nil, fmt.Errorf("%w: no devices", ErrConfig)
	}
	switch {
	case c.RemeasureInterval == 0:
		c.RemeasureInterval = DefaultRemeasureInterval
	case c.RemeasureInterval < time.Second:
		return nil, fmt.Errorf("%w: remeasure_interval %v is below 1s", ErrConfig, c.RemeasureInterval)
	}
	if c.API.TCP != "" {
		if err := checkTCPAddr(c.API.TCP, c.API.AllowRemote); err != nil {
			return nil, fmt.Errorf("%w: api.tcp: %w", ErrConfig, err)
		}
	}
	seen := map[string]bool{}
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Label == "" {
			return nil, fmt.Errorf("%w: device %d has no label", ErrConfig, i)
		}
		if seen[d.Label] {
			return nil, fmt.Errorf("%w: device label %q repeated", ErrConfig, d.Label)
		}
		seen[d.Label] = true
		if _, err := ParseShimAddr(d.Shim); err != nil {
			return nil, fmt.Errorf("%w: device %q: %w", ErrConfig, d.Label, err)
		}
		switch {
		case c.Policy == "" && len(d.TrustAnchors) == 0:
			return nil, fmt.Errorf("%w: device %q has no trust_anchors (and there is no policy)", ErrConfig, d.Label)
		case c.Policy != "" && len(d.TrustAnchors) > 0:
			return nil, fmt.Errorf("%w: device %q has trust_anchors and the configuration a policy: with a policy the device's anchors are its rule's; remove trust_anchors", ErrConfig, d.Label)
		}
		for j, p := range d.TrustAnchors {
			if !filepath.IsAbs(p) && dir != "" {
				d.TrustAnchors[j] = filepath.Join(dir, p)
			}
		}
		d.IDE = d.IDE || c.IDE
		d.TDISP = d.TDISP || c.TDISP
		if d.TDISP && !d.IDE {
			return nil, fmt.Errorf("%w: device %q: tdisp needs ide (LOCK_INTERFACE binds the keyed IDE stream)", ErrConfig, d.Label)
		}
	}
	if c.Policy != "" && !filepath.IsAbs(c.Policy) && dir != "" {
		c.Policy = filepath.Join(dir, c.Policy)
	}
	return &c, nil
}

// LoadConfig reads, parses and checks a configuration file and loads
// every device's trust anchors.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c, err := ParseConfig(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Policy != "" {
		if err := c.LoadPolicy(); err != nil {
			return nil, err
		}
		return c, nil
	}
	for i := range c.Devices {
		if err := c.Devices[i].LoadAnchors(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return c, nil
}

// LoadPolicy reads Config.Policy, checks that it has a rule for every
// device, and sets each device's Policy and the digest PolicyDigest
// covers.
func (c *Config) LoadPolicy() error {
	b, err := os.ReadFile(c.Policy)
	if err != nil {
		return fmt.Errorf("%w: policy: %w", ErrConfig, err)
	}
	p, err := policy.ParseDevices(b, filepath.Dir(c.Policy))
	if err != nil {
		return fmt.Errorf("%w: policy %s: %w", ErrConfig, c.Policy, err)
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		if _, ok := p.Rule(d.Label); !ok {
			return fmt.Errorf("%w: policy %s has no rule for device %q and no default rule", ErrConfig, c.Policy, d.Label)
		}
		d.Policy = p
	}
	sum := sha256.Sum256(b)
	c.PolicySHA256 = sum[:]
	return nil
}

// LoadAnchors reads the certificate files named in TrustAnchors (PEM or
// DER, secchan.LoadCertificates) into Anchors.
func (d *DeviceConfig) LoadAnchors() error {
	var out []*x509.Certificate
	for _, p := range d.TrustAnchors {
		certs, err := secchan.LoadCertificates(p)
		if err != nil {
			return fmt.Errorf("device %q: trust anchor: %w", d.Label, err)
		}
		out = append(out, certs...)
	}
	d.Anchors = out
	return nil
}

// ShimAddr is a parsed shim address.
type ShimAddr struct {
	// Network is "unix", "tcp" or "vsock".
	Network string
	// Addr is the doe.ParseAddr form for unix and tcp.
	Addr      string
	CID, Port uint32
}

// ParseShimAddr parses "unix:PATH", "HOST:PORT" (or "tcp:HOST:PORT") and
// "vsock:CID:PORT".
func ParseShimAddr(s string) (ShimAddr, error) {
	if rest, ok := strings.CutPrefix(s, "vsock:"); ok {
		cs, ps, ok := strings.Cut(rest, ":")
		cid, err1 := strconv.ParseUint(cs, 10, 32)
		port, err2 := strconv.ParseUint(ps, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return ShimAddr{}, fmt.Errorf("shim address %q: want vsock:CID:PORT", s)
		}
		return ShimAddr{Network: "vsock", CID: uint32(cid), Port: uint32(port)}, nil
	}
	network, _, err := doe.ParseAddr(s)
	if err != nil {
		return ShimAddr{}, fmt.Errorf("shim address: %w", err)
	}
	return ShimAddr{Network: network, Addr: s}, nil
}

// checkTCPAddr checks an API TCP address: HOST:PORT with a literal IP or
// "localhost", loopback unless allowRemote.
func checkTCPAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (set api.allow_remote to serve beyond this VM)", addr)
	}
	return nil
}
