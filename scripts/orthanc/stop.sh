#!/usr/bin/env bash
# Stops the Orthanc that scripts/orthanc/start.sh started.
STATE="${ORTHANC_STATE_DIR:-/tmp/orthanc-peer}"
if [ -f "$STATE/pid" ]; then
  kill "$(cat "$STATE/pid")" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$(cat "$STATE/pid")" 2>/dev/null || break; sleep 0.25; done
  # Still running after 10 s: no more waiting.
  kill -0 "$(cat "$STATE/pid")" 2>/dev/null && kill -9 "$(cat "$STATE/pid")" 2>/dev/null
  rm -f "$STATE/pid"
fi
