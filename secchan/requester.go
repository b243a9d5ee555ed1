package secchan

// The requester: one sequential flow of named steps, each sending one
// request and reading one expected response (DSP0274 §10):
//
//	GetVersion -> GetCapabilities -> NegotiateAlgorithms   (VCA)
//	GetDigests -> GetCertificate(slot)                      (identity)
//	Challenge(slot)                                         (authentication)
//	GetMeasurements(...)                                    (signed measurements)
//
// Transcripts are kept from the exact bytes exchanged, without transport
// padding: VCA; B (digests and certificates since VCA) and C for M1/M2;
// L1/L2 for measurements. State is committed only after each response has
// been fully checked.

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// RequesterConfig says what the requester offers and trusts.
type RequesterConfig struct {
	// Versions offered, any order (default 1.0 to 1.3).
	Versions []Version
	// MinVersion refuses a downgrade below it (default: none).
	MinVersion Version
	// Caps are the requester's capability flags.
	Caps uint32
	// CTExponent is the requester's crypto timeout exponent (1.1+).
	CTExponent uint8
	// DataTransferSize and MaxSPDMmsgSize (1.2+).
	DataTransferSize uint32
	MaxSPDMmsgSize   uint32
	// BaseAsym and BaseHash are the algorithms offered.
	BaseAsym uint32
	BaseHash uint32
	// DHE, AEAD, ReqBaseAsym and KeySchedule are offered in the 1.1+
	// algorithm structures, for sessions.
	DHE         uint16
	AEAD        uint16
	ReqBaseAsym uint16
	KeySchedule uint16
	// Validator decides whether a certificate chain is trusted.
	Validator ChainValidator
	// MutualAuth is the requester's own identity (slot 0), for responders
	// that ask for mutual authentication: basic (BasicMutAuthReq in
	// CHALLENGE_AUTH) or in KEY_EXCHANGE_RSP, with or without
	// encapsulated requests. With it, the requester advertises MUT_AUTH,
	// ENCAP, CERT and CHAL (1.1+) and offers every scheme of the key as
	// ReqBaseAsymAlg (requester_encap.go).
	MutualAuth *Identity
	// MutualAuthSlots are further identities in the requester's slots
	// 1-7 (a key of the same algorithm as MutualAuth's).
	MutualAuthSlots map[uint8]*Identity
	// Nonce makes the nonce of each CHALLENGE and signed GET_MEASUREMENTS
	// (crypto/rand when nil). The guest derives it from the workload
	// owner's nonce so the device's signature is provably fresh.
	Nonce func() ([NonceSize]byte, error)
	// BusyRetries bounds retries after ERROR(Busy) (default 3).
	BusyRetries int
	// Logger receives one line per step; nil discards.
	Logger *slog.Logger
	// KeyLog, when set, receives the secret of every session this
	// requester opens (see SessionSecrets), once the exchange response
	// has been verified. DANGER: whoever holds it decrypts that session,
	// IDE keys included. For debugging captures only; nil, the default,
	// exports nothing.
	KeyLog func(SessionSecrets)
}

// DefaultRequesterConfig offers every version and algorithm this package
// supports.
func DefaultRequesterConfig() RequesterConfig {
	return RequesterConfig{
		Versions:         []Version{V10, V11, V12, V13},
		Caps:             CapCert | CapChal | CapEncrypt | CapMAC | CapKeyEx | CapPSK | CapHbeat | CapKeyUpd | CapChunk,
		CTExponent:       20,
		DataTransferSize: 4096,
		MaxSPDMmsgSize:   1 << 20,
		BaseAsym:         AsymECDSAP256 | AsymECDSAP384 | AsymECDSAP521 | AsymRSASSA2048 | AsymRSASSA3072 | AsymRSASSA4096 | AsymRSAPSS2048 | AsymRSAPSS3072 | AsymRSAPSS4096 | AsymEd25519,
		BaseHash:         HashSHA256 | HashSHA384 | HashSHA512,
		DHE:              DHESECP256R1 | DHESECP384R1 | DHESECP521R1,
		AEAD:             AEADAES128GCM | AEADAES256GCM | AEADChaCha20Poly1305,
		ReqBaseAsym:      uint16(AsymECDSAP256 | AsymECDSAP384),
		KeySchedule:      KeyScheduleSPDM,
	}
}

// Negotiated is what VCA settled.
type Negotiated struct {
	Version         Version
	RspCaps         uint32
	RspCTExponent   uint8
	RspDataTransfer uint32
	RspMaxMsgSize   uint32
	MeasurementSpec uint8
	OtherParams     uint8
	MeasurementHash uint32
	BaseAsym        uint32
	BaseHash        uint32
	DHE             uint16
	AEAD            uint16
	ReqBaseAsym     uint16
	KeySchedule     uint16
	Hash            crypto.Hash
	SigSize         int
	MeasHashSize    int
}

// Requester runs SPDM flows over a Transport. It is not safe for
// concurrent use: an SPDM connection is one conversation.
type Requester struct {
	cfg RequesterConfig
	t   Transport
	log *slog.Logger

	neg      Negotiated
	vca      []byte // GET_VERSION .. ALGORITHMS
	b        []byte // GET_DIGESTS/DIGESTS/GET_CERTIFICATE/CERTIFICATE since VCA
	l        []byte // unsigned GET_MEASUREMENTS pairs since the last signed one
	haveVCA  bool
	digests  *Digests
	chains   map[uint8]*CertChain
	multiKey bool
	// firstDigests is the first DIGESTS after VCA: on a multi-key
	// connection it is part of every session's transcript.
	firstDigests []byte
	reqSessionID uint16
	liveReqIDs   map[uint16]bool
	chunkHandle  uint8 // the last CHUNK_SEND handle
}

// NewRequester returns a requester over t.
func NewRequester(t Transport, cfg RequesterConfig) *Requester {
	if len(cfg.Versions) == 0 {
		cfg.Versions = []Version{V10, V11, V12, V13}
	}
	if cfg.BusyRetries <= 0 {
		cfg.BusyRetries = 3
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Requester{cfg: cfg, t: t, log: log, chains: make(map[uint8]*CertChain), liveReqIDs: make(map[uint16]bool)}
}

// Negotiated returns what VCA settled (valid after NegotiateAlgorithms).
func (q *Requester) Negotiated() Negotiated { return q.neg }

// VCA returns the VCA transcript bytes.
func (q *Requester) VCA() []byte { return append([]byte(nil), q.vca...) }

// Chain returns the validated chain of a slot, if fetched.
func (q *Requester) Chain(slot uint8) *CertChain { return q.chains[slot] }

func (q *Requester) nonce() ([NonceSize]byte, error) {
	if q.cfg.Nonce != nil {
		return q.cfg.Nonce()
	}
	var n [NonceSize]byte
	_, err := rand.Read(n[:])
	return n, err
}

func (q *Requester) needVCA(step string) error {
	if !q.haveVCA {
		return &StepError{Step: step, Err: errors.New("version, capabilities and algorithms are not negotiated yet")}
	}
	return nil
}

// timeout is how long to wait for a response: ST1 (100 ms, DSP0274
// Table 7) plus the transport's own time, plus CT (2^CTExponent µs) for
// requests that make the responder do cryptography.
func (q *Requester) timeout(crypto bool) time.Duration {
	d := 2 * time.Second // DOE allows 1 s per object; a shim may queue
	if crypto && q.neg.RspCTExponent > 0 {
		ct := time.Duration(1) << min(q.neg.RspCTExponent, 30) * time.Microsecond
		d += min(ct, 30*time.Second)
	}
	return d
}

// exchange sends req and returns the response, handling ERROR(Busy),
// ERROR(ResponseNotReady) with RESPOND_IF_READY, and ERROR(LargeResponse)
// with CHUNK_GET. The response is returned with its transport padding;
// the caller decodes it exactly.
func (q *Requester) exchange(ctx context.Context, req []byte, crypto bool) ([]byte, error) {
	reqCode := req[1]
	busy := 0
	for {
		resp, err := q.send(ctx, req, crypto, q.t.Exchange) // requester_chunksend.go
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: no %s response within %v: %w", ErrTimeout, CodeName(reqCode), q.timeout(crypto), err)
			}
			return nil, err
		}
		h, err := PeekHeader(resp)
		if err != nil {
			return nil, err
		}
		if h.Code != CodeError {
			return resp, nil
		}
		var e ErrorResponse
		if _, err := decodeExact("ERROR", resp, e.Decode); err != nil {
			return nil, err
		}
		switch e.Code {
		case ErrCodeBusy:
			busy++
			if busy > q.cfg.BusyRetries {
				return nil, e.Err()
			}
			if err := sleepCtx(ctx, time.Duration(busy)*10*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		case ErrCodeResponseNotReady:
			nr, ok := e.NotReadyData()
			if !ok || nr.RequestCode != reqCode {
				return nil, fmt.Errorf("%w: ResponseNotReady for %s while waiting for %s", ErrUnexpectedResponse, CodeName(nr.RequestCode), CodeName(reqCode))
			}
			// Wait RDT = 2^RDTExponent µs, then ask with RESPOND_IF_READY;
			// the responder may take up to RDT*RDTM in all.
			rdt := time.Duration(1) << min(nr.RDTExponent, 30) * time.Microsecond
			if rdt*time.Duration(max(nr.RDTM, 1)) > 60*time.Second {
				return nil, fmt.Errorf("%w: responder asks for %v, more than a minute", ErrTimeout, rdt*time.Duration(nr.RDTM))
			}
			if err := sleepCtx(ctx, rdt); err != nil {
				return nil, err
			}
			req = (&RespondIfReady{Version: h.Version, RequestCode: reqCode, Token: nr.Token}).Marshal()
			continue
		case ErrCodeLargeResponse:
			if len(e.Ext) != 1 {
				return nil, decodeErr("ERROR", "ExtendedErrorData", "LargeResponse without a handle")
			}
			return q.chunkGet(ctx, h.Version, e.Ext[0], func(ctx context.Context, req []byte) ([]byte, error) {
				cctx, cancel := context.WithTimeout(ctx, q.timeout(false))
				defer cancel()
				return q.t.Exchange(cctx, req)
			})
		}
		return nil, e.Err()
	}
}

// chunkGet reassembles a large response with CHUNK_GET (DSP0274 §10.24),
// each CHUNK_GET sent with send: in the clear, or inside the session the
// request went through (the responder keeps the chunks to that channel).
func (q *Requester) chunkGet(ctx context.Context, v Version, handle uint8, send func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	var out []byte
	var total uint32
	for seq := uint16(0); ; seq++ {
		req := (&ChunkGet{Version: v, Handle: handle, Seq: seq}).Marshal()
		resp, err := send(ctx, req)
		if err != nil {
			return nil, err
		}
		var c ChunkResponse
		if _, err := decodeExact("CHUNK_RESPONSE", resp, func(b []byte) (int, error) {
			if h, err := PeekHeader(b); err == nil && h.Code == CodeError {
				var e ErrorResponse
				if _, err := e.Decode(b); err == nil {
					return 0, e.Err()
				}
			}
			return c.Decode(b)
		}); err != nil {
			return nil, fmt.Errorf("CHUNK_GET %d: %w", seq, err)
		}
		if c.Handle != handle || c.Seq != seq {
			return nil, fmt.Errorf("%w: CHUNK_RESPONSE handle %d seq %d, want %d/%d", ErrUnexpectedResponse, c.Handle, c.Seq, handle, seq)
		}
		if seq == 0 {
			total = c.LargeMessageSize
			if total > q.cfg.MaxSPDMmsgSize || total == 0 {
				return nil, fmt.Errorf("%w: LargeMessageSize %d exceeds our MaxSPDMmsgSize %d", ErrMalformed, total, q.cfg.MaxSPDMmsgSize)
			}
		}
		if uint64(len(out))+uint64(len(c.Chunk)) > uint64(total) {
			return nil, fmt.Errorf("%w: chunks exceed LargeMessageSize %d", ErrMalformed, total)
		}
		out = append(out, c.Chunk...)
		if c.Attributes&ChunkLast != 0 {
			if uint32(len(out)) != total {
				return nil, fmt.Errorf("%w: chunks total %d bytes, LargeMessageSize says %d", ErrMalformed, len(out), total)
			}
			return out, nil
		}
		if seq == 0xFFFF {
			return nil, fmt.Errorf("%w: chunk sequence exhausted", ErrMalformed)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case <-t.C:
		return nil
	}
}

// expect decodes resp as the response code want, turning an ERROR into an
// *SPDMError and anything else unexpected into ErrUnexpectedResponse.
func expect(resp []byte, want uint8, version Version, dec decoder) ([]byte, error) {
	h, err := PeekHeader(resp)
	if err != nil {
		return nil, err
	}
	if h.Code == CodeError {
		var e ErrorResponse
		if _, err := e.Decode(resp); err != nil {
			return nil, err
		}
		return nil, e.Err()
	}
	if h.Code != want {
		return nil, fmt.Errorf("%w: got %s, want %s", ErrUnexpectedResponse, CodeName(h.Code), CodeName(want))
	}
	if version != 0 && h.Version != version {
		return nil, fmt.Errorf("%w: %s has version %v, connection is %v", ErrUnexpectedResponse, CodeName(h.Code), h.Version, version)
	}
	return decodeExact(CodeName(want), resp, dec)
}
