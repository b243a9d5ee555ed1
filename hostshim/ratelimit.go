package hostshim

import (
	"time"
)

// tokenBucket limits a guest's frames: it holds up to burst tokens,
// gains rate tokens per second, and each frame takes one. Not safe for
// concurrent use; the Mediator guards its bucket with its mutex.
type tokenBucket struct {
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) *tokenBucket {
	b := max(float64(burst), 1)
	return &tokenBucket{rate: rate, burst: b, tokens: b, last: now}
}

// allow takes a token if there is one.
func (b *tokenBucket) allow(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
