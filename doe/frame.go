package doe

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Socket framing between emulator processes, as DMTF spdm-emu
// (spdm_emu/spdm_emu_common/command.h) and QEMU's backends/spdm-socket.c
// speak it: command (u32 BE), transport type (u32 BE), payload size
// (u32 BE), payload. With TransportPCIDOE the payload of a NORMAL frame is
// one whole DOE data object.

// Socket commands.
const (
	CommandNormal   uint32 = 0x0001
	CommandContinue uint32 = 0xFFFD
	CommandShutdown uint32 = 0xFFFE
	CommandUnknown  uint32 = 0xFFFF
	CommandTest     uint32 = 0xDEAD
)

// Socket transport types.
const (
	TransportNone   uint32 = 0
	TransportMCTP   uint32 = 1
	TransportPCIDOE uint32 = 2
	TransportTCP    uint32 = 3
)

// DefaultPort is the spdm-emu platform port.
const DefaultPort = 2323

// frameHeaderSize is the size of the three u32 header fields.
const frameHeaderSize = 12

// MaxFramePayload bounds a frame's payload: one maximal DOE object.
const MaxFramePayload = MaxObjectSize

// Frame is one message of the socket framing.
type Frame struct {
	Command   uint32
	Transport uint32
	Payload   []byte
}

// CommandName names a socket command for messages and logs.
func CommandName(c uint32) string {
	switch c {
	case CommandNormal:
		return "NORMAL"
	case CommandContinue:
		return "CONTINUE"
	case CommandShutdown:
		return "SHUTDOWN"
	case CommandUnknown:
		return "UNKNOWN"
	case CommandTest:
		return "TEST"
	}
	return fmt.Sprintf("0x%04x", c)
}

// AppendFrame appends the wire form of f to b.
func AppendFrame(b []byte, f Frame) []byte {
	b = binary.BigEndian.AppendUint32(b, f.Command)
	b = binary.BigEndian.AppendUint32(b, f.Transport)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Payload)))
	return append(b, f.Payload...)
}

// WriteFrame writes f in a single Write call, so a frame is never split
// across TCP segments by us (and never interleaved with another writer's).
func WriteFrame(w io.Writer, f Frame) error {
	if len(f.Payload) > MaxFramePayload {
		return fmt.Errorf("%w: frame payload of %d bytes exceeds %d", ErrTooLarge, len(f.Payload), MaxFramePayload)
	}
	_, err := w.Write(AppendFrame(make([]byte, 0, frameHeaderSize+len(f.Payload)), f))
	return err
}

// ReadFrame reads one frame. It checks the payload size against
// maxPayload before allocating, so a peer cannot make us reserve 4 GiB.
// A clean end of stream before the first byte returns io.EOF; a frame cut
// short returns io.ErrUnexpectedEOF wrapped in ErrMalformed.
func ReadFrame(r io.Reader, maxPayload int) (Frame, error) {
	var h [frameHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return Frame{}, io.EOF
		}
		return Frame{}, fmt.Errorf("%w: truncated frame header: %w", ErrMalformed, err)
	}
	f := Frame{
		Command:   binary.BigEndian.Uint32(h[0:]),
		Transport: binary.BigEndian.Uint32(h[4:]),
	}
	size := binary.BigEndian.Uint32(h[8:])
	if printable(h[:]) {
		// "HTTP/1.1 400", "SSH-2.0-Open": a text protocol, not the framing.
		return Frame{}, fmt.Errorf("%w: the peer does not speak the DOE socket framing (it sent %q)", ErrMalformed, h[:])
	}
	if uint64(size) > uint64(maxPayload) {
		return Frame{}, fmt.Errorf("%w: frame payload size %d exceeds the bound of %d", ErrTooLarge, size, maxPayload)
	}
	f.Payload = make([]byte, size)
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("%w: truncated frame payload (%d bytes announced): %w", ErrMalformed, size, err)
	}
	return f, nil
}

// printable reports whether a frame header is all printable ASCII text,
// which no frame header is: the commands and transport types have zero
// high bytes.
func printable(h []byte) bool {
	for _, c := range h {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// DecodeFrame parses exactly one frame from b (used by the fuzz target and
// by tests; the stream reader is ReadFrame).
func DecodeFrame(b []byte, maxPayload int) (Frame, error) {
	if len(b) < frameHeaderSize {
		return Frame{}, fmt.Errorf("%w: %d bytes is shorter than the 12-byte frame header", ErrMalformed, len(b))
	}
	size := binary.BigEndian.Uint32(b[8:])
	if uint64(size) > uint64(maxPayload) {
		return Frame{}, fmt.Errorf("%w: frame payload size %d exceeds the bound of %d", ErrTooLarge, size, maxPayload)
	}
	if uint64(len(b)-frameHeaderSize) != uint64(size) {
		return Frame{}, fmt.Errorf("%w: frame announces %d payload bytes, %d present", ErrMalformed, size, len(b)-frameHeaderSize)
	}
	return Frame{
		Command:   binary.BigEndian.Uint32(b[0:]),
		Transport: binary.BigEndian.Uint32(b[4:]),
		Payload:   append([]byte(nil), b[frameHeaderSize:]...),
	}, nil
}
