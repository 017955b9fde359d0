#!/bin/sh
# Rebuilds the bundled default lists (ut1-default.tar.gz) from a UT1 folder
# (<category>/domains, urls, usage; README.md; global_usage). The archive is
# reproducible: sorted names, fixed dates and owners, no gzip timestamp, so
# the same input always gives the same bytes.
#
#   blocklists/data/make-default-bundle.sh /path/to/ut1 [2026-08-17]
#
# The date (the snapshot's) becomes every file's modification time.
set -eu

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 <ut1-folder> [snapshot-date YYYY-MM-DD]" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
snapshot=${2:-2026-08-17}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/ut1-default.tar.gz"
list=$(mktemp)
trap 'rm -f "$list" "$out.tmp"' EXIT

# The lists, plus UT1's own description files; nothing else a UT1 folder may hold.
(
  cd "$src"
  find . -mindepth 2 -maxdepth 2 -type f \( -name domains -o -name urls -o -name usage \)
  for f in README.md global_usage; do [ -f "$f" ] && echo "./$f"; done
) | sed 's,^\./,,' | LC_ALL=C sort > "$list"

if ! grep -q -e '/domains$' -e '/urls$' "$list"; then
  echo "$0: $src holds no <category>/domains or <category>/urls files" >&2
  exit 1
fi

tar --create --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mode='u=rw,go=r' \
    --mtime="$snapshot 00:00:00Z" --transform='s,^,ut1/,' \
    -C "$src" --files-from="$list" \
    -C "$here" LICENSE-UT1.md \
  | gzip -n -9 > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(wc -c < "$out") bytes, $(grep -c -e '/domains$' -e '/urls$' "$list") list files"
