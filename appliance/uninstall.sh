#!/usr/bin/env bash
# appliance/uninstall.sh — remove what appliance/install.sh installed.
#
# Usage: appliance/uninstall.sh [--root DIR] [--dry-run] [--purge]
#
#   --root DIR   uninstall from the staging root DIR instead of / (no systemctl calls).
#   --dry-run    print every step; remove nothing.
#   --purge      also remove the node's data (/var/lib/neuwerk: identity, store, TLS keys), the
#                configuration (/etc/neuwerk) and the neuwerk user and group.
#
# Without --purge it removes the program (/opt/neuwerk, /usr/local/bin/neuwerk) and the unit
# (/etc/systemd/system/neuwerk.service, stopped and disabled first when systemd runs) and keeps
# /var/lib/neuwerk, /etc/neuwerk and the user, so a later install picks the node up again.
# Exit codes: 0 success, 1 failure, 2 usage error.
set -euo pipefail
export LC_ALL=C

PROG=uninstall.sh
ROOT=""
DRY_RUN=0
PURGE=0

die_usage() {
  echo "$PROG: $1" >&2
  echo "usage: $PROG [--root DIR] [--dry-run] [--purge]" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --root)
      [ $# -ge 2 ] || die_usage "--root needs a directory"
      ROOT="$2"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h | --help) sed -n '3,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown flag: $1" ;;
  esac
done
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die_usage "--root $ROOT is not a directory"
  ROOT="$(cd "$ROOT" && pwd -P)"
  [ "$ROOT" = / ] && ROOT=""
fi
if [ "$(id -u)" -ne 0 ] && [ -z "$ROOT" ] && [ "$DRY_RUN" -eq 0 ]; then
  echo "$PROG: error: run as root (or use --root DIR, --dry-run)" >&2
  exit 1
fi

UNIT=/etc/systemd/system/neuwerk.service
USER_NAME=neuwerk
CHANGES=0

say() { echo "[$1] $2"; }
run() {
  local step="$1"; shift
  if [ "$DRY_RUN" -eq 1 ]; then
    say "$step" "would run: $*"
  else
    say "$step" "run: $*"
    "$@"
    CHANGES=$((CHANGES + 1))
  fi
}
remove() { # STEP PATH
  if [ -e "$ROOT$2" ] || [ -L "$ROOT$2" ]; then
    run "$1" rm -rf -- "$ROOT$2"
  else
    say "$1" "unchanged: $2 is not there"
  fi
}
keep() { # STEP PATH
  if [ -e "$ROOT$2" ]; then say "$1" "kept: $2 (use --purge to remove)"; fi
}

say start "uninstalling neuwerk from ${ROOT:-/}$([ "$PURGE" -eq 1 ] && echo ' with --purge')$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run: nothing is removed)')"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ] && [ -e "$UNIT" ]; then
  run systemd systemctl disable --now neuwerk.service
else
  say systemd "skipped: $([ -n "$ROOT" ] && echo '--root given' || echo 'systemd not running or no unit')"
fi
remove unit "$UNIT"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  run systemd systemctl daemon-reload
fi
remove program /usr/local/bin/neuwerk
remove program /opt/neuwerk
remove program /opt/neuwerk.new
remove program /opt/neuwerk.old

if [ "$PURGE" -eq 1 ]; then
  remove purge /var/lib/neuwerk
  remove purge /etc/neuwerk
  if [ -n "$ROOT" ]; then
    if [ -f "$ROOT/etc/passwd" ] && grep -q "^$USER_NAME:" "$ROOT/etc/passwd"; then
      run purge userdel --prefix "$ROOT" "$USER_NAME"
    else
      say purge "unchanged: no user $USER_NAME"
    fi
  elif getent passwd "$USER_NAME" >/dev/null; then
    run purge userdel "$USER_NAME"
  else
    say purge "unchanged: no user $USER_NAME"
  fi
else
  keep data /var/lib/neuwerk
  keep data /etc/neuwerk
  say data "kept: user $USER_NAME (use --purge to remove)"
fi

if [ "$DRY_RUN" -eq 1 ]; then say done "dry run: nothing was removed"
elif [ "$CHANGES" -eq 0 ]; then say done "nothing changed"
else say done "$CHANGES change(s) made"; fi
