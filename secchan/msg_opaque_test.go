package secchan

// Tests of the opaque data tables and the DSP0277 version negotiation
// elements (msg_opaque.go), beyond the corpus checks in
// msg_session_test.go.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
)

func smsgHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpaqueLayouts pins the bytes libspdm sends (taken from the corpus's
// KEY_EXCHANGE and KEY_EXCHANGE_RSP records) and which table each version
// and format uses.
func TestOpaqueLayouts(t *testing.T) {
	all := []uint16{SecuredVersion10, SecuredVersion11, SecuredVersion12}
	cases := []struct {
		name   string
		got    []byte
		wire   string
		fields string
	}{
		{"1.2 supported", EncodeSupportedVersions(V12, OpaqueFmt1, all),
			"01000000" + "00000900" + "010103" + "001000110012" + "000000",
			"TotalElements 1, Reserved; ID DMTF, VendorLen 0, DataLen 9; SMDataVersion 1, SupportedVersion, 3 versions; padding"},
		{"1.2 selection", EncodeVersionSelection(V12, OpaqueFmt1, SecuredVersion12),
			"01000000" + "00000400" + "01000012", "header; element of 4 bytes; SMDataVersion 1, VersionSelection, 1.2"},
		{"1.1 supported", EncodeSupportedVersions(V11, OpaqueFmtNone, all),
			"46544d44" + "01010000" + "00000900" + "010103" + "001000110012" + "000000",
			"SpecID DMTF, OpaqueVersion 1, TotalElements 1, Reserved; element as in 1.2"},
		{"1.1 selection", EncodeVersionSelection(V11, OpaqueFmtNone, SecuredVersion12),
			"46544d44" + "01010000" + "00000400" + "01000012", ""},
		// Before 1.2 there is no format to select: always DSP0277's table.
		{"1.1 with Fmt1", EncodeVersionSelection(V11, OpaqueFmt1, SecuredVersion12), "46544d44" + "01010000" + "00000400" + "01000012", ""},
		// 1.2 with OpaqueDataFmt0: DSP0277's own table (see msg_opaque.go).
		{"1.2 with Fmt0", EncodeVersionSelection(V12, OpaqueFmt0, SecuredVersion12), "46544d44" + "01010000" + "00000400" + "01000012", ""},
		// The whole OtherParamsSelection byte may be passed (1.3 MULTI_KEY_CONN).
		{"1.3 with 0x12", EncodeVersionSelection(V13, 0x12, SecuredVersion11), "01000000" + "00000400" + "01000011", ""},
	}
	for _, c := range cases {
		if want := smsgHex(t, c.wire); !bytes.Equal(c.got, want) {
			t.Errorf("%s (%s):\n want % x\n  got % x", c.name, c.fields, want, c.got)
		}
	}
}

// TestOpaqueRoundTrips: elements of every padding, with vendor IDs, in
// both tables.
func TestOpaqueRoundTrips(t *testing.T) {
	elems := []OpaqueElement{
		{ID: RegistryDMTF, Data: []byte{SMDataVersion, SMDataIDVersionSelect, 0x00, 0x12}},
		{ID: RegistryPCISIG, VendorID: []byte{1, 0}, Data: codecFill(1, 1)},
		{ID: RegistryIANA, VendorID: []byte{1, 2, 3, 4}, Data: codecFill(2, 2)},
		{ID: RegistryIANACBOR, VendorID: []byte{0x19}, Data: codecFill(3, 3)},
		{ID: RegistryDMTF, Data: nil},
		{ID: RegistryVESA, Data: codecFill(300, 4)},
	}
	for _, v := range []struct {
		v      Version
		format uint8
		header int
	}{{V11, OpaqueFmtNone, 8}, {V12, OpaqueFmt1, 4}, {V12, OpaqueFmt0, 8}, {V13, OpaqueFmt1, 4}} {
		b := MarshalOpaqueData(v.v, v.format, elems)
		if len(b)%4 != 0 {
			t.Errorf("%v/%d: %d bytes, not DW-aligned", v.v, v.format, len(b))
		}
		// Element sizes: 2+2+4=8, 2+2+2+1=7→8, 2+4+2+2=10→12, 2+1+2+3=8, 4, 2+2+300=304.
		if want := v.header + 8 + 8 + 12 + 8 + 4 + 304; len(b) != want {
			t.Errorf("%v/%d: %d bytes, want %d", v.v, v.format, len(b), want)
		}
		got, err := ParseOpaqueData(v.v, v.format, b)
		if err != nil || len(got) != len(elems) {
			t.Fatalf("%v/%d: %d elements, %v", v.v, v.format, len(got), err)
		}
		for i := range elems {
			if got[i].ID != elems[i].ID || !bytes.Equal(got[i].VendorID, elems[i].VendorID) || !bytes.Equal(got[i].Data, elems[i].Data) {
				t.Errorf("%v/%d element %d: %+v, want %+v", v.v, v.format, i, got[i], elems[i])
			}
		}
		if !bytes.Equal(MarshalOpaqueData(v.v, v.format, got), b) {
			t.Errorf("%v/%d: re-encoding differs", v.v, v.format)
		}
		// The version selection is found among the other elements.
		if sel, err := DecodeVersionSelection(v.v, v.format, b); err != nil || sel != SecuredVersion12 {
			t.Errorf("%v/%d: DecodeVersionSelection = 0x%04x, %v", v.v, v.format, sel, err)
		}
		for k := 0; k < len(b); k++ {
			if _, err := ParseOpaqueData(v.v, v.format, b[:k]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%v/%d: %d-byte prefix parses: %v", v.v, v.format, k, err)
				break
			}
		}
		// The other table does not parse it.
		other := OpaqueFmtNone
		if !generalOpaque(v.v, v.format) {
			other = OpaqueFmt1
		}
		if _, err := ParseOpaqueData(V12, other, b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%v/%d: parses as the other table: %v", v.v, v.format, err)
		}
	}
	for _, vs := range [][]uint16{{SecuredVersion11}, {SecuredVersion10, SecuredVersion11}, {0x1000, 0x1100, 0x1200, 0x1310}} {
		for _, v := range []Version{V11, V12} {
			b := EncodeSupportedVersions(v, OpaqueFmt1, vs)
			if got, err := DecodeSupportedVersions(v, OpaqueFmt1, b); err != nil || fmt.Sprint(got) != fmt.Sprint(vs) {
				t.Errorf("%v: supported %04x round trip: %04x, %v", v, vs, got, err)
			}
		}
	}
}

// TestOpaqueInvalid: reserved bytes, headers, lengths and elements that
// the parsers refuse, each naming the field.
func TestOpaqueInvalid(t *testing.T) {
	g := EncodeVersionSelection(V12, OpaqueFmt1, SecuredVersion12)    // 12 bytes, general
	d := EncodeVersionSelection(V11, OpaqueFmtNone, SecuredVersion12) // 16 bytes, DSP0277
	s := EncodeSupportedVersions(V12, OpaqueFmt1, []uint16{0x1100})   // 4+4+5 → 16 bytes
	set := func(b []byte, off int, v byte) []byte { b = bytes.Clone(b); b[off] = v; return b }
	withElems := func(v Version, e ...OpaqueElement) []byte { return MarshalOpaqueData(v, OpaqueFmt1, e) }
	sm := func(id uint8, rest ...byte) OpaqueElement {
		return OpaqueElement{ID: RegistryDMTF, Data: append([]byte{SMDataVersion, id}, rest...)}
	}
	type parse func([]byte) error
	parseG := func(b []byte) error { _, err := ParseOpaqueData(V12, OpaqueFmt1, b); return err }
	parseD := func(b []byte) error { _, err := ParseOpaqueData(V11, OpaqueFmtNone, b); return err }
	sel := func(b []byte) error { _, err := DecodeVersionSelection(V12, OpaqueFmt1, b); return err }
	sup := func(b []byte) error { _, err := DecodeSupportedVersions(V12, OpaqueFmt1, b); return err }
	cases := []struct {
		name  string
		b     []byte
		f     parse
		field string
	}{
		{"general Reserved[0]", set(g, 1, 1), parseG, "Reserved"},
		{"general Reserved[2]", set(g, 3, 0x80), parseG, "Reserved"},
		{"DSP0277 Reserved low", set(d, 6, 1), parseD, "Reserved"},
		{"DSP0277 Reserved high", set(d, 7, 0x80), parseD, "Reserved"},
		{"DSP0277 SpecID", set(d, 0, 'G'), parseD, "SpecID"},
		{"DSP0277 OpaqueVersion 2", set(d, 4, 2), parseD, "OpaqueVersion"},
		{"TotalElements 0", set(g, 0, 0), parseG, "TotalElements"},
		{"TotalElements 2, one present", set(g, 0, 2), parseG, "OpaqueElement[1].ID"},
		{"bytes after the elements", append(bytes.Clone(g), 0, 0, 0, 0), parseG, ""},
		{"element padding not zero", set(s, 15, 1), parseG, "OpaqueElement[0].AlignPadding"},
		{"element data beyond the table", set(g, 6, 9), parseG, "OpaqueElement[0].OpaqueElementData"},
		{"unknown registry", set(g, 4, 0x0C), parseG, "OpaqueElement[0].ID"},
		{"DMTF element with a vendor ID", withElems(V12, OpaqueElement{ID: RegistryDMTF, VendorID: []byte{1, 0}}), parseG, "OpaqueElement[0].ID"},
		{"over 1024 bytes", withElems(V12, OpaqueElement{ID: RegistryDMTF, Data: codecFill(1020, 0)}), parseG, ""},
		{"no version selection", s, sel, "VersionSelection"},
		{"no supported versions", g, sup, "SupportedVersion"},
		{"version selection repeated", withElems(V12, sm(0, 0, 0x12), sm(0, 0, 0x11)), sel, "VersionSelection"},
		{"version selection of 3 bytes", withElems(V12, sm(0, 0x12)), sel, "VersionSelection"},
		{"version selection of 5 bytes", withElems(V12, sm(0, 0, 0x12, 0)), sel, "VersionSelection"},
		{"VersionCount 0", withElems(V12, sm(1, 0)), sup, "SupportedVersion.VersionCount"},
		{"VersionCount 2, one version", withElems(V12, sm(1, 2, 0, 0x11)), sup, "SupportedVersion.VersionsList"},
		{"VersionCount 1, two versions", withElems(V12, sm(1, 1, 0, 0x11, 0, 0x12)), sup, "SupportedVersion"},
		{"supported versions without a count", withElems(V12, sm(1)), sup, "SupportedVersion.VersionCount"},
		{"supported versions repeated", withElems(V12, sm(1, 1, 0, 0x11), sm(1, 1, 0, 0x12)), sup, "SupportedVersion"},
	}
	for _, c := range cases {
		codecWantDecodeError(t, c.name, c.f(c.b), c.field)
	}
	// Elements of other registries, SMDataIDs or SMDataVersions are
	// skipped, not refused.
	b := withElems(V12, OpaqueElement{ID: RegistryPCISIG, VendorID: []byte{1, 0}, Data: []byte{1, 0, 0, 0x13}},
		OpaqueElement{ID: RegistryDMTF, Data: []byte{2, 0, 0, 0x13}}, sm(7, 1, 2, 3), sm(0, 0, 0x12))
	if v, err := DecodeVersionSelection(V12, OpaqueFmt1, b); err != nil || v != SecuredVersion12 {
		t.Errorf("selection among other elements: 0x%04x, %v", v, err)
	}
}
