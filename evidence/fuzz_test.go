package evidence

import (
	"bytes"
	"crypto/sha512"
	"testing"
)

func sha512Sum(b []byte) [64]byte { return sha512.Sum512(b) }

// FuzzUnmarshal: whatever the input, Unmarshal either refuses it with a
// *DecodeError or returns a report that validates, whose evidence is
// consistent, and that survives a Marshal/Unmarshal round trip with the
// same carried bytes and user data.
func FuzzUnmarshal(f *testing.F) {
	if b, err := Marshal(sampleReport(f)); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":"devattest-report/1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Unmarshal(b)
		if err != nil {
			if r != nil {
				t.Fatal("a report returned with an error")
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted report does not validate: %v", err)
		}
		out, err := Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		r2, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("re-encoded report refused: %v", err)
		}
		if UserData(r.Nonce, r.Evidence) != UserData(r2.Nonce, r2.Evidence) {
			t.Fatal("user data changed across a round trip")
		}
		for i := range r.Evidence {
			if !bytes.Equal(r.Evidence[i], r2.Evidence[i]) {
				t.Fatalf("evidence %d changed across a round trip", i)
			}
		}
	})
}
