#!/usr/bin/env bash
# `make run`: build the demo guest, start the service (if it is not running), create and
# start a demo VM, and say how to reach everything. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
LISTEN=${1:-127.0.0.1:8080}
URL="http://$LISTEN"
V=.venv/bin/viridian
export VIRIDIAN_URL="$URL"
DATA_DIR=$(.venv/bin/python -c 'from viridian.config import default_data_dir; print(default_data_dir())')
mkdir -p "$DATA_DIR"

echo "==> guest kit (cached after the first build)"
IMAGES=$($V guestkit build)
BUILT_ISO=$(awk '$1=="iso"{print $2}' <<<"$IMAGES")
# The kit prunes old builds: the demo VM gets its own copy in the data folder's library.
mkdir -p "$DATA_DIR/library"
ISO="$DATA_DIR/library/viridian-guest.iso"
cmp -s "$BUILT_ISO" "$ISO" 2>/dev/null || cp "$BUILT_ISO" "$ISO"

if ! $V host show >/dev/null 2>&1; then
  echo "==> starting the service on $URL (log: $DATA_DIR/serve.log)"
  setsid nohup $V serve --data-dir "$DATA_DIR" --listen "$LISTEN" >>"$DATA_DIR/serve.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do $V host show >/dev/null 2>&1 && break; sleep 0.1; done
  $V host show >/dev/null || { echo "the service did not start; see $DATA_DIR/serve.log"; exit 1; }
fi

if ! $V vm show demo >/dev/null 2>&1; then
  echo "==> creating VM 'demo' (256 MB, the guest kit's ISO in its DVD drive)"
  $V vm new demo --memory 256MB --dvd "$ISO"
fi
# An older demo VM may point at a pruned guest-kit build: give it the library copy.
dvd=$($V vm show demo --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["settings"]["ide"][-1]["path"] or "")')
if [ "$dvd" != "$ISO" ] && [ ! -f "$dvd" ]; then
  curl -fsS -X PATCH -H "Authorization: Bearer $(cat "$DATA_DIR/token")" -H 'Content-Type: application/json' \
    -d "{\"ide\": [{\"controller\": 1, \"location\": 0, \"kind\": \"dvd\", \"path\": \"$ISO\"}]}" \
    "$URL/api/v1/vms/demo" >/dev/null
fi
state=$($V vm show demo --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["state"])')
if [ "$state" = "Off" ] || [ "$state" = "Saved" ]; then
  echo "==> starting VM 'demo'"
  $V vm start demo
fi
$V vm list
VM_ID=$($V vm show demo --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cat <<MSG

viridian is running.
  API:          $URL/api/v1   (OpenAPI: $URL/openapi.json)
  Admin token:  $DATA_DIR/token   (send it as 'Authorization: Bearer <token>')
  Service log:  $DATA_DIR/serve.log
  Demo console: $DATA_DIR/run/$VM_ID/com1.log  (the guest's COM1 output: tail -f it)

Try next (the CLI is .venv/bin/viridian; 'source .venv/bin/activate' puts it on PATH):
  viridian vm show demo
  viridian vm pause demo && viridian vm resume demo
  viridian vm save demo && viridian vm start demo
  viridian vm shutdown demo
  viridian host show
MSG
