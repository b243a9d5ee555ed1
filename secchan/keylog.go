package secchan

// The key log: an explicit, opt-in export of session secrets for people
// debugging a capture (DMTF spdm-dump's --dhe_secret and --psk, and
// `devattest dump --keylog`). Nothing leaves the requester unless
// RequesterConfig.KeyLog is set.

// SessionSecrets is what a capture decoder needs to decrypt one session:
// the key-exchange input and the public facts the key schedule uses.
type SessionSecrets struct {
	SessionID uint32
	PSK       bool
	// Secret is the ECDHE shared secret (KEY_EXCHANGE) or the PSK. It is
	// a copy that is zeroed when the KeyLog callback returns: a callback
	// that keeps it must copy it.
	Secret []byte
	// Version, BaseHash, AEAD and DHE are the connection's.
	Version  Version
	BaseHash uint32
	AEAD     uint16
	DHE      uint16
	// TH1 is the hash the handshake keys are derived from. It hashes
	// bytes a capture holds (VCA, the chain, the exchange), so it is not
	// secret; it lets a decoder that lacks part of the transcript (a
	// chain fetched before the capture started) still derive the keys.
	TH1 []byte
	// RequesterChainHash, with session-based mutual authentication, is
	// the hash of the requester's chain that FINISH's transcript holds
	// and no capture shows.
	RequesterChainHash []byte
}

// exportSecrets hands a copy of a session's secret to the configured
// KeyLog and zeroes the copy afterwards.
func (q *Requester) exportSecrets(id uint32, psk bool, secret, th1, reqChainHash []byte) {
	if q.cfg.KeyLog == nil {
		return
	}
	s := SessionSecrets{SessionID: id, PSK: psk, Secret: append([]byte(nil), secret...),
		Version: q.neg.Version, BaseHash: q.neg.BaseHash, AEAD: q.neg.AEAD, DHE: q.neg.DHE,
		TH1: append([]byte(nil), th1...), RequesterChainHash: append([]byte(nil), reqChainHash...)}
	if psk {
		s.DHE = 0
	}
	defer zero(s.Secret)
	q.cfg.KeyLog(s)
}
