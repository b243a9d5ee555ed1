package hostshim_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devattest/devattest/hostshim"
)

// fakeSysfs builds <root>/devices/<bdf> with a driver symlink to
// <root>/drivers/<driver> (none when driver is ""), as Linux lays out
// /sys/bus/pci.
func fakeSysfs(t *testing.T, bdf, driver string) (devices string) {
	t.Helper()
	root := t.TempDir()
	devices = filepath.Join(root, "devices")
	dev := filepath.Join(devices, bdf)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if driver != "" {
		drv := filepath.Join(root, "drivers", driver)
		if err := os.MkdirAll(drv, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "drivers", driver), filepath.Join(dev, "driver")); err != nil {
			t.Fatal(err)
		}
	}
	return devices
}

func TestCheckDriver(t *testing.T) {
	const bdf = "0000:3b:00.1"
	t.Run("nvme refused", func(t *testing.T) {
		err := hostshim.CheckDriver(fakeSysfs(t, bdf, "nvme"), bdf, nil)
		if !errors.Is(err, hostshim.ErrDriverBound) {
			t.Fatalf("CheckDriver with nvme bound = %v, want ErrDriverBound", err)
		}
		for _, part := range []string{`"nvme"`, bdf, "DOE"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not mention %q", err, part)
			}
		}
	})
	for _, drv := range []string{"vfio-pci", "pci-stub"} {
		t.Run(drv+" ok", func(t *testing.T) {
			if err := hostshim.CheckDriver(fakeSysfs(t, bdf, drv), bdf, nil); err != nil {
				t.Fatalf("CheckDriver with %s bound = %v", drv, err)
			}
		})
	}
	t.Run("no driver ok", func(t *testing.T) {
		if err := hostshim.CheckDriver(fakeSysfs(t, bdf, ""), bdf, nil); err != nil {
			t.Fatalf("CheckDriver with no driver = %v", err)
		}
	})
	t.Run("upper-case BDF", func(t *testing.T) {
		if err := hostshim.CheckDriver(fakeSysfs(t, bdf, "vfio-pci"), strings.ToUpper(bdf), nil); err != nil {
			t.Fatalf("CheckDriver(upper case) = %v", err)
		}
	})
	t.Run("allowed override", func(t *testing.T) {
		root := fakeSysfs(t, bdf, "nvme")
		if err := hostshim.CheckDriver(root, bdf, []string{"nvme"}); err != nil {
			t.Fatalf("CheckDriver with nvme explicitly allowed = %v", err)
		}
		// An override replaces the default list.
		root = fakeSysfs(t, bdf, "vfio-pci")
		if err := hostshim.CheckDriver(root, bdf, []string{"pci-stub"}); !errors.Is(err, hostshim.ErrDriverBound) {
			t.Fatalf("CheckDriver(vfio-pci, allowed pci-stub only) = %v, want ErrDriverBound", err)
		}
	})
	t.Run("missing device", func(t *testing.T) {
		err := hostshim.CheckDriver(fakeSysfs(t, bdf, ""), "0000:3b:00.2", nil)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("CheckDriver on a missing device = %v, want ErrNotExist", err)
		}
	})
	t.Run("bad BDF", func(t *testing.T) {
		if err := hostshim.CheckDriver(fakeSysfs(t, bdf, ""), "../"+bdf, nil); err == nil {
			t.Fatal("CheckDriver accepted a path as BDF")
		}
	})
}
