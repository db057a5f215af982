# Sourced by the setup scripts. make_venv DIR creates a Python venv at DIR (when DIR/bin/python
# is missing), installing Debian's python3-venv first where python3 lacks ensurepip.
make_venv() {
  local venv=$1
  [ -x "$venv/bin/python" ] && return 0
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    local sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get install -y -qq python3-venv >/dev/null 2>&1 || {
      $sudo_cmd apt-get update -qq >/dev/null
      $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
    }
    python3 -m venv "$venv"
  fi
}

# need_commands TAG CMD...: exits with "TAG: CMD not found" when a command is missing.
need_commands() {
  local tag=$1; shift
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || { echo "$tag: $c not found" >&2; exit 1; }
  done
}

# npm_version DIR PACKAGE prints the version of PACKAGE installed under the npm prefix DIR, or
# nothing when it is not installed.
npm_version() {
  node -e 'try { console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).version) } catch (e) {}' \
    "$1/node_modules/$2/package.json"
}
