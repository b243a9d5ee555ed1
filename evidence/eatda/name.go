package eatda

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Object identifiers for SubmodName.
var (
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidDMTFDeviceInfo  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 1}
	maxSubmodNameBytes = 1024
)

// SubmodName is a device's submodule name (draft §4.1.6): "spdm:" and
// the leaf certificate's DMTF device info (a subjectAltName otherName
// id-DMTF-device-info, "vendor:model:serial") when it has one, else its
// subject as an RFC 4514 string. chain is DER certificates, leaf last.
func SubmodName(chain []byte) (string, error) {
	certs, err := x509.ParseCertificates(chain)
	if err != nil || len(certs) == 0 {
		return "", fmt.Errorf("the certificate chain does not parse: %v", err)
	}
	leaf := certs[len(certs)-1]
	info, err := dmtfDeviceInfo(leaf)
	if err != nil {
		return "", err
	}
	name := "spdm:" + info
	if info == "" {
		name = "spdm:" + leaf.Subject.String()
	}
	if name == "spdm:" || len(name) > maxSubmodNameBytes || !utf8.ValidString(name) {
		return "", fmt.Errorf("the leaf certificate gives no usable submodule name (%q)", name)
	}
	return name, nil
}

// dmtfDeviceInfo returns the leaf's id-DMTF-device-info otherName value,
// or "" when it has none.
func dmtfDeviceInfo(c *x509.Certificate) (string, error) {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) != 0 {
			return "", fmt.Errorf("the leaf's subjectAltName does not parse")
		}
		for _, gn := range names {
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue // not an otherName
			}
			var on struct {
				TypeID asn1.ObjectIdentifier
				Value  asn1.RawValue `asn1:"explicit,tag:0"`
			}
			if rest, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil || len(rest) != 0 {
				return "", fmt.Errorf("an otherName in the leaf's subjectAltName does not parse")
			}
			if !on.TypeID.Equal(oidDMTFDeviceInfo) {
				continue
			}
			var s string
			if rest, err := asn1.UnmarshalWithParams(on.Value.Bytes, &s, "utf8"); err != nil || len(rest) != 0 {
				return "", fmt.Errorf("the leaf's DMTF device info is not a UTF8String")
			}
			if strings.Count(s, ":") != 2 {
				return "", fmt.Errorf("the leaf's DMTF device info %q is not vendor:model:serial", s)
			}
			return s, nil
		}
	}
	return "", nil
}

// ClassID is the environment class-id a CoRIM gives a device's reference
// values, derived from its submodule name as Veraison's da-spdm scheme
// derives it: "spdm:vendor:model:serial" loses ":serial"; a subject name
// loses its CN attributes.
func ClassID(submod string) (string, error) {
	rest, ok := strings.CutPrefix(submod, "spdm:")
	if !ok {
		return "", fmt.Errorf("submodule %q is not in the spdm namespace", submod)
	}
	if strings.Contains(rest, ",") {
		var keep []string
		for _, p := range strings.Split(rest, ",") {
			p = strings.TrimSpace(p)
			if !strings.HasPrefix(p, "CN=") {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			return "", fmt.Errorf("submodule %q has nothing but CN attributes", submod)
		}
		return "spdm:" + strings.Join(keep, ","), nil
	}
	if strings.Count(submod, ":") == 3 {
		return submod[:strings.LastIndex(submod, ":")], nil
	}
	return "", fmt.Errorf("no class-id can be derived from submodule %q", submod)
}
