#!/usr/bin/env bash
# The lab's verbs, called by the Makefile: `scripts/lab.sh up|down|train|gate|...`.
#
# Two modes run the same pipeline on the same ports:
#   docker  Compose stack: Postgres, S3 store, MLflow, registry, serving containers.
#   local   local processes in the lab's venv, on SQLite and a local artifact folder
#           (scripts/local.sh), for machines where no Docker engine answers.
# LAB_MODE=auto (default) picks docker when an engine answers, local otherwise.
#
# Settings come from the environment first, then from .env (generated on first `up`).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

log() { printf '\033[1m[lab]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[lab] error:\033[0m %s\n' "$*" >&2; exit 2; }

# Load .env without overriding what the environment already says (Compose's precedence).
# An empty variable counts as unset, as it does in `${VAR:-default}` everywhere in the lab:
# CI passes its knobs as possibly-empty variables, and empty must mean "the lab's value".
load_env() {
  [ -f .env ] || return 0
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}                       # files edited on Windows
    case "$line" in ''|'#'*) continue ;; esac
    line=${line#export }
    key=${line%%=*}
    value=${line#*=}
    case "$key" in ''|[0-9]*|*[!A-Za-z0-9_]*) continue ;; esac  # not a variable name
    case "$value" in
      \"*\") value=${value#\"}; value=${value%\"} ;;   # "quoted"
      \'*\') value=${value#\'}; value=${value%\'} ;;   # 'quoted'
      *) value=${value%% #*}                               # unquoted: drop an inline comment
         value=${value%"${value##*[![:space:]]}"} ;;       # and trailing blanks
    esac
    if [ -z "${!key:-}" ]; then export "$key=$value"; fi
  done < .env
}

random_secret() {
  # 40 hex characters: safe in URLs, YAML and shell without quoting.
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 20
  else
    od -An -N20 -tx1 /dev/urandom | tr -d ' \n'
  fi
}

ensure_env() {
  if [ -f .env ]; then return 0; fi
  log "creating .env with freshly generated secrets (it is git-ignored; keep it)"
  umask 077
  sed -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(random_secret)/" \
      -e "s/^S3_ACCESS_KEY=.*/S3_ACCESS_KEY=lab$(random_secret | cut -c1-17)/" \
      -e "s/^S3_SECRET_KEY=.*/S3_SECRET_KEY=$(random_secret)/" \
      -e "s/^S3_BACKEND=.*/S3_BACKEND=${S3_BACKEND:-minio}/" \
      .env.example > .env
  umask 022
}

git_sha() {
  local sha
  sha=$(git rev-parse --short=12 HEAD 2>/dev/null) || { echo dev; return; }
  # Uncommitted changes get their own tag, so they never overwrite a commit's images.
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then sha="$sha-dirty"; fi
  echo "$sha"
}

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

resolve_mode() {
  case "${LAB_MODE:-auto}" in
    docker)
      docker_answers || die "LAB_MODE=docker but no Docker engine answers (is Docker running? try: docker info)"
      echo docker ;;
    local) echo local ;;
    auto)
      if [ -f .lab/mode ]; then cat .lab/mode; return; fi  # keep talking to what `up` started
      if docker_answers; then echo docker; else echo local; fi ;;
    *) die "LAB_MODE must be auto, docker or local (got '${LAB_MODE}')" ;;
  esac
}

# ------------------------------------------------------------------ settings
S3_BACKEND_FROM_ENV=${S3_BACKEND:-}   # before .env: state-restore must know who chose it
load_env
export GIT_SHA=${GIT_SHA:-$(git_sha)}
export S3_BACKEND=${S3_BACKEND:-minio}
export LAB_BIND=${LAB_BIND:-127.0.0.1}
export MLFLOW_PORT=${MLFLOW_PORT:-5050} REGISTRY_PORT=${REGISTRY_PORT:-5100}
export STAGING_PORT=${STAGING_PORT:-8081} PRODUCTION_PORT=${PRODUCTION_PORT:-8082}
export S3_PORT=${S3_PORT:-9000} S3_CONSOLE_PORT=${S3_CONSOLE_PORT:-9001}
export LAB_REGISTRY=${LAB_REGISTRY:-127.0.0.1:$REGISTRY_PORT}
export MLFLOW_MODEL_NAME=${MLFLOW_MODEL_NAME:-lab-classifier}
case "$S3_BACKEND" in minio|seaweedfs) ;; *) die "S3_BACKEND must be minio or seaweedfs (got '$S3_BACKEND')" ;; esac

compose() {
  docker compose --project-directory "$ROOT" -f "$ROOT/compose/compose.yaml" \
    --profile "$S3_BACKEND" "$@"
}

# Jobs that write reports run as the invoking user so the files are theirs; as root
# (CI), as the images' own non-root user, which is given the folder.
run_as() {
  if [ "$(id -u)" = 0 ]; then echo "10001:10001"; else echo "$(id -u):$(id -g)"; fi
}

prepare_reports() {
  mkdir -p reports/gate reports/load
  if [ "$(id -u)" = 0 ]; then chown -R 10001:10001 reports/gate reports/load; fi  # files too: local mode may have written them as root
}

gatekeeper() { compose run --rm --no-TTY --user "$(run_as)" gatekeeper "$@"; }

# -------------------------------------------------------------- docker mode
doctor() {
  local ok=1 problems=()
  command -v docker >/dev/null 2>&1 || problems+=("the docker CLI is not installed: https://docs.docker.com/get-docker/ (or run the lab without Docker: make up LAB_MODE=local)")
  if [ ${#problems[@]} -eq 0 ] && ! docker info >/dev/null 2>&1; then
    problems+=("no Docker engine answers: start Docker Desktop / 'sudo systemctl start docker', or check 'docker info' (or use LAB_MODE=local)")
  fi
  if [ ${#problems[@]} -eq 0 ]; then
    local v
    v=$(docker compose version --short 2>/dev/null | sed 's/^v//') || v=""
    if [ -z "$v" ]; then
      problems+=("Docker Compose v2 is missing ('docker compose'); the old 'docker-compose' v1 is not supported")
    else
      local major minor
      major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
      if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 20 ]; }; then
        problems+=("Docker Compose $v is too old: 2.20 or newer is needed")
      fi
    fi
    local mem
    mem=$(docker info --format '{{.MemTotal}}' 2>/dev/null || echo 0)
    if [ "${mem:-0}" -gt 0 ] && [ "$mem" -lt 3500000000 ]; then
      problems+=("Docker has $((mem / 1048576)) MiB of memory; give it at least 4 GiB (Docker Desktop: Settings > Resources)")
    fi
  fi
  local free_kb
  free_kb=$(df -Pk "$ROOT" | awk 'NR==2 {print $4}')
  if [ "${free_kb:-0}" -lt 5000000 ]; then
    problems+=("only $((free_kb / 1024)) MiB free on disk; the images and data need about 5 GiB")
  fi
  # A port already taken by something other than this lab.
  local running=""
  if [ ${#problems[@]} -eq 0 ]; then running=$(compose ps -q 2>/dev/null || true); fi
  if [ -z "$running" ]; then
    local port name
    for name in MLFLOW_PORT REGISTRY_PORT STAGING_PORT PRODUCTION_PORT S3_PORT S3_CONSOLE_PORT; do
      port=${!name}
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        problems+=("port $port ($name) is already in use: stop what uses it or set $name=<free port> in .env")
      fi
    done
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do printf '  \033[31m✗\033[0m %s\n' "$p" >&2; done
    return 1
  fi
  printf '  \033[32m✓\033[0m docker %s, compose %s, ports free, disk ok\n' \
    "$(docker version --format '{{.Server.Version}}' 2>/dev/null)" "$(docker compose version --short)" >&2
  [ "$ok" = 1 ]
}

build_images() {
  log "building images for $GIT_SHA"
  if [ -n "${LAB_BUILD_CACHE:-}" ]; then
    bake_images
  else
    DOCKER_BUILDKIT=1 compose --profile build --profile jobs --profile load build \
      mlflow serving-image training gatekeeper locust
  fi
  log "pushing them to the local registry ($LAB_REGISTRY)"
  compose --profile build --profile jobs --profile load push --quiet \
    mlflow serving-image training gatekeeper locust
}

# LAB_BUILD_CACHE=gha (GitHub Actions): the same five images, built by `docker buildx bake`
# straight from the compose file (same contexts, args, secret and tags, same environment)
# with BuildKit's GitHub Actions cache, one cache scope per image so that one image's
# export does not overwrite another's. Needs a docker-container builder
# (docker/setup-buildx-action) and the Actions runtime variables in the environment
# (crazy-max/ghaction-github-runtime); `--load` hands the images to the engine for the push.
bake_images() {
  case "$LAB_BUILD_CACHE" in
    gha) ;;
    *) die "LAB_BUILD_CACHE must be empty (plain compose build) or gha (got '$LAB_BUILD_CACHE')" ;;
  esac
  docker buildx version >/dev/null 2>&1 || die "LAB_BUILD_CACHE=gha needs the docker buildx plugin"
  [ -n "${ACTIONS_RUNTIME_TOKEN:-}" ] || die "LAB_BUILD_CACHE=gha needs the GitHub Actions runtime variables (ACTIONS_RUNTIME_TOKEN, ACTIONS_RESULTS_URL): run crazy-max/ghaction-github-runtime first, or unset LAB_BUILD_CACHE"
  local target sets=()
  for target in mlflow serving-image training gatekeeper locust; do
    sets+=(--set "$target.cache-from=type=gha,scope=mlops-lab-$target"
           --set "$target.cache-to=type=gha,scope=mlops-lab-$target,mode=max")
  done
  log "docker buildx bake with the GitHub Actions cache (LAB_BUILD_CACHE=gha)"
  docker buildx bake --file "$ROOT/compose/compose.yaml" --load "${sets[@]}" \
    mlflow serving-image training gatekeeper locust
}

# True when the local registry already holds all five images of this commit (a clean
# tree only: a -dirty tag does not say which edits it was built from).
registry_has_images() {
  case "$GIT_SHA" in *-dirty|dev) return 1 ;; esac
  command -v curl >/dev/null 2>&1 || return 1
  local repo
  for repo in mlflow serving training gatekeeper loadtests; do
    curl -sf -o /dev/null -I \
      -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
      "http://127.0.0.1:$REGISTRY_PORT/v2/mlops-lab/$repo/manifests/$GIT_SHA" || return 1
  done
}

# Models are tagged with the git sha that trained them and promotion retags the serving
# image of that sha: after a commit, build that sha's images before training with it.
ensure_images() {
  local url="http://127.0.0.1:$REGISTRY_PORT/v2/mlops-lab/serving/manifests/$GIT_SHA"
  if command -v curl >/dev/null 2>&1 && curl -sf -o /dev/null -I \
      -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
      "$url"; then
    return 0
  fi
  compose up -d --wait registry
  build_images
}

production_version() {
  gatekeeper status --version-of production | tr -d '\r' 
}

# Bring a serving container onto the image its tag now names (pulls from the local
# registry; Compose recreates the container only if the image changed).
roll_serving() {
  local alias=$1
  compose pull --quiet "serving-$alias"
  compose up -d --wait "serving-$alias"
}

smoke() {
  local alias=$1
  gatekeeper smoke --url "http://serving-$alias:8080" --alias "$alias"
}

bootstrap() {
  log "no production model yet: running the bootstrap pipeline (train → gate → staging → smoke → production)"
  compose run --rm --no-TTY training
  prepare_reports
  gatekeeper gate
  gatekeeper promote --to staging
  roll_serving staging
  smoke staging
  gatekeeper promote --to production
  roll_serving production
  smoke production
}

print_urls() { bash scripts/urls.sh "$1"; }

docker_down() {
  compose --profile build --profile jobs --profile load --profile minio --profile seaweedfs \
    down --remove-orphans
  rm -f .lab/mode
}

# ------------------------------------------------- state handoff (docker mode)
# CI jobs run on fresh machines, so the lab travels from one job to the next as one file:
# its named volumes (Postgres, the active S3 store, the image registry) and .env (the
# database only opens with the password it was created with). A throwaway container of
# an image the lab already uses does the tar work; nothing is installed on the host.
#
#   STATE_FILE (default lab-state.tgz) = gzip'd tar of
#     meta/manifest   format, project, S3 backend, volumes, git sha, date
#     meta/env        the lab's .env (its generated secrets: keep the file private)
#     <volume>/...    one folder per volume, numeric owners and modes kept
STATE_FORMAT=1

project_name() { echo "${COMPOSE_PROJECT_NAME:-mlops-lab}"; }
state_volumes() { echo "postgres-data $S3_BACKEND-data registry-data"; }
state_image() { echo "${PYTHON_IMAGE:-python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d}"; }
state_file() {
  local f=${STATE_FILE:-lab-state.tgz}
  case "$f" in /*) echo "$f" ;; *) echo "$ROOT/$f" ;; esac
}

state_save() {
  local file project vols v tmp mounts=()
  file=$(state_file)
  project=$(project_name)
  vols=$(state_volumes)
  [ -f .env ] || die "no .env here: there is no lab to save (make up first)"
  for v in $vols; do
    docker volume inspect "${project}_$v" >/dev/null 2>&1 ||
      die "volume ${project}_$v does not exist: is a lab of project '$project' with S3_BACKEND=$S3_BACKEND up? (make up first)"
    mounts+=(-v "${project}_$v:/state/$v:ro")
  done
  log "stopping the lab so that the database and the stores are consistent on disk"
  docker_down
  tmp=$(mktemp -d)
  STATE_TMP=$tmp
  trap 'rm -rf "$STATE_TMP"' EXIT
  mkdir -p "$tmp/meta" "$(dirname "$file")"
  cp .env "$tmp/meta/env"
  {
    echo "format=$STATE_FORMAT"
    echo "project=$project"
    echo "s3_backend=$S3_BACKEND"
    echo "volumes=$vols"
    echo "git_sha=$GIT_SHA"
    echo "saved_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } > "$tmp/meta/manifest"
  log "saving $vols and .env to $file"
  # meta/ goes in on stdin and the archive comes out on stdout: no host folder is
  # bind-mounted, so this works with whichever engine the docker CLI talks to.
  (
    umask 077
    tar -C "$tmp" -cf - meta |
      docker run --rm -i --network none "${mounts[@]}" --entrypoint bash "$(state_image)" \
        -o pipefail -c "tar -xf - -C /state && tar -C /state -cf - --numeric-owner meta $vols | gzip -1" \
        > "$file.partial"
  ) || { rm -f "$file.partial"; die "saving the lab state failed (see above)"; }
  mv -f "$file.partial" "$file"
  log "saved $(du -h "$file" | cut -f1) to $file; it holds this lab's generated secrets (.env): keep it private"
  log "the lab is stopped: make up starts it again here, make state-restore rebuilds it elsewhere"
}

state_restore() {
  local file tmp project format backend vols saved_sha saved_at v replace_env=0
  local existing=() mounts=()
  file=$(state_file)
  [ -f "$file" ] || die "no lab state at $file (make state-save writes one; STATE_FILE=path names another)"
  tmp=$(mktemp -d)
  STATE_TMP=$tmp
  trap 'rm -rf "$STATE_TMP"' EXIT
  tar -xzf "$file" -C "$tmp" meta/manifest meta/env 2>/dev/null ||
    die "$file is not a lab state (no meta/manifest and meta/env inside; make state-save writes one)"
  manifest() { sed -n "s/^$1=//p" "$tmp/meta/manifest" | head -n 1; }
  format=$(manifest format)
  [ "$format" = "$STATE_FORMAT" ] ||
    die "$file has state format '$format'; this lab reads format $STATE_FORMAT"
  backend=$(manifest s3_backend)
  vols=$(manifest volumes)
  saved_sha=$(manifest git_sha)
  saved_at=$(manifest saved_at)
  case "$backend" in minio|seaweedfs) ;; *) die "$file names an unknown S3 backend '$backend'" ;; esac
  if [ -n "$S3_BACKEND_FROM_ENV" ] && [ "$S3_BACKEND_FROM_ENV" != "$backend" ]; then
    die "this state was saved with S3_BACKEND=$backend, but S3_BACKEND=$S3_BACKEND_FROM_ENV here: unset it or set S3_BACKEND=$backend"
  fi
  export S3_BACKEND=$backend
  project=$(project_name)

  # Overwrite nothing unless asked, and check everything before changing anything.
  if [ -f .env ] && ! cmp -s .env "$tmp/meta/env"; then
    [ "${FORCE:-0}" = 1 ] ||
      die ".env differs from the saved one, and the saved database only opens with the saved passwords: move .env away, or FORCE=1 (keeps yours as .env.before-restore)"
    replace_env=1
  fi
  for v in $vols; do
    if docker volume inspect "${project}_$v" >/dev/null 2>&1; then existing+=("${project}_$v"); fi
  done
  if [ ${#existing[@]} -gt 0 ]; then
    [ "${FORCE:-0}" = 1 ] ||
      die "volume(s) ${existing[*]} already exist and restoring would replace their data: make clean first, or FORCE=1"
    log "FORCE=1: stopping the lab and removing ${existing[*]}"
    docker_down || true
    docker volume rm "${existing[@]}" >/dev/null
  fi

  log "restoring $vols (saved $saved_at from git sha $saved_sha, S3_BACKEND=$backend) into project '$project'"
  for v in $vols; do
    # The labels Compose puts on the volumes it creates, so that it adopts these quietly.
    docker volume create --label "com.docker.compose.project=$project" \
      --label "com.docker.compose.volume=$v" "${project}_$v" >/dev/null
    mounts+=(-v "${project}_$v:/state/$v")
  done
  # $vols unquoted on purpose: it is the list of member names to extract.
  # shellcheck disable=SC2086
  docker run --rm -i --network none "${mounts[@]}" --entrypoint tar "$(state_image)" \
    -xzf - -C /state --numeric-owner --same-owner --same-permissions $vols < "$file" ||
    die "restoring the volumes failed (see above); make clean FORCE=1 removes what was written"
  if [ "$replace_env" = 1 ]; then mv -f .env .env.before-restore; fi
  if [ ! -f .env ]; then (umask 077 && cp "$tmp/meta/env" .env); fi
  if [ "$saved_sha" != "$GIT_SHA" ]; then
    log "note: the state comes from git sha $saved_sha and this checkout is $GIT_SHA (make up builds this one's images)"
  fi
  log "restored: make up starts the lab on it (it finds the production model, so no bootstrap)"
}

docker_up() {
  log "docker mode: preflight"
  doctor || die "fix the problems above, then run make up again"
  ensure_env
  load_env
  prepare_reports
  compose up -d --wait registry
  if [ "${LAB_REUSE_IMAGES:-0}" = 1 ] && registry_has_images; then
    # CI stage jobs: the images came with the restored lab state (make state-restore).
    log "the local registry already holds the images for $GIT_SHA (LAB_REUSE_IMAGES=1): not rebuilding"
  else
    build_images
  fi
  log "starting Postgres, the S3 store ($S3_BACKEND) and MLflow"
  compose up -d --wait mlflow
  local production
  # A failed lookup must not look like "no production model": that would bootstrap over it.
  production=$(production_version) || die "cannot read @production from MLflow (see above)"
  if [ -z "$production" ]; then
    bootstrap
  else
    log "production model found: starting the model servers"
    compose pull --quiet serving-staging serving-production
    compose up -d --wait serving-staging serving-production
  fi
  mkdir -p .lab && echo docker > .lab/mode
  print_urls docker
}

# ------------------------------------------------------------------ dispatch
cmd=${1:-help}
shift || true
mode=$(resolve_mode)
if [ "$cmd" = e2e ]; then
  # One suite for both modes: it talks HTTP to the URLs the lab prints.
  [ -x .venv/bin/pytest ] || die "run make venv first"
  export LAB_ACTIVE_MODE=$mode
  exec .venv/bin/pytest -m e2e tests/e2e -p no:cacheprovider ${PYTEST_ARGS:-}
fi
if [ "$mode" = local ]; then
  case "$cmd" in
    state-save|state-restore)
      die "$cmd works in docker mode only (it moves Docker volumes); the local lab's state is the .lab/ folder with .env" ;;
  esac
  if [ "$cmd" = up ]; then ensure_env; load_env; fi
  exec bash scripts/local.sh "$cmd" "$@"
fi

case "$cmd" in
  doctor) doctor ;;
  up) docker_up ;;
  build) ensure_env; load_env; compose up -d --wait registry; build_images ;;
  down)
    docker_down
    log "stopped; data kept in the volumes (make clean removes it)" ;;
  clean)
    if [ "${FORCE:-0}" != 1 ]; then
      if [ ! -t 0 ]; then die "make clean deletes every run, model and image: run it in a terminal or with FORCE=1"; fi
      read -r -p "Delete the lab's volumes (every run, model and image)? [y/N] " answer
      case "$answer" in y|Y|yes) ;; *) log "nothing deleted"; exit 0 ;; esac
    fi
    compose --profile build --profile jobs --profile load --profile minio --profile seaweedfs \
      down --volumes --remove-orphans
    rm -rf reports .lab
    log "volumes removed (.env kept: delete it yourself to get new secrets)" ;;
  restart) bash "$ROOT/scripts/lab.sh" down && bash "$ROOT/scripts/lab.sh" up ;;
  ps) compose ps ;;
  logs) compose logs --tail=200 ${SERVICE:+"$SERVICE"} ;;
  train) ensure_images; compose run --rm --no-TTY training ;;
  gate) prepare_reports; gatekeeper gate ;;
  promote)
    to=${TO:-staging}
    gatekeeper promote --to "$to"
    roll_serving "$to"
    smoke "$to" ;;
  rollback) gatekeeper rollback; roll_serving production; smoke production ;;
  status) gatekeeper status ;;
  smoke) smoke "${ALIAS:-staging}" ;;
  load)
    prepare_reports
    target=${LOAD_ALIAS:-staging}
    LOAD_TARGET="http://serving-$target:8080" compose --profile load run --rm --no-TTY \
      --user "$(run_as)" locust ;;
  urls) print_urls docker ;;
  state-save) state_save ;;
  state-restore) state_restore ;;
  *) die "unknown command '$cmd' (see make help)" ;;
esac
