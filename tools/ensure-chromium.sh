#!/bin/sh
# The API docs page's browser test (tests/e2e/test_api_docs_page.py) drives Debian's chromium,
# headless. `make test` installs it when it is missing and this machine can (root with apt-get, as
# on CI); elsewhere it says what to do, and that test is skipped with the same advice.
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium is missing: installing Debian's chromium package for the API docs page's browser test"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    exit 0
  fi
  echo "error: 'apt-get install chromium' failed (see above); fix the package sources or install chromium yourself, then run make test again" >&2
  exit 1
fi
echo "note: chromium is not installed and this is not a root shell with apt-get, so make test cannot install it; the API docs page's browser test is skipped (install it with 'sudo apt-get install chromium' on Debian/Ubuntu, or put a 'chromium' on PATH)" >&2
exit 0
