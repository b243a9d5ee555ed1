package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDevsimMeasurementsFlag: a bad layout file stops devsim before it
// listens, with an error naming the file and the line.
func TestDevsimMeasurementsFlag(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, filepath.Join(dir, "layout.yaml"), []byte("- index: 1\n  type: mutable-firmware\n  value: a\n- index: 2\n  type: rom\n  value: b\n"))
	code, _, errOut := runCmd("devsim", "--listen", "unix:"+filepath.Join(dir, "vf.sock"), "--measurements", bad)
	if code != 1 || !strings.Contains(errOut, "layout.yaml") || !strings.Contains(errOut, `block 2: type "rom"`) {
		t.Fatalf("exit %d, want 1 and an error naming the file and block 2\n%s", code, errOut)
	}
	code, _, errOut = runCmd("devsim", "--listen", "unix:"+filepath.Join(dir, "vf.sock"), "--measurements", filepath.Join(dir, "none.yaml"))
	if code != 1 || !strings.Contains(errOut, "none.yaml") {
		t.Fatalf("a missing file: exit %d\n%s", code, errOut)
	}
}
