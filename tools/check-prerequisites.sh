#!/bin/sh
# One line per missing prerequisite, and a non-zero exit: no stack traces.
status=0
PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: Python 3.11 is required but '$PYTHON' was not found; install Python 3.11 or run make with PYTHON=/path/to/python3.11" >&2
  status=1
elif ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
  echo "error: '$PYTHON' is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'), but Chorus needs 3.11 (what Azure Functions runs); run make with PYTHON=/path/to/python3.11" >&2
  status=1
elif ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "error: '$PYTHON' lacks the venv module; install it (on Debian/Ubuntu: apt-get install python3.11-venv)" >&2
  status=1
fi
if ! command -v node >/dev/null 2>&1; then
  echo "error: Node.js 20 or newer is required (it runs the Cosmos DB emulator, Azurite and the Event Hubs stand-in) but 'node' was not found" >&2
  status=1
elif [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "error: Node.js 20 or newer is required; found $(node --version)" >&2
  status=1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "error: npm is required (it comes with Node.js) but was not found" >&2
  status=1
fi
exit $status
