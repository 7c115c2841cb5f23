#!/usr/bin/env bash
# appliance/install.sh — install neuwerk on a Debian 12 host from this package directory.
#
# Usage: appliance/install.sh [--root DIR] [--dry-run] [--skip-build] [--source DIR]
#
#   --root DIR     install into the staging root DIR instead of / (DIR must exist). No systemctl
#                  calls; the neuwerk user is written into DIR/etc/{passwd,group,shadow,gshadow}
#                  with `useradd --prefix DIR` (those files are created when missing).
#   --dry-run      print every step and what it would change; write nothing.
#   --skip-build   do not run npm: copy the already-built dist/ and node_modules/ from the source
#                  tree (it must have been built with `npm install` on the same OS/architecture).
#   --source DIR   package directory to install from (default: the directory above this script).
#
# What it installs (paths below are relative to --root when given):
#   /opt/neuwerk                          the package: a copy of the source tree without .git,
#                                         .neuwerk, node_modules and dist; then `npm ci` (which
#                                         builds through `prepare`, needing the dev dependencies)
#                                         and `npm prune --omit=dev`. Built in /opt/neuwerk.new and
#                                         swapped in whole, so no stale file survives an upgrade.
#                                         /opt/neuwerk/.neuwerk-install records a digest of what
#                                         was copied (paths, modes, contents); an equal digest
#                                         means "unchanged" and nothing is copied or rebuilt.
#   /usr/local/bin/neuwerk                wrapper: exec node /opt/neuwerk/bin/run.js "$@"
#                                         (NEUWERK_HOME / NEUWERK_NODE override the two paths).
#   user and group `neuwerk`              useradd --system --user-group --home-dir /var/lib/neuwerk
#                                         --no-create-home --shell /usr/sbin/nologin neuwerk
#   /etc/neuwerk/          0750 root:neuwerk
#   /etc/neuwerk/config.yaml 0640 root:neuwerk   from templates/config.yaml; an existing file is
#                                         the operator's and is never overwritten.
#   /var/lib/neuwerk/      0700 neuwerk:neuwerk  the node's state (identity, store, TLS keys)
#   /etc/systemd/system/neuwerk.service   from templates/neuwerk.service
#   systemctl daemon-reload / enable neuwerk   only without --root and when systemd is running;
#                                         the service is enabled, not started: review the config
#                                         first, then `systemctl start neuwerk`.
#
# Idempotent: every step compares what is there with what it would write and writes only when
# they differ, printing "unchanged" otherwise; a second run changes nothing. Program files are
# owned by root (the service user cannot modify them). Without root (only allowed with --root)
# the user and the ownership steps are skipped with a message.
#
# Exit codes: 0 success, 1 failure, 2 usage error.
set -euo pipefail
umask 022
export LC_ALL=C

PROG=install.sh
ROOT=""
DRY_RUN=0
SKIP_BUILD=0
SOURCE=""

usage() {
  sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
}

die_usage() {
  echo "$PROG: $1" >&2
  echo "usage: $PROG [--root DIR] [--dry-run] [--skip-build] [--source DIR]" >&2
  exit 2
}

die() {
  echo "$PROG: error: $1" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --root)
      [ $# -ge 2 ] || die_usage "--root needs a directory"
      ROOT="$2"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --source)
      [ $# -ge 2 ] || die_usage "--source needs a directory"
      SOURCE="$2"; shift 2 ;;
    --source=*) SOURCE="${1#--source=}"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown flag: $1" ;;
  esac
done

if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die_usage "--root $ROOT is not a directory"
  ROOT="$(cd "$ROOT" && pwd -P)"
  [ "$ROOT" = / ] && ROOT=""
fi
if [ -z "$SOURCE" ]; then
  SOURCE="$(cd "$(dirname "$0")/.." && pwd -P)"
else
  [ -d "$SOURCE" ] || die_usage "--source $SOURCE is not a directory"
  SOURCE="$(cd "$SOURCE" && pwd -P)"
fi
[ -f "$SOURCE/package.json" ] && [ -f "$SOURCE/templates/config.yaml" ] && [ -f "$SOURCE/templates/neuwerk.service" ] \
  || die "$SOURCE is not the neuwerk package directory (package.json, templates/ missing)"

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
if [ "$IS_ROOT" -eq 0 ] && [ -z "$ROOT" ] && [ "$DRY_RUN" -eq 0 ]; then
  die "run as root (or use --root DIR to stage, --dry-run to preview)"
fi

# Install paths (inside the target root).
OPT=/opt/neuwerk
WRAPPER=/usr/local/bin/neuwerk
ETC=/etc/neuwerk
CONFIG=/etc/neuwerk/config.yaml
DATA=/var/lib/neuwerk
UNIT=/etc/systemd/system/neuwerk.service
USER_NAME=neuwerk

CHANGES=0
TMP="$(mktemp -d "${TMPDIR:-/tmp}/neuwerk-install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

say() { echo "[$1] $2"; }
changed() { CHANGES=$((CHANGES + 1)); say "$1" "$2"; }
# run STEP CMD...: print the command; run it unless --dry-run.
run() {
  local step="$1"; shift
  if [ "$DRY_RUN" -eq 1 ]; then
    say "$step" "would run: $*"
  else
    say "$step" "run: $*"
    "$@"
  fi
}

# ---- user ------------------------------------------------------------------------------------
user_entry() { # prints uid:gid of the neuwerk user, or nothing
  if [ -n "$ROOT" ]; then
    [ -f "$ROOT/etc/passwd" ] && awk -F: -v u="$USER_NAME" '$1 == u { print $3 ":" $4 }' "$ROOT/etc/passwd"
  else
    getent passwd "$USER_NAME" | awk -F: '{ print $3 ":" $4 }'
  fi
  return 0
}

step_user() {
  local step=user
  if [ -n "$(user_entry)" ]; then
    say "$step" "unchanged: user $USER_NAME exists ($(user_entry))"
    return
  fi
  if [ "$IS_ROOT" -eq 0 ] && [ "$DRY_RUN" -eq 0 ]; then
    say "$step" "skipped: not root, cannot create user $USER_NAME (ownership steps are skipped too)"
    return
  fi
  local args=(--system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin)
  if [ -n "$ROOT" ]; then
    local f
    [ -d "$ROOT/etc" ] || run "$step" mkdir -p "$ROOT/etc"
    for f in passwd group shadow gshadow; do
      if [ ! -e "$ROOT/etc/$f" ]; then
        run "$step" touch "$ROOT/etc/$f"
        case "$f" in
          shadow | gshadow) run "$step" chmod 0640 "$ROOT/etc/$f" ;;
          *) run "$step" chmod 0644 "$ROOT/etc/$f" ;;
        esac
      fi
    done
    args=(--prefix "$ROOT" "${args[@]}")
  fi
  run "$step" useradd "${args[@]}" "$USER_NAME"
  CHANGES=$((CHANGES + 1))
}

# Resolves "root" / "neuwerk" to uid:gid for chown; empty when it cannot be known.
owner_ids() {
  case "$1" in
    root) echo "0:0" ;;
    svc) user_entry ;;
    mixed) # root:neuwerk
      local e; e="$(user_entry)"; [ -n "$e" ] && echo "0:${e#*:}"; return 0 ;;
  esac
}

# What an owner label means, for messages ("root:neuwerk", not "mixed").
owner_name() {
  case "$1" in
    root) echo "root:root" ;;
    svc) echo "$USER_NAME:$USER_NAME" ;;
    mixed) echo "root:$USER_NAME" ;;
  esac
}

# ensure_owner_mode STEP PATH MODE OWNER(root|svc|mixed)
ensure_owner_mode() {
  local step="$1" path="$2" mode="$3" who="$4" target="$ROOT$2"
  local want_ids; want_ids="$(owner_ids "$who")"
  if [ ! -e "$target" ]; then
    # dry run of a path not yet created
    say "$step" "would chmod $mode and chown $(owner_name "$who") $path"
    return
  fi
  local have_mode; have_mode="$(stat -c '%a' "$target")"
  if [ "$have_mode" != "${mode#0}" ]; then
    if [ "$DRY_RUN" -eq 1 ]; then say "$step" "would chmod $mode $path (is $have_mode)"
    else chmod "$mode" "$target"; changed "$step" "chmod $mode $path (was $have_mode)"; fi
  fi
  if [ "$IS_ROOT" -eq 0 ]; then
    [ "$who" = root ] || say "$step" "skipped: not root, cannot chown $path to $(owner_name "$who")"
    return
  fi
  if [ -z "$want_ids" ]; then
    say "$step" "would chown $path to the $USER_NAME user once it exists"
    return
  fi
  local have_ids; have_ids="$(stat -c '%u:%g' "$target")"
  if [ "$have_ids" != "$want_ids" ]; then
    if [ "$DRY_RUN" -eq 1 ]; then say "$step" "would chown $want_ids $path (is $have_ids)"
    else chown "$want_ids" "$target"; changed "$step" "chown $want_ids $path (was $have_ids)"; fi
  fi
}

# ensure_dir STEP PATH MODE OWNER
ensure_dir() {
  local step="$1" path="$2" mode="$3" who="$4"
  if [ -d "$ROOT$path" ]; then
    say "$step" "unchanged: directory $path exists"
  elif [ "$DRY_RUN" -eq 1 ]; then
    say "$step" "would create directory $path"
  else
    mkdir -p "$ROOT$path"
    changed "$step" "created directory $path"
  fi
  ensure_owner_mode "$step" "$path" "$mode" "$who"
}

# ensure_file STEP SRCFILE PATH MODE OWNER [keep]: install SRCFILE at PATH when different;
# with "keep", an existing PATH is never replaced.
ensure_file() {
  local step="$1" src="$2" path="$3" mode="$4" who="$5" keep="${6:-}" target="$ROOT$3"
  if [ -e "$target" ] && cmp -s "$src" "$target"; then
    say "$step" "unchanged: $path"
  elif [ -e "$target" ] && [ "$keep" = keep ]; then
    say "$step" "kept: $path exists and differs from the template (the operator's file is never overwritten)"
  elif [ "$DRY_RUN" -eq 1 ]; then
    if [ -e "$target" ]; then say "$step" "would update $path"; else say "$step" "would write $path"; fi
  else
    local verb=wrote
    [ -e "$target" ] && verb=updated
    mkdir -p "$(dirname "$target")"
    cp "$src" "$target.tmp.$$"
    chmod "$mode" "$target.tmp.$$"
    mv -f "$target.tmp.$$" "$target"
    changed "$step" "$verb $path"
  fi
  ensure_owner_mode "$step" "$path" "$mode" "$who"
}

# ---- package ---------------------------------------------------------------------------------
# The find expression selecting what is copied from the source tree.
package_find() {
  local prune=(-path ./.git -o -path ./.neuwerk)
  if [ "$SKIP_BUILD" -eq 0 ]; then
    prune+=(-o -path ./node_modules -o -path ./dist)
  fi
  (cd "$SOURCE" && find . -mindepth 1 \( "${prune[@]}" \) -prune -o "$@")
}

step_package() {
  local step=package
  if [ "$SKIP_BUILD" -eq 1 ]; then
    [ -f "$SOURCE/dist/commands/start.js" ] && [ -d "$SOURCE/node_modules" ] \
      || die "--skip-build needs a built source tree ($SOURCE/dist and node_modules); run npm install there"
  fi
  say "$step" "computing the digest of $SOURCE ($([ "$SKIP_BUILD" -eq 1 ] && echo 'with dist/ and node_modules/' || echo 'sources only'))"
  local digest
  digest="$({
    echo "neuwerk-install v1 skip-build=$SKIP_BUILD"
    package_find -printf '%y %m %p -> %l\n' | sort
    package_find -type f -print0 | sort -z | (cd "$SOURCE" && xargs -0 -r sha256sum --)
  } | sha256sum | cut -d' ' -f1)"
  local stamp="$ROOT$OPT/.neuwerk-install"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
    say "$step" "unchanged: $OPT (digest $digest)"
    return
  fi
  local new="$ROOT$OPT.new" old="$ROOT$OPT.old"
  if [ "$DRY_RUN" -eq 1 ]; then
    say "$step" "would copy $SOURCE to $OPT.new (without .git, .neuwerk$([ "$SKIP_BUILD" -eq 0 ] && echo ', node_modules, dist'))"
    if [ "$SKIP_BUILD" -eq 0 ]; then
      say "$step" "would run in $OPT.new: npm ci --no-audit --no-fund (builds through prepare)"
      say "$step" "would run in $OPT.new: npm prune --omit=dev --no-audit --no-fund"
    fi
    say "$step" "would record digest $digest in $OPT/.neuwerk-install and swap $OPT.new into $OPT"
    return
  fi
  rm -rf "$new" "$old"
  mkdir -p "$new"
  say "$step" "copying $SOURCE to $OPT.new"
  package_find -print0 | sort -z > "$TMP/files"
  tar -C "$SOURCE" --null --no-recursion -T "$TMP/files" -cf - | tar -C "$new" --no-same-owner -xpf -
  if [ "$SKIP_BUILD" -eq 0 ]; then
    command -v npm >/dev/null || die "npm not found on PATH (install Node.js 20 first)"
    say "$step" "run in $OPT.new: npm ci --no-audit --no-fund"
    (cd "$new" && npm ci --no-audit --no-fund)
    say "$step" "run in $OPT.new: npm prune --omit=dev --no-audit --no-fund"
    (cd "$new" && npm prune --omit=dev --no-audit --no-fund)
  fi
  echo "$digest" > "$new/.neuwerk-install"
  chmod 0755 "$new"
  if [ -e "$ROOT$OPT" ]; then
    mv "$ROOT$OPT" "$old"
  fi
  mv "$new" "$ROOT$OPT"
  rm -rf "$old"
  changed "$step" "installed $OPT (digest $digest)"
}

# ---- wrapper ---------------------------------------------------------------------------------
step_wrapper() {
  local node_bin
  node_bin="$(command -v node || true)"
  if [ -z "$node_bin" ]; then
    [ "$DRY_RUN" -eq 1 ] || die "node not found on PATH (install Node.js >= 20 first)"
    node_bin=/usr/bin/node
  fi
  case "$node_bin" in
    /home/* | /root/*) say wrapper "warning: $node_bin is under a home directory; the unit's ProtectHome=yes hides it from the service — install Node.js system-wide" ;;
  esac
  cat > "$TMP/wrapper" <<EOF
#!/bin/sh
# neuwerk command, installed by appliance/install.sh: runs the package in /opt/neuwerk.
# NEUWERK_HOME and NEUWERK_NODE override the package directory and the node binary.
exec "\${NEUWERK_NODE:-$node_bin}" "\${NEUWERK_HOME:-$OPT}/bin/run.js" "\$@"
EOF
  ensure_dir wrapper /usr/local/bin 0755 root
  ensure_file wrapper "$TMP/wrapper" "$WRAPPER" 0755 root
}

# ---- systemd ---------------------------------------------------------------------------------
step_systemd() {
  local step=systemd
  if [ -n "$ROOT" ]; then
    say "$step" "skipped: --root given (run systemctl daemon-reload and systemctl enable neuwerk on the target)"
    return
  fi
  if [ ! -d /run/systemd/system ]; then
    say "$step" "skipped: systemd is not running on this host"
    return
  fi
  if [ "$UNIT_CHANGED" -eq 1 ]; then
    run "$step" systemctl daemon-reload
    [ "$DRY_RUN" -eq 1 ] || CHANGES=$((CHANGES + 1))
  else
    say "$step" "unchanged: unit file, no daemon-reload needed"
  fi
  if systemctl is-enabled --quiet neuwerk 2>/dev/null; then
    say "$step" "unchanged: neuwerk.service is enabled"
  else
    run "$step" systemctl enable neuwerk.service
    [ "$DRY_RUN" -eq 1 ] || CHANGES=$((CHANGES + 1))
  fi
}

# ---- main ------------------------------------------------------------------------------------
say start "installing neuwerk from $SOURCE into ${ROOT:-/}$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run: nothing is written)')"
step_user
step_package
step_wrapper
ensure_dir config "$ETC" 0750 mixed
ensure_file config "$SOURCE/templates/config.yaml" "$CONFIG" 0640 mixed keep
ensure_dir data "$DATA" 0700 svc
ensure_dir unit /etc/systemd/system 0755 root
before_unit=$CHANGES
ensure_file unit "$SOURCE/templates/neuwerk.service" "$UNIT" 0644 root
UNIT_CHANGED=0
if [ "$CHANGES" -ne "$before_unit" ] || { [ "$DRY_RUN" -eq 1 ] && ! cmp -s "$SOURCE/templates/neuwerk.service" "$ROOT$UNIT"; }; then
  UNIT_CHANGED=1
fi
step_systemd

if [ "$DRY_RUN" -eq 1 ]; then
  say done "dry run: nothing was written"
elif [ "$CHANGES" -eq 0 ]; then
  say done "nothing changed"
else
  say done "$CHANGES change(s) made"
fi
if [ -z "$ROOT" ] && [ "$DRY_RUN" -eq 0 ]; then
  cat <<EOF
next steps:
  edit $CONFIG, then: systemctl start neuwerk
  neuwerk ready --data-dir $DATA --wait
  sudo -u $USER_NAME neuwerk auth bootstrap --data-dir $DATA > admin.jwt   # first admin token
EOF
fi
