package capture

import (
	"fmt"
	"strings"

	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// spdm decodes one SPDM message (plain with DOE padding when s is nil,
// else the exact plaintext of a secured message of session s) and updates
// what the conversation established.
func (d *decoder) spdm(r *Record, b []byte, s *session, ch uint64) {
	h, err := secchan.PeekHeader(b)
	if err != nil {
		if s == nil {
			d.alternate(r)
		}
		r.Problem = err.Error()
		return
	}
	if s == nil {
		r.Protocol = "SPDM"
		r.Dir = "rsp"
		if h.Code&0x80 != 0 {
			r.Dir = "req"
		}
		d.lastReq = r.Dir == "req"
	}
	r.Version, r.Message = h.Version.String(), secchan.CodeName(h.Code)
	isReq := h.Code&0x80 != 0
	var p *pending
	if !isReq {
		p = d.pending[ch]
		delete(d.pending, ch)
	}
	n, detail, err := d.message(h, b, p, s)
	if err == nil {
		err = checkRest(b, n, s == nil)
	}
	if err != nil {
		r.Problem = err.Error()
		return
	}
	msg := b[:n]
	r.Detail = detail
	if isReq {
		d.pending[ch] = d.request(h, msg)
	}
	d.follow(r, h, msg, p, s)
}

// checkRest accepts only DOE padding after a plain message, and nothing
// after a decrypted one.
func checkRest(b []byte, n int, padded bool) error {
	rest := b[n:]
	if len(rest) == 0 {
		return nil
	}
	if !padded || len(rest) >= 4 {
		return fmt.Errorf("%d bytes after the message", len(rest))
	}
	for _, c := range rest {
		if c != 0 {
			return fmt.Errorf("non-zero bytes after the message")
		}
	}
	return nil
}

// request keeps what a response's decoding needs from its request.
func (d *decoder) request(h secchan.Header, msg []byte) *pending {
	p := &pending{code: h.Code, raw: append([]byte(nil), msg...)}
	switch h.Code {
	case secchan.CodeChallenge:
		p.summary = h.Param2
	case secchan.CodeKeyExchange, secchan.CodePSKExchange:
		p.summary = h.Param1
	case secchan.CodeGetMeasurements:
		p.signed = h.Param1&secchan.MeasAttrSignature != 0
	case secchan.CodeGetCertificate:
		var m secchan.GetCertificate
		if _, err := m.Decode(msg); err == nil {
			p.slot, p.offset = m.Slot, m.Offset
		}
	case secchan.CodeKeyUpdate:
		p.kuOp = h.Param1
	}
	return p
}

func (d *decoder) summarySize(p *pending) int {
	if p == nil || p.summary == secchan.SummaryNone {
		return 0
	}
	return d.conn.hash.Size()
}

// handshakeInClear: both sides set HANDSHAKE_IN_THE_CLEAR_CAP, and the
// handshake's verify data move (DSP0274 §10.16).
func (d *decoder) handshakeInClear() bool {
	return d.conn.reqCaps&d.conn.rspCaps&secchan.CapHandshakeInClr != 0
}

// needAlg refuses a message whose layout depends on ALGORITHMS before
// the capture showed them.
func (d *decoder) needAlg(code uint8) error {
	if !d.conn.haveAlg || d.conn.hash == 0 {
		return fmt.Errorf("%s cannot be decoded: this capture holds no ALGORITHMS before it", secchan.CodeName(code))
	}
	return nil
}

// message decodes b with secchan's codec for its code and describes it.
func (d *decoder) message(h secchan.Header, b []byte, p *pending, s *session) (int, string, error) {
	c := &d.conn
	hs := 0
	if c.hash != 0 {
		hs = c.hash.Size()
	}
	if dec := headerOnly[h.Code]; dec != nil {
		n, err := dec(b)
		return n, "", err
	}
	switch h.Code {
	case secchan.CodeVersion:
		var m secchan.VersionResponse
		n, err := m.Decode(b)
		vs := make([]string, len(m.Entries))
		for i, e := range m.Entries {
			vs[i] = e.Version().String()
		}
		return n, "versions " + strings.Join(vs, " "), err
	case secchan.CodeGetCapabilities:
		var m secchan.GetCapabilities
		n, err := m.Decode(b)
		return n, fmt.Sprintf("flags 0x%08x %s", m.Flags, strings.Join(secchan.CapabilityNames(m.Flags), ",")), err
	case secchan.CodeCapabilities:
		var m secchan.Capabilities
		n, err := m.Decode(b)
		return n, fmt.Sprintf("flags 0x%08x %s", m.Flags, strings.Join(secchan.CapabilityNames(m.Flags), ",")), err
	case secchan.CodeNegotiateAlgorithms:
		var m secchan.NegotiateAlgorithms
		n, err := m.Decode(b)
		return n, fmt.Sprintf("hash %s, asym %s", secchan.HashName(m.BaseHashAlgo), secchan.AsymName(m.BaseAsymAlgo)), err
	case secchan.CodeAlgorithms:
		var m secchan.Algorithms
		n, err := m.Decode(b)
		if err != nil {
			return n, "", err
		}
		return n, d.algorithms(&m), nil
	case secchan.CodeDigests:
		if err := d.needAlg(h.Code); err != nil {
			return 0, "", err
		}
		var m secchan.Digests
		n, err := m.Decode(b, hs, c.multiKey)
		if err == nil {
			for slot := range uint8(maxSlots) {
				if dg := m.DigestFor(slot); dg != nil {
					c.digests[slot] = dg
				}
			}
		}
		return n, fmt.Sprintf("slot mask 0x%02x", m.SlotMask), err
	case secchan.CodeGetCertificate:
		var m secchan.GetCertificate
		n, err := m.Decode(b)
		return n, fmt.Sprintf("slot %d offset %d length %d", m.Slot, m.Offset, m.Length), err
	case secchan.CodeCertificate:
		var m secchan.Certificate
		n, err := m.Decode(b)
		if err == nil {
			d.certificate(&m, p)
		}
		return n, fmt.Sprintf("slot %d, %d bytes, %d remain", m.Slot, len(m.Portion), m.Remainder), err
	case secchan.CodeChallenge:
		var m secchan.Challenge
		n, err := m.Decode(b)
		return n, fmt.Sprintf("slot %d summary 0x%02x", m.Slot, m.SummaryType), err
	case secchan.CodeChallengeAuth:
		if err := d.needAlg(h.Code); err != nil {
			return 0, "", err
		}
		var m secchan.ChallengeAuth
		n, err := m.Decode(b, hs, d.summarySize(p), c.sigSize)
		return n, fmt.Sprintf("slot %d, signed", m.Slot), err
	case secchan.CodeGetMeasurements:
		var m secchan.GetMeasurements
		n, err := m.Decode(b)
		return n, fmt.Sprintf("operation 0x%02x signed %v", m.Operation, m.SignatureRequested()), err
	case secchan.CodeMeasurements:
		if err := d.needAlg(h.Code); err != nil {
			return 0, "", err
		}
		sig := 0
		if p != nil && p.signed {
			sig = c.sigSize
		}
		var m secchan.Measurements
		n, err := m.Decode(b, sig)
		if err != nil {
			return n, "", err
		}
		blocks, err := m.Blocks(c.measHashSize)
		detail := fmt.Sprintf("%d blocks", len(blocks))
		if sig > 0 {
			detail += ", signed"
		}
		return n, detail, err
	case secchan.CodeKeyExchange:
		if err := d.needAlg(h.Code); err != nil {
			return 0, "", err
		}
		dsz, err := secchan.DHEExchangeSize(c.dhe)
		if err != nil {
			return 0, "", err
		}
		var m secchan.KeyExchange
		n, err := m.Decode(b, dsz)
		return n, fmt.Sprintf("slot %d, ReqSessionID 0x%04x", m.Slot, m.ReqSessionID), err
	case secchan.CodeKeyExchangeRsp:
		return d.keyExchangeRsp(b, p)
	case secchan.CodeFinish:
		if err := d.needAlg(h.Code); err != nil {
			return 0, "", err
		}
		var m secchan.Finish
		n, err := m.Decode(b, c.reqSigSize, hs)
		return n, fmt.Sprintf("signature included %v", m.SignatureIncluded), err
	case secchan.CodeFinishRsp:
		verify := 0
		if d.handshakeInClear() {
			verify = hs
		}
		var m secchan.FinishRsp
		n, err := m.Decode(b, verify)
		return n, "", err
	case secchan.CodePSKExchange:
		var m secchan.PSKExchange
		n, err := m.Decode(b)
		return n, fmt.Sprintf("ReqSessionID 0x%04x, hint %q", m.ReqSessionID, m.PSKHint), err
	case secchan.CodePSKExchangeRsp:
		return d.pskExchangeRsp(b, p)
	case secchan.CodePSKFinish:
		if err := d.needAlg(h.Code); err != nil {
			return 0, "", err
		}
		var m secchan.PSKFinish
		n, err := m.Decode(b, hs)
		return n, "", err
	case secchan.CodeKeyUpdate:
		var m secchan.KeyUpdate
		n, err := m.Decode(b)
		return n, keyUpdateName(m.Operation) + fmt.Sprintf(" tag 0x%02x", m.Tag), err
	case secchan.CodeKeyUpdateAck:
		var m secchan.KeyUpdateAck
		n, err := m.Decode(b)
		return n, keyUpdateName(m.Operation) + fmt.Sprintf(" tag 0x%02x", m.Tag), err
	case secchan.CodeVendorDefinedReq:
		var m secchan.VendorDefinedRequest
		n, err := m.Decode(b)
		return n, vendorDetail(m.StandardID, m.VendorID, len(m.Payload)), err
	case secchan.CodeVendorDefinedRsp:
		var m secchan.VendorDefinedResponse
		n, err := m.Decode(b)
		return n, vendorDetail(m.StandardID, m.VendorID, len(m.Payload)), err
	case secchan.CodeError:
		var m secchan.ErrorResponse
		n, err := m.Decode(b)
		return n, m.Code.String(), err
	case secchan.CodeRespondIfReady:
		var m secchan.RespondIfReady
		n, err := m.Decode(b)
		return n, "for " + secchan.CodeName(m.RequestCode), err
	case secchan.CodeChunkGet:
		var m secchan.ChunkGet
		n, err := m.Decode(b)
		return n, fmt.Sprintf("handle %d seq %d", m.Handle, m.Seq), err
	case secchan.CodeChunkResponse:
		var m secchan.ChunkResponse
		n, err := m.Decode(b)
		return n, fmt.Sprintf("handle %d seq %d, %d bytes", m.Handle, m.Seq, len(m.Chunk)), err
	}
	return 0, "", fmt.Errorf("no decoder for %s", secchan.CodeName(h.Code))
}

// headerOnly decodes the messages that are a header and nothing the
// negotiation shapes.
var headerOnly = map[uint8]func([]byte) (int, error){
	secchan.CodeGetVersion:    func(b []byte) (int, error) { return new(secchan.GetVersion).Decode(b) },
	secchan.CodeGetDigests:    func(b []byte) (int, error) { return new(secchan.GetDigests).Decode(b) },
	secchan.CodePSKFinishRsp:  func(b []byte) (int, error) { return new(secchan.PSKFinishRsp).Decode(b) },
	secchan.CodeHeartbeat:     func(b []byte) (int, error) { return new(secchan.Heartbeat).Decode(b) },
	secchan.CodeHeartbeatAck:  func(b []byte) (int, error) { return new(secchan.HeartbeatAck).Decode(b) },
	secchan.CodeEndSession:    func(b []byte) (int, error) { return new(secchan.EndSession).Decode(b) },
	secchan.CodeEndSessionAck: func(b []byte) (int, error) { return new(secchan.EndSessionAck).Decode(b) },
}

func keyUpdateName(op uint8) string {
	switch op {
	case secchan.KeyUpdateOpUpdateKey:
		return "UpdateKey"
	case secchan.KeyUpdateOpUpdateAllKeys:
		return "UpdateAllKeys"
	case secchan.KeyUpdateOpVerifyNewKey:
		return "VerifyNewKey"
	}
	return fmt.Sprintf("operation %d", op)
}

func vendorDetail(std uint16, id []byte, n int) string {
	return fmt.Sprintf("standard %d vendor %x, %d bytes", std, id, n)
}

// algorithms takes what ALGORITHMS settled.
func (d *decoder) algorithms(m *secchan.Algorithms) string {
	c := &d.conn
	c.haveAlg = true
	c.hash, _ = secchan.HashOf(m.BaseHashSel)
	c.sigSize, _ = secchan.SignatureSize(m.BaseAsymSel)
	c.measHashSize, _ = secchan.MeasurementHashSize(m.MeasurementHashAlgo)
	var reqAsym uint16
	for _, s := range m.Structs {
		switch s.Type {
		case secchan.AlgTypeDHE:
			c.dhe = s.Bits
		case secchan.AlgTypeAEAD:
			c.aead = s.Bits
		case secchan.AlgTypeReqBaseAsym:
			reqAsym = s.Bits
		}
	}
	c.reqSigSize, _ = secchan.SignatureSize(uint32(reqAsym))
	// DSP0274 1.3: MULTI_KEY_CONN_RSP, as secchan's requester decides it.
	c.multiKey = m.Version >= secchan.V13 && (c.rspCaps&secchan.CapMultiKeyOnly != 0 || c.rspCaps&secchan.CapMultiKeyNeg != 0 && c.otherSupport&0x10 != 0)
	detail := fmt.Sprintf("hash %s, asym %s, measurement hash %s", secchan.HashName(m.BaseHashSel), secchan.AsymName(m.BaseAsymSel), secchan.MeasHashName(m.MeasurementHashAlgo))
	if c.dhe != 0 || c.aead != 0 {
		detail += fmt.Sprintf(", dhe %s, aead %s", secchan.DHEName(c.dhe), secchan.AEADName(c.aead))
	}
	return detail
}

// certificate assembles a slot's chain from CERTIFICATE portions.
func (d *decoder) certificate(m *secchan.Certificate, p *pending) {
	c := &d.conn
	if p == nil || p.code != secchan.CodeGetCertificate || p.slot != m.Slot || m.Slot >= maxSlots {
		return
	}
	if p.offset == 0 {
		c.chains[m.Slot], c.chainDone[m.Slot] = nil, false
	}
	if int(p.offset) != len(c.chains[m.Slot]) || len(c.chains[m.Slot])+len(m.Portion) > maxChain {
		return
	}
	c.chains[m.Slot] = append(c.chains[m.Slot], m.Portion...)
	c.chainDone[m.Slot] = m.Remainder == 0
}

// chainHash is Ct for a slot: the assembled chain's hash, else the last
// DIGESTS entry (which is the same hash).
func (d *decoder) chainHash(slot uint8) []byte {
	if d.conn.chainDone[slot] {
		return d.hashOf(d.conn.chains[slot])
	}
	return d.conn.digests[slot]
}

func (d *decoder) keyExchangeRsp(b []byte, p *pending) (int, string, error) {
	if err := d.needAlg(secchan.CodeKeyExchangeRsp); err != nil {
		return 0, "", err
	}
	c := &d.conn
	dsz, err := secchan.DHEExchangeSize(c.dhe)
	if err != nil {
		return 0, "", err
	}
	verify := c.hash.Size()
	if d.handshakeInClear() {
		verify = 0
	}
	var m secchan.KeyExchangeRsp
	n, err := m.Decode(b, dsz, d.summarySize(p), c.sigSize, verify)
	return n, fmt.Sprintf("RspSessionID 0x%04x, mutual authentication 0x%02x", m.RspSessionID, m.MutAuthRequested), err
}

func (d *decoder) pskExchangeRsp(b []byte, p *pending) (int, string, error) {
	if err := d.needAlg(secchan.CodePSKExchangeRsp); err != nil {
		return 0, "", err
	}
	var m secchan.PSKExchangeRsp
	n, err := m.Decode(b, d.summarySize(p), d.conn.hash.Size())
	return n, fmt.Sprintf("RspSessionID 0x%04x", m.RspSessionID), err
}

// follow updates the conversation's state after a message decoded.
func (d *decoder) follow(r *Record, h secchan.Header, msg []byte, p *pending, s *session) {
	c := &d.conn
	vca := func() {
		if s == nil && !c.vcaDone && len(c.vca)+len(msg) <= maxTranscript {
			c.vca = append(c.vca, msg...)
		}
	}
	switch h.Code {
	case secchan.CodeGetVersion:
		if s == nil {
			d.resetConn()
			c = &d.conn
			c.vca = append(c.vca, msg...)
		}
	case secchan.CodeVersion:
		vca()
	case secchan.CodeGetCapabilities:
		var m secchan.GetCapabilities
		if _, err := m.Decode(msg); err == nil {
			c.reqCaps = m.Flags
		}
		vca()
	case secchan.CodeCapabilities:
		var m secchan.Capabilities
		if _, err := m.Decode(msg); err == nil {
			c.rspCaps, c.version = m.Flags, m.Version
		}
		vca()
	case secchan.CodeNegotiateAlgorithms:
		var m secchan.NegotiateAlgorithms
		if _, err := m.Decode(msg); err == nil {
			c.otherSupport = m.OtherParamsSupport
		}
		vca()
	case secchan.CodeAlgorithms:
		vca()
		c.version = h.Version
		c.vcaDone = s == nil
	case secchan.CodeDigests:
		if c.firstDigests == nil && s == nil {
			c.firstDigests = append([]byte(nil), msg...)
		}
	case secchan.CodeKeyExchangeRsp:
		d.followKeyExchange(r, msg, p)
	case secchan.CodePSKExchangeRsp:
		d.followPSKExchange(r, msg, p)
	case secchan.CodeFinish, secchan.CodePSKFinish:
		if s != nil && !s.ready {
			s.finish = append([]byte(nil), msg...)
		}
	case secchan.CodeFinishRsp, secchan.CodePSKFinishRsp:
		if s != nil && !s.ready && s.finish != nil {
			th := append(append(append([]byte(nil), s.th...), s.reqHash...), s.finish...)
			s.establish(r, d.hashOf(th, msg))
			clear(th)
		}
	case secchan.CodeKeyUpdate:
		// UpdateAllKeys: the ACK already comes under the new response key.
		if s != nil && s.ready && h.Param1 == secchan.KeyUpdateOpUpdateAllKeys {
			if err := s.req.UpdateRecvKey(); err != nil {
				r.Problem = err.Error()
			}
		}
	case secchan.CodeKeyUpdateAck:
		// After the ACK the requester sends under its new key.
		if s != nil && s.ready && p != nil && p.code == secchan.CodeKeyUpdate &&
			(p.kuOp == secchan.KeyUpdateOpUpdateKey || p.kuOp == secchan.KeyUpdateOpUpdateAllKeys) {
			if err := s.rsp.UpdateRecvKey(); err != nil {
				r.Problem = err.Error()
			}
		}
	case secchan.CodeEndSessionAck:
		if s != nil {
			s.end()
			delete(d.sess, s.id)
		}
	case secchan.CodeVendorDefinedReq, secchan.CodeVendorDefinedRsp:
		d.vendor(r, h, msg)
	}
}

func (d *decoder) followKeyExchange(r *Record, msg []byte, p *pending) {
	if p == nil || p.code != secchan.CodeKeyExchange {
		r.Problem = "KEY_EXCHANGE_RSP without its KEY_EXCHANGE in the capture"
		return
	}
	c := &d.conn
	dsz, _ := secchan.DHEExchangeSize(c.dhe)
	var req secchan.KeyExchange
	if _, err := req.Decode(p.raw, dsz); err != nil {
		r.Problem = err.Error()
		return
	}
	verify := c.hash.Size()
	if d.handshakeInClear() {
		verify = 0
	}
	var m secchan.KeyExchangeRsp
	if _, err := m.Decode(msg, dsz, d.summarySize(p), c.sigSize, verify); err != nil {
		return
	}
	ct := d.chainHash(req.Slot)
	th := append([]byte(nil), c.vca...)
	if c.multiKey && c.firstDigests != nil {
		th = append(th, c.firstDigests...)
	}
	th = append(append(append(th, ct...), p.raw...), msg[:m.TH1Len()]...)
	id := secchan.SessionID(req.ReqSessionID, m.RspSessionID)
	r.Session = fmt.Sprintf("0x%08x", id)
	s := d.startSession(r, id, false, th, m.VerifyData)
	noteKeyed(r, s)
	if s != nil {
		s.mutual = m.MutAuthRequested != 0
		if ct == nil && !s.keyed {
			r.Encrypted = fmt.Sprintf("slot %d's certificate chain is not in the capture, and no key-log TH1 matched", req.Slot)
		}
	}
	clear(th)
}

func (d *decoder) followPSKExchange(r *Record, msg []byte, p *pending) {
	if p == nil || p.code != secchan.CodePSKExchange {
		r.Problem = "PSK_EXCHANGE_RSP without its PSK_EXCHANGE in the capture"
		return
	}
	var req secchan.PSKExchange
	if _, err := req.Decode(p.raw); err != nil {
		r.Problem = err.Error()
		return
	}
	var m secchan.PSKExchangeRsp
	if _, err := m.Decode(msg, d.summarySize(p), d.conn.hash.Size()); err != nil {
		return
	}
	th := append(append(append([]byte(nil), d.conn.vca...), p.raw...), msg[:m.TH1Len()]...)
	id := secchan.SessionID(req.ReqSessionID, m.RspSessionID)
	r.Session = fmt.Sprintf("0x%08x", id)
	s := d.startSession(r, id, true, th, m.VerifyData)
	noteKeyed(r, s)
	clear(th)
	if s != nil && s.keyed && d.conn.rspCaps&secchan.CapPSKWithContext == 0 {
		// PSK without context: no PSK_FINISH; TH2 ends with the response.
		s.establish(r, d.hashOf(s.th))
	}
}

// noteKeyed says on the exchange response whether the session will be
// decrypted.
func noteKeyed(r *Record, s *session) {
	if s != nil && s.keyed {
		r.Detail += "; a key-log secret reproduces its verify data: decrypting"
	}
}

// vendor describes the application message inside VENDOR_DEFINED.
func (d *decoder) vendor(r *Record, h secchan.Header, msg []byte) {
	var pay secchan.PCIPayload
	var err error
	if h.Code == secchan.CodeVendorDefinedReq {
		var m secchan.VendorDefinedRequest
		if _, err = m.Decode(msg); err == nil {
			pay, err = m.PCI()
		}
	} else {
		var m secchan.VendorDefinedResponse
		if _, err = m.Decode(msg); err == nil {
			pay, err = m.PCI()
		}
	}
	if err != nil {
		r.App = "not a PCI-SIG vendor-defined message"
		return
	}
	dec := appDecoders[appKey{pay.VendorID, pay.Protocol}]
	if dec == nil {
		r.App = fmt.Sprintf("vendor 0x%04x protocol %d, %d bytes, not decoded", pay.VendorID, pay.Protocol, len(pay.Body))
		return
	}
	r.App, err = dec(pay.Body, h.Code == secchan.CodeVendorDefinedReq)
	if err != nil {
		r.Problem = err.Error()
	}
}

type appKey struct {
	vendor   uint16
	protocol uint8
}

// AppDecoder describes one application message carried in
// VENDOR_DEFINED under the PCI-SIG registry (body after the protocol ID).
type AppDecoder func(body []byte, request bool) (string, error)

// appDecoders describe the application protocols inside VENDOR_DEFINED.
// The extension point for TDISP (secchan.PCIProtocolTDISP) is an entry
// here that calls package tdisp's codec, as ideKM calls package ide's;
// capture sits above both, so the codec packages never import it.
var appDecoders = map[appKey]AppDecoder{
	{secchan.VendorIDPCISIG, secchan.PCIProtocolIDEKM}: ideKM,
}

// RegisterAppDecoder adds a decoder for a PCI vendor ID and protocol ID
// (TDISP, CXL IDE_KM, ...) from outside this package, e.g. a binary's
// wiring. Before any Decode runs; not safe for concurrent use.
func RegisterAppDecoder(vendor uint16, protocol uint8, dec AppDecoder) {
	appDecoders[appKey{vendor, protocol}] = dec
}

// ideKM describes an IDE_KM object with package ide's codec; key
// material is never shown.
func ideKM(body []byte, _ bool) (string, error) {
	m, err := ide.Parse(body)
	if err != nil {
		return "IDE_KM", err
	}
	out := "IDE_KM " + ide.ObjectName(m.ObjectID())
	switch m := m.(type) {
	case *ide.Query:
		out += fmt.Sprintf(" port %d", m.PortIndex)
	case *ide.QueryResp:
		out += fmt.Sprintf(" port %d, max port %d, %d selective streams", m.PortIndex, m.MaxPortIndex, len(m.Selective))
	case *ide.KeyProg:
		out += fmt.Sprintf(" stream %d %v port %d (key not shown)", m.StreamID, m.KSS, m.PortIndex)
	case *ide.KPAck:
		out += fmt.Sprintf(" stream %d %v port %d status %s", m.StreamID, m.KSS, m.PortIndex, m.Status.String())
	case *ide.KSetGo:
		out += " " + m.KeyRef.String()
	case *ide.KSetStop:
		out += " " + m.KeyRef.String()
	case *ide.KGoStopAck:
		out += " " + m.KeyRef.String()
	}
	return out, nil
}
