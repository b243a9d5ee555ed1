package capture

// The decoder behind `devattest dump`: it reads a capture record by record
// and keeps what the conversation established (the negotiated algorithms,
// the VCA transcript, the certificate chains, the sessions and their keys)
// so that each message is decoded with secchan's own codecs, and each
// secured message is decrypted with keys derived, by secchan's key
// schedule, from a key-log secret and the transcript rebuilt from the
// captured bytes. Anything it cannot parse or decrypt is marked on its
// record, and decoding goes on with the next one.
//
// Records carry no direction. Plain SPDM messages say theirs (requests
// have bit 7 of the code set); every other record is taken to alternate
// with the one before, since DOE is strictly request then response.

import (
	"crypto"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// Bounds against a hostile capture.
const (
	DefaultMaxRecords = 100_000
	maxTranscript     = 64 << 10 // VCA (about 200 bytes in practice)
	maxChain          = 1 << 20  // one slot's assembled certificate chain
	maxSlots          = 8
	maxSessions       = 1024
	// maxKeyTrials bounds the key derivations one capture may cause:
	// every new session tries every unused key-log secret.
	maxKeyTrials = 1 << 14
)

// Options steer Decode.
type Options struct {
	// KeyLog holds the secrets that may decrypt the capture's sessions.
	// Each secret is tried on each new session of its kind and kept for
	// the one whose ResponderVerifyData it reproduces.
	KeyLog []KeyLogEntry
	// Device, when set, uses only the key-log entries of that device (or
	// of no device); by default the capture's own start annotation names it.
	Device string
	// MaxRecords bounds the records read (default DefaultMaxRecords).
	MaxRecords int
}

// Record is one captured DOE object, decoded.
type Record struct {
	Index     int       `json:"index"` // from 1, as spdm-dump counts
	Time      time.Time `json:"time"`
	Length    int       `json:"length"`
	Dir       string    `json:"dir,omitempty"` // "req" or "rsp"
	Protocol  string    `json:"protocol"`
	Session   string    `json:"session,omitempty"`
	Decrypted bool      `json:"decrypted,omitempty"`
	Version   string    `json:"spdm_version,omitempty"`
	Message   string    `json:"message,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	// App is the application message inside VENDOR_DEFINED (IDE_KM, ...).
	App string `json:"app,omitempty"`
	// Encrypted: a secured message left encrypted (no key for it).
	Encrypted string `json:"encrypted,omitempty"`
	// Problem: what could not be parsed or decrypted.
	Problem string `json:"problem,omitempty"`
}

// Dump is a decoded capture.
type Dump struct {
	LinkType uint32   `json:"link_type"`
	Device   string   `json:"device,omitempty"`
	View     string   `json:"view,omitempty"`
	Records  []Record `json:"records"`
	// Problems counts records that could not be parsed, or that failed to
	// decrypt with a key; Encrypted counts secured records left encrypted
	// because no key-log entry matched their session.
	Problems  int `json:"problems"`
	Encrypted int `json:"encrypted"`
}

// Decode reads a whole capture. It fails only when the file is not a
// capture it can read at all (its header) or breaks off mid-record (the
// records before are returned with the error); everything else is marked
// on the records.
func Decode(r io.Reader, opts Options) (*Dump, error) {
	pr, err := doe.NewPcapReader(r)
	if err != nil {
		return nil, err
	}
	pr.MaxRecords = opts.MaxRecords
	if pr.MaxRecords <= 0 {
		pr.MaxRecords = DefaultMaxRecords
	}
	d := newDecoder(opts)
	d.out.LinkType = pr.LinkType
	for i := 1; ; i++ {
		rec, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return d.finish(), err
		}
		out := Record{Index: i, Time: rec.Time, Length: rec.OrigLen}
		if rec.Truncated() {
			out.Problem = fmt.Sprintf("record cut at %d of %d bytes by the capture", len(rec.Data), rec.OrigLen)
		} else if pr.LinkType == doe.LinkTypeMCTP {
			d.mctp(&out, rec.Data)
		} else {
			d.doeObject(&out, rec.Data)
		}
		d.add(out)
	}
	return d.finish(), nil
}

type decoder struct {
	opts    Options
	out     Dump
	keys    []*keyCand
	conn    conn
	sess    map[uint32]*session
	pending map[uint64]*pending // by channel: plainChannel or a session ID
	lastReq bool                // the last record was a request
	trials  int                 // key derivations so far
}

type keyCand struct {
	e    KeyLogEntry
	used bool
}

const plainChannel = uint64(1) << 32

// conn is what the current SPDM connection established.
type conn struct {
	version      secchan.Version
	reqCaps      uint32
	rspCaps      uint32
	otherSupport uint8
	haveAlg      bool
	hash         crypto.Hash
	sigSize      int
	reqSigSize   int
	measHashSize int
	dhe, aead    uint16
	multiKey     bool
	vca          []byte
	vcaDone      bool
	firstDigests []byte
	digests      map[uint8][]byte // last DIGESTS, by slot
	chains       map[uint8][]byte // assembled from CERTIFICATE
	chainDone    map[uint8]bool
}

// pending is a request awaiting its response on one channel.
type pending struct {
	code    uint8
	raw     []byte
	summary uint8
	signed  bool
	slot    uint8
	offset  uint16
	kuOp    uint8
}

// session is one secure session seen being set up.
type session struct {
	id      uint32
	psk     bool
	keyed   bool // a key-log secret matched
	req     *secchan.Session
	rsp     *secchan.Session
	th      []byte // transcript up to and with ResponderVerifyData
	finish  []byte // FINISH / PSK_FINISH
	reqHash []byte // mutual authentication: H(requester chain)
	mutual  bool
	ready   bool // data keys in use
	kuOp    uint8
}

func newDecoder(opts Options) *decoder {
	d := &decoder{opts: opts, sess: map[uint32]*session{}, pending: map[uint64]*pending{}}
	for _, e := range opts.KeyLog {
		d.keys = append(d.keys, &keyCand{e: e})
	}
	d.resetConn()
	return d
}

func (d *decoder) resetConn() {
	for _, s := range d.sess {
		s.end()
	}
	d.conn = conn{digests: map[uint8][]byte{}, chains: map[uint8][]byte{}, chainDone: map[uint8]bool{}}
	d.sess = map[uint32]*session{}
	clear(d.pending)
}

func (d *decoder) add(r Record) {
	if r.Problem != "" {
		d.out.Problems++
	}
	if r.Encrypted != "" {
		d.out.Encrypted++
	}
	d.out.Records = append(d.out.Records, r)
}

func (d *decoder) finish() *Dump {
	for _, s := range d.sess {
		s.end()
	}
	if d.out.Records == nil {
		d.out.Records = []Record{}
	}
	return &d.out
}

func (s *session) end() {
	if s.req != nil {
		s.req.End()
		s.rsp.End()
	}
	clear(s.th)
	clear(s.finish)
}

// alternate sets a record's direction from the one before.
func (d *decoder) alternate(r *Record) {
	if d.lastReq {
		r.Dir = "rsp"
	} else {
		r.Dir = "req"
	}
	d.lastReq = r.Dir == "req"
}

// doeObject decodes one record of link type 292.
func (d *decoder) doeObject(r *Record, b []byte) {
	o, err := doe.Decode(b)
	if err != nil {
		r.Protocol = "DOE"
		r.Problem = err.Error()
		d.alternate(r)
		return
	}
	p := o.Protocol()
	r.Protocol = p.Name()
	switch {
	case o.Vendor == doe.AnnotationVendor:
		d.annotation(r, o)
	case p == doe.ProtocolDiscovery:
		d.alternate(r)
		discovery(r, o)
	case p == doe.ProtocolCMA:
		d.spdm(r, o.Payload, nil, plainChannel)
	case p == doe.ProtocolSecuredCMA:
		d.secured(r, o.Payload)
	case p == doe.ProtocolCDAT:
		d.alternate(r)
		cdat(r, o)
	default:
		d.alternate(r)
		if dec := objectDecoders[p]; dec != nil {
			dec(r, o)
		} else {
			r.Detail = fmt.Sprintf("%d payload bytes, not decoded", len(o.Payload))
		}
	}
}

// ObjectDecoder describes one DOE object of a protocol this package does
// not know; RegisterObjectDecoder adds one.
type ObjectDecoder func(r *Record, o doe.Object)

var objectDecoders = map[doe.Protocol]ObjectDecoder{
	ide.LinkProtocol: func(r *Record, o doe.Object) {
		r.Message = "simulated IDE link"
		r.Detail = fmt.Sprintf("devsim's test protocol, not PCI-SIG; %d payload bytes", len(o.Payload))
	},
}

// RegisterObjectDecoder adds a decoder for a DOE protocol (before any
// Decode runs; not safe for concurrent use).
func RegisterObjectDecoder(p doe.Protocol, dec ObjectDecoder) { objectDecoders[p] = dec }

func (d *decoder) annotation(r *Record, o doe.Object) {
	r.Protocol = "devattest annotation"
	kind, text, ok := doe.DecodeAnnotation(o)
	if !ok {
		r.Problem = "vendor 0xffff object that is not a devattest annotation"
		return
	}
	switch kind {
	case doe.AnnotationStart:
		r.Message = "capture start"
		dev, view := parseStart(text)
		if d.out.Device == "" {
			d.out.Device, d.out.View = dev, view
		}
	case doe.AnnotationDropped:
		r.Message = "records lost"
		r.Problem = text
		return
	default:
		r.Message = fmt.Sprintf("annotation %d", kind)
	}
	r.Detail = text
}

func discovery(r *Record, o doe.Object) {
	if r.Dir == "req" {
		idx, ver, err := doe.DecodeDiscoveryRequest(o)
		if err != nil {
			r.Problem = err.Error()
			return
		}
		r.Message, r.Detail = "DISCOVERY", fmt.Sprintf("index %d version %d", idx, ver)
		return
	}
	p, next, err := doe.DecodeDiscoveryResponse(o)
	if err != nil {
		r.Problem = err.Error()
		return
	}
	r.Message, r.Detail = "DISCOVERY response", fmt.Sprintf("%v, next index %d", p, next)
}

func cdat(r *Record, o doe.Object) {
	if r.Dir == "req" {
		h, err := doe.DecodeCDATRequest(o)
		if err != nil {
			r.Problem = err.Error()
			return
		}
		r.Message, r.Detail = "READ_ENTRY", fmt.Sprintf("entry handle %d", h)
		return
	}
	next, entry, err := doe.DecodeCDATResponse(o)
	if err != nil {
		r.Problem = err.Error()
		return
	}
	r.Message, r.Detail = "READ_ENTRY response", fmt.Sprintf("%d bytes, next handle 0x%04x", len(entry), next)
}

// mctp decodes one record of link type 291: the 4-byte MCTP transport
// header, then the MCTP message type (5 SPDM, 6 secured SPDM).
func (d *decoder) mctp(r *Record, b []byte) {
	r.Protocol = "MCTP"
	if len(b) < 5 {
		r.Problem = fmt.Sprintf("MCTP record of %d bytes", len(b))
		d.alternate(r)
		return
	}
	switch b[4] & 0x7F {
	case 5:
		r.Protocol = "MCTP SPDM"
		d.spdm(r, b[5:], nil, plainChannel)
	case 6:
		r.Protocol = "MCTP secured SPDM"
		d.alternate(r)
		r.Encrypted = "secured messages over MCTP are not decrypted"
	default:
		d.alternate(r)
		r.Detail = fmt.Sprintf("MCTP message type %d, not decoded", b[4]&0x7F)
	}
}

// secured opens one secured message with the session's keys.
func (d *decoder) secured(r *Record, b []byte) {
	d.alternate(r)
	h, _, err := secchan.ParseSecuredRecord(b)
	if err != nil {
		r.Problem = err.Error()
		return
	}
	r.Session = fmt.Sprintf("0x%08x", h.SessionID)
	s := d.sess[h.SessionID]
	switch {
	case s == nil:
		r.Encrypted = "no session with this ID was seen being set up"
		return
	case !s.keyed:
		r.Encrypted = "no key-log entry for this session"
		return
	}
	view := s.req // the requester's view opens responses
	if r.Dir == "req" {
		view = s.rsp
	}
	msg, err := view.Open(b)
	if err != nil {
		r.Problem = fmt.Sprintf("decryption failed: %v", err)
		return
	}
	r.Decrypted = true
	d.spdm(r, msg, s, uint64(h.SessionID))
}

// hashOf hashes b with the connection's hash.
func (d *decoder) hashOf(parts ...[]byte) []byte {
	h := d.conn.hash.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// ks is the connection's key schedule.
func (d *decoder) ks() secchan.KeySchedule {
	return secchan.KeySchedule{Version: d.conn.version, Hash: d.conn.hash, AEAD: d.conn.aead}
}

// startSession finds the key-log secret that reproduces the exchange
// response's verify data over th (TH1's bytes) and keys both views.
func (d *decoder) startSession(r *Record, id uint32, psk bool, th, verify []byte) *session {
	if old := d.sess[id]; old != nil {
		old.end()
		delete(d.sess, id)
	}
	if len(d.sess) >= maxSessions {
		r.Problem = fmt.Sprintf("more than %d sessions open at once", maxSessions)
		return nil
	}
	s := &session{id: id, psk: psk}
	d.sess[id] = s
	if !d.conn.haveAlg || d.conn.hash == 0 {
		r.Problem = "session set up before the algorithms were negotiated in this capture"
		return s
	}
	th1 := d.hashOf(th)
	for _, c := range d.keys {
		if c.used || c.e.PSK != psk || (d.device() != "" && c.e.Device != "" && c.e.Device != d.device()) {
			continue
		}
		for _, h := range [][]byte{th1, c.e.TH1} {
			if len(h) != len(th1) {
				continue
			}
			if d.trials++; d.trials > maxKeyTrials {
				r.Problem = fmt.Sprintf("more than %d key derivations: this capture is not decrypted further", maxKeyTrials)
				return s
			}
			if !d.tryKey(s, c, h, verify) {
				continue
			}
			c.used, s.keyed = true, true
			s.th = append(append([]byte(nil), th...), verify...)
			s.reqHash = c.e.RequesterChainHash
			return s
		}
	}
	return s
}

func (d *decoder) device() string {
	if d.opts.Device != "" {
		return d.opts.Device
	}
	return d.out.Device
}

// tryKey derives both views from a candidate secret and keeps them if
// the responder's verify data matches.
func (d *decoder) tryKey(s *session, c *keyCand, th1, verify []byte) bool {
	views := [2]*secchan.Session{}
	for i, role := range []secchan.Role{secchan.RoleRequester, secchan.RoleResponder} {
		hs, err := d.ks().NewHandshakeSecret(c.e.Secret, s.psk)
		if err != nil {
			return false
		}
		views[i], err = secchan.NewSession(s.id, role, d.ks(), hs, th1)
		if err != nil {
			return false
		}
	}
	want, err := views[0].VerifyData(false, th1)
	if err != nil || (len(verify) > 0 && !hmac.Equal(want, verify)) {
		views[0].End()
		views[1].End()
		return false
	}
	s.req, s.rsp = views[0], views[1]
	return true
}

// establish moves a session to its data keys.
func (s *session) establish(r *Record, th2 []byte) {
	if err := errors.Join(s.req.Establish(th2), s.rsp.Establish(th2)); err != nil {
		r.Problem = err.Error()
		return
	}
	s.ready = true
}
