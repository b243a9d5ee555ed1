package evidence

// A structural pass over JSON text that runs before encoding/json sees
// it. encoding/json matches object keys case-insensitively (with Unicode
// folding: "ſ" matches "s") and keeps the last of duplicate keys, so
// `"NONCE": fake, "nonce": real` reads differently in Go than in every
// other JSON tool; and it allocates every element of an array before any
// count can be checked. This pass refuses, in one pass with no
// allocation proportional to the input:
//
//   - keys that are not lower-case ASCII names ([a-z0-9_]+, no escapes),
//     so no two keys fold to the same field;
//   - a key repeated within one object;
//   - nesting deeper than maxDepth;
//   - arrays longer than the cap for their key (arrayCaps), and more
//     values in all than maxValues;
//   - strings longer than the cap for their key (stringCaps);
//   - anything that is not exactly one JSON value (syntax, trailing data).

import "fmt"

// jsonLimits bounds one document.
type jsonLimits struct {
	maxDepth  int
	maxValues int
	// arrayCaps maps an object key to the most elements an array under
	// that key may hold; arrays under other keys hold at most
	// defaultArrayCap.
	arrayCaps       map[string]int
	defaultArrayCap int
	// stringCaps maps an object key to the longest string (in encoded
	// bytes) its value may be; other strings are at most
	// defaultStringCap (0: no cap).
	stringCaps       map[string]int
	defaultStringCap int
}

// maxKeysPerObject bounds one object's keys (the report's largest object
// has about 20 fields).
const maxKeysPerObject = 64

type jsonChecker struct {
	b      []byte
	i      int
	lim    *jsonLimits
	values int
	// top, when set, is told the byte range of each value of the
	// top-level object, by key.
	top func(key string, start, end int)
}

// checkJSON runs the structural pass over b.
func checkJSON(b []byte, lim *jsonLimits) error {
	return checkJSONTop(b, lim, nil)
}

// checkJSONTop is checkJSON that also reports the byte range of each
// value of the top-level object to top.
func checkJSONTop(b []byte, lim *jsonLimits, top func(key string, start, end int)) error {
	c := &jsonChecker{b: b, lim: lim, top: top}
	c.space()
	if err := c.value(0, ""); err != nil {
		return err
	}
	c.space()
	if c.i != len(c.b) {
		return c.errf("data after the JSON value")
	}
	return nil
}

func (c *jsonChecker) errf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", c.i, fmt.Sprintf(format, args...))
}

func (c *jsonChecker) space() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

// value checks one value at depth; key is the key it stands under ("" in
// an array or at the top).
func (c *jsonChecker) value(depth int, key string) error {
	c.values++
	if c.values > c.lim.maxValues {
		return c.errf("more than %d JSON values", c.lim.maxValues)
	}
	if c.i >= len(c.b) {
		return c.errf("unexpected end of input")
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		return c.object(depth + 1)
	case ch == '[':
		return c.array(depth+1, key)
	case ch == '"':
		start := c.i
		if err := c.str(); err != nil {
			return err
		}
		limit, ok := c.lim.stringCaps[key]
		if !ok {
			limit = c.lim.defaultStringCap
		}
		if limit > 0 && c.i-start-2 > limit {
			return c.errf("string %q longer than %d bytes", key, limit)
		}
		return nil
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number()
	case ch == 't':
		return c.literal("true")
	case ch == 'f':
		return c.literal("false")
	case ch == 'n':
		return c.literal("null")
	default:
		return c.errf("unexpected character %q", ch)
	}
}

func (c *jsonChecker) object(depth int) error {
	if depth > c.lim.maxDepth {
		return c.errf("nested deeper than %d", c.lim.maxDepth)
	}
	c.i++ // {
	var keys [maxKeysPerObject]string
	n := 0
	c.space()
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return nil
	}
	for {
		c.space()
		key, err := c.key()
		if err != nil {
			return err
		}
		for _, k := range keys[:n] {
			if k == key {
				return c.errf("key %q repeated in one object", key)
			}
		}
		if n == maxKeysPerObject {
			return c.errf("more than %d keys in one object", maxKeysPerObject)
		}
		keys[n] = key
		n++
		c.space()
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return c.errf("want ':' after key %q", key)
		}
		c.i++
		c.space()
		start := c.i
		if err := c.value(depth, key); err != nil {
			return err
		}
		if depth == 1 && c.top != nil {
			c.top(key, start, c.i)
		}
		c.space()
		if c.i >= len(c.b) {
			return c.errf("unexpected end of input in an object")
		}
		switch c.b[c.i] {
		case ',':
			c.i++
		case '}':
			c.i++
			return nil
		default:
			return c.errf("want ',' or '}' in an object")
		}
	}
}

// key reads an object key, which must be a lower-case ASCII name.
func (c *jsonChecker) key() (string, error) {
	if c.i >= len(c.b) || c.b[c.i] != '"' {
		return "", c.errf("want a key")
	}
	start := c.i + 1
	j := start
	for j < len(c.b) && j-start <= 64 {
		ch := c.b[j]
		if ch == '"' {
			break
		}
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
			c.i = j
			return "", c.errf("key character %q: keys are lower-case ASCII names", ch)
		}
		j++
	}
	if j >= len(c.b) || c.b[j] != '"' || j == start {
		c.i = j
		return "", c.errf("bad key: empty, unterminated or longer than 64 bytes")
	}
	c.i = j + 1
	return string(c.b[start:j]), nil
}

func (c *jsonChecker) array(depth int, key string) error {
	if depth > c.lim.maxDepth {
		return c.errf("nested deeper than %d", c.lim.maxDepth)
	}
	limit, ok := c.lim.arrayCaps[key]
	if !ok {
		limit = c.lim.defaultArrayCap
	}
	c.i++ // [
	c.space()
	if c.i < len(c.b) && c.b[c.i] == ']' {
		c.i++
		return nil
	}
	for n := 1; ; n++ {
		if n > limit {
			return c.errf("array %q has more than %d elements", key, limit)
		}
		c.space()
		if err := c.value(depth, ""); err != nil {
			return err
		}
		c.space()
		if c.i >= len(c.b) {
			return c.errf("unexpected end of input in an array")
		}
		switch c.b[c.i] {
		case ',':
			c.i++
		case ']':
			c.i++
			return nil
		default:
			return c.errf("want ',' or ']' in an array")
		}
	}
}

func (c *jsonChecker) str() error {
	c.i++ // "
	for c.i < len(c.b) {
		ch := c.b[c.i]
		switch {
		case ch == '"':
			c.i++
			return nil
		case ch == '\\':
			if c.i+1 >= len(c.b) {
				return c.errf("unterminated escape")
			}
			switch c.b[c.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				c.i += 2
			case 'u':
				if c.i+6 > len(c.b) || !isHex4(c.b[c.i+2:c.i+6]) {
					return c.errf("bad \\u escape")
				}
				c.i += 6
			default:
				return c.errf("bad escape \\%c", c.b[c.i+1])
			}
		case ch < 0x20:
			return c.errf("control character in a string")
		default:
			c.i++
		}
	}
	return c.errf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, ch := range b {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F') {
			return false
		}
	}
	return true
}

func (c *jsonChecker) number() error {
	start := c.i
	if c.b[c.i] == '-' {
		c.i++
	}
	digits := func() int {
		n := 0
		for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
			c.i++
			n++
		}
		return n
	}
	if c.i < len(c.b) && c.b[c.i] == '0' {
		c.i++
	} else if digits() == 0 {
		return c.errf("bad number")
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if digits() == 0 {
			return c.errf("bad number")
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if digits() == 0 {
			return c.errf("bad number")
		}
	}
	if c.i-start > 32 {
		return c.errf("number longer than 32 characters")
	}
	return nil
}

func (c *jsonChecker) literal(word string) error {
	if len(c.b)-c.i < len(word) || string(c.b[c.i:c.i+len(word)]) != word {
		return c.errf("bad literal")
	}
	c.i += len(word)
	return nil
}
