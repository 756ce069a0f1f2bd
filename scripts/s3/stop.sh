#!/usr/bin/env bash
# Stops the Ceph daemons that scripts/s3/start.sh started (radosgw, the OSD, the monitor), by the
# pids in their pid files, newest first. The state folder (S3_STATE_DIR, default /tmp/ceph-s3)
# stays for its logs; the objects were in the OSD's memory and are gone.
set -uo pipefail

STATE_DIR="${S3_STATE_DIR:-/tmp/ceph-s3}"
RUN_DIR="${STATE_DIR}/run"
[ -d "${RUN_DIR}" ] || { echo "[s3] nothing to stop in ${STATE_DIR}"; exit 0; }

# Sends TERM to the pid in file $1, waits up to 10 s for it to exit, then KILLs it.
stop_pid_file() {
  local file="$1" pid
  [ -s "${file}" ] || return 0
  pid="$(cat "${file}")"
  if kill -0 "${pid}" 2>/dev/null; then
    echo "[s3] stopping $(basename "${file}" .pid) (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${file}"
}

stop_pid_file "${RUN_DIR}/rgw.pid"
for file in "${RUN_DIR}"/osd.*.pid; do stop_pid_file "${file}"; done
stop_pid_file "${RUN_DIR}/mon.a.pid"
rm -f "${STATE_DIR}/env"
