// Package yamlerr explains yaml.v3's decoding errors for people: each
// error names its line and the key path on that line (listeners[0].vf),
// and an unknown key is called that, not a field missing from a Go type.
// The shim's, the policy's and the guest's configuration loaders share it.
package yamlerr

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Explain rewrites yaml's errors for a person: "line 4: field x not
// found in type hostshim.ListenerConfig" becomes "line 4:
// listeners[0].x: unknown key \"x\"", and each error names the key on
// its line; no Go type name reaches the reader.
func Explain(doc []byte, err error) string {
	keys := keysByLine(doc)
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	for i, l := range lines {
		var line int
		if _, serr := fmt.Sscanf(l, "line %d:", &line); serr == nil {
			msg := strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
			if f, ok := strings.CutPrefix(msg, "field "); ok {
				if name, _, ok := strings.Cut(f, " not found in type"); ok {
					msg = fmt.Sprintf("unknown key %q", name)
				}
			}
			if k, ok := keys[line]; ok {
				l = fmt.Sprintf("line %d: %s: %s", line, k, msg)
			} else {
				l = fmt.Sprintf("line %d: %s", line, msg)
			}
		}
		lines[i] = l
	}
	return strings.Join(lines, "; ")
}

// keysByLine maps each line that holds a key to the key's path
// (listeners[0].vf.bdf).
func keysByLine(doc []byte) map[int]string {
	out := make(map[int]string)
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return out
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out[k.Line] = p
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, taken := out[c.Line]; !taken {
					out[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	return out
}
