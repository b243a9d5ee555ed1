package hostshim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadLockdown(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ file, want string }{
		{"[none] integrity confidentiality\n", "none"},
		{"none [integrity] confidentiality\n", "integrity"},
		{"none integrity [confidentiality]", "confidentiality"},
		{"none integrity confidentiality\n", "unknown: "},
		{"]none[", "unknown: "},
	} {
		p := filepath.Join(dir, "lockdown")
		if err := os.WriteFile(p, []byte(tc.file), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := readLockdown(p); got != tc.want && !(strings.HasSuffix(tc.want, ": ") && strings.HasPrefix(got, tc.want)) {
			t.Errorf("readLockdown(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
	if got := readLockdown(filepath.Join(dir, "missing")); !strings.HasPrefix(got, "unknown: ") || !strings.Contains(got, "does not exist") {
		t.Errorf("missing file: %q", got)
	}
}

// FuzzReadLockdown: whatever the file holds, the answer is the bracketed
// word or says unknown, and nothing panics.
func FuzzReadLockdown(f *testing.F) {
	f.Add([]byte("[none] integrity confidentiality\n"))
	f.Add([]byte("none [integrity] confidentiality\n"))
	f.Add([]byte("]["))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "lockdown")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got := readLockdown(p)
		if !strings.HasPrefix(got, "unknown: ") && !strings.Contains(string(b), "["+got+"]") {
			t.Fatalf("readLockdown(%q) = %q: neither unknown nor a bracketed word of the file", b, got)
		}
	})
}
