#!/bin/sh
# Same dispatch as the upstream registry:2.8 image's /entrypoint.sh:
#   CONFIG.yml            -> registry serve CONFIG.yml
#   serve|garbage-collect|help|-flag ... -> registry ...
#   anything else         -> run it as is
set -e

case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac

exec "$@"
