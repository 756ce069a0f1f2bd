#!/usr/bin/env bash
# Starts Orthanc (Debian packages orthanc + orthanc-dicomweb) as a real PACS peer for tests and
# benchmarks: its own config, storage and index in a state folder, HTTP on 127.0.0.1, DICOMweb
# at /dicom-web/, no authentication unless ORTHANC_USERS="user:password" (HTTP basic auth, as a
# PACS that takes results from this service would ask). Installs the packages when missing. Idempotent: prints the
# environment to use (ORTHANC_URL=…) and writes it to <state>/env.
#
#   ORTHANC_STATE_DIR (default /tmp/orthanc-peer)  ORTHANC_HTTP_PORT (default 8042)
#   ORTHANC_DICOM_PORT (default 4242)  ORTHANC_PEER_URL: a DICOMweb server Orthanc knows as "imaging"
#   ORTHANC_MODALITIES: DICOM peers (JSON, Orthanc's DicomModalities); Orthanc's own AE title is ORTHANC
#
#   start.sh --install-only   installs the packages when missing and exits (for CI).
set -euo pipefail
STATE="${ORTHANC_STATE_DIR:-/tmp/orthanc-peer}"
HTTP_PORT="${ORTHANC_HTTP_PORT:-8042}"
DICOM_PORT="${ORTHANC_DICOM_PORT:-4242}"
PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so

# Debian puts Orthanc in /usr/sbin, which a non-root PATH often lacks.
orthanc_bin() { command -v Orthanc || { [ -x /usr/sbin/Orthanc ] && echo /usr/sbin/Orthanc; }; }
if ! orthanc_bin >/dev/null || [ ! -f "$PLUGIN" ] || ! command -v curl >/dev/null; then
  command -v apt-get >/dev/null || { echo "Orthanc is not installed and there is no apt-get"; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb curl >/dev/null
fi
ORTHANC="$(orthanc_bin)"
if [ "${1:-}" = "--install-only" ]; then
  "$ORTHANC" --version 2>&1 | sed -n 1p
  exit 0
fi

url="http://127.0.0.1:${HTTP_PORT}"
if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null && curl -fsS ${ORTHANC_USERS:+-u "$ORTHANC_USERS"} "$url/system" >/dev/null 2>&1; then
  cat "$STATE/env"
  exit 0
fi

rm -rf "$STATE"
mkdir -p "$STATE/storage"
peers="{}"
auth=false
users="{}"
# ORTHANC_MODALITIES: a JSON object of DICOM peers, e.g. {"imaging": ["IMAGING_AI", "127.0.0.1", 11112]}
modalities="${ORTHANC_MODALITIES:-{\}}"
if [ -n "${ORTHANC_USERS:-}" ]; then
  auth=true
  users="{ \"${ORTHANC_USERS%%:*}\": \"${ORTHANC_USERS#*:}\" }"
fi
if [ -n "${ORTHANC_PEER_URL:-}" ]; then
  peers="{ \"imaging\": { \"Url\": \"${ORTHANC_PEER_URL%/}/\" } }"
fi
cat >"$STATE/orthanc.json" <<JSON
{
  "Name": "orthanc-peer",
  "StorageDirectory": "$STATE/storage",
  "IndexDirectory": "$STATE/storage",
  "HttpPort": $HTTP_PORT,
  "DicomPort": $DICOM_PORT,
  "DicomAet": "ORTHANC",
  "DicomModalities": $modalities,
  "DicomAlwaysAllowEcho": true,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": $auth,
  "RegisteredUsers": $users,
  "HttpServerEnabled": true,
  "StorageCompression": false,
  "Plugins": ["$PLUGIN"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": false, "Servers": $peers }
}
JSON
"$ORTHANC" "$STATE/orthanc.json" >"$STATE/log" 2>&1 </dev/null &
echo $! >"$STATE/pid"
for _ in $(seq 1 60); do
  curl -fsS ${ORTHANC_USERS:+-u "$ORTHANC_USERS"} "$url/system" >/dev/null 2>&1 && break
  kill -0 "$(cat "$STATE/pid")" 2>/dev/null || { echo "Orthanc exited:"; tail -20 "$STATE/log"; exit 1; }
  sleep 0.5
done
curl -fsS ${ORTHANC_USERS:+-u "$ORTHANC_USERS"} "$url/system" >/dev/null || { echo "Orthanc did not answer on $url"; tail -20 "$STATE/log"; exit 1; }
{
  echo "export ORTHANC_URL=$url"
  echo "export ORTHANC_DICOMWEB=$url/dicom-web"
  echo "export ORTHANC_PID=$(cat "$STATE/pid")"
} >"$STATE/env"
cat "$STATE/env"
