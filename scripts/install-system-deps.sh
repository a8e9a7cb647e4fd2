#!/usr/bin/env bash
# Installs the Debian packages the tests use, when we are root and they are missing.
# Not root: prints what is missing; tests that need those tools skip themselves visibly.
set -euo pipefail
pkgs=(qemu-utils nbdkit libnbd-bin chromium fuse3 e2fsprogs util-linux fdisk gcc libc6-dev libxml2-utils shellcheck openssl dmsetup
  qemu-system-x86 linux-image-cloud-amd64 linux-headers-cloud-amd64 busybox-static kmod cpio xfsprogs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: missing system packages (tests needing them will skip): ${missing[*]}" >&2
fi
