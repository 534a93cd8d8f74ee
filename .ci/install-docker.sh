#!/usr/bin/env bash
# Get a working Docker engine + Compose v2 + buildx on a Debian 12 CI machine.
#
# Idempotent and fast when everything is already there:
#   * engine answering, `docker compose` v2 and `docker buildx` present -> prints versions, exits.
#   * otherwise installs only what is missing:
#       - docker.io (Engine 20.10) + debootstrap from the machine's bookworm sources,
#       - Compose v2 and buildx CLI plugins from Debian 13 (trixie) packages, fetched with
#         a private apt configuration (the host's sources are left untouched),
#       - starts dockerd in the background (log: /var/log/dockerd-ci.log) and waits for it.
#
# Environment overrides:
#   DEBIAN_MIRROR      Debian mirror for trixie (default: the plain-HTTP mirror the host uses)
#   DOCKER_PLUGIN_DIR  where to install the CLI plugins (default /usr/local/lib/docker/cli-plugins)
#   DOCKERD_LOG        dockerd log file (default /var/log/dockerd-ci.log)
#   DOCKERD_WAIT       seconds to wait for the engine (default 60)
set -euo pipefail

PLUGIN_DIR="${DOCKER_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd-ci.log}"
DOCKERD_WAIT="${DOCKERD_WAIT:-60}"

log() { printf '[install-docker] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
# dockerd, iptables etc. live in /usr/sbin, which is not always on a non-root PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

engine_ok()  { docker info >/dev/null 2>&1; }
compose_ok() { docker compose version 2>/dev/null | grep -Eq 'version v?2\.'; }
buildx_ok()  { docker buildx version >/dev/null 2>&1; }

print_versions() {
  docker version
  docker compose version
  docker buildx version
}

# The plain-HTTP Debian mirror the host already uses (deb822 *.sources or one-line *.list).
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "${DEBIAN_MIRROR%/}"; return; fi
  local files=() f uri=""
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  if [ "${#files[@]}" -gt 0 ]; then
    uri="$(
      { grep -hE '^[[:space:]]*URIs:' "${files[@]}" | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
        grep -hE '^[[:space:]]*deb[[:space:]]' "${files[@]}" | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
      } 2>/dev/null | grep -E '^http://[^ ]*/debian/?$' | head -n1 || true
    )"
  fi
  uri="${uri:-http://deb.debian.org/debian}"
  echo "${uri%/}"
}

# ---------------------------------------------------------------- fast path
if engine_ok && compose_ok && buildx_ok; then
  log "engine, compose v2 and buildx already available: nothing to do"
  print_versions
  exit 0
fi

# Everything below installs packages or starts the daemon: needs root.
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "must run as root (or with sudo available)"
  log "re-running as root via sudo"
  exec sudo -E bash "$0" "$@"
fi

# ---------------------------------------------------------------- 1. packages
pkgs=()
if ! engine_ok && ! command -v dockerd >/dev/null 2>&1; then pkgs+=(docker.io); fi
command -v debootstrap >/dev/null 2>&1 || pkgs+=(debootstrap)
if [ "${#pkgs[@]}" -gt 0 ]; then
  log "installing from the host's sources: ${pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
command -v docker >/dev/null 2>&1 || die "no docker CLI after installing docker.io"

# ---------------------------------------------------------------- 2. CLI plugins from trixie
install_plugins_from_trixie() {
  local mirror work f want=()
  compose_ok || want+=(docker-compose)
  buildx_ok  || want+=(docker-buildx)
  [ "${#want[@]}" -gt 0 ] || return 0

  mirror="$(debian_mirror)"
  log "fetching ${want[*]} from Debian trixie ($mirror)"
  work="$(mktemp -d /tmp/trixie-plugins.XXXXXX)"
  PLUGIN_WORK="$work"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
  cat >"$work/trixie.list" <<LIST
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main
LIST
  local apt_opts=(
    -o "Dir::Etc::SourceList=$work/trixie.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
  )
  apt-get "${apt_opts[@]}" update -qq
  ( cd "$work/debs" && apt-get "${apt_opts[@]}" download "${want[@]}" )
  for f in "$work"/debs/*.deb; do
    dpkg-deb -x "$f" "$work/root"
  done
  mkdir -p "$PLUGIN_DIR"
  for f in "$work"/root/usr/libexec/docker/cli-plugins/*; do
    install -m 0755 "$f" "$PLUGIN_DIR/$(basename "$f")"
    log "installed $PLUGIN_DIR/$(basename "$f")"
  done
  # The CLI must find the plugins there; otherwise fall back to the per-user folder.
  if ! compose_ok || ! buildx_ok; then
    log "docker CLI does not see $PLUGIN_DIR; also installing into \$HOME/.docker/cli-plugins"
    mkdir -p "$HOME/.docker/cli-plugins"
    for f in "$work"/root/usr/libexec/docker/cli-plugins/*; do
      install -m 0755 "$f" "$HOME/.docker/cli-plugins/$(basename "$f")"
    done
  fi
}
PLUGIN_WORK=""
trap '[ -z "$PLUGIN_WORK" ] || rm -rf "$PLUGIN_WORK"' EXIT
install_plugins_from_trixie
compose_ok || die "docker compose v2 still not available"
buildx_ok  || die "docker buildx still not available"

# ---------------------------------------------------------------- 3. engine
if ! engine_ok; then
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is running but not answering yet; waiting"
  else
    log "starting dockerd (log: $DOCKERD_LOG)"
    touch "$DOCKERD_LOG"
    # setsid + nohup: keep the daemon alive after this script's shell exits.
    setsid nohup "$(command -v dockerd)" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 "$DOCKERD_WAIT"); do
    engine_ok && break
    sleep 1
  done
  if ! engine_ok; then
    log "engine did not answer within ${DOCKERD_WAIT}s; last lines of $DOCKERD_LOG:"
    tail -n 40 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
fi
log "docker engine is up"
print_versions
