package secchan

// SessionSecretsForTest returns copies of every secret a requester's
// session holds right now, so tests can check none of them leaks.
func SessionSecretsForTest(ss *SecureSession) [][]byte {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	var out [][]byte
	add := func(bs ...[]byte) {
		for _, b := range bs {
			if len(b) > 0 {
				out = append(out, append([]byte(nil), b...))
			}
		}
	}
	if d := ss.s.data; d != nil {
		add(d.ReqSecret, d.RspSecret, d.ExportMaster, d.Req.Key, d.Req.IV, d.Rsp.Key, d.Rsp.IV)
	}
	if h := ss.s.hs; h != nil {
		add(h.ReqSecret, h.RspSecret, h.ReqFinished, h.RspFinished, h.Req.Key, h.Rsp.Key)
	}
	return out
}
