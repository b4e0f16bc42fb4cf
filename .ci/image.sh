#!/usr/bin/env bash
# Build the serving image without a Docker engine: buildah (root, --isolation chroot,
# vfs storage) on a stand-in for python:3.11-slim-bookworm made from Debian packages
# with debootstrap (the public image cannot be pulled here). The base is made once and
# kept in buildah's storage under a fixed name; later runs reuse it (and buildah's
# layer cache reuses the dependency layers).
#
#   .ci/image.sh [CONTEXT] [TAG]      # CONTEXT: a project after `make run` (default: .)
#   .ci/image.sh --base-only          # only make (or find) the cached base; prints its name
#
# Environment: IMAGE_BASE (use this base instead, e.g. a real python image in storage),
# IMAGE_STANDIN (the name the stand-in base is made and cached under),
# DEBIAN_MIRROR (default: on Debian the host's first apt URI, else deb.debian.org),
# STORAGE_DRIVER (default vfs), BUILD_ARGS (extra `buildah bud` arguments).
set -euo pipefail

export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
# The base's recipe version: bump when the recipe below changes, so a stale cache is not reused.
BASE_RECIPE=1
STANDIN="${IMAGE_STANDIN:-localhost/mlops-template-python-standin:3.11-bookworm-r${BASE_RECIPE}}"

die() { echo "image.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (buildah --isolation chroot and debootstrap)"
command -v buildah >/dev/null || die "buildah is not installed (apt-get install -y buildah)"

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  # The host's own mirror only on Debian (an Ubuntu mirror has no bookworm).
  grep -qs '^ID=debian$' /etc/os-release || { echo http://deb.debian.org/debian; return; }
  uri="$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1 || true)"
  [ -n "$uri" ] || uri="$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

# One maker at a time (.ci/run makes the base in the background while the tests start):
# a second run waits for the lock, then finds the base made.
make_base() { ( flock 9 && make_base_locked ) 9>"${TMPDIR:-/tmp}/mlops-template-standin.lock"; }

make_base_locked() {
  if buildah inspect --type image "$STANDIN" >/dev/null 2>&1; then
    echo "image.sh: base $STANDIN (cached)" >&2
    return
  fi
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || die "debootstrap is not installed (apt-get install -y debootstrap)"
  local root ctr mnt start
  start=$SECONDS
  root="$(mktemp -d /var/tmp/mlops-standin.XXXXXX)"
  trap 'rm -rf "$root"' RETURN
  echo "image.sh: making base $STANDIN with debootstrap from $(mirror) (once; minutes)" >&2
  PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,passwd,ca-certificates \
    bookworm "$root" "$(mirror)" >&2
  # What the official image allows: pip installs into the system Python; `python` exists.
  rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
  ln -sf python3 "$root/usr/bin/python"
  # Trust what the host trusts (a TLS-inspecting proxy's CA, if any).
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
    "$root"/usr/share/man "$root"/usr/share/locale
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  cp -a "$root"/. "$mnt"/
  buildah umount "$ctr" >/dev/null
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    --cmd python3 "$ctr"
  buildah commit --rm --quiet "$ctr" "$STANDIN" >/dev/null
  echo "image.sh: base made in $((SECONDS - start)) s" >&2
}

if [ "${1:-}" = "--base-only" ]; then
  if [ -n "${IMAGE_BASE:-}" ]; then echo "$IMAGE_BASE"; else make_base; echo "$STANDIN"; fi
  exit 0
fi

CONTEXT="${1:-.}"
TAG="${2:-localhost/mlops-template-model-api:dev}"
for f in params.yaml data/schema.json models/model.onnx models/train_info.json eval/metrics.json; do
  [ -f "$CONTEXT/$f" ] || die "$CONTEXT/$f is missing: run \`make run\` first"
done
BASE="${IMAGE_BASE:-}"
if [ -z "$BASE" ]; then make_base; BASE="$STANDIN"; fi

# The package index settings of the host reach the build (proxies and index URLs only;
# the CA bundle is already in the base).
proxy_args=()
for name in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy \
    PIP_INDEX_URL PIP_EXTRA_INDEX_URL UV_INDEX_URL UV_DEFAULT_INDEX UV_EXTRA_INDEX_URL PIP_DEFAULT_TIMEOUT; do
  if [ -n "${!name:-}" ]; then proxy_args+=(--build-arg "$name=${!name}"); fi
done
# The image TAG named before this build: removed below once nothing names it any more, so
# rebuilding one tag does not pile up untagged images in storage.
previous="$(buildah images --no-trunc --format '{{.ID}}' "$TAG" 2>/dev/null || true)"
start=$SECONDS
# --format docker keeps the HEALTHCHECK (the OCI format has none); --force-rm removes the
# intermediate containers of a failed build too.
# shellcheck disable=SC2086
buildah bud --isolation chroot --network host --layers --format docker --force-rm \
  --build-arg "PYTHON_IMAGE=$BASE" \
  --build-arg "MODEL_VERSION=${MODEL_VERSION:-dev}" \
  --build-arg "GIT_COMMIT=${GIT_COMMIT:-$(git -C "$CONTEXT" rev-parse HEAD 2>/dev/null || echo unknown)}" \
  "${proxy_args[@]}" ${BUILD_ARGS:-} \
  -f "$CONTEXT/Dockerfile" -t "$TAG" "$CONTEXT"
echo "image.sh: built $TAG in $((SECONDS - start)) s" >&2
current="$(buildah images --no-trunc --format '{{.ID}}' "$TAG")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  # Fails harmlessly when the old image is still tagged or used by a container.
  buildah rmi "$previous" >/dev/null 2>&1 || true
fi
