#!/usr/bin/env bash
# The Kubernetes manifests (deploy/kubernetes): the base and each overlay
# render with kustomize (`kubectl kustomize`), validate against the schema
# of a current Kubernetes (kubernetes-validate, strict: an unknown field
# fails; custom resources such as the ServiceMonitor are only warned
# about) and pass checkov's Kubernetes checks (each one skipped is
# answered by an annotation where it is skipped); and the config files
# they mount load and validate with the binaries just built, given
# secrets as the Secrets give them. Installs kubectl (Debian's
# kubernetes-client), kubernetes-validate (into .local/venv) and checkov
# (into a venv of its own, .local/checkov-venv: its pins clash with the
# other tools') where missing.
#
#   scripts/k8s_check.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.32.0}"
command -v kubectl >/dev/null || apt_install kubernetes-client
validate="$STATE/venv/bin/kubernetes-validate"
[ -x "$validate" ] || "$STATE/venv/bin/pip" install -q kubernetes-validate
checkov="$STATE/checkov-venv/bin/checkov"
if [ ! -x "$checkov" ]; then
  python3 -m venv "$STATE/checkov-venv"
  "$STATE/checkov-venv/bin/pip" install -q checkov
fi

manifests="$ROOT/deploy/kubernetes"
for dir in "$manifests/base" "$manifests"/overlays/*; do
  rendered="$RUN/k8s-$(basename "$dir").yaml"
  kubectl kustomize "$dir" >"$rendered"
  "$validate" --strict --quiet -k "$KUBERNETES_VERSION" "$rendered"
  "$checkov" -f "$rendered" --framework kubernetes --compact --quiet --skip-download
  log "k8s: $(basename "$dir") renders, validates against Kubernetes $KUBERNETES_VERSION and passes checkov"
done

# The mounted config files, with what the Secrets add.
bin="$(cat "$STATE/bin-dir")"
GATEWAY_ADMIN__TOKENS__OPS=an-operator-token-0123456789 \
  GATEWAY_PAYMENTS__CHANNELS__CARD__SECRET=card-secret-0123456789abcdef \
  GATEWAY_AUTH__KEYS='[{kid = "2026-12", algorithm = "HS256", secret = "an-issuer-secret-of-32-bytes-or-more"}]' \
  GATEWAY_SERVER__NODE_ID=3 \
  "$bin/gateway" --config "$manifests/base/gateway.toml" --check-config >/dev/null
SETTLER_REFUNDS__CHANNELS__CARD__SECRET=card-secret-0123456789abcdef \
  "$bin/settler" --config "$manifests/base/settler.toml" --check-config >/dev/null
log "k8s: the mounted gateway.toml and settler.toml load and validate"
