#!/usr/bin/env bash
# Compile the JVM core (android_demo/core) and its JUnit 4 tests with javac, and run them.
#
#   android_demo/core/run_tests.sh [GOLDEN_DIR] [FIXTURES_DIR]
#
# GOLDEN_DIR: a golden-vector directory (golden.json + PNGs, written by `edgetl export` into
#   RUN_DIR/export/golden/); GoldenVectorsTest checks the JVM pre/post-processing against it.
# FIXTURES_DIR: resize/zip fixtures written by tests/test_android_core.py (fixtures.json).
# Without them those two test classes are skipped; the hand-made tests always run.
#
# Needs a JDK (17+) and JUnit 4 with Hamcrest; on Debian/Ubuntu: apt-get install -y junit4
# (this script installs nothing). Override the jar locations with JUNIT_JAR / HAMCREST_JAR.
# Prints JUnit's summary ("OK (N tests)") and exits non-zero if any test fails.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
golden="${1:-}"
fixtures="${2:-}"

find_jar() {
  local candidate
  for candidate in "$@"; do
    if [ -f "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

junit="${JUNIT_JAR:-$(find_jar /usr/share/java/junit4.jar /usr/share/java/junit.jar || true)}"
hamcrest="${HAMCREST_JAR:-$(find_jar /usr/share/java/hamcrest-core.jar /usr/share/java/hamcrest.jar /usr/share/java/hamcrest-all.jar || true)}"
if [ -z "$junit" ] || [ -z "$hamcrest" ]; then
  echo "error: JUnit 4 and Hamcrest jars not found in /usr/share/java. Install them: apt-get install -y junit4" >&2
  exit 2
fi
for tool in javac java; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found; install a JDK 17+ (e.g. apt-get install -y openjdk-17-jdk-headless)" >&2
    exit 2
  fi
done
for dir in "$golden" "$fixtures"; do
  if [ -n "$dir" ] && [ ! -d "$dir" ]; then
    echo "error: not a directory: $dir" >&2
    exit 2
  fi
done

build="$(mktemp -d "${TMPDIR:-/tmp}/edgetl-core-build.XXXXXX")"
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/main" "$build/test"

mapfile -t main_sources < <(find "$here/src/main/java" -name '*.java' | sort)
mapfile -t test_sources < <(find "$here/src/test/java" -name '*.java' | sort)
# Main sources target the Java 8 API: Android minSdk 24 lacks most later additions (String.strip,
# covariant ByteBuffer methods, ...), and javac --release 8 refuses them here.
javac --release 8 -encoding UTF-8 -Xlint:all -Xlint:-options -Werror -d "$build/main" "${main_sources[@]}"
javac --release 17 -encoding UTF-8 -d "$build/test" -cp "$build/main:$junit:$hamcrest" "${test_sources[@]}"

mapfile -t test_classes < <(cd "$here/src/test/java" && find . -name '*Test.java' | sed -e 's|^\./||' -e 's|\.java$||' -e 's|/|.|g' | sort)
props=()
[ -n "$golden" ] && props+=("-Dedgetl.golden=$(cd "$golden" && pwd)")
[ -n "$fixtures" ] && props+=("-Dedgetl.fixtures=$(cd "$fixtures" && pwd)")
# Not `exec`: the EXIT trap above must still remove the build folder.
java -Djava.awt.headless=true "${props[@]}" -cp "$build/main:$build/test:$junit:$hamcrest" \
  org.junit.runner.JUnitCore "${test_classes[@]}"
