#!/bin/sh
# Default entrypoint, with the same sub-command defaults as the upstream image's
# /entrypoint.sh. (The lab's compose file overrides it with `entrypoint: ["weed"]`.)
set -e

has_arg() { # has_arg -flag ARGS...: is -flag or -flag=... among ARGS?
  flag="$1"; shift
  for a in "$@"; do
    case "$a" in "$flag"|"$flag"=*) return 0 ;; esac
  done
  return 1
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  master)
    exec /usr/bin/weed -logtostderr=true master -mdir=/data -volumePreallocate -volumeSizeLimitMB=1024 "$@" ;;
  volume)
    if has_arg -max "$@"; then exec /usr/bin/weed -logtostderr=true volume -dir=/data "$@"; fi
    exec /usr/bin/weed -logtostderr=true volume -dir=/data -max=0 "$@" ;;
  server)
    if has_arg -volume.max "$@"; then
      exec /usr/bin/weed -logtostderr=true server -dir=/data -master.volumePreallocate -master.volumeSizeLimitMB=1024 "$@"
    fi
    exec /usr/bin/weed -logtostderr=true server -dir=/data -volume.max=0 -master.volumePreallocate -master.volumeSizeLimitMB=1024 "$@" ;;
  filer)
    exec /usr/bin/weed -logtostderr=true filer "$@" ;;
  s3)
    exec /usr/bin/weed -logtostderr=true s3 -domainName="${S3_DOMAIN_NAME:-}" -key.file="${S3_KEY_FILE:-}" -cert.file="${S3_CERT_FILE:-}" "$@" ;;
  *)
    if [ -n "$cmd" ]; then set -- "$cmd" "$@"; fi
    exec /usr/bin/weed "$@" ;;
esac
