package ide

// keyTable holds the IDE keys of one port: per stream ID, key set,
// direction and sub-stream, whether a key is programmed, the key and IFV,
// and which key set is in use (after K_SET_GO). Both the device-side
// responder and the simulated root port keep one. Callers lock.

// LinkKey is one programmed key as an end of a link uses it. Gen changes
// whenever the slot is programmed again, so a link end restarts its
// invocation counter for a new key.
type LinkKey struct {
	Key [KeySize]byte
	IFV uint64
	Gen uint64
}

// Zero clears the key.
func (k *LinkKey) Zero() { clear(k.Key[:]); k.IFV = 0 }

// KeySource is what one end of a simulated link reads: the keys a port
// holds. It is an in-process interface: nothing here goes over any wire.
type KeySource interface {
	// ActiveKeySet is the key set in use for traffic in direction d on the
	// sub-stream (the last one that went GO and was not stopped).
	ActiveKeySet(stream uint8, d Direction, s SubStream) (KeySet, bool)
	// LinkKey returns a copy of a programmed key; the caller zeroes it.
	LinkKey(stream uint8, ks KeySet, d Direction, s SubStream) (LinkKey, bool)
}

type keySlot struct {
	programmed bool
	k          LinkKey
}

type subState struct {
	slots  [2]keySlot // by KeySet
	active int8       // KeySet in use, -1 for none
}

type streamKeys [2][3]subState // [Direction][SubStream]

type keyTable struct {
	streams map[uint8]*streamKeys
	gen     uint64
}

func (t *keyTable) sub(stream uint8, d Direction, s SubStream, create bool) *subState {
	if t.streams == nil {
		if !create {
			return nil
		}
		t.streams = map[uint8]*streamKeys{}
	}
	st := t.streams[stream]
	if st == nil {
		if !create {
			return nil
		}
		st = &streamKeys{}
		for d := range st {
			for s := range st[d] {
				st[d][s].active = -1
			}
		}
		t.streams[stream] = st
	}
	return &st[d][s]
}

// program stores a key; a key set in use cannot be reprogrammed.
func (t *keyTable) program(stream uint8, ks KeySet, d Direction, s SubStream, key *[KeySize]byte, ifv uint64) bool {
	ss := t.sub(stream, d, s, true)
	if ss.active == int8(ks) {
		return false
	}
	t.gen++
	ss.slots[ks] = keySlot{programmed: true, k: LinkKey{Key: *key, IFV: ifv, Gen: t.gen}}
	return true
}

// goKey puts a programmed key set in use.
func (t *keyTable) goKey(stream uint8, ks KeySet, d Direction, s SubStream) bool {
	ss := t.sub(stream, d, s, false)
	if ss == nil || !ss.slots[ks].programmed {
		return false
	}
	ss.active = int8(ks)
	return true
}

// stop takes a key set out of use and zeroes its key.
func (t *keyTable) stop(stream uint8, ks KeySet, d Direction, s SubStream) {
	ss := t.sub(stream, d, s, false)
	if ss == nil {
		return
	}
	if ss.active == int8(ks) {
		ss.active = -1
	}
	ss.slots[ks].k.Zero()
	ss.slots[ks] = keySlot{}
}

func (t *keyTable) activeKeySet(stream uint8, d Direction, s SubStream) (KeySet, bool) {
	ss := t.sub(stream, d, s, false)
	if ss == nil || ss.active < 0 {
		return 0, false
	}
	return KeySet(ss.active), true
}

func (t *keyTable) linkKey(stream uint8, ks KeySet, d Direction, s SubStream) (LinkKey, bool) {
	ss := t.sub(stream, d, s, false)
	if ss == nil || !ss.slots[ks].programmed {
		return LinkKey{}, false
	}
	return ss.slots[ks].k, true
}

// zero forgets every key.
func (t *keyTable) zero() {
	for _, st := range t.streams {
		for d := range st {
			for s := range st[d] {
				for k := range st[d][s].slots {
					st[d][s].slots[k].k.Zero()
				}
			}
		}
	}
	t.streams = nil
}
