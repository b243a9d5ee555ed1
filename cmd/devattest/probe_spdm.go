package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/ide"
	"github.com/devattest/devattest/secchan"
)

// spdmReport is what the authentication probe found, in the --json shape.
type spdmReport struct {
	Version      string          `json:"version"`
	Algorithms   algorithmsJSON  `json:"algorithms"`
	Capabilities []string        `json:"capabilities"`
	Certificates []string        `json:"certificates"`
	Challenge    bool            `json:"challenge"`
	Measurements []measurementJS `json:"measurements"`
	Verified     bool            `json:"verified"`
	Session      *sessionJSON    `json:"session,omitempty"`
	IDE          *ideJSON        `json:"ide,omitempty"`
	TDISP        *tdispJSON      `json:"tdisp,omitempty"`
	Error        *string         `json:"error"`
}

type sessionJSON struct {
	ID    string     `json:"id"`
	AEAD  string     `json:"aead"`
	DHE   string     `json:"dhe,omitempty"`
	PSK   bool       `json:"psk"`
	Steps []stepJSON `json:"steps"`
	OK    bool       `json:"ok"`
}

type ideJSON struct {
	Stream uint8      `json:"stream"`
	Port   uint8      `json:"port"`
	Steps  []stepJSON `json:"steps"`
	OK     bool       `json:"ok"`
}

type stepJSON struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
	Detail  string `json:"detail,omitempty"` // why a step was skipped
}

type algorithmsJSON struct {
	Hash     string `json:"hash"`
	Asym     string `json:"asym"`
	MeasHash string `json:"measurement_hash"`
	DHE      string `json:"dhe,omitempty"`
	AEAD     string `json:"aead,omitempty"`
}

type measurementJS struct {
	Index  uint8  `json:"index"`
	Type   string `json:"type"`
	Digest string `json:"digest"`
	Raw    bool   `json:"raw,omitempty"`
}

// requesterConfig builds the requester's configuration from the flags.
func requesterConfig(pf probeFlags) (secchan.RequesterConfig, error) {
	cfg := secchan.DefaultRequesterConfig()
	if pf.version != "" {
		v, err := secchan.ParseVersion(pf.version)
		if err != nil {
			return cfg, fmt.Errorf("--version: %w", err)
		}
		cfg.Versions = []secchan.Version{v}
	}
	if pf.hash != "" {
		h, err := secchan.ParseHashList(pf.hash)
		if err != nil {
			return cfg, fmt.Errorf("--hash: %w", err)
		}
		cfg.BaseHash = h
	}
	if pf.asym != "" {
		a, err := secchan.ParseAsymList(pf.asym)
		if err != nil {
			return cfg, fmt.Errorf("--asym: %w", err)
		}
		cfg.BaseAsym = a
	}
	if pf.mutualAuth != "" {
		chainFile, keyFile, ok := strings.Cut(pf.mutualAuth, ",")
		if !ok {
			return cfg, errors.New("--mutual-auth: want CHAIN,KEY")
		}
		chain, err := os.ReadFile(chainFile)
		if err != nil {
			return cfg, fmt.Errorf("--mutual-auth: %w", err)
		}
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return cfg, fmt.Errorf("--mutual-auth: %w", err)
		}
		_, id, err := devsim.LoadIdentity(chain, key)
		if err != nil {
			return cfg, fmt.Errorf("--mutual-auth: %w", err)
		}
		cfg.MutualAuth = &id
	}
	anchors, err := secchan.LoadCertificates(pf.trustAnchor)
	if err != nil {
		return cfg, fmt.Errorf("--trust-anchor: %w", err)
	}
	cfg.Validator = &secchan.AnchorValidator{Roots: anchors}
	return cfg, nil
}

// probeSPDM runs the whole authentication flow and reports it.
func probeSPDM(ctx context.Context, pf probeFlags, stdout, stderr io.Writer) int {
	cfg, err := requesterConfig(pf)
	if err != nil {
		return fail(stderr, err)
	}
	rep := spdmReport{Capabilities: []string{}, Certificates: []string{}, Measurements: []measurementJS{}}
	err = authenticate(ctx, pf, cfg, &rep)
	if err != nil {
		msg := err.Error()
		rep.Error = &msg
		rep.Verified = false
	}
	if pf.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printSPDM(stdout, pf.connect, &rep)
	}
	if err != nil {
		return fail(stderr, err)
	}
	return 0
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "devattest probe: %v\n", err)
	return 1
}

func authenticate(ctx context.Context, pf probeFlags, cfg secchan.RequesterConfig, rep *spdmReport) error {
	c, mb, err := dialProbe(ctx, pf)
	if err != nil {
		return err
	}
	defer endConn(c, pf.end)
	var link simLink
	if pf.session && pf.ide {
		// Before SPDM, over the same connection: discovery is harmless.
		link = findSimLink(ctx, mb, pf)
	}
	cfg.KeyLog = pf.debug.KeyLog(pf.connect)
	q := secchan.NewRequester(&secchan.DOETransport{Mailbox: mb}, cfg)
	if err := q.Connect(ctx); err != nil {
		return err
	}
	neg := q.Negotiated()
	rep.Version = neg.Version.String()
	rep.Algorithms = algorithmsJSON{Hash: secchan.HashName(neg.BaseHash), Asym: secchan.AsymName(neg.BaseAsym), MeasHash: secchan.MeasHashName(neg.MeasurementHash)}
	if neg.DHE != 0 {
		rep.Algorithms.DHE = secchan.DHEName(neg.DHE)
	}
	if neg.AEAD != 0 {
		rep.Algorithms.AEAD = secchan.AEADName(neg.AEAD)
	}
	rep.Capabilities = append(rep.Capabilities, secchan.CapabilityNames(neg.RspCaps)...)
	if neg.RspCaps&secchan.CapCert == 0 {
		return errors.New("the device offers no certificates (no CERT_CAP): it cannot be authenticated")
	}
	if _, err := q.GetDigests(ctx); err != nil {
		return err
	}
	chain, err := q.GetCertificate(ctx, pf.slot)
	if err != nil {
		return err
	}
	for _, cert := range chain.Certs {
		rep.Certificates = append(rep.Certificates, cert.Subject.String())
	}
	signedSomething := false
	if neg.RspCaps&secchan.CapChal != 0 {
		summary := secchan.SummaryNone
		if neg.RspCaps&(secchan.CapMeasSig|secchan.CapMeasNoSig) != 0 {
			summary = secchan.SummaryAll
		}
		if _, err := q.Challenge(ctx, pf.slot, summary); err != nil {
			return err
		}
		rep.Challenge, signedSomething = true, true
	}
	if neg.RspCaps&(secchan.CapMeasSig|secchan.CapMeasNoSig) != 0 {
		signed := neg.RspCaps&secchan.CapMeasSig != 0
		res, err := q.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: signed, Slot: pf.slot})
		if err != nil {
			return err
		}
		signedSomething = signedSomething || signed
		h := neg.Hash.New()
		for _, b := range res.Blocks {
			m := measurementJS{Index: b.Index, Type: secchan.MeasurementTypeName(b.ValueType), Raw: b.RawBitStream()}
			if m.Raw {
				h.Reset()
				h.Write(b.Value)
				m.Digest = hex.EncodeToString(h.Sum(nil))
			} else {
				m.Digest = hex.EncodeToString(b.Value)
			}
			rep.Measurements = append(rep.Measurements, m)
		}
	}
	if !signedSomething {
		return errors.New("the device signed nothing (no CHAL_CAP, no signed measurements): its identity is unproven")
	}
	rep.Verified = true
	if pf.session {
		return runSession(ctx, pf, q, link, rep)
	}
	return nil
}

// runSession opens a secure session and exercises it: heartbeat, key
// updates in both directions, signed measurements inside, END_SESSION.
// Every step is recorded; the first failure stops the run.
func runSession(ctx context.Context, pf probeFlags, q *secchan.Requester, link simLink, rep *spdmReport) error {
	neg := q.Negotiated()
	sj := &sessionJSON{AEAD: secchan.AEADName(neg.AEAD), PSK: pf.psk != nil, Steps: []stepJSON{}}
	if pf.psk == nil {
		sj.DHE = secchan.DHEName(neg.DHE)
	}
	rep.Session = sj
	step := func(name string, err error) error {
		s := stepJSON{Name: name, OK: err == nil}
		if err != nil {
			s.Error = err.Error()
		}
		sj.Steps = append(sj.Steps, s)
		return err
	}
	var ss *secchan.SecureSession
	var err error
	opts := secchan.SessionOptions{Slot: pf.slot, PSK: pf.psk, PSKHint: []byte(pf.pskHint)}
	if pf.psk != nil {
		ss, err = q.PSKExchange(ctx, opts)
		err = step("PSK_EXCHANGE+PSK_FINISH", err)
	} else {
		ss, err = q.KeyExchange(ctx, opts)
		err = step("KEY_EXCHANGE+FINISH", err)
	}
	if err != nil {
		return err
	}
	sj.ID = secchan.FormatSessionID(ss.ID())
	if err := step("HEARTBEAT", ss.Heartbeat(ctx)); err != nil {
		return err
	}
	if err := step("KEY_UPDATE UpdateKey", ss.KeyUpdate(ctx, false)); err != nil {
		return err
	}
	if err := step("KEY_UPDATE UpdateAllKeys", ss.KeyUpdate(ctx, true)); err != nil {
		return err
	}
	if neg.RspCaps&secchan.CapMeasSig != 0 {
		res, err := ss.GetMeasurements(ctx, secchan.MeasurementOptions{Operation: secchan.MeasOpAll, Signed: true, Slot: pf.slot})
		if err == nil && len(res.Blocks) == 0 {
			err = errors.New("no measurement blocks")
		}
		if err := step("GET_MEASUREMENTS in session", err); err != nil {
			return err
		}
	}
	if pf.ide {
		if err := runIDE(ctx, pf, ss, neg.Version, link, rep); err != nil {
			_ = ss.End(ctx)
			return err
		}
	}
	if pf.tdisp {
		if err := runTDISP(ctx, pf, ss, neg.Version, rep); err != nil {
			_ = ss.End(ctx)
			return err
		}
	}
	if err := step("END_SESSION", ss.End(ctx)); err != nil {
		return err
	}
	sj.OK = true
	return nil
}

// simLink is the device end of the simulated IDE link for runIDE, or why
// there is none.
type simLink struct {
	dev  ide.DeviceLink
	skip string
}

// noSimLink is the reason the link steps are skipped against a device
// that does not list ide.LinkProtocol: every real device.
const noSimLink = "the device offers no simulated link (a real link is checked by hardware)"

// findSimLink walks DOE discovery on c and, if the peer lists
// ide.LinkProtocol (devsim does; it is simulation only, not PCI-SIG),
// asks its device end whether it serves the IDE port. A peer on the way
// that does not forward the protocol (the shim's default allowlist) leaves
// the link steps skipped, with that reason.
func findSimLink(ctx context.Context, c doe.Mailbox, pf probeFlags) simLink {
	protos, err := doe.Discover(ctx, c, uint8(pf.discoveryVer))
	if err != nil {
		return simLink{skip: fmt.Sprintf("%s; DOE discovery failed: %v", noSimLink, err)}
	}
	if !slices.Contains(protos, ide.LinkProtocol) {
		return simLink{skip: noSimLink}
	}
	r := ide.NewRemoteLink(c)
	if err := r.Hello(ctx, pf.idePort); errors.Is(err, doe.ErrRefused) {
		return simLink{skip: fmt.Sprintf("the way to the device (a shim) does not forward the simulated link's DOE type %04x:%02x", ide.LinkProtocol.Vendor, ide.LinkProtocol.Type)}
	}
	// Any other answer: use the link, and let its steps report what fails.
	return simLink{dev: r}
}

// runIDE programs IDE keys over the session and runs the IDE_KM check:
// QUERY, K0, GO, link check, rotate to K1, link check, K0 refused, STOP.
// The root-port half of each key goes to a simulated root port in this
// process; a real deployment hands it to whatever the platform trusts (a
// TSM, trusted firmware), never to the host in the clear. A remote
// device's keys cannot be read; the link steps run only against a device
// that offers the simulated link (devsim, ide.LinkProtocol), where
// protected TLPs cross and each end keeps its own keys, and are reported
// as skipped otherwise.
func runIDE(ctx context.Context, pf probeFlags, ss *secchan.SecureSession, v secchan.Version, link simLink, rep *spdmReport) error {
	ij := &ideJSON{Stream: pf.ideStream, Port: pf.idePort, Steps: []stepJSON{}}
	rep.IDE = ij
	rp := &ide.SimRootPort{}
	defer rp.Zero()
	steps, err := ide.RunCheck(ctx, ss, rp, ide.CheckOptions{Version: v, Port: pf.idePort, Stream: pf.ideStream, Link: link.dev, SkipReason: link.skip, KeepKeys: pf.tdisp})
	for _, st := range steps {
		s := stepJSON{Name: st.Name, OK: st.Err == nil && !st.Skipped, Skipped: st.Skipped}
		if st.Err != nil {
			s.Error = st.Err.Error()
		}
		if st.Skipped {
			s.Detail = st.Detail
		}
		ij.Steps = append(ij.Steps, s)
	}
	ij.OK = err == nil
	return err
}

func printSPDM(w io.Writer, addr string, rep *spdmReport) {
	fmt.Fprintf(w, "SPDM responder at %s\n", addr)
	if rep.Version == "" {
		return
	}
	fmt.Fprintf(w, "  version       %s\n", rep.Version)
	fmt.Fprintf(w, "  algorithms    asym %s, hash %s, measurement hash %s", rep.Algorithms.Asym, rep.Algorithms.Hash, rep.Algorithms.MeasHash)
	if rep.Algorithms.DHE != "" {
		fmt.Fprintf(w, ", dhe %s, aead %s", rep.Algorithms.DHE, rep.Algorithms.AEAD)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  capabilities  %s\n", strings.Join(rep.Capabilities, " "))
	for i, s := range rep.Certificates {
		fmt.Fprintf(w, "  certificate   [%d] %s\n", i, s)
	}
	if rep.Challenge {
		fmt.Fprintln(w, "  challenge     CHALLENGE_AUTH signature verified")
	}
	if s := rep.Session; s != nil {
		kind := "DHE " + s.DHE
		if s.PSK {
			kind = "PSK"
		}
		fmt.Fprintf(w, "  session       %s, %s, AEAD %s\n", s.ID, kind, s.AEAD)
		for _, st := range s.Steps {
			res := "ok"
			if !st.OK {
				res = "FAILED: " + st.Error
			}
			fmt.Fprintf(w, "    %-26s %s\n", st.Name, res)
		}
	}
	if i := rep.IDE; i != nil {
		fmt.Fprintf(w, "  IDE           port %d stream %d\n", i.Port, i.Stream)
		for _, st := range i.Steps {
			res := "ok"
			switch {
			case st.Skipped:
				res = "skipped: " + st.Detail
			case !st.OK:
				res = "FAILED: " + st.Error
			}
			fmt.Fprintf(w, "    %-26s %s\n", st.Name, res)
		}
	}
	printTDISP(w, rep.TDISP)
	for _, m := range rep.Measurements {
		raw := ""
		if m.Raw {
			raw = " (hash of raw value)"
		}
		fmt.Fprintf(w, "  measurement   [%d] %-24s %s%s\n", m.Index, m.Type, m.Digest, raw)
	}
	fmt.Fprintf(w, "  verified      %v\n", rep.Verified)
}
