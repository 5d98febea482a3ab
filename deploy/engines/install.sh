#!/usr/bin/env bash
# Install what the loopback Spark and Flink engines need, under ENGINES_DIR (default .engines):
#   venv/         Python with the Beam SDK of the job servers' release (versions.env), the
#                 project, torch, and pyspark (Spark's jars and its spark-class launcher)
#   *.classpath   Beam's Spark and Flink job servers, resolved by Maven from their runner
#                 modules (the Flink one also runs the Flink session cluster)
#   bin/boot      Beam's Python SDK worker boot program of that release (Go module), what
#                 `--environment_type=PROCESS` starts for each SDK worker
# Everything comes from the package registries by their ordinary clients (pip, mvn, go).
# Usage: deploy/engines/install.sh   (make engines runs it; TORCH_SPEC as for make install)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
dir="${ENGINES_DIR:-$root/.engines}"
mkdir -p "$dir" && dir="$(cd "$dir" && pwd)" # absolute: the SDK workers' boot path and GOBIN
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
python="${PYTHON:-python3}"
mkdir -p "$dir/bin"

echo "engines: Python environment with apache-beam==$BEAM_VERSION in $dir/venv"
test -x "$dir/venv/bin/python" || "$python" -m venv "$dir/venv"
"$dir/venv/bin/python" -m pip install --quiet --upgrade pip
"$dir/venv/bin/python" -c "import torch" 2>/dev/null ||
  "$dir/venv/bin/python" -m pip install --quiet "$torch_spec"
"$dir/venv/bin/python" -m pip install --quiet "apache-beam==$BEAM_VERSION"
# Everything else at the project environment's versions (Pillow's JPEG decoder, torch, ...),
# so an engine run scores exactly as the default runner does; only what this Beam release
# itself requires may differ.
constraints="$dir/constraints.txt"
main_python="${MAIN_PYTHON:-$root/.venv/bin/python}"
if [ -x "$main_python" ]; then
  "$main_python" -m pip freeze --exclude-editable >"$dir/main-freeze.txt"
  "$dir/venv/bin/python" - "$dir/main-freeze.txt" >"$constraints" <<'PY'
import re
import sys
from importlib.metadata import requires


def name(requirement):
    return re.split(r"[ ;<>=!~\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


beams = {name(r) for r in requires("apache-beam") if "extra ==" not in r} | {"apache-beam"}
for line in open(sys.argv[1]):
    if "==" in line and name(line) not in beams:
        print(line.strip())
PY
else
  : >"$constraints"
fi
"$dir/venv/bin/python" -m pip install --quiet -c "$constraints" -e "$root" \
  "apache-beam==$BEAM_VERSION" "pyspark==$PYSPARK_VERSION"

for engine in spark flink; do
  echo "engines: Beam $BEAM_VERSION $engine job server classpath (mvn)"
  mvn -B -q -f "$here/$engine-job-server.pom.xml" -Dbeam.version="$BEAM_VERSION" \
    dependency:build-classpath -Dmdep.outputFile="$dir/$engine-job-server.classpath"
done

echo "engines: Beam $BEAM_VERSION Python SDK boot program (go install)"
GOBIN="$dir/bin" GOFLAGS=-mod=mod go install \
  "github.com/apache/beam/sdks/v2/python/container@v$BEAM_VERSION"
mv -f "$dir/bin/container" "$dir/bin/boot"

echo "engines: installed in $dir (start one with deploy/engines/engine.sh start spark|flink)"
