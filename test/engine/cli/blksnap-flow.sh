#!/usr/bin/env bash
# The blksnap console tool's flow, through blksnap-manager, on image devices of the
# embedded engine. Needs: REPO (checkout), SOCK (helper socket), WORK (empty scratch
# directory). The helper must run with small storage portions (diffStorageMinimum=2048,
# chunkMinimumShift=16) so that 8 MiB of writes overflow the 1 MiB limit used here.
# Prints "FLOW OK" at the end; any failed step exits non-zero with a message.
set -euo pipefail
: "${REPO:?}" "${SOCK:?}" "${WORK:?}"

bm() { node "$REPO/bin/blksnap-manager.mjs" "$@" --socket "$SOCK"; }
fail() { echo "FLOW FAILED: $*" >&2; exit 1; }
field() { sed -n "s/^$1=//p"; }

echo "== version"
bm version | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' || fail "version"

echo "== image create x2"
out1=$(bm image create --path "$WORK/disk1.img" --size 32M)
out2=$(bm image create --path "$WORK/disk2.img" --size 16M --name disk2)
uri1=$(field nbd <<<"$out1")
[[ $uri1 == nbd+unix:///disk1\?socket=* ]] || fail "image create printed no NBD URI: $out1"
[[ $(field size <<<"$out2") == 16777216 ]] || fail "disk2 size: $out2"
[[ $(bm image list | tail -n +2 | wc -l) -eq 2 ]] || fail "image list (a header and two images): $(bm image list)"

echo "== snapshot_create, snapshot_add"
id=$(bm snapshot_create -d "$WORK/disk1.img" -f "$WORK/diff0" -l 1M)
[[ $id =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] || fail "snapshot id: $id"
[[ -f $WORK/diff0 ]] || fail "no difference storage file"
bm snapshot_add -i "$id" -d disk2
bm snapshot_collect | grep -qx "$id" || fail "snapshot_collect does not list $id"

echo "== snapshot_watcher (background)"
bm snapshot_watcher -i "$id" >"$WORK/watch.log" 2>&1 &
watcher=$!
for _ in $(seq 100); do grep -q '^watching' "$WORK/watch.log" && break; sleep 0.1; done
grep -q '^watching' "$WORK/watch.log" || fail "watcher did not start: $(cat "$WORK/watch.log")"

echo "== snapshot_take, snapshot_info"
bm snapshot_take -i "$id"
info=$(bm snapshot_info -d disk2)
[[ $(field error_code <<<"$info") == 0 ]] || fail "snapshot_info error_code: $info"
image=$(field image <<<"$info")
[[ $image == blksnap-image* ]] || fail "snapshot_info image: $info"
[[ $(field nbd <<<"$info") == "nbd+unix:///$image?socket="* ]] || fail "snapshot_info nbd: $info"

echo "== overflow the 1 MiB storage by writing to disk1"
if command -v qemu-io >/dev/null; then
  qemu-io -f raw -c 'write -P 0x5a 0 8M' "$uri1" >/dev/null        # through the NBD export
else
  bm workload start -d disk1 --rate 64 --pattern sequential         # the helper's own writer
fi
for _ in $(seq 100); do grep -q '^event=corrupted' "$WORK/watch.log" && break; sleep 0.1; done
bm workload stop -d disk1 2>/dev/null || true
grep -q "^event=corrupted snapshot=$id .*device=disk1 .*error_code=-28" "$WORK/watch.log" || fail "watcher saw no corrupted event: $(cat "$WORK/watch.log")"
[[ $(bm snapshot_info -d disk1 | field error_code) == -28 ]] || fail "disk1 not marked corrupted"
bm snapshot_info -d disk1 | grep -q '^error=ENOSPC: the difference storage overflowed.*larger --limit$' || fail "snapshot_info does not explain -28: $(bm snapshot_info -d disk1)"
grep -q "^state=taken snapshot=$id" "$WORK/watch.log" || fail "watcher missed the take"

echo "== snapshot_waitevent"
bm snapshot_waitevent -i "$id" -t 200 | grep -Eq '^event=' || fail "snapshot_waitevent"

echo "== cbtinfo, readcbtmap, markdirtyblock"
count=$(bm cbtinfo -d disk1 | field block_count)
bm readcbtmap -d "$WORK/disk1.img" -f "$WORK/disk1.cbt" >/dev/null
[[ $(stat -c %s "$WORK/disk1.cbt") == "$count" ]] || fail "map size $(stat -c %s "$WORK/disk1.cbt") != $count"
bm markdirtyblock -d disk2 -r 0:8 -r 2048:16

echo "== snapshot_destroy"
bm snapshot_destroy -i "$id"
wait "$watcher" || fail "watcher exited with $?"
grep -q "^state=destroyed snapshot=$id" "$WORK/watch.log" || fail "watcher missed the destroy"
[[ ! -e $WORK/diff0 ]] || fail "difference storage left behind"

echo "== errors: errno name on stderr, errno as exit status"
set +e
bm snapshot_take -i "$id" 2>"$WORK/err.txt"; rc=$?
set -e
[[ $rc -eq 3 ]] && grep -q 'ESRCH' "$WORK/err.txt" || fail "take of a destroyed snapshot: rc=$rc $(cat "$WORK/err.txt")"
set +e
bm attach -d disk2 2>"$WORK/err.txt"; rc=$?
set -e
[[ $rc -eq 114 ]] && grep -q 'EALREADY' "$WORK/err.txt" || fail "attach twice: rc=$rc $(cat "$WORK/err.txt")"

echo "== detach, image remove"
bm detach -d disk2
bm image remove --name disk2
[[ $(bm image list | tail -n +2 | wc -l) -eq 1 ]] || fail "image remove: $(bm image list)"
[[ -f $WORK/disk2.img ]] || fail "image remove deleted the file"
echo "FLOW OK"
