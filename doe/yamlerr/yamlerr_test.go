package yamlerr

import (
	"bytes"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type inner struct {
	Name string `yaml:"name"`
	Size int    `yaml:"size"`
}

type outer struct {
	Items []inner `yaml:"items"`
}

func TestExplain(t *testing.T) {
	doc := []byte("items:\n  - name: a\n    sise: 3\n  - name: b\n    size: big\n")
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	var o outer
	err := dec.Decode(&o)
	if err == nil {
		t.Fatal("no error")
	}
	got := Explain(doc, err)
	for _, want := range []string{`line 3: items[0].sise: unknown key "sise"`, "line 5: items[1].size:"} {
		if !strings.Contains(got, want) {
			t.Errorf("Explain = %q, want %q", got, want)
		}
	}
	if strings.Contains(got, "yamlerr.inner") || strings.Contains(got, "not found in type") {
		t.Errorf("a Go type name reaches the reader: %q", got)
	}
}
