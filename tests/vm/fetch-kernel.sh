#!/usr/bin/env bash
# Puts a Debian kernel and its CXL modules where tests/vm looks for them
# (default out/vm-kernel under the repo; or the directory given). Nothing is
# installed: apt-get download fetches the linux-image-amd64 metapackage and
# the versioned image it depends on (whose ABI number changes with point
# releases, so it is read from the metapackage), and only boot/vmlinuz-*
# and the CXL modules are extracted. Needs apt-get and dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/vm-kernel}
if compgen -G "$out/boot/vmlinuz-*" >/dev/null &&
   compgen -G "$out/lib/modules/*/kernel/drivers/cxl/cxl_pci.ko" >/dev/null; then
  echo "kernel already in $out"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt's _apt user downloads into it
(cd "$work" && apt-get download -q linux-image-amd64)
image=$(dpkg-deb -f "$work"/linux-image-amd64_*.deb Depends | grep -o 'linux-image-[0-9][^ ,]*-amd64' | head -n1)
if [ -z "$image" ]; then
  echo "fetch-kernel: linux-image-amd64 names no linux-image-*-amd64 dependency" >&2
  exit 1
fi
(cd "$work" && apt-get download -q "$image")
mkdir -p "$work/x"
dpkg-deb --fsys-tarfile "$work"/"$image"_*.deb |
  tar -x -C "$work/x" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/cxl/*.ko'
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$work/x" "$out"
echo "kernel: $(ls "$out"/boot/vmlinuz-*)"
