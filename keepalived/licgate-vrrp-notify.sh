#!/bin/sh
# licgate-vrrp-notify.sh - keepalived "notify" hook: record this host's VRRP role for licgate.
#
# keepalived.conf (inside vrrp_instance):
#     notify "/usr/local/libexec/licgate/licgate-vrrp-notify.sh"
#     notify "/usr/local/libexec/licgate/licgate-vrrp-notify.sh /other/dir/vrrp-state"
# keepalived appends four arguments to the configured ones:
#     TYPE      INSTANCE | GROUP
#     NAME      the vrrp_instance or vrrp_sync_group name
#     STATE     MASTER | BACKUP | FAULT | STOP | DELETED
#     PRIORITY  0..255
# An optional first argument names the state file; default /run/licgate/vrrp-state.
#
# The state file holds one line, replaced atomically (temporary file in the same directory,
# then rename), so a reader sees the old line or the new one, never a partial one:
#     TYPE NAME STATE PRIORITY TIMESTAMP
#     INSTANCE VI_LICGATE MASTER 150 2025-01-31T12:00:00Z
# TIMESTAMP is UTC, ISO 8601, whole seconds. With several instances or groups, the last event
# wins. Arguments that do not look like keepalived's are refused (exit 2) and nothing is written.
# keepalived starts notify scripts without waiting for the previous one, so two transitions
# within milliseconds may be written out of order; the next transition corrects it.
#
# Exit: 0 written, 1 could not write, 2 bad arguments.

set -eu
umask 022
PATH=/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C   # character ranges in the checks below mean ASCII only
export PATH LC_ALL

prog=licgate-vrrp-notify

fail() {
    code=$1
    shift
    printf '%s: %s\n' "$prog" "$*" >&2
    exit "$code"
}

state_file=/run/licgate/vrrp-state
case $# in
    4) ;;
    5) state_file=$1; shift ;;
    *) fail 2 "expected [STATE_FILE] TYPE NAME STATE PRIORITY, got $# arguments" ;;
esac

type=$1
name=$2
state=$3
prio=$4

case $type in
    INSTANCE|GROUP) ;;
    *) fail 2 "bad TYPE (want INSTANCE or GROUP)" ;;
esac
case $state in
    MASTER|BACKUP|FAULT|STOP|DELETED) ;;
    *) fail 2 "bad STATE (want MASTER, BACKUP, FAULT, STOP or DELETED)" ;;
esac
# Names: what keepalived configs use in practice; nothing a reader could mistake for a separator.
case $name in
    ''|*[!A-Za-z0-9_.:@-]*) fail 2 "bad NAME (allowed: A-Z a-z 0-9 _ . : @ -)" ;;
esac
if [ "${#name}" -gt 64 ]; then fail 2 "bad NAME (longer than 64 characters)"; fi
case $prio in
    ''|*[!0-9]*) fail 2 "bad PRIORITY (want 0..255)" ;;
esac
if [ "${#prio}" -gt 3 ] || [ "$prio" -gt 255 ]; then fail 2 "bad PRIORITY (want 0..255)"; fi
case $state_file in
    /*) ;;
    *) fail 2 "state file must be an absolute path" ;;
esac
case $state_file in
    */) fail 2 "state file must not end in /" ;;
esac

dir=$(dirname -- "$state_file")
[ -d "$dir" ] || fail 1 "directory $dir does not exist (create it at boot, owned by the script user)"

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tmp=$(mktemp -- "$dir/.vrrp-state.XXXXXX") || fail 1 "cannot create a temporary file in $dir"
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

printf '%s %s %s %s %s\n' "$type" "$name" "$state" "$prio" "$now" > "$tmp" || fail 1 "cannot write $tmp"
chmod 0644 -- "$tmp" || fail 1 "cannot chmod $tmp"
mv -f -- "$tmp" "$state_file" || fail 1 "cannot rename $tmp to $state_file"
trap - EXIT
exit 0
