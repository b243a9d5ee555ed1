package secchan

// DSP0277 secured messages as carried over PCI DOE (type 2 objects):
//
//	SessionID (4, LE) | Length (2, LE) | ciphertext | tag (16)
//	plaintext = ApplicationDataLength (2, LE) | SPDM message | random padding
//
// Over DOE the sequence-number field is 0 bytes and the random padding is
// empty. The AAD is the 6 header bytes; Length counts ciphertext and tag.
// The nonce is the direction's IV with the 64-bit implicit sequence number
// XORed, little-endian, into its first 8 bytes. Each direction counts from
// 0 whenever a new key comes into use and never wraps: a record is refused
// once the limit is reached, and a receiver only accepts the next number,
// so a replayed, reordered or dropped record fails authentication.

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors of the secured-message layer.
var (
	// ErrDecrypt: a record failed authentication (tampered, replayed,
	// reordered, or under the wrong key).
	ErrDecrypt = errors.New("spdm: secured message failed authentication")
	// ErrSessionID: a record for another session.
	ErrSessionID = errors.New("spdm: secured message for another session")
	// ErrSequenceExhausted: the direction reached its record limit; a key
	// update (or a new session) is required.
	ErrSequenceExhausted = errors.New("spdm: secured message sequence limit reached")
)

// securedHeaderSize is SessionID and Length over DOE.
const securedHeaderSize = 6

// DefaultRecordLimit bounds the records under one key (DSP0277 leaves the
// limit to the AEAD; 2^32 keeps AES-GCM well inside its bounds).
const DefaultRecordLimit = uint64(1) << 32

// recordCipher protects one direction of a session under one key.
type recordCipher struct {
	aead  cipher.AEAD
	iv    [IVSize]byte
	seq   uint64
	limit uint64
}

func newRecordCipher(suite uint16, k DirectionKeys) (*recordCipher, error) {
	var a cipher.AEAD
	var err error
	switch suite {
	case AEADAES128GCM, AEADAES256GCM:
		var b cipher.Block
		if b, err = aes.NewCipher(k.Key); err == nil {
			a, err = cipher.NewGCM(b)
		}
	case AEADChaCha20Poly1305:
		a, err = chacha20poly1305.New(k.Key)
	default:
		return nil, fmt.Errorf("%w: AEAD %s", ErrUnsupportedAlgorithm, AEADName(suite))
	}
	if err != nil {
		return nil, fmt.Errorf("secchan: AEAD key: %w", err)
	}
	if len(k.IV) != IVSize {
		return nil, fmt.Errorf("secchan: IV of %d bytes, want %d", len(k.IV), IVSize)
	}
	rc := &recordCipher{aead: a, limit: DefaultRecordLimit}
	copy(rc.iv[:], k.IV)
	return rc, nil
}

func (rc *recordCipher) nonce() []byte {
	n := rc.iv
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], rc.seq)
	for i := range s {
		n[i] ^= s[i]
	}
	return n[:]
}

// seal encrypts msg as one secured record of session id. The plaintext is
// laid out in the record buffer and encrypted in place, so a message is
// copied once.
func (rc *recordCipher) seal(id uint32, msg []byte) ([]byte, error) {
	if rc.seq >= rc.limit {
		return nil, ErrSequenceExhausted
	}
	if len(msg) > 0xFFFF-2-TagSize {
		return nil, fmt.Errorf("secchan: message of %d bytes is too large for one secured record", len(msg))
	}
	n := 2 + len(msg) + TagSize
	rec := make([]byte, securedHeaderSize+n)
	binary.LittleEndian.PutUint32(rec, id)
	binary.LittleEndian.PutUint16(rec[4:], uint16(n))
	binary.LittleEndian.PutUint16(rec[securedHeaderSize:], uint16(len(msg)))
	copy(rec[securedHeaderSize+2:], msg)
	plain := rec[securedHeaderSize : securedHeaderSize+2+len(msg)]
	rc.aead.Seal(plain[:0], rc.nonce(), plain, rec[:securedHeaderSize])
	rc.seq++
	return rec, nil
}

// open authenticates and decrypts one record (without transport padding)
// and returns the SPDM message inside.
func (rc *recordCipher) open(rec []byte) ([]byte, error) {
	if rc.seq >= rc.limit {
		return nil, ErrSequenceExhausted
	}
	plain, err := rc.aead.Open(nil, rc.nonce(), rec[securedHeaderSize:], rec[:securedHeaderSize])
	if err != nil {
		return nil, ErrDecrypt
	}
	rc.seq++
	if len(plain) < 2 {
		return nil, decodeErr("secured message", "ApplicationDataLength", "plaintext of %d bytes", len(plain))
	}
	n := int(binary.LittleEndian.Uint16(plain))
	if n > len(plain)-2 {
		return nil, decodeErr("secured message", "ApplicationDataLength", "says %d bytes, %d present", n, len(plain)-2)
	}
	// Over DOE there is no random padding; anything after the message is
	// an error, not something to ignore.
	if n != len(plain)-2 {
		return nil, decodeErr("secured message", "ApplicationData", "%d bytes follow the message", len(plain)-2-n)
	}
	return plain[2:], nil
}

// SecuredRecord is the cleartext header of a secured message.
type SecuredRecord struct {
	SessionID uint32
	Length    uint16 // ciphertext + tag
}

// ParseSecuredRecord reads the header of a DOE secured message and returns
// the record without DOE padding. It checks lengths only; authentication
// happens in the session.
func ParseSecuredRecord(b []byte) (SecuredRecord, []byte, error) {
	r := newReader("secured message", b)
	h := SecuredRecord{SessionID: r.u32("SessionID"), Length: r.u16("Length")}
	if r.err == nil && int(h.Length) < 2+TagSize {
		r.fail("Length", "%d is shorter than the application-data length and tag", h.Length)
	}
	r.skip("EncryptedData", int(h.Length))
	n, err := r.done()
	if err != nil {
		return h, nil, err
	}
	if err := checkPadding("secured message", b, n); err != nil {
		return h, nil, err
	}
	return h, b[:n], nil
}
