#!/usr/bin/env bash
# The demo: an emulated VF (devsim), the host shim in front of it, and
# probes through the shim (DOE discovery, then SPDM authentication and
# signed measurements), all on unix sockets under out/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

out=out/demo
mkdir -p "$out"
rm -f "$out"/*.sock
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # wait_for SOCKET: up to 10 s for a listener to appear
  for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
  echo "demo: $1 did not appear; see $out/*.log" >&2
  return 1
}

rm -f "$out/devsim-root.pem"
bin/devattest devsim --listen "unix:$out/devsim.sock" --ca-out "$out/devsim-root.pem" 2>"$out/devsim.log" &
pids+=($!)
wait_for "$out/devsim.sock"

bin/devattest-shim --listen "unix:$out/shim.sock" --device "socket:unix:$out/devsim.sock" 2>"$out/shim.log" &
pids+=($!)
wait_for "$out/shim.sock"

echo "== DOE discovery through the shim (devsim behind it)"
bin/devattest probe --connect "unix:$out/shim.sock" --discovery
echo
bin/devattest probe --connect "unix:$out/shim.sock" --discovery --json > "$out/discovery.json"
echo "   (as JSON in $out/discovery.json)"
echo
echo "== SPDM through the shim: authenticate the device against its root, read signed measurements"
bin/devattest probe --connect "unix:$out/shim.sock" --trust-anchor "$out/devsim-root.pem"
bin/devattest probe --connect "unix:$out/shim.sock" --trust-anchor "$out/devsim-root.pem" --json > "$out/spdm.json"
echo "   (as JSON in $out/spdm.json)"
echo
echo "== a secure session with IDE keys, through the shim"
echo "   (the shim forwards only discovery and CMA types, so the simulated link check is skipped here)"
bin/devattest probe --connect "unix:$out/shim.sock" --trust-anchor "$out/devsim-root.pem" --session --ide | sed -n '/IDE /,/END_SESSION/p'
echo
echo "== the same straight to devsim, where the simulated IDE link carries protected TLPs"
bin/devattest probe --connect "unix:$out/devsim.sock" --trust-anchor "$out/devsim-root.pem" --session --ide | sed -n '/IDE /,/session /p'
echo
echo "== the shim refuses a DOE type it does not forward (CXL CDAT):"
if bin/devattest probe --connect "unix:$out/shim.sock" --raw 981e02000300000000000000 2>&1; then
  echo "demo: the shim forwarded a disallowed type" >&2
  exit 1
fi
echo
echo "audit log: $out/shim.log"
