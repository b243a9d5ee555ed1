package policy

import (
	"fmt"
	"io"
	"os"

	"github.com/devattest/devattest/policy/corim"
	"github.com/devattest/devattest/secchan"
)

// loadReferenceValues reads the rule's CoRIM (reference_values), verified
// against its anchor (the rule's reference_values_anchor, else the
// policy's), and makes its reference values the rule's
// ReferenceMeasurements: from then on they are checked exactly as YAML
// references are. The class is reference_values_class, or the CoRIM's only
// one.
func (r *DeviceRule) loadReferenceValues(key, dir, policyAnchor string) error {
	if r.ReferenceValues == "" {
		if r.ReferenceValuesAnchor != "" || r.ReferenceValuesClass != "" || r.AllowUnsignedReferenceValues {
			return fmt.Errorf("%s: reference_values_anchor, _class and allow_unsigned_reference_values need reference_values", key)
		}
		return nil
	}
	k := key + ".reference_values"
	if len(r.ReferenceMeasurements) > 0 {
		return fmt.Errorf("%s: give reference_measurements or reference_values, not both", k)
	}
	anchorFile := r.ReferenceValuesAnchor
	if anchorFile == "" {
		anchorFile = policyAnchor
	}
	var o corim.Options
	if anchorFile != "" {
		certs, err := secchan.LoadCertificates(resolve(dir, anchorFile))
		if err != nil {
			return fmt.Errorf("%s_anchor: %w", key+".reference_values", err)
		}
		o.Anchors = certs
	}
	o.AllowUnsigned = r.AllowUnsignedReferenceValues
	b, err := readCapped(resolve(dir, r.ReferenceValues), corim.MaxSize)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	rim, err := corim.Read(b, o)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", k, r.ReferenceValues, err)
	}
	class := r.ReferenceValuesClass
	if class == "" {
		if len(rim.References) != 1 {
			return fmt.Errorf("%s: the CoRIM has %d classes: name one with reference_values_class", k, len(rim.References))
		}
		class = rim.References[0].ClassID
	}
	ref, err := rim.Reference(class)
	if err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	for _, m := range ref.Measurements {
		r.ReferenceMeasurements = append(r.ReferenceMeasurements, ReferenceMeasurement{Index: m.Index, Digest: m.Values()})
	}
	return nil
}

// readCapped reads at most max bytes of a file, refusing a larger one.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", path, max)
	}
	return b, nil
}
