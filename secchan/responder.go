package secchan

// The SPDM responder (DSP0274 1.0–1.3): version, capability and algorithm
// negotiation, identity (DIGESTS, CERTIFICATE, CHALLENGE_AUTH) and
// measurements, with the 1.2 large-response transfer (CHUNK_GET), and
// secure sessions (responder_session.go, responder_psk.go,
// responder_secured.go).
//
// How a request flows:
//
//  1. Respond takes the lock (one SPDM conversation at a time), reads the
//     header and dispatches on the request code.
//  2. The handler checks, in this order: that the responder supports the
//     request at all (UnsupportedRequest), the connection state
//     (UnexpectedRequest), the version (VersionMismatch), then decodes the
//     request exactly (InvalidRequest) and checks its fields.
//  3. The handler builds the response and a commit function that updates
//     the connection state and transcripts. Nothing is committed before
//     the response is known to go out, so a request that fails changes no
//     transcript (except where DSP0274 or libspdm reset one on failure).
//  4. deliver decides how the response leaves: as it is, as
//     ERROR(LargeResponse) followed by CHUNK_GET, or as
//     ERROR(ResponseTooLarge) — the last without committing anything.
//
// Transcripts hold the exact request bytes without DOE padding and the
// exact response bytes, as libspdm does (see the golden corpus README):
//
//   - VCA: GET_VERSION .. ALGORITHMS.
//   - B: GET_DIGESTS/DIGESTS and GET_CERTIFICATE/CERTIFICATE. As in
//     libspdm, GET_DIGESTS starts B afresh, and GET_MEASUREMENTS before the
//     first completed CHALLENGE resets it (DSP0274: "skipped CHALLENGE
//     completion").
//   - M1M2 = VCA + B + CHALLENGE + CHALLENGE_AUTH without its signature;
//     B is reset after CHALLENGE_AUTH.
//   - L1L2 = [VCA, 1.2+] + every GET_MEASUREMENTS/MEASUREMENTS pair since
//     the last signed MEASUREMENTS or since any other request (CHUNK_GET
//     excepted) + the signed pair without its signature.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/devattest/devattest/doe"
)

// Identity is one device identity the responder can authenticate with.
type Identity struct {
	// Chain holds DER certificates: the root (or the root's child) first,
	// the leaf last, as libspdm's sample chains do.
	Chain [][]byte
	// Root is the DER of the root certificate, for the chain's RootHash.
	// Nil means Chain[0].
	Root []byte
	// Key is the leaf's private key. It is used only to sign and is never
	// logged.
	Key crypto.Signer
}

// RawMeasurement is one measurement as a device holds it, before the
// responder digests it.
type RawMeasurement struct {
	Index uint8  // 1..0xFE
	Type  uint8  // DMTF value type (MeasType*), without the raw-bit-stream bit
	Value []byte // the raw value
}

// MeasurementProvider supplies the device's current measurements. It is
// asked on every GET_MEASUREMENTS and CHALLENGE with a summary hash, so a
// changed value shows up in the next response.
type MeasurementProvider interface {
	Measurements() []RawMeasurement
}

// ResponderConfig says what the responder supports. The zero value of each
// field takes the default given.
type ResponderConfig struct {
	// Versions offered in VERSION (default 1.0, 1.1, 1.2, 1.3).
	Versions []Version
	// Caps are the responder's capability flags (default CERT | CHAL |
	// MEAS_SIG | CHUNK, MEAS_SIG only with Measurements: no sessions).
	// Implemented: CERT, CHAL, MEAS_NO_SIG or MEAS_SIG, MEAS_FRESH, CHUNK,
	// and for sessions KEY_EX, PSK (01b, or 10b PSK_WITH_CONTEXT), ENCRYPT
	// and MAC (both, whenever KEY_EX or PSK is set), HBEAT, KEY_UPD,
	// HANDSHAKE_IN_THE_CLEAR, MUT_AUTH (with MutualAuth or
	// EncapMutualAuth) and ENCAP (responder_encap.go).
	// Flags a version does not define are masked out of CAPABILITIES.
	Caps uint32
	// CTExponent: the responder's crypto time is 2^CTExponent µs
	// (default 16, about 65 ms).
	CTExponent uint8
	// DataTransferSize and MaxSPDMmsgSize (1.2+) bound what the responder
	// receives (default 4096 and 4096: requests are small, and CHUNK_SEND
	// is not supported).
	DataTransferSize uint32
	MaxSPDMmsgSize   uint32
	// BaseHash is the set of BaseHashAlgo bits supported (default SHA-256,
	// SHA-384, SHA-512).
	BaseHash uint32
	// MeasHash is the set of MeasurementHashAlgo bits supported (default
	// SHA-256, SHA-384, SHA-512; MeasHashRaw for raw bit streams only).
	MeasHash uint32
	// Identities are the certificate chains and keys. The responder offers
	// the BaseAsymAlgo of every identity's key; after ALGORITHMS, slot 0
	// and up serve the identities whose key matches the selected algorithm,
	// in this order.
	Identities []Identity
	// Measurements supplies measurement blocks (needed for MEAS caps).
	Measurements MeasurementProvider

	// PSKs maps a PSK hint, exactly as PSK_EXCHANGE carries it, to its
	// pre-shared key (needed for PSK caps; libspdm's sample is hint
	// "TestPskHint\x00", PSK "TestPskData\x00"). The keys are never logged.
	PSKs map[string][]byte
	// HeartbeatPeriod is the HEARTBEAT period in seconds announced in the
	// exchange responses when both sides set HBEAT (default 240, as
	// spdm-emu). A session with no request for twice the period ends.
	HeartbeatPeriod uint8
	// MaxSessions bounds the sessions alive at once, in handshake or
	// established (default 4); one more KEY_EXCHANGE or PSK_EXCHANGE gets
	// ERROR(SessionLimitExceeded).
	MaxSessions int
	// Logger receives the responder's diagnostics (a negotiation that
	// fails, with both sides' offers); nil discards.
	Logger *slog.Logger
	// VendorHandler answers VENDOR_DEFINED_REQUEST; without it the request
	// gets ERROR(UnsupportedRequest). See VendorHandler.
	VendorHandler VendorHandler
	// MutualAuth is the requester's certificate chain, provisioned, for
	// session-based mutual authentication (needed for MUT_AUTH): when the
	// requester also sets MUT_AUTH, KEY_EXCHANGE_RSP asks for it
	// (MutAuthRequested 1h, no encapsulated requests) and FINISH must
	// carry a signature by the chain's leaf key. From SPDM 1.2 only: 1.1
	// ties MUT_AUTH to encapsulated requests (EncapMutualAuth).
	MutualAuth *RequesterChain
	// EncapMutualAuth asks for mutual authentication through
	// encapsulated requests (needs ENCAP and MUT_AUTH): basic, in
	// CHALLENGE_AUTH, and for sessions, in KEY_EXCHANGE_RSP. See
	// responder_encap.go.
	EncapMutualAuth *EncapMutualAuth
}

// rspImplementedCaps are the capabilities this responder implements; the
// 1.2/1.3 provisioning capabilities are not.
const rspImplementedCaps = CapCert | CapChal | capMeasMask | CapMeasFresh | CapChunk | rspSessionCaps | CapEncap

// Default responder settings.
const (
	defaultRspCTExponent = 16
	defaultRspTransfer   = 4096
)

// ResponderState is the connection state of a responder (DSP0274 §9:
// GET_VERSION, GET_CAPABILITIES and NEGOTIATE_ALGORITHMS must come first,
// in this order).
type ResponderState uint8

const (
	ResponderNotStarted        ResponderState = iota // nothing, or a reset
	ResponderAfterVersion                            // VERSION sent
	ResponderAfterCapabilities                       // CAPABILITIES sent
	ResponderNegotiated                              // ALGORITHMS sent
)

func (s ResponderState) String() string {
	switch s {
	case ResponderNotStarted:
		return "NotStarted"
	case ResponderAfterVersion:
		return "AfterVersion"
	case ResponderAfterCapabilities:
		return "AfterCapabilities"
	case ResponderNegotiated:
		return "Negotiated"
	}
	return fmt.Sprintf("ResponderState(%d)", uint8(s))
}

// rspIdentity is an Identity checked and prepared by NewResponder.
type rspIdentity struct {
	certs [][]byte
	root  []byte
	key   crypto.Signer
	asyms uint32 // BaseAsymAlgo bits the key can sign with
}

// rspSlot is a provisioned certificate slot after ALGORITHMS.
type rspSlot struct {
	id     *rspIdentity
	chain  []byte // the SPDM certificate chain (DSP0274 Table 33)
	digest []byte // H(chain)
}

// rspConn is the state of one SPDM connection; GET_VERSION and Reset
// replace it with the zero value.
type rspConn struct {
	state   ResponderState
	version Version // set once GET_CAPABILITIES names an offered version

	reqCaps uint32
	reqDTS  uint32 // requester's DataTransferSize (1.2+)
	reqMax  uint32 // requester's MaxSPDMmsgSize (1.2+)

	measSpec    uint8
	otherParams uint8
	measHash    uint32
	asym        uint32
	hashAlg     uint32
	hash        crypto.Hash
	dhe         uint16
	aead        uint16
	reqAsym     uint16
	keySchedule uint16
	slots       []rspSlot

	vca           []byte
	b             []byte
	l             []byte
	authenticated bool // a CHALLENGE_AUTH went out on this connection

	chunk *rspChunk // a large response waiting for CHUNK_GET
	// via is where the request being answered came from: in the clear
	// (zero) or inside a session. A large response belongs to its
	// channel; CHUNK_GET from another gets none of it.
	via channel

	encap  *rspEncap         // the encapsulated flow in progress (responder_encap.go)
	mutual *MutualAuthResult // the last one that authenticated a requester, or refused it
}

// channel is how a request reached the responder.
type channel struct {
	secured bool
	session uint32
}

// rspChunk is a large response being sent with CHUNK_GET (DSP0274 §10.24).
type rspChunk struct {
	handle uint8
	msg    []byte
	seq    uint16
	sent   int
	via    channel // where the request it answers came from
}

// reply is a handler's answer: the response bytes and what to commit if
// they are delivered. Errors have no commit. abort, if set, runs when a
// reply with a commit is not delivered (it releases what the handler
// prepared, such as a session's keys).
type reply struct {
	msg    []byte
	commit func()
	abort  func()
}

// Responder is an SPDM responder. It is safe for concurrent use, but SPDM
// is one conversation: requests are answered one at a time, in order.
type Responder struct {
	cfg   ResponderConfig
	ids   []*rspIdentity
	asyms uint32 // union of the identities' BaseAsymAlgo bits

	mu         sync.Mutex
	st         rspConn
	nextHandle uint8 // chunk handles; survives resets so stale handles fail
	sess       rspSessions
}

// NewResponder checks cfg, fills in defaults and returns a responder in
// the NotStarted state.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if len(cfg.Versions) == 0 {
		cfg.Versions = []Version{V10, V11, V12, V13}
	}
	seen := map[Version]bool{}
	for _, v := range cfg.Versions {
		if v < V10 || v > V13 || seen[v] {
			return nil, fmt.Errorf("secchan: responder version %v unsupported or repeated", v)
		}
		seen[v] = true
	}
	cfg.Versions = sortedVersions(cfg.Versions)
	if cfg.Caps == 0 {
		cfg.Caps = CapCert | CapChal | CapChunk
		if cfg.Measurements != nil {
			cfg.Caps |= CapMeasSig
		}
	}
	if extra := cfg.Caps &^ rspImplementedCaps; extra != 0 {
		return nil, fmt.Errorf("secchan: responder caps %v are not implemented", CapabilityNames(extra))
	}
	if cfg.Caps&capMeasMask == capMeasMask {
		return nil, errors.New("secchan: responder caps set both MEAS_NO_SIG and MEAS_SIG")
	}
	if cfg.Caps&capMeasMask != 0 && cfg.Measurements == nil {
		return nil, errors.New("secchan: responder has MEAS caps but no measurement provider")
	}
	if cfg.Caps&CapMeasFresh != 0 && cfg.Caps&capMeasMask == 0 {
		return nil, errors.New("secchan: responder has MEAS_FRESH without MEAS caps")
	}
	if cfg.Caps&CapChal != 0 && cfg.Caps&CapCert == 0 {
		return nil, errors.New("secchan: responder has CHAL without CERT (no public-key provisioning here)")
	}
	mutual, err := checkSessionConfig(&cfg)
	if err != nil {
		return nil, err
	}
	if err := checkEncapConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.CTExponent == 0 {
		cfg.CTExponent = defaultRspCTExponent
	}
	if cfg.DataTransferSize == 0 {
		cfg.DataTransferSize = defaultRspTransfer
	}
	if cfg.MaxSPDMmsgSize == 0 {
		cfg.MaxSPDMmsgSize = max(cfg.DataTransferSize, defaultRspTransfer)
	}
	if cfg.DataTransferSize < MinDataTransferSize || cfg.MaxSPDMmsgSize < cfg.DataTransferSize {
		return nil, fmt.Errorf("secchan: responder DataTransferSize %d / MaxSPDMmsgSize %d: need %d <= DataTransferSize <= MaxSPDMmsgSize",
			cfg.DataTransferSize, cfg.MaxSPDMmsgSize, MinDataTransferSize)
	}
	if cfg.Caps&CapChunk == 0 && cfg.MaxSPDMmsgSize != cfg.DataTransferSize {
		return nil, errors.New("secchan: without CHUNK_CAP, MaxSPDMmsgSize must equal DataTransferSize")
	}
	if cfg.BaseHash == 0 {
		cfg.BaseHash = HashSHA256 | HashSHA384 | HashSHA512
	}
	if cfg.BaseHash&^(HashSHA256|HashSHA384|HashSHA512) != 0 {
		return nil, fmt.Errorf("secchan: responder base hash %s: only SHA-256, SHA-384 and SHA-512 are implemented", HashName(cfg.BaseHash))
	}
	if cfg.MeasHash == 0 {
		cfg.MeasHash = MeasHashSHA256 | MeasHashSHA384 | MeasHashSHA512
	}
	if cfg.MeasHash&^(MeasHashRaw|MeasHashSHA256|MeasHashSHA384|MeasHashSHA512) != 0 {
		return nil, fmt.Errorf("secchan: responder measurement hash %s: only raw, SHA-256, SHA-384 and SHA-512 are implemented", MeasHashName(cfg.MeasHash))
	}
	r := &Responder{cfg: cfg, sess: newRspSessions(mutual)}
	for i, id := range cfg.Identities {
		ri, err := prepareIdentity(id)
		if err != nil {
			return nil, fmt.Errorf("secchan: responder identity %d: %w", i, err)
		}
		r.ids = append(r.ids, ri)
		r.asyms |= ri.asyms
	}
	if cfg.Caps&(CapCert|CapChal|CapMeasSig) != 0 && len(r.ids) == 0 {
		return nil, errors.New("secchan: responder caps need an identity (CERT, CHAL or MEAS_SIG)")
	}
	return r, nil
}

func sortedVersions(vs []Version) []Version {
	out := append([]Version(nil), vs...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// prepareIdentity checks that the chain parses, that the key is the
// leaf's, and that the chain fits the SPDM format with any hash.
func prepareIdentity(id Identity) (*rspIdentity, error) {
	if len(id.Chain) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	if id.Key == nil {
		return nil, errors.New("no private key")
	}
	leaf, err := parseChainLeaf(id.Chain)
	if err != nil {
		return nil, err
	}
	pub, ok := id.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("private key does not match the leaf certificate")
	}
	asym := AsymFor(id.Key.Public())
	switch asym {
	case 0:
		return nil, fmt.Errorf("key type %T has no SPDM BaseAsymAlgo", id.Key.Public())
	case AsymRSASSA2048:
		asym |= AsymRSAPSS2048
	case AsymRSASSA3072:
		asym |= AsymRSAPSS3072
	case AsymRSASSA4096:
		asym |= AsymRSAPSS4096
	}
	root := id.Root
	if root == nil {
		root = id.Chain[0]
	}
	if _, err := BuildCertChain(crypto.SHA512, root, id.Chain...); err != nil {
		return nil, err
	}
	ri := &rspIdentity{root: append([]byte(nil), root...), key: id.Key, asyms: asym}
	for _, der := range id.Chain {
		ri.certs = append(ri.certs, append([]byte(nil), der...))
	}
	return ri, nil
}

// State returns the connection state, for tests and diagnostics.
func (r *Responder) State() ResponderState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.state
}

// Reset drops the connection and ends every session, as a device reset
// does.
func (r *Responder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endAllSessions()
	r.st = rspConn{}
}

// HandleDOE answers a CMA/SPDM DOE object, so a Responder serves as a DOE
// protocol handler (devsim.Handler).
func (r *Responder) HandleDOE(ctx context.Context, req doe.Object) (doe.Object, error) {
	if req.Protocol() != doe.ProtocolCMA {
		return doe.Object{}, fmt.Errorf("secchan: responder handles CMA/SPDM, got %v", req.Protocol())
	}
	return doe.NewObject(doe.ProtocolCMA, r.Respond(ctx, req.Payload)), nil
}

// Respond answers one SPDM request. It always returns a response — an
// ERROR for anything it cannot answer — and never panics. req may carry up
// to three bytes of DOE padding.
func (r *Responder) Respond(ctx context.Context, req []byte) (resp []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			// A bug, not a peer's doing: drop the connection rather than
			// answer from a half-updated state.
			r.endAllSessions()
			r.st = rspConn{}
			resp = rspError(V10, ErrCodeUnspecified, 0, nil)
		}
	}()
	return r.dispatch(ctx, req)
}

func (r *Responder) dispatch(ctx context.Context, req []byte) []byte {
	r.st.via = channel{}
	h, err := PeekHeader(req)
	if err != nil {
		return r.errMsg(ErrCodeInvalidRequest, 0)
	}
	if h.Code == CodeGetVersion {
		return r.deliver(r.getVersion(req, h))
	}
	if r.st.chunk != nil && h.Code != CodeChunkGet {
		// DSP0274 §10.24: nothing but CHUNK_GET (and GET_VERSION) may
		// interrupt a large response; the transfer stays open.
		return r.errMsg(ErrCodeUnexpectedRequest, 0)
	}
	if rp, blocked := r.encapBlocks(h.Code); blocked {
		return rp.msg
	}
	if h.Code != CodeGetMeasurements && h.Code != CodeChunkGet {
		r.st.l = nil // any other request ends L1L2
	}
	var rp reply
	switch h.Code {
	case CodeGetEncapsulatedRequest:
		rp = r.getEncapsulatedRequest(req, h, nil)
	case CodeDeliverEncapsulatedResponse:
		return r.send(r.deliverEncapsulatedResponse(req, h, nil))
	case CodeGetCapabilities:
		rp = r.getCapabilities(req, h)
	case CodeNegotiateAlgorithms:
		rp = r.negotiateAlgorithms(req, h)
	case CodeGetDigests:
		rp = r.getDigests(req, h)
	case CodeGetCertificate:
		rp = r.getCertificate(req, h)
	case CodeChallenge:
		rp = r.challenge(req, h)
	case CodeGetMeasurements:
		rp = r.getMeasurements(ctx, req, h, &r.st.l)
	case CodeKeyExchange:
		rp = r.keyExchange(req, h)
	case CodeFinish:
		return r.plainFinish(req, h)
	case CodePSKExchange:
		rp = r.pskExchange(req, h)
	case CodePSKFinish, CodeHeartbeat, CodeKeyUpdate, CodeEndSession:
		rp = r.sessionRequired(h)
	case CodeVendorDefinedReq:
		rp = r.vendorDefined(ctx, req, h, 0)
	case CodeChunkGet:
		return r.chunkGetResponse(req, h)
	case CodeRespondIfReady:
		// This responder never answers ResponseNotReady, so there is
		// never a response to ask for.
		rp = r.fail(ErrCodeUnexpectedRequest, 0)
	default:
		rp = r.fail(ErrCodeUnsupportedRequest, h.Code)
	}
	return r.deliver(rp)
}

// errVersion is the SPDMVersion of an ERROR: the connection's version once
// GET_CAPABILITIES named one, else 1.0 (as libspdm does).
func (r *Responder) errVersion() Version {
	if r.st.version != 0 {
		return r.st.version
	}
	return V10
}

func rspError(v Version, code ErrorCode, data uint8, ext []byte) []byte {
	return (&ErrorResponse{Version: v, Code: code, Data: data, Ext: ext}).Marshal()
}

func (r *Responder) errMsg(code ErrorCode, data uint8) []byte {
	return rspError(r.errVersion(), code, data, nil)
}

func (r *Responder) fail(code ErrorCode, data uint8) reply {
	return reply{msg: r.errMsg(code, data)}
}

// checkNegotiated runs the common checks of a request that needs a
// negotiated connection and the capability capBit (0: none).
func (r *Responder) checkNegotiated(h Header, capBit uint32) (reply, bool) {
	if capBit != 0 && r.cfg.Caps&capBit == 0 {
		return r.fail(ErrCodeUnsupportedRequest, h.Code), false
	}
	if r.st.state != ResponderNegotiated {
		return r.fail(ErrCodeUnexpectedRequest, 0), false
	}
	if h.Version != r.st.version {
		return r.fail(ErrCodeVersionMismatch, 0), false
	}
	return reply{}, true
}

// deliver sends rp: as it is, or through the large-response transfer when
// it exceeds the requester's DataTransferSize (1.2+). rp is committed only
// if it goes out one way or the other.
func (r *Responder) deliver(rp reply) []byte {
	if rp.commit == nil {
		return rp.msg
	}
	if rp.abort != nil {
		commit := rp.commit
		rp.commit = func() { commit(); rp.abort = nil }
		defer func() {
			if rp.abort != nil {
				rp.abort()
			}
		}()
	}
	st := &r.st
	size := len(rp.msg)
	if st.version >= V12 && st.reqDTS != 0 && size > int(st.reqDTS) {
		tooLarge := binary.LittleEndian.AppendUint32(nil, uint32(size))
		chunking := st.reqCaps&CapChunk != 0 && r.cfg.Caps&CapChunk != 0
		if !chunking || size > int(st.reqMax) || rspChunkCount(size, int(st.reqDTS)) > 1<<16 {
			return rspError(st.version, ErrCodeResponseTooLarge, 0, tooLarge)
		}
		rp.commit()
		r.nextHandle++
		st.chunk = &rspChunk{handle: r.nextHandle, msg: rp.msg, via: st.via}
		return rspError(st.version, ErrCodeLargeResponse, 0, []byte{r.nextHandle})
	}
	rp.commit()
	return rp.msg
}

// CHUNK_RESPONSE header sizes: 12 bytes, plus LargeMessageSize in chunk 0.
const (
	chunkRspHeader      = 12
	chunkRspFirstHeader = chunkRspHeader + 4
)

func rspChunkCount(size, dts int) int {
	first := dts - chunkRspFirstHeader
	if size <= first {
		return 1
	}
	rest := dts - chunkRspHeader
	return 1 + (size-first+rest-1)/rest
}

// chunkGetResponse answers CHUNK_GET (DSP0274 §10.24) with the next chunk
// of the pending large response.
func (r *Responder) chunkGetResponse(req []byte, h Header) []byte {
	st := &r.st
	switch {
	case st.state < ResponderAfterCapabilities:
		return r.errMsg(ErrCodeUnexpectedRequest, 0)
	case st.version < V12:
		return r.errMsg(ErrCodeUnsupportedRequest, h.Code)
	case r.cfg.Caps&CapChunk == 0 || st.reqCaps&CapChunk == 0:
		return r.errMsg(ErrCodeUnexpectedRequest, 0)
	case h.Version != st.version:
		return r.errMsg(ErrCodeVersionMismatch, 0)
	}
	var g ChunkGet
	if _, err := decodeExact("CHUNK_GET", req, g.Decode); err != nil {
		return r.errMsg(ErrCodeInvalidRequest, 0)
	}
	c := st.chunk
	switch {
	case c == nil:
		return r.errMsg(ErrCodeUnexpectedRequest, 0)
	case c.via != st.via:
		// The large response answers a request of another channel (in the
		// clear, or another session): it is not this channel's to read.
		return r.errMsg(ErrCodeUnexpectedRequest, 0)
	case g.Handle != c.handle || g.Seq != c.seq:
		return r.errMsg(ErrCodeInvalidRequest, 0)
	}
	room := int(st.reqDTS) - chunkRspHeader
	m := ChunkResponse{Version: st.version, Handle: c.handle, Seq: c.seq}
	if c.seq == 0 {
		room = int(st.reqDTS) - chunkRspFirstHeader
		m.LargeMessageSize = uint32(len(c.msg))
	}
	n := min(room, len(c.msg)-c.sent)
	m.Chunk = c.msg[c.sent : c.sent+n]
	c.sent += n
	c.seq++
	if c.sent == len(c.msg) {
		m.Attributes = ChunkLast
		st.chunk = nil
	}
	return m.Marshal()
}

// randomNonce returns a fresh responder nonce.
func randomNonce() ([NonceSize]byte, error) {
	var n [NonceSize]byte
	_, err := rand.Read(n[:])
	return n, err
}

// transcriptHash hashes parts with the negotiated hash.
func (r *Responder) transcriptHash(parts ...[]byte) []byte {
	d := r.st.hash.New()
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

// parseChainLeaf parses DER certificates, leaf last, and returns the leaf.
func parseChainLeaf(ders [][]byte) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		leaf = c
	}
	if leaf == nil {
		return nil, errors.New("empty certificate chain")
	}
	return leaf, nil
}
