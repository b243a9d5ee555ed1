package secchan

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"testing"
	"time"
)

// BenchmarkSecuredVsRawAEAD measures, in one run, sealing and opening a
// message through the session record layer and the same AES-256-GCM seal
// and open done directly, and reports secured/raw throughput. Both sides
// produce fresh output buffers, as a sender and receiver must; the record
// layer adds the header, the length fields and the counter nonce.
func BenchmarkSecuredVsRawAEAD(b *testing.B) {
	for _, size := range []int{256, 4096} {
		name := "256B"
		if size == 4096 {
			name = "4KiB"
		}
		b.Run(name, func(b *testing.B) {
			req, rsp := sessionPair(b, AEADAES256GCM)
			establish(b, req, rsp)
			msg := bytes.Repeat([]byte{0xA5}, size)
			block, _ := aes.NewCipher(bytes.Repeat([]byte{7}, 32))
			raw, _ := cipher.NewGCM(block)
			nonce := make([]byte, IVSize)
			aad := make([]byte, securedHeaderSize)
			b.SetBytes(int64(size))
			var secured, direct time.Duration
			for b.Loop() {
				t0 := time.Now()
				rec, err := req.Seal(msg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rsp.Open(rec); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				ct := raw.Seal(nil, nonce, msg, aad)
				if _, err := raw.Open(nil, nonce, ct, aad); err != nil {
					b.Fatal(err)
				}
				direct += time.Since(t1)
				secured += t1.Sub(t0)
			}
			b.ReportMetric(float64(direct)/float64(secured), "secured/raw")
		})
	}
}
