#!/usr/bin/env bash
# Build the locally made stand-ins for the upstream images the lab uses, because CI
# machines reach no container registry (Docker Hub, quay.io, ghcr.io are unreachable):
#
#   mlops-lab-ci/python:3.11-bookworm  for python:3.11.14-slim-bookworm   (debootstrap + docker import)
#   mlops-lab-ci/postgres:15-bookworm  for postgres:15.14-bookworm        (.ci/standins/postgres)
#   mlops-lab-ci/registry:2.8          for registry:2.8.3                 (.ci/standins/registry)
#   mlops-lab-ci/seaweedfs:4.48        for chrislusf/seaweedfs:4.48       (.ci/standins/seaweedfs)
#   mlops-lab-ci/nginx:1.27            for nginxinc/nginx-unprivileged:1.27-alpine (.ci/standins/nginx)
#
# The Python base is built only when missing (`docker image inspect`), the Dockerfile
# stand-ins every time (cached layers make that fast); set
# STANDINS_REBUILD=1 to rebuild them all. Needs a running engine with buildx
# (.ci/install-docker.sh) and root (or sudo) for debootstrap.
#
# Environment overrides:
#   DEBIAN_MIRROR           Debian mirror (default: the plain-HTTP mirror the host uses)
#   DEBIAN_SECURITY_MIRROR  security mirror written into the base image's apt sources
#   PIP_CA_BUNDLE           CA bundle handed to builds that use pip, as BuildKit secret
#                           `pip_ca` (default /etc/ssl/certs/ca-certificates.crt if present);
#                           never stored in an image
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STANDINS="$HERE/standins"

PY_IMAGE="mlops-lab-ci/python:3.11-bookworm"
PG_IMAGE="mlops-lab-ci/postgres:15-bookworm"
REG_IMAGE="mlops-lab-ci/registry:2.8"
SW_IMAGE="mlops-lab-ci/seaweedfs:4.48"
NGINX_IMAGE="mlops-lab-ci/nginx:1.27"

PIP_CA_BUNDLE="${PIP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
REBUILD="${STANDINS_REBUILD:-0}"
export DOCKER_BUILDKIT=1
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf '[build-standins] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# First plain-HTTP URI of the host's apt sources whose path ends in $1 (debian|debian-security).
host_mirror() {
  local suffix="$1" files=() f
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ "${#files[@]}" -gt 0 ] || return 0
  { grep -hE '^[[:space:]]*URIs:' "${files[@]}" | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -hE '^[[:space:]]*deb[[:space:]]' "${files[@]}" | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
  } 2>/dev/null | grep -E "^http://[^ ]*/${suffix}/?\$" | head -n1 | sed 's:/*$::' || true
}
MIRROR="${DEBIAN_MIRROR:-$(host_mirror debian)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(host_mirror debian-security)}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

docker info >/dev/null 2>&1 || die "docker engine not reachable (run .ci/install-docker.sh first)"
docker buildx version >/dev/null 2>&1 || die "docker buildx plugin missing (run .ci/install-docker.sh first)"

have_image() { [ "$REBUILD" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

SUMMARY=()
CLEANUP_DIR=""
cleanup() { if [ -n "$CLEANUP_DIR" ]; then as_root rm -rf "$CLEANUP_DIR" "$CLEANUP_DIR.log"; fi; }
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ------------------------------------------------------------------ python base
build_python_base() {
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  local rootfs
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/standin-rootfs.XXXXXX")"
  CLEANUP_DIR="$rootfs"

  log "debootstrap bookworm from $MIRROR"
  as_root debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
      tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  rm -f "$rootfs.log"

  # Make it look like Debian's official slim images: deb822 sources incl. updates and
  # security, no service starts during apt installs, no apt caches, no docs/man pages.
  as_root sh -eu -s "$rootfs" "$MIRROR" "$SECURITY_MIRROR" <<'SETUP'
r="$1"; mirror="$2"; security="$3"
rm -f "$r/etc/apt/sources.list"
cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOT
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
printf '#!/bin/sh\n# no services start inside image builds\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 0755 "$r/usr/sbin/policy-rc.d"
cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOT
echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
cat >"$r/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOT'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOT
find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$r/usr/share/groff/"* "$r/usr/share/info/"* "$r/usr/share/lintian/"* "$r/usr/share/linda/"* "$r/usr/share/man/"*
find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$r/var/cache/apt/"*.bin "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"* "$r/var/log/"*.log
: >"$r/etc/resolv.conf"
echo localhost >"$r/etc/hostname"
# `python` like the upstream image (which has /usr/local/bin/python)
ln -sf /usr/bin/python3 "$r/usr/local/bin/python"
SETUP

  log "importing rootfs as $PY_IMAGE"
  as_root tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap bookworm minbase + python3, stand-in for python:3.11.14-slim-bookworm" \
    - "$PY_IMAGE" >/dev/null

  as_root rm -rf "$rootfs"; CLEANUP_DIR=""

  # Smoke test what the lab's Dockerfiles rely on.
  if ! docker run --rm "$PY_IMAGE" sh -euc '
        python3 -m venv /opt/venv
        /opt/venv/bin/python -m pip --version
        useradd --create-home --uid 10001 app && id app
        python3 -c "import ssl, sqlite3, venv; print(\"python\", __import__(\"sys\").version.split()[0])"
      ' >&2; then
    docker image rm "$PY_IMAGE" >/dev/null 2>&1 || true
    die "$PY_IMAGE failed its smoke test"
  fi
}

# ------------------------------------------------------------------ Dockerfile stand-ins
build_dockerfile() { # build_dockerfile TAG DIR
  local tag="$1" dir="$2" args=(--build-arg "BASE_IMAGE=$PY_IMAGE")
  if [ -r "$PIP_CA_BUNDLE" ]; then args+=(--secret "id=pip_ca,src=$PIP_CA_BUNDLE"); fi
  log "docker build $tag from ${dir#"$STANDINS/"}"
  docker build --progress=plain "${args[@]}" -t "$tag" "$dir"
}

step() { # step TAG BUILD-COMMAND...
  local tag="$1" t0 dt; shift
  # Dockerfile stand-ins are always built: the build cache makes an unchanged one take
  # seconds, and a changed Dockerfile or config must never be skipped for an old image.
  if [ "$1" != build_dockerfile ] && have_image "$tag"; then
    log "$tag present, skipped"
    SUMMARY+=("$(printf '%-36s present (skipped)' "$tag")")
    return 0
  fi
  t0="$(now)"
  "$@"
  dt="$(elapsed "$t0")"
  log "$tag built in ${dt}s"
  SUMMARY+=("$(printf '%-36s built in %ss' "$tag" "$dt")")
}

T0="$(now)"
step "$PY_IMAGE"  build_python_base
step "$PG_IMAGE"  build_dockerfile "$PG_IMAGE"  "$STANDINS/postgres"
step "$REG_IMAGE" build_dockerfile "$REG_IMAGE" "$STANDINS/registry"
step "$SW_IMAGE"  build_dockerfile "$SW_IMAGE"  "$STANDINS/seaweedfs"
step "$NGINX_IMAGE" build_dockerfile "$NGINX_IMAGE" "$STANDINS/nginx"

log "summary:"
for line in "${SUMMARY[@]}"; do log "  $line"; done
log "total $(elapsed "$T0")s"
