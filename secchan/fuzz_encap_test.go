package secchan

// Fuzz targets for the encapsulated-request messages and for the
// requester's answers to whatever a responder encapsulates. Seeds live in
// testdata/fuzz/<FuzzName>/, written by
//
//	SECCHAN_WRITE_FUZZ_SEEDS=1 go test ./secchan -run TestWriteEncapFuzzSeeds

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// encapMsg is a decoded message that marshals back.
type encapMsg interface{ Marshal() []byte }

// encapDecoders decode each new message by code.
var encapDecoders = map[uint8]func([]byte) (encapMsg, int, error){
	CodeGetEncapsulatedRequest: func(b []byte) (encapMsg, int, error) {
		var m GetEncapsulatedRequest
		n, err := m.Decode(b)
		return &m, n, err
	},
	CodeEncapsulatedRequest: func(b []byte) (encapMsg, int, error) {
		var m EncapsulatedRequest
		n, err := m.Decode(b)
		return &m, n, err
	},
	CodeDeliverEncapsulatedResponse: func(b []byte) (encapMsg, int, error) {
		var m DeliverEncapsulatedResponse
		n, err := m.Decode(b)
		return &m, n, err
	},
	CodeEncapsulatedResponseAck: func(b []byte) (encapMsg, int, error) {
		var m EncapsulatedResponseAck
		n, err := m.Decode(b)
		return &m, n, err
	},
	CodeChunkSend: func(b []byte) (encapMsg, int, error) {
		var m ChunkSend
		n, err := m.Decode(b)
		return &m, n, err
	},
	CodeChunkSendAck: func(b []byte) (encapMsg, int, error) {
		var m ChunkSendAck
		n, err := m.Decode(b)
		return &m, n, err
	},
}

func FuzzDecodeChunkSend(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzEncapCanonical(t, CodeChunkSend, data) })
}

func FuzzDecodeChunkSendAck(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzEncapCanonical(t, CodeChunkSendAck, data) })
}

// TestUnpadAckResponse: the response in a DOE-padded CHUNK_SEND_ACK comes
// out as its decoders expect, for each padding length.
func TestUnpadAckResponse(t *testing.T) {
	for _, msg := range [][]byte{
		{0x12, CodeFinishRsp, 0, 0},                     // n=4, p=2
		{0x12, CodeFinishRsp, 0, 0, 1, 2, 3},            // n=7, p=3
		{0x12, CodeError, 1, 0, 9, 9, 9, 9, 9, 9, 7, 7}, // n=12, p=2
		{0x12, CodeError, 1, 0, 5},                      // n=5, p=1
		{0x12, CodeError, 1, 0, 5, 6},                   // n=6, p=0
		{0x12, CodeFinishRsp, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32},
	} {
		ack := (&ChunkSendAck{Version: V12, Response: msg}).Marshal()
		ack = append(ack, make([]byte, (4-len(ack)%4)%4)...)
		var m ChunkSendAck
		if _, err := m.Decode(ack); err != nil {
			t.Fatal(err)
		}
		got := unpadAckResponse(m.Response)
		if err := checkPadding("test", got, len(msg)); err != nil || !bytes.Equal(got[:len(msg)], msg) {
			t.Errorf("% x: unpadded to % x: %v", msg, got, err)
		}
	}
}

// fuzzEncapCanonical checks what fuzzCanonical checks for the codec: no
// panic, only *DecodeError wrapping ErrMalformed, and Marshal(Decode(x))
// is exactly the bytes consumed.
func fuzzEncapCanonical(t *testing.T, code uint8, data []byte) {
	m, n, err := encapDecoders[code](data)
	if err != nil {
		var de *DecodeError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &de) {
			t.Fatalf("%s: error %v is not a *DecodeError with ErrMalformed", CodeName(code), err)
		}
		return
	}
	if n < 4 || n > len(data) {
		t.Fatalf("%s: consumed %d of %d bytes", CodeName(code), n, len(data))
	}
	if enc := m.Marshal(); !bytes.Equal(enc, data[:n]) {
		t.Fatalf("%s: Marshal(Decode(x)) != x[:%d]\n    x % x\n  got % x", CodeName(code), n, data[:n], enc)
	}
}

func FuzzDecodeGetEncapsulatedRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzEncapCanonical(t, CodeGetEncapsulatedRequest, data) })
}

func FuzzDecodeEncapsulatedRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzEncapCanonical(t, CodeEncapsulatedRequest, data) })
}

func FuzzDecodeDeliverEncapsulatedResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzEncapCanonical(t, CodeDeliverEncapsulatedResponse, data) })
}

func FuzzDecodeEncapsulatedResponseAck(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzEncapCanonical(t, CodeEncapsulatedResponseAck, data) })
}

// encapTestRequester is a requester past VCA with a P-256 identity, as
// the encapsulated flows find it.
func encapTestRequester(t testing.TB, v Version) *Requester {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := encapTestCerts(t, key)
	q := NewRequester(nil, RequesterConfig{Caps: CapKeyUpd, MutualAuth: &Identity{Chain: [][]byte{root}, Key: key}})
	q.neg = Negotiated{Version: v, Hash: crypto.SHA256, BaseHash: HashSHA256, RspCaps: CapKeyUpd | CapEncap | CapMutAuth,
		ReqBaseAsym: uint16(AsymECDSAP256), RspDataTransfer: 4096}
	q.haveVCA = true
	return q
}

// FuzzRequesterEncapAnswer hands the requester any encapsulated request in
// each flow: it answers with one well-formed message (an ERROR where
// nothing else fits) and never panics.
func FuzzRequesterEncapAnswer(f *testing.F) {
	q := encapTestRequester(f, V12)
	f.Fuzz(func(t *testing.T, req []byte, flowSel uint8) {
		flow := encapFlow(flowSel%3 + 1)
		e := &reqEncap{flow: flow, certSlot: -1}
		resp, err := q.encapAnswer(e, req)
		if err != nil {
			t.Fatalf("encapAnswer: %v", err)
		}
		h, err := PeekHeader(resp)
		if err != nil || h.Version != V12 {
			t.Fatalf("answer % x is not a 1.2 message", resp)
		}
		if h.Code == CodeError {
			var m ErrorResponse
			if _, err := decodeExact("ERROR", resp, m.Decode); err != nil {
				t.Fatalf("malformed ERROR: %v", err)
			}
		}
	})
}

// encapSeeds are hand-built messages in each shape and version.
func encapSeeds(t testing.TB) map[string][][]byte {
	q := encapTestRequester(t, V12)
	digests, _ := q.encapAnswer(&reqEncap{flow: encapBasic, certSlot: -1}, (&GetDigests{Version: V12}).Marshal())
	cert, _ := q.encapAnswer(&reqEncap{flow: encapBasic, certSlot: -1}, (&GetCertificate{Version: V12, Offset: 0, Length: 64}).Marshal())
	chal := (&Challenge{Version: V12}).Marshal()
	auth, _ := q.encapAnswer(&reqEncap{flow: encapBasic, certSlot: -1}, chal)
	ku := (&KeyUpdate{Version: V12, Operation: KeyUpdateOpUpdateKey, Tag: 7}).Marshal()
	out := map[string][][]byte{}
	for _, v := range []Version{V11, V12, V13} {
		out["FuzzDecodeGetEncapsulatedRequest"] = append(out["FuzzDecodeGetEncapsulatedRequest"], (&GetEncapsulatedRequest{Version: v}).Marshal())
		for i, r := range [][]byte{(&GetDigests{Version: v}).Marshal(), (&GetCertificate{Version: v, Length: 0x400}).Marshal(), chal, ku} {
			out["FuzzDecodeEncapsulatedRequest"] = append(out["FuzzDecodeEncapsulatedRequest"],
				(&EncapsulatedRequest{Version: v, RequestID: uint8(i + 1), Request: r}).Marshal())
			out["FuzzRequesterEncapAnswer"] = append(out["FuzzRequesterEncapAnswer"], r)
			out["FuzzDecodeEncapsulatedResponseAck"] = append(out["FuzzDecodeEncapsulatedResponseAck"],
				(&EncapsulatedResponseAck{Version: v, RequestID: uint8(i + 2), AckRequestID: uint8(i + 1), PayloadType: EncapPayloadPresent, Request: r}).Marshal())
		}
		for _, r := range [][]byte{digests, cert, auth} {
			out["FuzzDecodeDeliverEncapsulatedResponse"] = append(out["FuzzDecodeDeliverEncapsulatedResponse"],
				(&DeliverEncapsulatedResponse{Version: v, RequestID: 1, Response: r}).Marshal())
		}
		out["FuzzDecodeChunkSend"] = append(out["FuzzDecodeChunkSend"],
			(&ChunkSend{Version: v, Handle: 1, LargeMessageSize: 300, Chunk: auth[:100]}).Marshal(),
			(&ChunkSend{Version: v, Handle: 1, Seq: 1, Attributes: ChunkLast, Chunk: auth[100:]}).Marshal())
		out["FuzzDecodeChunkSendAck"] = append(out["FuzzDecodeChunkSendAck"],
			(&ChunkSendAck{Version: v, Handle: 1}).Marshal(),
			(&ChunkSendAck{Version: v, Handle: 1, Seq: 1, Response: []byte{uint8(v), CodeFinishRsp, 0, 0, 0, 0}}).Marshal())
		out["FuzzDecodeEncapsulatedResponseAck"] = append(out["FuzzDecodeEncapsulatedResponseAck"],
			(&EncapsulatedResponseAck{Version: v, AckRequestID: 3, PayloadType: EncapPayloadAbsent}).Marshal(),
			(&EncapsulatedResponseAck{Version: v, AckRequestID: 3, PayloadType: EncapPayloadReqSlot, ReqSlot: 1}).Marshal())
	}
	return out
}

// TestEncapSeedsDecode keeps the seeds honest: each decodes and
// marshals back.
func TestEncapSeedsDecode(t *testing.T) {
	codes := map[string]uint8{
		"FuzzDecodeGetEncapsulatedRequest":      CodeGetEncapsulatedRequest,
		"FuzzDecodeEncapsulatedRequest":         CodeEncapsulatedRequest,
		"FuzzDecodeDeliverEncapsulatedResponse": CodeDeliverEncapsulatedResponse,
		"FuzzDecodeEncapsulatedResponseAck":     CodeEncapsulatedResponseAck,
		"FuzzDecodeChunkSend":                   CodeChunkSend,
		"FuzzDecodeChunkSendAck":                CodeChunkSendAck,
	}
	for target, seeds := range encapSeeds(t) {
		code, ok := codes[target]
		if !ok {
			continue
		}
		for _, s := range seeds {
			m, n, err := encapDecoders[code](s)
			if err != nil || n != len(s) || !bytes.Equal(m.Marshal(), s) {
				t.Errorf("%s seed % x: %d bytes, %v", target, s, n, err)
			}
		}
	}
}

func TestWriteEncapFuzzSeeds(t *testing.T) {
	if os.Getenv("SECCHAN_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set SECCHAN_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	for target, seeds := range encapSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			args := []string{fmt.Sprintf("[]byte(%q)", s)}
			if target == "FuzzRequesterEncapAnswer" {
				args = append(args, fmt.Sprintf("byte(%d)", i%3))
			}
			content := "go test fuzz v1\n"
			for _, a := range args {
				content += a + "\n"
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%03d", i)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// encapTestCerts makes a self-signed certificate for key, serving as both
// the root and the leaf of a one-certificate chain.
func encapTestCerts(t testing.TB, key *ecdsa.PrivateKey) (root, leaf []byte) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "requester"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, der
}
