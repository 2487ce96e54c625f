#!/usr/bin/env bash
# The package as a user gets it: builds the sdist and the wheel, checks them with twine, installs
# the wheel in a new virtual environment outside the checkout, makes a project with
# `django-admin startproject` and follows the README's "Add it to your project" steps as written
# there, then runs the release phase twice: the first release records the markers, a new
# FORCE_LOGOUT_ON_DEPLOY logs a session out.
#
# Usage: bash tests/package_check.sh [VENV]
# VENV (default .venv) has build and twine: pip install -r tests/requirements-package.txt.
# Django comes from the package index; the app is the wheel built here, not the one on PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
unset DJANGO_SETTINGS_MODULE DATABASE_URL FORCE_LOGOUT_ON_DEPLOY PYTHONPATH VIRTUAL_ENV

venv=${1:-.venv}
[ -x "$venv/bin/python" ] || { echo "FAIL: $venv/bin/python does not exist." >&2; exit 1; }
python=$(cd "$venv/bin" && pwd)/python
checkout=$(pwd)
started=$SECONDS

work=$(mktemp -d)
finish() {
  local status=$?
  if [ "$status" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "FAIL: the package check failed (exit $status); its files are left in $work." >&2
  fi
}
trap finish EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "==> $*"; }

"$python" -c "import build, twine" 2>/dev/null \
  || fail "$venv has no build or twine: $venv/bin/pip install -r tests/requirements-package.txt"

say "Building the sdist and the wheel (python -m build) into $work/dist"
"$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; fail "python -m build failed."; }
sdists=("$work"/dist/*.tar.gz) wheels=("$work"/dist/*.whl)
one_file() { [ "$#" -eq 1 ] && [ -f "$1" ]; }
one_file "${sdists[@]}" || fail "python -m build made no single sdist."
one_file "${wheels[@]}" || fail "python -m build made no single wheel."
sdist=${sdists[0]} wheel=${wheels[0]}
echo "Built $(basename "$sdist") and $(basename "$wheel")."

say "twine check --strict"
"$python" -m twine check --strict "$sdist" "$wheel"

say "What the sdist holds"
tar tzf "$sdist" | sed 's|^[^/]*/||' | grep -v '/$' | sort >"$work/sdist.txt"
for needed in LICENSE README.md pyproject.toml release/__init__.py release/py.typed \
    release/migrations/0001_initial.py release/templates/admin/release/logout/change_list.html \
    release/management/commands/release.py; do
  grep -qxF "$needed" "$work/sdist.txt" || fail "The sdist lacks $needed."
done
if grep -E '^(tests|benchmarks|example_project|docs)/' "$work/sdist.txt"; then
  fail "The sdist holds the files above, which belong to the repository only."
fi
echo "$(wc -l <"$work/sdist.txt") files: LICENSE, README.md, release/ with its migrations," \
  "templates and py.typed; no tests, benchmarks, example_project or docs."

say "Installing the wheel built just now (not django-release-logout from PyPI) in a new venv"
"$python" -m venv "$work/venv"
# The project's commands below run as a user types them, with the new venv's python first.
export PATH="$work/venv/bin:$PATH"
(cd "$work" && pip install -q "$wheel") || fail "pip install $(basename "$wheel") failed."
cd "$work"
python -c '
import importlib.metadata, sys
import django, release
version = importlib.metadata.version("django-release-logout")
assert release.__version__ == version, (release.__version__, version)
assert release.__file__.startswith(sys.prefix), release.__file__
print(f"django-release-logout {version} from {release.__file__}, Django {django.get_version()}")
'

say "django-admin startproject mysite"
django-admin startproject mysite
cd mysite

say "The README's \"Add it to your project\" steps, read from README.md, in mysite/settings.py"
python "$checkout/tests/readme_steps.py" settings "$checkout/README.md" mysite/settings.py \
  || fail "The README's steps could not be read or applied."
release_command=$(python "$checkout/tests/readme_steps.py" release-command "$checkout/README.md") \
  || fail "The README's Procfile release line could not be read."
[ "$release_command" = "python manage.py release" ] \
  || fail "The README's release line runs '$release_command', not 'python manage.py release'."
echo "The Procfile release line runs: $release_command"

say "python manage.py check"
output=$(python manage.py check 2>&1) || { echo "$output"; fail "manage.py check failed."; }
echo "$output"
grep -q "no issues" <<<"$output" || fail "manage.py check reported issues."

count_sessions() {
  python manage.py shell -v 0 -c '
from django.contrib.sessions.models import Session
print(Session.objects.count())
'
}

say "$release_command (the first release with the app)"
output=$(bash -c "$release_command" 2>&1) || { echo "$output"; fail "The first release failed."; }
echo "$output"
grep -q "record the markers" <<<"$output" || fail "The first release did not record the markers."
grep -q "log everyone out" <<<"$output" && fail "The first release logged everyone out."

say "A session, saved through SESSION_ENGINE"
python manage.py shell -v 0 -c '
from importlib import import_module
from django.conf import settings
store = import_module(settings.SESSION_ENGINE).SessionStore()
store["x"] = 1
store.create()
print(f"Saved session {store.session_key[:8]}... through {type(store).__module__}.")
'
sessions=$(count_sessions)
[ "$sessions" = 1 ] || fail "Expected 1 session in the database, found $sessions."

say "FORCE_LOGOUT_ON_DEPLOY=package-check $release_command"
output=$(FORCE_LOGOUT_ON_DEPLOY=package-check bash -c "$release_command" 2>&1) \
  || { echo "$output"; fail "The release with a new FORCE_LOGOUT_ON_DEPLOY failed."; }
echo "$output"
grep -q "log everyone out" <<<"$output" || fail "The release did not log everyone out."
grep -q "removed 1 session" <<<"$output" || fail "The release did not say it removed 1 session."
sessions=$(count_sessions)
[ "$sessions" = 0 ] || fail "Expected no session left after the logout, found $sessions."
echo "Sessions left in the database: 0."

echo
echo "PASS: the wheel installs into a new startproject by the README's steps, and its release" \
  "phase records the markers, then logs everyone out ($((SECONDS - started)) s)."
