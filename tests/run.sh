#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the suite needs, then runs all of it.
#   - Debian packages listed in tests/apt-packages.txt (Dovecot, Chromium), when missing and root
#   - a virtualenv in .venv with tix and its test extras (pytest, ruff, …)
# then lints the tree with ruff and runs the whole suite.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k store -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < tests/apt-packages.txt
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check --quiet .   # lint first (config in pyproject.toml)
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
