#!/usr/bin/env bash
# Build (once per machine) and install mmcv 2.1.0 with its compiled ops into the given Python env.
#
# mmdet 3.3.0 accepts mmcv>=2.0.0rc4,<2.2.0 and PyPI has no mmcv 2.1.0 wheel for torch 2.14, so the
# sdist is compiled here. Two patches to its setup.py, both needed with torch 2.14:
#   * torch 2.14's headers need C++20; mmcv pins -std=c++14/-std=c++17 -> replaced by -std=c++20.
#   * pkg_resources is gone from the setuptools torch 2.14 requires (>=77) -> importlib.metadata.
# The wheel is cached in $XPASTE_CACHE (default ~/.cache/xpaste), outside any clone, so a machine
# builds it once (about 8 minutes on 2 cores). With CUDA present (nvcc + torch.cuda), CUDA ops are
# built too (FORCE_CUDA=1) and cached under a separate name.
set -euo pipefail

PY=$(command -v "${1:?usage: build_mmcv.sh PYTHON}")
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
VERSION=2.1.0
SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
CACHE=${XPASTE_CACHE:-$HOME/.cache/xpaste}
TORCH_TAG=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
if "$PY" -c 'import torch, shutil, sys; sys.exit(0 if torch.cuda.is_available() and shutil.which("nvcc") else 1)'; then
  FLAVOUR=cuda; export FORCE_CUDA=1
else
  FLAVOUR=cpu
fi
WHEEL_DIR="$CACHE/wheels/mmcv-$VERSION-torch$TORCH_TAG-$FLAVOUR"

if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(0 if mmcv.__version__ == '$VERSION' else 1)" 2>/dev/null; then
  echo "[setup] mmcv $VERSION with ops already installed"; exit 0
fi

if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  echo "[setup] building mmcv $VERSION ($FLAVOUR ops) from source: about 8 minutes on 2 cores, once per machine"
  WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
  SDIST="$CACHE/sdist/mmcv-$VERSION.tar.gz"
  if [ ! -f "$SDIST" ] || ! echo "$SHA256  $SDIST" | sha256sum -c --quiet - 2>/dev/null; then
    # pip fetches the sdist (never a wheel, no dependencies) from the indexes pip is configured
    # with (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS...). To check it, pip builds its metadata, and
    # the unpatched setup.py imports pkg_resources, gone from setuptools >= 81: the build
    # environment is constrained to setuptools < 81 (--build-constraint from pip 25.3 on; older
    # pips hand PIP_CONSTRAINT to the build environment).
    echo 'setuptools<81' > "$WORK/build-constraints.txt"
    DOWNLOAD=(download -q --no-binary :all: --no-deps -d "$WORK/download" "mmcv==$VERSION")
    if [[ $("$PY" -m pip download --help) == *--build-constraint* ]]; then
      "$PY" -m pip "${DOWNLOAD[@]}" --build-constraint "$WORK/build-constraints.txt"
    else
      PIP_CONSTRAINT="$WORK/build-constraints.txt" "$PY" -m pip "${DOWNLOAD[@]}"
    fi
    if ! echo "$SHA256  $WORK/download/mmcv-$VERSION.tar.gz" | sha256sum -c --quiet -; then
      echo "[setup] mmcv-$VERSION.tar.gz from pip's index does not have the sha256 $SHA256" \
        "(PyPI's); check the index pip uses (pip config list)" >&2
      exit 1
    fi
    mkdir -p "$(dirname "$SDIST")"
    mv "$WORK/download/mmcv-$VERSION.tar.gz" "$SDIST"
  fi
  tar xzf "$SDIST" -C "$WORK"
  SRC="$WORK/mmcv-$VERSION"
  sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$SRC/setup.py"
  sed -i 's/^from pkg_resources import DistributionNotFound, get_distribution, parse_version$/from importlib.metadata import PackageNotFoundError as DistributionNotFound, distribution as get_distribution\nfrom packaging.version import parse as parse_version/' "$SRC/setup.py"
  "$PY" -m pip install -q packaging ninja wheel "setuptools>=77"
  mkdir -p "$WHEEL_DIR"
  (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel --no-build-isolation --no-deps -w "$WORK/dist" .)
  mv "$WORK"/dist/mmcv-*.whl "$WHEEL_DIR/"
fi
"$PY" -m pip install -q --no-deps "$WHEEL_DIR"/mmcv-*.whl
