#!/bin/bash
# Holds the scenario tests against Dovecot's own dsync, to tell a wrong test
# from a wrong engine:
#   DSYNC_TEST_BINARY=$PWD/tests/common/doveadm-dsync.sh cargo test --test backup
# Takes dsync's command line (-c CONF -o mail_location=SRC [-R] [-m BOX]
# backup|mirror LOCATION2) and runs `doveadm backup|mirror` as nobody (Dovecot
# refuses root), chowning both trees to nobody and back to root around it.
# Expect failures where Dovecot itself falls short (DESIGN.md section 5): it
# writes its index files into the source, ignores hand-edited subscriptions,
# takes only the last -m, and exits 0/2/75 where the contract says 1.
conf= ; loc= ; opts=() ; cmd= ; rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    -c) conf=$2; shift 2;;
    -o) loc=${2#mail_location=}; shift 2;;
    -R|-f|-v|-D) opts+=("$1"); shift;;
    -m) opts+=("-m" "$2"); shift 2;;
    backup|mirror) cmd=$1; shift; rest=("$@"); break;;
    *) echo "doveadm-dsync.sh: unknown argument $1" >&2; exit 64;;
  esac
done
if [ -z "$cmd" ] || [ ${#rest[@]} -eq 0 ]; then
  echo "usage: doveadm-dsync.sh -c CONF [-o mail_location=LOC] backup|mirror LOCATION2" >&2
  exit 64
fi
dir=$(mktemp -d); chmod 755 "$dir"
{ cat "$conf"
  printf 'mail_uid = 65534\nmail_gid = 65534\nfirst_valid_uid = 0\nfirst_valid_gid = 0\n'
  printf 'ssl = no\nlog_path = /dev/stderr\nbase_dir = %s/run\n' "$dir"
} > "$dir/dovecot.conf"
chmod 644 "$dir/dovecot.conf"
own() {
  for l in "$loc" "${rest[0]}"; do
    p=${l#*:}; p=${p%%:*}
    [ -e "$p" ] && chown -R "$1" "$p"
    chown "$1" "$(dirname "$p")"
  done
}
own 65534:65534
# doveadm calls the two-way sync "sync".
[ "$cmd" = mirror ] && cmd=sync
USER=nobody doveadm -c "$dir/dovecot.conf" -o "mail_location=$loc" "$cmd" "${opts[@]}" "${rest[@]}"
rc=$?
own 0:0
rm -rf "$dir"
exit $rc
