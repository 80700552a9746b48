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
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (the cinedex page's browser test drives it) with apt-get ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser test needs chromium on PATH (Debian/Ubuntu: sudo apt-get install chromium); CINEDEX_CHROMIUM" \
         "may name another Chromium binary" >&2
  fi
fi
