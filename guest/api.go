package guest

// The daemon's HTTP API:
//
//	GET /v1/report?nonce=HEX  a fresh combined report (evidence JSON) for
//	                          the owner's nonce (16 to 64 bytes)
//	GET /v1/devices           every device's state and events
//	GET /healthz              200 when every required device is ok, else
//	                          503 naming the ones that are not

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/devattest/devattest/evidence"
)

// API timeouts and limits.
const (
	apiReportTimeout  = 2 * time.Minute
	apiMaxHeaderBytes = 8 << 10
)

// Handler returns the service's HTTP API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/report", s.handleReport)
	mux.HandleFunc("GET /v1/devices", s.handleDevices)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	return mux
}

// NewHTTPServer returns an http.Server for the API with bounded request
// handling: header size and read, write and idle timeouts.
func (s *Service) NewHTTPServer() *http.Server {
	return &http.Server{
		Handler:           http.TimeoutHandler(s.Handler(), apiReportTimeout, "request timed out\n"),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      apiReportTimeout + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    apiMaxHeaderBytes,
	}
}

// ListenUnix listens on a unix socket at path with mode 0660, replacing a
// stale socket left by an earlier run.
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// ListenTCP listens on addr, which must be loopback unless allowRemote.
func ListenTCP(addr string, allowRemote bool) (net.Listener, error) {
	if err := checkTCPAddr(addr, allowRemote); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

func (s *Service) handleReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h := q.Get("nonce")
	if h == "" || len(q["nonce"]) != 1 {
		httpError(w, http.StatusBadRequest, "give exactly one nonce: /v1/report?nonce=HEX (%d to %d bytes)", MinReportNonce, MaxReportNonce)
		return
	}
	if len(h) > 2*MaxReportNonce {
		httpError(w, http.StatusBadRequest, "nonce is %d hex digits; want %d to %d bytes", len(h), MinReportNonce, MaxReportNonce)
		return
	}
	nonce, err := hex.DecodeString(h)
	if err != nil {
		httpError(w, http.StatusBadRequest, "nonce is not hex: %v", err)
		return
	}
	if len(nonce) < MinReportNonce || len(nonce) > MaxReportNonce {
		httpError(w, http.StatusBadRequest, "nonce is %d bytes; want %d to %d bytes", len(nonce), MinReportNonce, MaxReportNonce)
		return
	}
	// A client that goes away must not cut a device exchange short (that
	// would cost the device its session): the device I/O runs to its own
	// deadlines.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), apiReportTimeout)
	defer cancel()
	rep, err := s.Report(ctx, nonce)
	if rep == nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	b, merr := evidence.Marshal(rep)
	if merr != nil {
		httpError(w, http.StatusInternalServerError, "%v", merr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err != nil { // the platform report failed: the report says why
		w.WriteHeader(http.StatusInternalServerError)
	}
	_, _ = w.Write(b)
}

func (s *Service) handleDevices(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Devices []DeviceState `json:"devices"`
	}{s.Devices()})
}

func (s *Service) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if bad := s.Unhealthy(); len(bad) > 0 {
		httpError(w, http.StatusServiceUnavailable, "required devices not ok: %s", strings.Join(bad, ", "))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), code)
}
