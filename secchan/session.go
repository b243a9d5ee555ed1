package secchan

// Session is the record layer of one SPDM secure session, for one role.
// Its lifecycle:
//
//	NewSession (handshake keys from TH1) ── Establish(TH2) ──► data keys
//	   │                                        │
//	   └── FINISH / PSK_FINISH under            ├── UpdateSendKey / UpdateRecvKey
//	       handshake keys                       │   (KEY_UPDATE; counters restart)
//	                                            └── End: every key zeroed
//
// A Session is safe for concurrent use; one record is sealed or opened at
// a time, in order, since the sequence numbers are implicit.

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"sync"
)

// Role says which side of a session this is.
type Role int

const (
	RoleRequester Role = iota
	RoleResponder
)

func (r Role) String() string {
	if r == RoleRequester {
		return "requester"
	}
	return "responder"
}

// SessionPhase is where a session is in its lifecycle.
type SessionPhase int

const (
	PhaseHandshake SessionPhase = iota
	PhaseEstablished
	PhaseEnded
)

func (p SessionPhase) String() string {
	switch p {
	case PhaseHandshake:
		return "handshake"
	case PhaseEstablished:
		return "established"
	}
	return "ended"
}

// ErrSessionEnded: the session was ended (or failed) and holds no keys.
var ErrSessionEnded = errors.New("spdm: session has ended")

// Session holds the keys and counters of one session.
type Session struct {
	ID   uint32
	Role Role

	mu     sync.Mutex
	ks     KeySchedule
	phase  SessionPhase
	hs     *HandshakeKeys
	master *MasterSecret
	data   *DataSecrets
	send   *recordCipher
	recv   *recordCipher
	limit  uint64
}

// NewSession starts a session in its handshake phase: the handshake keys
// come from hs and TH1's hash; hs is consumed (its secret is zeroed once
// the master secret is derived).
func NewSession(id uint32, role Role, ks KeySchedule, hs *HandshakeSecret, th1 []byte) (*Session, error) {
	keys, err := hs.Keys(th1)
	if err != nil {
		return nil, err
	}
	s := &Session{ID: id, Role: role, ks: ks, hs: keys, master: hs.Master(), limit: DefaultRecordLimit}
	if err := s.install(keys.Req, keys.Rsp); err != nil {
		keys.Zero()
		return nil, err
	}
	return s, nil
}

// SetRecordLimit bounds the records under one key in each direction.
func (s *Session) SetRecordLimit(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
	s.send.limit, s.recv.limit = n, n
}

// install sets the ciphers from the requester's and responder's keys.
func (s *Session) install(req, rsp DirectionKeys) error {
	sendKeys, recvKeys := req, rsp
	if s.Role == RoleResponder {
		sendKeys, recvKeys = rsp, req
	}
	send, err := newRecordCipher(s.ks.AEAD, sendKeys)
	if err != nil {
		return err
	}
	recv, err := newRecordCipher(s.ks.AEAD, recvKeys)
	if err != nil {
		return err
	}
	send.limit, recv.limit = s.limit, s.limit
	s.send, s.recv = send, recv
	return nil
}

// Phase returns the session's phase.
func (s *Session) Phase() SessionPhase {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase
}

// VerifyData computes an HMAC over a transcript hash with the requester's
// (forRequester) or responder's finished key (DSP0274 §10.16, §10.17).
func (s *Session) VerifyData(forRequester bool, transcriptHash []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != PhaseHandshake {
		return nil, fmt.Errorf("%w: finished keys are gone after the handshake", ErrSessionEnded)
	}
	key := s.hs.RspFinished
	if forRequester {
		key = s.hs.ReqFinished
	}
	m := hmac.New(s.ks.Hash.New, key)
	m.Write(transcriptHash)
	return m.Sum(nil), nil
}

// Establish moves to the data keys derived from TH2's hash; the handshake
// keys are zeroed.
func (s *Session) Establish(th2 []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != PhaseHandshake {
		return fmt.Errorf("secchan: session 0x%08x: establish in phase %v", s.ID, s.phase)
	}
	data, err := s.master.Data(th2)
	if err != nil {
		return err
	}
	if err := s.install(data.Req, data.Rsp); err != nil {
		data.Zero()
		return err
	}
	s.hs.Zero()
	s.hs, s.master, s.data = nil, nil, data
	s.phase = PhaseEstablished
	return nil
}

// UpdateSendKey and UpdateRecvKey move one direction to its next data
// secret; the new key's records are numbered from 0.
func (s *Session) UpdateSendKey() error { return s.update(true) }

// UpdateRecvKey: see UpdateSendKey.
func (s *Session) UpdateRecvKey() error { return s.update(false) }

func (s *Session) update(send bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != PhaseEstablished {
		return fmt.Errorf("secchan: session 0x%08x: key update in phase %v", s.ID, s.phase)
	}
	requesterDir := send == (s.Role == RoleRequester)
	var k DirectionKeys
	var err error
	if requesterDir {
		k, err = s.data.UpdateReq()
	} else {
		k, err = s.data.UpdateRsp()
	}
	if err != nil {
		return err
	}
	rc, err := newRecordCipher(s.ks.AEAD, k)
	if err != nil {
		return err
	}
	rc.limit = s.limit
	if send {
		s.send = rc
	} else {
		s.recv = rc
	}
	return nil
}

// Seal protects one SPDM message as a secured record.
func (s *Session) Seal(msg []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == PhaseEnded {
		return nil, ErrSessionEnded
	}
	return s.send.seal(s.ID, msg)
}

// Open authenticates one secured record (DOE padding allowed after it) and
// returns the SPDM message inside. A record that fails authentication
// ends the session: DSP0277 gives no way to resynchronise.
func (s *Session) Open(b []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == PhaseEnded {
		return nil, ErrSessionEnded
	}
	h, rec, err := ParseSecuredRecord(b)
	if err != nil {
		return nil, err
	}
	if h.SessionID != s.ID {
		return nil, fmt.Errorf("%w: record for 0x%08x in session 0x%08x", ErrSessionID, h.SessionID, s.ID)
	}
	msg, err := s.recv.open(rec)
	if errors.Is(err, ErrDecrypt) {
		s.endLocked()
	}
	return msg, err
}

// End zeroes every key; the session can no longer seal or open.
func (s *Session) End() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
}

func (s *Session) endLocked() {
	if s.hs != nil {
		s.hs.Zero()
	}
	if s.master != nil {
		zero(s.master.secret)
	}
	if s.data != nil {
		s.data.Zero()
	}
	s.hs, s.master, s.data, s.send, s.recv = nil, nil, nil, nil, nil
	s.phase = PhaseEnded
}

// FormatSessionID writes a session ID (see SessionID) as what it is: the
// requester's half and the responder's. "ffff:ffff" is a valid ID, not an
// unset one: devsim and libspdm both pick 0xFFFF first.
func FormatSessionID(id uint32) string {
	return fmt.Sprintf("%04x:%04x (requester:responder)", id&0xffff, id>>16)
}
