#!/usr/bin/env bash
# Print a Python >= 3.12 interpreter: $PYTHON, python3.12/3.13 on PATH, or a pyenv install.
set -euo pipefail
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for candidate in "${PYTHON:-}" python3.12 python3.13 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && ok "$candidate"; then
    command -v "$candidate"; exit 0
  fi
done
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python; do
  if [ -x "$candidate" ] && ok "$candidate"; then echo "$candidate"; exit 0; fi
done
echo "Python >= 3.12 not found: install it or set PYTHON=/path/to/python3.12" >&2
exit 1
