package hostshim_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devattest/devattest/hostshim"
)

func TestConfigExampleFileIsValid(t *testing.T) {
	cfg, err := hostshim.LoadConfig(filepath.Join("..", "cmd", "devattest-shim", "devattest-shim.example.yaml"))
	if err != nil {
		t.Fatalf("the example configuration does not load: %v", err)
	}
	if len(cfg.Listeners) != 5 {
		t.Fatalf("example has %d listeners, want 5", len(cfg.Listeners))
	}
	l := cfg.Listeners[0]
	if l.VF.ID() != "0000:0d:00.1" || l.Listen.Vsock == nil || l.Listen.Vsock.CID != 3 || l.Rate != 50 || l.Burst != 20 ||
		l.ExchangeTimeout.D != 2*time.Second || l.Guest != "vm3" {
		t.Errorf("first listener = %+v", l)
	}
	if u := cfg.Listeners[1].Listen.Unix; u == nil || u.Mode != "0600" {
		t.Errorf("second listener's unix block = %+v", u)
	}
	if c := cfg.Listeners[2]; c.Name != "vm5-cxl0" || fmt.Sprint(c.AllowedTypes) != "[discovery 1e98:02]" {
		t.Errorf("the CXL listener = %+v", c)
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := hostshim.ParseConfig([]byte(`
listeners:
  - name: a
    vf: {backend: sysfs, bdf: "0000:0D:00.1"}
    listen: {unix: {path: /run/x.sock, mode: 0640}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RunDir != "/run/devattest" || cfg.SysfsRoot != "/sys/bus/pci/devices" || cfg.Metrics.Listen != "127.0.0.1:9464" ||
		cfg.LogLevel != "info" || cfg.ShutdownGrace.D != 10*time.Second {
		t.Errorf("global defaults: %+v", cfg)
	}
	l := cfg.Listeners[0]
	if l.Guest != "a" || l.MaxObjectBytes != hostshim.DefaultMaxObjectSize || l.Wait.D != 5*time.Second ||
		l.ExchangeTimeout.D != 2*time.Second || strings.Join(l.AllowedTypes, ",") != "discovery,cma,secured-cma" {
		t.Errorf("listener defaults: %+v", l)
	}
	if l.VF.BDF != "0000:0d:00.1" || l.VF.ID() != "0000:0d:00.1" {
		t.Errorf("BDF not canonicalised: %q", l.VF.BDF)
	}
	// An unquoted octal mode reaches the string field as written.
	if l.Listen.Unix.Mode != "0640" {
		t.Errorf("mode = %q, want 0640", l.Listen.Unix.Mode)
	}
}

func TestConfigUnknownKeyRefused(t *testing.T) {
	for _, tc := range []struct {
		doc, key, line string
	}{
		{"run_dir: /run/x\nlisten_address: 1\n", `"listen_address"`, "line 2"},
		{"listeners:\n  - name: a\n    vf: {backend: devsim}\n    listen: {tcp: {address: 127.0.0.1:1}}\n    max_objects_bytes: 9\n", `"max_objects_bytes"`, "line 5"},
		{"listeners:\n  - name: a\n    vf:\n      backend: sysfs\n      bfd: 0000:01:00.0\n", `"bfd"`, "line 5"},
	} {
		_, err := hostshim.ParseConfig([]byte(tc.doc))
		if err == nil {
			t.Errorf("accepted %q", tc.doc)
			continue
		}
		if !errors.Is(err, hostshim.ErrConfig) || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.line) {
			t.Errorf("error %q: want ErrConfig naming %s at %s", err, tc.key, tc.line)
		}
	}
}

func TestConfigTypeErrorNamesKey(t *testing.T) {
	_, err := hostshim.ParseConfig([]byte("listeners:\n  - name: a\n    burst: lots\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "listeners[0].burst") {
		t.Fatalf("error %v: want line 3 and listeners[0].burst", err)
	}
}

// base is a valid listener; each case below breaks one thing.
const base = `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock}}
`

func TestConfigInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // substrings of the error: the key and the reason
	}{
		{"no listeners", "run_dir: /run/x\n", []string{"listeners", "at least one"}},
		{"relative run_dir", "run_dir: run\n" + base, []string{"run_dir", "absolute"}},
		{"bad log level", "log_level: loud\n" + base, []string{"log_level", "loud"}},
		{"negative grace", "shutdown_grace: -1s\n" + base, []string{"shutdown_grace", "negative"}},
		{"metrics non-loopback", "metrics: {listen: '0.0.0.0:9464'}\n" + base, []string{"metrics.listen", "allow_non_loopback"}},
		{"metrics all interfaces", "metrics: {listen: ':9464'}\n" + base, []string{"metrics.listen", "every interface"}},
		{"duplicate names", base + `  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: /run/b.sock}}
`, []string{"listeners[1] (a).name", "also the name of listeners[0]"}},
		{"bad name", `
listeners:
  - name: "a b"
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock}}
`, []string{"listeners[0] (a b).name", "letters"}},
		{"missing name", `
listeners:
  - vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock}}
`, []string{"listeners[0].name", "required"}},
		{"same VF twice", `
listeners:
  - name: a
    vf: {backend: sysfs, bdf: "0000:01:00.1"}
    listen: {unix: {path: /run/a.sock}}
  - name: b
    vf: {backend: sysfs, bdf: "0000:01:00.1"}
    listen: {unix: {path: /run/b.sock}}
`, []string{"listeners[1] (b).vf", "0000:01:00.1", `listener "a"`}},
		{"same address twice", base + `  - name: b
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock}}
`, []string{"listeners[1] (b).listen", "unix:/run/a.sock"}},
		{"bad BDF", `
listeners:
  - name: a
    vf: {backend: sysfs, bdf: "01:00.1"}
    listen: {unix: {path: /run/a.sock}}
`, []string{"listeners[0] (a).vf.bdf", "PCI address"}},
		{"BDF device out of range", `
listeners:
  - name: a
    vf: {backend: sysfs, bdf: "0000:01:20.1"}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.bdf", "device number"}},
		{"sysfs without bdf", `
listeners:
  - name: a
    vf: {backend: sysfs}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.bdf", "required"}},
		{"socket without address", `
listeners:
  - name: a
    vf: {backend: socket}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.address", "required"}},
		{"bad socket address", `
listeners:
  - name: a
    vf: {backend: socket, address: nowhere}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.address", "HOST:PORT"}},
		{"missing backend", `
listeners:
  - name: a
    vf: {}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.backend", "required"}},
		{"unknown backend", `
listeners:
  - name: a
    vf: {backend: pcie}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.backend", "pcie"}},
		{"bdf on socket", `
listeners:
  - name: a
    vf: {backend: socket, address: "127.0.0.1:1", bdf: "0000:01:00.0"}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.bdf", "does not go with backend socket"}},
		{"kernel driver flag on devsim", `
listeners:
  - name: a
    vf: {backend: devsim, allow_kernel_driver: true}
    listen: {unix: {path: /run/a.sock}}
`, []string{"vf.allow_kernel_driver", "sysfs"}},
		{"no listen", `
listeners:
  - name: a
    vf: {backend: devsim}
`, []string{"listeners[0] (a).listen", "exactly one"}},
		{"two listens", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock}, tcp: {address: "127.0.0.1:1"}}
`, []string{"listen", "exactly one", "found 2"}},
		{"bad octal mode", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock, mode: "0689"}}
`, []string{"listen.unix.mode", "octal"}},
		{"mode too large", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock, mode: "7777"}}
`, []string{"listen.unix.mode", "octal"}},
		{"relative unix path", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: a.sock}}
`, []string{"listen.unix.path", "absolute"}},
		{"unknown owner", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock, owner: no-such-user-devattest}}
`, []string{"listen.unix.owner", "unknown user"}},
		{"unknown group", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {unix: {path: /run/a.sock, group: no-such-group-devattest}}
`, []string{"listen.unix.group", "unknown group"}},
		{"tcp not loopback", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {tcp: {address: "192.0.2.1:2323"}}
`, []string{"listen.tcp.address", "not loopback", "allow_non_loopback"}},
		{"tcp host name", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {tcp: {address: "example.com:2323"}}
`, []string{"listen.tcp.address", "not loopback"}},
		{"tcp bad port", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {tcp: {address: "127.0.0.1:http"}}
`, []string{"listen.tcp.address", "port"}},
		{"vsock cid 0", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {vsock: {cid: 0, port: 5000}}
`, []string{"listen.vsock.cid", "hypervisor"}},
		{"vsock cid 1", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {vsock: {cid: 1, port: 5000}}
`, []string{"listen.vsock.cid", "loopback"}},
		{"vsock cid 2 is the host", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {vsock: {cid: 2, port: 5000}}
`, []string{"listen.vsock.cid", "2 is the host"}},
		{"vsock cid any", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {vsock: {cid: 4294967295, port: 5000}}
`, []string{"listen.vsock.cid", "VMADDR_CID_ANY"}},
		{"vsock port 0", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {vsock: {cid: 3, port: 0}}
`, []string{"listen.vsock.port", "fixed port"}},
		{"vsock port shared", `
listeners:
  - name: a
    vf: {backend: devsim}
    listen: {vsock: {cid: 3, port: 5000}}
  - name: b
    vf: {backend: devsim}
    listen: {vsock: {cid: 4, port: 5000}}
`, []string{"listeners[1] (b).listen", "vsock port 5000", `listener "a"`}},
		{"bad allowed type", base + "    allowed_types: [cma, cdat]\n", []string{"allowed_types[1]", "cdat"}},
		{"empty allowlist", base + "    allowed_types: []\n", []string{"allowed_types", "nothing would be forwarded"}},
		{"object too small", base + "    max_object_bytes: 4\n", []string{"max_object_bytes", "outside"}},
		{"object too large", base + "    max_object_bytes: 99999999\n", []string{"max_object_bytes", "outside"}},
		{"negative rate", base + "    rate: -1\n", []string{"rate", "finite"}},
		{"infinite rate", base + "    rate: .inf\n", []string{"rate", "finite"}},
		{"negative burst", base + "    rate: 1\n    burst: -2\n", []string{"burst", "negative"}},
		{"burst without rate", base + "    burst: 3\n", []string{"burst", "goes with rate"}},
		{"negative failures", base + "    max_consecutive_failures: -1\n", []string{"max_consecutive_failures", "negative"}},
		{"negative exchange timeout", base + "    exchange_timeout: -2s\n", []string{"listeners[0] (a).exchange_timeout", "negative"}},
		{"bad wait", base + "    wait: soon\n", []string{"listeners[0] (a).wait", `"soon"`, "line 6"}},
		{"wait as a list", base + "    wait: [1s]\n", []string{"listeners[0] (a).wait", "duration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hostshim.ParseConfig([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.doc)
			}
			if !errors.Is(err, hostshim.ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := hostshim.ParseConfig([]byte(`
run_dir: relative
listeners:
  - name: a
    vf: {backend: sysfs, bdf: bad}
    listen: {vsock: {cid: 2, port: 1}}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"run_dir", "vf.bdf", "listen.vsock.cid"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := hostshim.LoadConfig(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hostshim.LoadConfig(empty); err == nil || !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file: %v", err)
	}
	two := filepath.Join(dir, "two.yaml")
	if err := os.WriteFile(two, []byte(base+"---\n"+base), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := hostshim.LoadConfig(two); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Errorf("two documents: %v", err)
	}
}

// TestConfigOneVFTwoSpellings: two spellings of one socket VF, or of one
// listener address, are one and are refused as duplicates; the claim
// name does not depend on the spelling.
func TestConfigOneVFTwoSpellings(t *testing.T) {
	for _, pair := range [][2]string{
		{"127.0.0.1:13400", "localhost:13400"},
		{"127.0.0.1:13400", "tcp:127.0.0.1:13400"},
		{"unix:/run//r.sock", "unix:/run/r.sock"},
		{"unix:/run/x/../r.sock", "unix:/run/r.sock"},
	} {
		doc := fmt.Sprintf(`
listeners:
  - {name: a, vf: {backend: socket, address: %q}, listen: {tcp: {address: "127.0.0.1:2401"}}}
  - {name: b, vf: {backend: socket, address: %q}, listen: {tcp: {address: "127.0.0.1:2402"}}}
`, pair[0], pair[1])
		_, err := hostshim.ParseConfig([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "already served by listener") {
			t.Errorf("%s and %s: err = %v, want a duplicate VF", pair[0], pair[1], err)
		}
	}
	a, err1 := hostshim.CanonicalSocketAddress("localhost:13400")
	b, err2 := hostshim.CanonicalSocketAddress("tcp:127.0.0.1:13400")
	if err1 != nil || err2 != nil || a != b || a != "tcp:127.0.0.1:13400" {
		t.Errorf("canonical = %q, %v / %q, %v; want both tcp:127.0.0.1:13400", a, err1, b, err2)
	}
	// Listener addresses: the same socket spelled twice.
	for _, pair := range [][2]string{{"127.0.0.1:2401", "localhost:2401"}, {"0.0.0.0:2401", "127.0.0.1:2401"}} {
		doc := fmt.Sprintf(`
listeners:
  - {name: a, vf: {backend: devsim}, listen: {tcp: {address: %q, allow_non_loopback: true}}}
  - {name: b, vf: {backend: devsim}, listen: {tcp: {address: %q, allow_non_loopback: true}}}
`, pair[0], pair[1])
		_, err := hostshim.ParseConfig([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "overlaps") {
			t.Errorf("listeners on %s and %s: err = %v, want an overlap", pair[0], pair[1], err)
		}
	}
}

// TestConfigSocketModes: a world-writable socket needs
// allow_world_writable, a group-writable one a named group.
func TestConfigSocketModes(t *testing.T) {
	gid := fmt.Sprint(os.Getgid())
	for _, c := range []struct {
		unix string
		want string // "" accepted
	}{
		{`{path: /run/a.sock, mode: "0777"}`, "allow_world_writable"},
		{`{path: /run/a.sock, mode: "0666"}`, "allow_world_writable"},
		{`{path: /run/a.sock, mode: "0666", allow_world_writable: true}`, ""},
		{`{path: /run/a.sock, mode: "0660"}`, "name that group"},
		{`{path: /run/a.sock, mode: "0660", group: "` + gid + `"}`, ""},
		{`{path: /run/a.sock, mode: "0600"}`, ""},
		{`{path: /run/a.sock, mode: "0644"}`, ""},
	} {
		doc := "listeners:\n  - {name: a, vf: {backend: devsim}, listen: {unix: " + c.unix + "}}\n"
		_, err := hostshim.ParseConfig([]byte(doc))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", c.unix, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want it to mention %q", c.unix, err, c.want)
		}
	}
}
