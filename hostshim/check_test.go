package hostshim_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/hostshim"
)

const (
	checkPF = "0000:0d:00.0"
	checkVF = "0000:0d:00.1"
)

// fakeSys is a sysfs tree in t.TempDir(): a PF and its VF, each with a
// config file (the VF's is a devsim function's config space, whose
// mailbox Check reaches through CheckEnv.OpenConfig), drivers as links,
// and the lockdown file.
type fakeSys struct {
	t    *testing.T
	root string // the sysfs mount
	vf   *devsim.Function
}

func newFakeSys(t *testing.T) *fakeSys {
	t.Helper()
	fs := &fakeSys{t: t, root: filepath.Join(t.TempDir(), "sys"), vf: devsim.NewVF()}
	cfg := make([]byte, doe.ConfigSpaceSize)
	for off := 0; off < len(cfg); off += 4 {
		v, err := fs.vf.ReadConfig32(off)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(cfg[off:], v)
	}
	for _, bdf := range []string{checkPF, checkVF} {
		fs.mkdir("bus/pci/devices/" + bdf)
		fs.write("bus/pci/devices/"+bdf+"/config", cfg)
	}
	fs.symlink("bus/pci/devices/"+checkVF+"/physfn", "../"+checkPF)
	fs.bind(checkPF, "mlx5_core")
	fs.bind(checkVF, "vfio-pci")
	fs.mkdir("kernel/security")
	fs.write("kernel/security/lockdown", []byte("[none] integrity confidentiality\n"))
	return fs
}

func (fs *fakeSys) path(p string) string { return filepath.Join(fs.root, p) }

func (fs *fakeSys) mkdir(p string) {
	if err := os.MkdirAll(fs.path(p), 0o755); err != nil {
		fs.t.Fatal(err)
	}
}

func (fs *fakeSys) write(p string, b []byte) {
	if err := os.WriteFile(fs.path(p), b, 0o644); err != nil {
		fs.t.Fatal(err)
	}
}

func (fs *fakeSys) symlink(p, target string) {
	_ = os.Remove(fs.path(p))
	if err := os.Symlink(target, fs.path(p)); err != nil {
		fs.t.Fatal(err)
	}
}

// bind links bdf's driver (as sysfs does, to the driver's directory).
func (fs *fakeSys) bind(bdf, driver string) {
	fs.mkdir("bus/pci/drivers/" + driver)
	fs.symlink("bus/pci/devices/"+bdf+"/driver", "../../../../bus/pci/drivers/"+driver)
}

// env reaches the VF's mailbox through the emulated function.
func (fs *fakeSys) env() hostshim.CheckEnv {
	return hostshim.CheckEnv{
		Sys: fs.root,
		Open: func(context.Context, hostshim.VFConfig, []doe.Protocol) (doe.Mailbox, io.Closer, error) {
			return devsim.NewVF().Driver(), io.NopCloser(nil), nil
		},
		OpenConfig: func(root, bdf string) (doe.ConfigSpace, io.Closer, error) {
			if _, err := os.Stat(filepath.Join(root, bdf, "config")); err != nil {
				return nil, nil, err
			}
			return fs.vf, io.NopCloser(nil), nil
		},
	}
}

// config is a one-listener configuration for the fake tree's VF, with
// extra lines in the VF block.
func (fs *fakeSys) config(runDir, vfExtra, listenerExtra string) *hostshim.Config {
	fs.t.Helper()
	y := fmt.Sprintf(`run_dir: %s
sysfs_root: %s
metrics: {listen: none}
listeners:
  - name: vf1
    guest: guest-a
    vf: {backend: sysfs, bdf: %q%s}
    listen: {unix: {path: %s}}
%s`, runDir, fs.path("bus/pci/devices"), checkVF, vfExtra, filepath.Join(runDir, "vf1.sock"), listenerExtra)
	cfg, err := hostshim.ParseConfig([]byte(y))
	if err != nil {
		fs.t.Fatal(err)
	}
	return cfg
}

func runCheck(t *testing.T, cfg *hostshim.Config, env hostshim.CheckEnv) (*hostshim.CheckReport, hostshim.VFReport) {
	t.Helper()
	rep := hostshim.Check(context.Background(), cfg, env)
	if len(rep.VFs) != len(cfg.Listeners) {
		t.Fatalf("report has %d VFs for %d listeners", len(rep.VFs), len(cfg.Listeners))
	}
	return rep, rep.VFs[0]
}

func hasLine(items []string, parts ...string) bool {
	return slices.ContainsFunc(items, func(s string) bool {
		for _, p := range parts {
			if !strings.Contains(s, p) {
				return false
			}
		}
		return true
	})
}

func TestCheckUsableSysfsVF(t *testing.T) {
	fs := newFakeSys(t)
	rep, v := runCheck(t, fs.config(t.TempDir(), "", ""), fs.env())
	if !rep.OK || !v.Usable || len(v.Problems) != 0 {
		t.Fatalf("a VF bound to vfio-pci with a CMA mailbox: %+v", v)
	}
	if rep.Lockdown != "none" {
		t.Errorf("lockdown = %q, want none", rep.Lockdown)
	}
	s := v.Sysfs
	if s.Driver != "vfio-pci" || s.PhysFn != checkPF || s.PhysFnDriver != "mlx5_core" {
		t.Errorf("binding = %q, PF %q bound to %q", s.Driver, s.PhysFn, s.PhysFnDriver)
	}
	if s.ConfigReadable != doe.ConfigSpaceSize || !s.ConfigWritable {
		t.Errorf("config access: %d bytes readable, writable %v", s.ConfigReadable, s.ConfigWritable)
	}
	want := []string{doe.ProtocolDiscovery.String(), doe.ProtocolCMA.String(), doe.ProtocolSecuredCMA.String()}
	if len(s.DOE) != 1 || s.DOE[0].Offset != devsim.DOEOffset || s.DOE[0].Version != devsim.DOEVersion || !s.DOE[0].Served || !slices.Equal(s.DOE[0].Protocols, want) {
		t.Errorf("DOE instances = %+v, want one at 0x%x listing %v, served", s.DOE, devsim.DOEOffset, want)
	}
	if !slices.Equal(v.Protocols, want) || v.Claim != "free" {
		t.Errorf("protocols %v, claim %q", v.Protocols, v.Claim)
	}
	if !hasLine(s.OtherUsers, "PCI core") || !hasLine(s.OtherUsers, checkPF, "mlx5_core") {
		t.Errorf("other DOE users = %q", s.OtherUsers)
	}
	da := s.DirectAccess
	if da.Risk != "present" || !slices.Equal(da.Ranges, []string{"0x150-0x167"}) || !strings.Contains(da.Mitigation, "variant driver") || !strings.Contains(da.Why, "vfio-pci") {
		t.Errorf("direct access = %+v, want the risk present on 0x150-0x167 with its mitigation", da)
	}
}

// What makes a sysfs VF unusable, each found and named; a VF a kernel
// driver holds is not probed (its mailbox is the driver's).
func TestCheckUnusableSysfsVF(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(fs *fakeSys)
		vfExtra  string
		listener string
		problem  []string
		noProbe  bool
	}{
		{name: "bound to cxl_pci", setup: func(fs *fakeSys) { fs.bind(checkVF, "cxl_pci") }, problem: []string{`"cxl_pci"`, "discovery skipped"}, noProbe: true},
		{name: "lockdown", setup: func(fs *fakeSys) {
			fs.write("kernel/security/lockdown", []byte("none [integrity] confidentiality\n"))
		}, problem: []string{"lockdown", "integrity"}, noProbe: true},
		{name: "64 bytes readable", setup: func(fs *fakeSys) {
			b, _ := os.ReadFile(fs.path("bus/pci/devices/" + checkVF + "/config"))
			fs.write("bus/pci/devices/"+checkVF+"/config", b[:64])
		}, problem: []string{"first 64 bytes", "CAP_SYS_ADMIN"}, noProbe: true},
		{name: "not writable", setup: func(fs *fakeSys) {
			if err := os.Chmod(fs.path("bus/pci/devices/"+checkVF+"/config"), 0o444); err != nil {
				fs.t.Fatal(err)
			}
		}, problem: []string{"opened for writing"}, noProbe: true},
		{name: "missing function", setup: func(fs *fakeSys) {
			if err := os.RemoveAll(fs.path("bus/pci/devices/" + checkVF)); err != nil {
				fs.t.Fatal(err)
			}
		}, problem: []string{"no such PCI function"}, noProbe: true},
		{name: "allowed type not offered", listener: "    allowed_types: [\"1e98:02\"]\n", problem: []string{"no DOE instance offers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "not writable" && os.Geteuid() == 0 {
				t.Skip("running as root: file modes do not stop writes")
			}
			fs := newFakeSys(t)
			if tc.setup != nil {
				tc.setup(fs)
			}
			rep, v := runCheck(t, fs.config(t.TempDir(), tc.vfExtra, tc.listener), fs.env())
			if rep.OK || v.Usable {
				t.Fatalf("report says usable: %+v", v)
			}
			if !hasLine(v.Problems, tc.problem...) {
				t.Errorf("problems %q, want one mentioning %q", v.Problems, tc.problem)
			}
			if got := fs.vf.Stats().Requests; tc.noProbe && got != 0 {
				t.Errorf("the device saw %d requests, want discovery skipped", got)
			}
		})
	}
}

func TestCheckOtherDOEUsers(t *testing.T) {
	fs := newFakeSys(t)
	fs.write("bus/pci/devices/"+checkVF+"/authenticated", []byte("0\n"))
	fs.mkdir("class/tsm/tsm0")
	fs.bind(checkVF, "cxl_pci")
	_, v := runCheck(t, fs.config(t.TempDir(), ", allow_kernel_driver: true", ""), fs.env())
	users := v.Sysfs.OtherUsers
	for _, want := range [][]string{{"cxl_pci", "CDAT"}, {"CMA-SPDM", "authenticated"}, {"TSM", "physical function " + checkPF}} {
		if !hasLine(users, want...) {
			t.Errorf("other DOE users %q lack %q", users, want)
		}
	}
	// Allowed by the configuration: usable, with a warning, not probed.
	if !v.Usable || !hasLine(v.Warnings, "allow_kernel_driver") || fs.vf.Stats().Requests != 0 {
		t.Errorf("cxl_pci allowed: usable %v, warnings %q, %d requests", v.Usable, v.Warnings, fs.vf.Stats().Requests)
	}
	if v.Sysfs.DirectAccess.Risk == "present" {
		t.Errorf("direct access with cxl_pci bound = %q; no guest has the VF", v.Sysfs.DirectAccess.Risk)
	}
}

// A VF another holder claims (a running shim) is reported, not probed.
func TestCheckClaimedVF(t *testing.T) {
	fs := newFakeSys(t)
	runDir := t.TempDir()
	claim, err := hostshim.ClaimVF(runDir, checkVF)
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Release()
	_, v := runCheck(t, fs.config(runDir, "", ""), fs.env())
	if !strings.Contains(v.Claim, "claimed") || !strings.Contains(v.Claim, fmt.Sprint("pid ", os.Getpid())) {
		t.Errorf("claim = %q, want the holder named", v.Claim)
	}
	if !hasLine(v.Warnings, "discovery was skipped") || fs.vf.Stats().Requests != 0 {
		t.Errorf("warnings %q, %d requests: want discovery skipped", v.Warnings, fs.vf.Stats().Requests)
	}
}

// devsim and socket backends: discovery through the daemon's opener; an
// unreachable socket is unusable.
func TestCheckEmulatedAndSocketBackends(t *testing.T) {
	dir := t.TempDir()
	up := "unix:" + filepath.Join(dir, "up.sock")
	serve(t, &doe.Server{Mailbox: devsim.NewVF().Driver()}, up)
	y := fmt.Sprintf(`run_dir: %[1]s
metrics: {listen: none}
listeners:
  - name: emu
    vf: {backend: devsim}
    listen: {unix: {path: %[1]s/emu.sock}}
  - name: sock
    vf: {backend: socket, address: %[2]q}
    listen: {unix: {path: %[1]s/sock.sock}}
  - name: down
    vf: {backend: socket, address: "unix:%[1]s/nothing.sock"}
    listen: {unix: {path: %[1]s/down.sock}}
`, dir, up)
	cfg, err := hostshim.ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	env := hostshim.CheckEnv{Open: func(ctx context.Context, vf hostshim.VFConfig, p []doe.Protocol) (doe.Mailbox, io.Closer, error) {
		if vf.Backend == hostshim.BackendDevsim {
			return devsim.NewVF().Driver(), io.NopCloser(nil), nil
		}
		return hostshim.OpenBackend(ctx, vf, p)
	}}
	rep := hostshim.Check(context.Background(), cfg, env)
	if rep.OK || rep.Lockdown != "" {
		t.Fatalf("report OK %v, lockdown %q: want not OK (one socket is down) and no lockdown without sysfs VFs", rep.OK, rep.Lockdown)
	}
	for i, want := range []bool{true, true, false} {
		v := rep.VFs[i]
		if v.Usable != want || v.Sysfs != nil {
			t.Errorf("%s: usable %v, want %v (%q)", v.Listener, v.Usable, want, v.Problems)
		}
		if want && len(v.Protocols) != 3 {
			t.Errorf("%s: protocols %v", v.Listener, v.Protocols)
		}
	}
	if !hasLine(rep.VFs[2].Problems, "discovery") {
		t.Errorf("down: problems %q", rep.VFs[2].Problems)
	}
}
