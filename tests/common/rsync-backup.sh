#!/bin/bash
# A stand-in engine for checking the scenario tests themselves:
#   DSYNC_TEST_BINARY=$PWD/tests/common/rsync-backup.sh cargo test --test backup
# "backup" is `rsync -a --delete` of the whole tree (Dovecot's index files
# included). On a source Dovecot has indexed this is a perfect backup, so
# those scenarios must pass; it ignores -m, writes no dovecot-uidlist into an
# unindexed source, validates nothing and prints no usage, so the scenarios
# about those must fail.
loc= ; rev=0 ; cmd= ; dest=
while [ $# -gt 0 ]; do
  case "$1" in
    -c) shift 2;;
    -o) loc=${2#mail_location=}; shift 2;;
    -R) rev=1; shift;;
    -m) shift 2;;
    backup) cmd=backup; dest=$2; break;;
    *) exit 64;;
  esac
done
[ -z "$dest" ] && exit 64
s=${loc#maildir:}; d=${dest#maildir:}
[ $rev = 1 ] && { t=$s; s=$d; d=$t; }
[ -d "$s" ] || { echo "no such $s" >&2; exit 1; }
rsync -a --delete "$s/" "$d/" || exit 1
