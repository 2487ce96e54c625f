#!/usr/bin/env bash
# The steps of docs/platforms/Dockerfile without Docker: its instructions, read from it and run in
# its order, put under a directory of this machine the files that `docker build` puts in the
# image. tests/test_platform_runs.py builds the image this way, then runs the release step and
# the web command from it, as Fly.io and Kubernetes run them from the image.
#
#   bash docs/platforms/image.sh OUT     # from the repository's root, the build context
#
#   FROM     not run: the `python` on PATH stands in for the base image's (with a warning when
#            its version is not the tag's).
#   ENV      the variables of the RUN steps that follow. A RUN step sees only those, PATH and
#            HOME, as in a build: no DATABASE_URL, no secret key.
#   WORKDIR  OUT/<path>, made if missing.
#   COPY     from the build context into OUT, relative to the WORKDIR; a directory's contents, as
#            Docker copies them.
#   RUN      `/bin/sh -c` in the WORKDIR.
#   CMD      printed, not run.
# Each instruction is printed before it runs (`+ RUN ...`). Any other instruction, or a form of
# these that the script does not know (JSON RUN or COPY, COPY --flags), stops it: a Dockerfile
# this script cannot follow is not checked by the tests.
set -euo pipefail

DOCKERFILE=${DOCKERFILE:-docs/platforms/Dockerfile}

fail() { echo "image.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || fail "usage: bash docs/platforms/image.sh OUT"
[ -f "$DOCKERFILE" ] || fail "no $DOCKERFILE here: run it from the repository's root"
mkdir -p "$1"
out=$(cd "$1" && pwd)
context=$(pwd)
workdir=/
build_env=()

instructions() {  # one instruction a line: comments and blank lines dropped, continuations joined
  local line joined=""
  while IFS= read -r line || [ -n "$line" ]; do
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    if [[ "$line" =~ ^(.*)\\[[:space:]]*$ ]]; then
      joined+="${BASH_REMATCH[1]}"
      continue
    fi
    printf '%s\n' "$joined$line"
    joined=""
  done < "$DOCKERFILE"
  [ -z "$joined" ] || fail "the last instruction ends in a backslash"
}

in_image() {  # a path of the image, under OUT
  case $1 in
    /*) printf '%s\n' "$out$1" ;;
    *) printf '%s\n' "$out${workdir%/}/$1" ;;
  esac
}

from() {
  local tag=${1#python:}
  [ "$tag" != "$1" ] || fail "FROM $1: only python images are known"
  local wanted=${tag%%-*} have
  have=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$have" = "$wanted" ] || echo "image.sh: warning: python on PATH is $have, the image's is $wanted" >&2
}

copy() {
  local words
  read -ra words <<< "$1"
  [ "${#words[@]}" -ge 2 ] || fail "COPY $1: needs a source and a destination"
  [[ "${words[0]}" != --* && "${words[0]}" != \[* ]] || fail "COPY $1: flags and JSON are not known"
  local dest=${words[-1]} target source
  target=$(in_image "$dest")
  for source in "${words[@]:0:${#words[@]}-1}"; do
    [ -e "$context/$source" ] || fail "COPY: $source is not in the build context"
    if [ -d "$context/$source" ]; then
      mkdir -p "$target"
      cp -R "$context/$source/." "$target/"
    elif [[ "$dest" == */ || "$dest" == . || -d "$target" || ${#words[@]} -gt 2 ]]; then
      mkdir -p "$target"
      cp "$context/$source" "$target/"
    else
      mkdir -p "$(dirname "$target")"
      cp "$context/$source" "$target"
    fi
  done
}

while IFS= read -r instruction; do
  keyword=${instruction%%[[:space:]]*}
  args=${instruction#"$keyword"}
  args=${args#"${args%%[![:space:]]*}"}
  echo "+ ${keyword^^} $args"
  case ${keyword^^} in
    FROM) from "$args" ;;
    ENV)
      eval "pairs=($args)"
      for pair in "${pairs[@]}"; do
        [[ "$pair" == ?*=* ]] || fail "ENV $args: only NAME=value pairs are known"
        build_env+=("$pair")
      done
      ;;
    WORKDIR)
      workdir=$(in_image "$args")
      workdir=${workdir#"$out"}
      mkdir -p "$out$workdir"
      ;;
    COPY) copy "$args" ;;
    RUN)
      [[ "$args" != \[* ]] || fail "RUN $args: the JSON form is not known"
      (cd "$out$workdir" && env -i PATH="$PATH" HOME="${HOME:-/root}" ${build_env[@]+"${build_env[@]}"} \
        /bin/sh -c "$args") < /dev/null || fail "RUN $args: exited $?"
      ;;
    CMD) ;;
    *) fail "${keyword^^}: not an instruction this script knows" ;;
  esac
done < <(instructions)

echo "image.sh: the image's files are in $out$workdir"
