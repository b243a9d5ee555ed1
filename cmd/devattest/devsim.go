package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/devattest/devattest/cmd/internal/cli"
	"github.com/devattest/devattest/devsim"
	"github.com/devattest/devattest/doe"
	"github.com/devattest/devattest/secchan"
)

func runDevsim(args []string, stdout, stderr io.Writer) int {
	const prog = "devattest devsim"
	fs := cli.NewFlagSet("devsim", "devattest devsim [--listen ADDR] [--delay D] [--ca-out FILE] [--cert-chain DER --key PEM]... [--slots FILE] [--measurements FILE] [--cdat] [--tdisp-fault after-lock|while-running] [--mut-auth MODE ...]")
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2323", "address to serve on: HOST:PORT or unix:PATH")
	delay := fs.Duration("delay", 0, "hold each DOE response back this long (a slow device)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	mutAuth := addMutAuthFlags(fs) // devsim_mutauth.go
	caOut := fs.String("ca-out", "", "write the identity's root certificate here (DER, or PEM if FILE ends in .pem): the trust anchor for a requester")
	var chainFiles, keyFiles listFlag
	fs.Var(&chainFiles, "cert-chain", "serve this identity instead of a fresh one: concatenated DER certificates, root first, leaf last (libspdm's bundle_responder.certchain.der); repeat with --key for slots 1, 2, ...")
	slotsFile := fs.String("slots", "", "YAML file listing certificate slots (slots: - cert_chain: DER, key: PEM), after any --cert-chain/--key pairs")
	layoutFile := fs.String("measurements", "", "YAML file listing the measurement blocks to report instead of the default five (- index: N, type: NAME, value: TEXT; type names as in the EAT-DA draft: immutable-rom, mutable-firmware, hardware-config, ...)")
	cdat := fs.Bool("cdat", false, "also serve a CDAT (CXL Table Access, 1e98:02), as a CXL memory device does")
	tdispFault := fs.String("tdisp-fault", "none", "play a host that reconfigures the VF (moves BAR0) right after the TDISP interface is locked (after-lock) or started (while-running): the interface goes to ERROR")
	fs.Var(&keyFiles, "key", "the leaf's private key for the --cert-chain of the same position, PEM (SEC1 EC PRIVATE KEY or PKCS#8 PRIVATE KEY)")
	if err := fs.Parse(args); err != nil {
		return cli.ParseStatus(err)
	}
	switch {
	case fs.NArg() != 0:
		return cli.UsageError(stderr, prog, "unexpected arguments after the flags")
	case *delay < 0 || *delay > 10*time.Second:
		return cli.UsageError(stderr, prog, "--delay must be between 0 and 10s")
	case *tdispFault != "none" && *tdispFault != "after-lock" && *tdispFault != "while-running":
		return cli.UsageError(stderr, prog, "--tdisp-fault %q: want none, after-lock or while-running", *tdispFault)
	case len(chainFiles) != len(keyFiles):
		return cli.UsageError(stderr, prog, "--cert-chain and --key go together, one pair per slot")
	}
	log, err := cli.Logger(stderr, *logLevel)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}

	var rootDER []byte
	var ids []secchan.Identity
	source := "generated"
	if len(chainFiles) != 0 || *slotsFile != "" {
		rootDER, ids, source, err = slotIdentities(chainFiles, keyFiles, *slotsFile)
	} else {
		rootDER, ids, err = devsim.NewIdentity()
	}
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	if *caOut != "" {
		if err := writeCA(*caOut, rootDER); err != nil {
			return cli.Fail(stderr, prog, err)
		}
	}
	meas := devsim.NewMeasurements()
	if *layoutFile != "" {
		if meas, err = devsim.LoadMeasurementLayout(*layoutFile); err != nil {
			return cli.Fail(stderr, prog, err)
		}
	}
	var vfOpts []devsim.Option
	if o, err := mutAuth.option(); err != nil {
		return cli.Fail(stderr, prog, err)
	} else if o != nil {
		vfOpts = append(vfOpts, o)
	}
	vf, rsp, err := devsim.NewSPDMVF(ids, meas, vfOpts...)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	rsp.SetLogger(log) // negotiation failures, with both sides' offers
	if *cdat {
		h, err := devsim.NewCDATHandler(devsim.DefaultCDAT())
		if err == nil {
			err = vf.Handle(doe.ProtocolCDAT, h)
		}
		if err != nil {
			return cli.Fail(stderr, prog, err)
		}
	}
	vf.SetFaults(devsim.Faults{Delay: *delay, TDISPChangeAfterLock: *tdispFault == "after-lock", TDISPChangeWhileRunning: *tdispFault == "while-running"})
	rootFP := sha256.Sum256(rootDER)
	log.Info("devsim identity", "source", source, "root_sha256", hex.EncodeToString(rootFP[:]),
		"leaves", leafSummary(ids), "ca_out", *caOut)

	ctx, cancel := cli.SignalContext()
	defer cancel()
	ln, err := doe.Listen(ctx, *listen)
	if err != nil {
		return cli.Fail(stderr, prog, err)
	}
	srv := &doe.Server{Mailbox: vf.Driver(), Logger: log, Commands: oobCommands(rsp, log)}
	log.Info("devsim serving an emulated VF", "listen", ln.Addr().String(), "protocols", len(vf.Protocols()))
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil {
		return cli.Fail(stderr, prog, err)
	}
	log.Info("devsim stopped")
	return 0
}

func loadIdentity(chainFile, keyFile string) ([]byte, []secchan.Identity, error) {
	chain, err := os.ReadFile(chainFile)
	if err != nil {
		return nil, nil, err
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	root, id, err := devsim.LoadIdentity(chain, key)
	if err != nil {
		return nil, nil, fmt.Errorf("--cert-chain %s --key %s: %w", chainFile, keyFile, err)
	}
	return root, []secchan.Identity{id}, nil
}

// writeCA writes the root certificate as DER, or PEM for a .pem file.
func writeCA(path string, der []byte) error {
	out := der
	if strings.HasSuffix(strings.ToLower(path), ".pem") {
		out = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("--ca-out: %w", err)
	}
	return nil
}

// leafSummary names each leaf's key algorithm and subject, for the log.
func leafSummary(ids []secchan.Identity) string {
	var parts []string
	for _, id := range ids {
		c, err := x509.ParseCertificate(id.Chain[len(id.Chain)-1])
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %q", secchan.AsymName(secchan.AsymFor(c.PublicKey)), c.Subject.String()))
	}
	return strings.Join(parts, "; ")
}
