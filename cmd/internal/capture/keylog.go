// Package capture records and reads back SPDM conversations over DOE:
// per-device capture files (classic pcap, doe's writer), the key log that
// lets a person decrypt the secure sessions in them, and the decoder
// behind `devattest dump`.
//
// The key log is dangerous by design: each line holds a session's DHE
// secret or PSK, and with the capture it decrypts everything the session
// carried, IDE keys included. It is written only when asked for (the
// probe's and the guest's --keylog, never the shim), only to a file of
// mode 0600, and a loud warning goes to stderr when it is opened.
package capture

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/devattest/devattest/secchan"
)

// KeyLogWarning is what a command prints on stderr when it writes a key log.
const KeyLogWarning = "WARNING: writing SPDM session secrets to the key log %s: anyone who reads it can decrypt the captured sessions, IDE keys included. Use it for debugging only and delete it afterwards."

// Bounds of a key log read back.
const (
	maxKeyLogSize    = 4 << 20
	maxKeyLogEntries = 4096
	maxKeyLogSecret  = 512
)

// keyLogHeader opens every key log file.
const keyLogHeader = "# devattest SPDM key log: SECRET. Every SESSION line decrypts one captured session.\n" +
	"# spdm_dump takes the secret of each session as --dhe_secret HEX (dhe) or --psk HEX (psk), in session order.\n"

// KeyLogEntry is one session of a key log.
type KeyLogEntry struct {
	Device    string // the device's label; empty when there is one device
	SessionID uint32
	PSK       bool
	Secret    []byte
	Version   secchan.Version
	Hash      crypto.Hash // 0 when not given
	AEAD      uint16
	TH1       []byte
	// RequesterChainHash: see secchan.SessionSecrets.
	RequesterChainHash []byte
}

// Zero overwrites the secret.
func (e *KeyLogEntry) Zero() { clear(e.Secret) }

// KeyLogFile appends sessions to a key log. It is safe for concurrent use.
type KeyLogFile struct {
	mu   sync.Mutex
	f    *os.File
	errs int
	err  error
}

// CreateKeyLog opens path for appending sessions. A new file is created
// with mode 0600; an existing one must be a regular file of mode 0600 (or
// stricter) that this user owns, else it is refused with the reason:
// secrets never go into a file others may read.
func CreateKeyLog(path string) (*KeyLogFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: key log %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkSecretFile(fi)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("capture: key log %s: %w", path, err)
	}
	k := &KeyLogFile{f: f}
	if created || fi.Size() == 0 {
		if _, err := f.WriteString(keyLogHeader); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("capture: key log %s: %w", path, err)
		}
	}
	return k, nil
}

// checkSecretFile refuses anything but a regular file of mode 0600 or
// stricter owned by this user.
func checkSecretFile(fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("has mode %04o; a key log must not be readable by others: remove it or chmod 600 it", perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("belongs to uid %d, not to this user", st.Uid)
	}
	return nil
}

// For returns the secchan.RequesterConfig.KeyLog callback for one device.
// A failed write is counted (Close reports it) and never fails the
// session.
func (k *KeyLogFile) For(device string) func(secchan.SessionSecrets) {
	return func(s secchan.SessionSecrets) {
		line := formatEntry(device, s)
		defer clear(line)
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.f == nil {
			k.errs++
			return
		}
		if _, err := k.f.Write(line); err != nil {
			k.errs++
			if k.err == nil {
				k.err = err
			}
		}
	}
}

// Close closes the file and reports lost lines.
func (k *KeyLogFile) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.f == nil {
		return nil
	}
	err := k.f.Close()
	k.f = nil
	if k.errs > 0 {
		return fmt.Errorf("capture: %d key log lines lost: %v", k.errs, k.err)
	}
	return err
}

// formatEntry writes one SESSION line.
func formatEntry(device string, s secchan.SessionSecrets) []byte {
	kind := "dhe"
	if s.PSK {
		kind = "psk"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "SESSION session=0x%08x kind=%s", s.SessionID, kind)
	if device != "" {
		fmt.Fprintf(&b, " device=%s", url.QueryEscape(device))
	}
	fmt.Fprintf(&b, " version=%v hash=%s aead=%s", s.Version, secchan.HashName(s.BaseHash), secchan.AEADName(s.AEAD))
	if !s.PSK {
		fmt.Fprintf(&b, " dhe=%s", secchan.DHEName(s.DHE))
	}
	if len(s.TH1) > 0 {
		fmt.Fprintf(&b, " th1=%x", s.TH1)
	}
	if len(s.RequesterChainHash) > 0 {
		fmt.Fprintf(&b, " req_chain_hash=%x", s.RequesterChainHash)
	}
	b.WriteString(" secret=")
	out := hex.AppendEncode(b.Bytes(), s.Secret)
	return append(out, '\n')
}

// ParseKeyLog reads a key log: SESSION lines (only kind and secret are
// required; key=value fields in any order), comments and blank lines. It
// is bounded in size and entries, and names the line of any error.
func ParseKeyLog(r io.Reader) ([]KeyLogEntry, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyLogSize+1))
	if err != nil {
		return nil, fmt.Errorf("capture: reading the key log: %w", err)
	}
	defer clear(data)
	if len(data) > maxKeyLogSize {
		return nil, fmt.Errorf("capture: key log larger than %d bytes", maxKeyLogSize)
	}
	var out []KeyLogEntry
	fail := func(line int, format string, a ...any) ([]KeyLogEntry, error) {
		for i := range out {
			out[i].Zero()
		}
		return nil, fmt.Errorf("capture: key log line %d: %s", line, fmt.Sprintf(format, a...))
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxKeyLogSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if fields[0] != "SESSION" {
			return fail(n, "unknown record %q (want SESSION)", fields[0])
		}
		if len(out) >= maxKeyLogEntries {
			return fail(n, "more than %d sessions", maxKeyLogEntries)
		}
		e, err := parseEntry(fields[1:])
		if err != nil {
			return fail(n, "%v", err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return fail(0, "%v", err)
	}
	return out, nil
}

func parseEntry(fields []string) (KeyLogEntry, error) {
	var e KeyLogEntry
	seen := map[string]bool{}
	hexField := func(k, v string, max int) ([]byte, error) {
		b, err := hex.DecodeString(v)
		if err != nil || len(b) == 0 || len(b) > max {
			return nil, fmt.Errorf("%s: want 1 to %d bytes of hex", k, max)
		}
		return b, nil
	}
	var err error
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || seen[k] {
			return e, fmt.Errorf("field %q: want KEY=VALUE, each key once", f)
		}
		seen[k] = true
		switch k {
		case "session":
			var id uint64
			id, err = strconv.ParseUint(v, 0, 32)
			e.SessionID = uint32(id)
		case "kind":
			switch v {
			case "dhe":
			case "psk":
				e.PSK = true
			default:
				err = fmt.Errorf("kind %q: want dhe or psk", v)
			}
		case "device":
			e.Device, err = url.QueryUnescape(v)
		case "version":
			e.Version, err = secchan.ParseVersion(v)
		case "hash":
			var bit uint32
			if bit, err = secchan.ParseHashList(v); err == nil {
				e.Hash, err = secchan.HashOf(bit)
			}
		case "secret":
			e.Secret, err = hexField(k, v, maxKeyLogSecret)
		case "th1":
			e.TH1, err = hexField(k, v, 64)
		case "req_chain_hash":
			e.RequesterChainHash, err = hexField(k, v, 64)
		case "aead", "dhe":
			// For people and spdm-dump's flags; the capture's ALGORITHMS
			// says the same.
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			e.Zero()
			return KeyLogEntry{}, err
		}
	}
	if !seen["kind"] || e.Secret == nil {
		e.Zero()
		return KeyLogEntry{}, errors.New("a SESSION needs kind= and secret=")
	}
	return e, nil
}

// SpdmDumpArgs returns spdm-dump's arguments for the sessions of entries
// (one device's): --dhe_secret and --psk, each kind in session order, as
// spdm-dump consumes them.
func SpdmDumpArgs(entries []KeyLogEntry) []string {
	var out []string
	for _, e := range entries {
		flag := "--dhe_secret"
		if e.PSK {
			flag = "--psk"
		}
		out = append(out, flag, hex.EncodeToString(e.Secret))
	}
	return out
}
