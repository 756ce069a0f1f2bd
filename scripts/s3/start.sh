#!/usr/bin/env bash
# Starts a real S3-compatible server on this machine: Ceph's RADOS Gateway (radosgw) on top of a
# one-monitor, one-OSD Ceph cluster whose OSD keeps its data in memory (memstore), for tests and CI.
#
#   scripts/s3/start.sh            # then: source /tmp/ceph-s3/env
#
# - Idempotent: when the gateway is already up it only prints the environment.
# - Installs the Debian packages it needs when missing (fresh Debian 12, run as root).
# - All state (config, monitor store, logs, pid files, the env file) lives in S3_STATE_DIR
#   (default /tmp/ceph-s3). The objects live in the OSD's memory: a restart loses them.
# - The gateway listens on 127.0.0.1:S3_PORT (default 7480, or the next free port when 7480 is
#   taken); the monitor on 127.0.0.1:S3_MON_PORT (msgr2, default 3300) and :S3_MON_V1_PORT (msgr1,
#   default 6789). With other ports and another S3_STATE_DIR, a second cluster runs beside the
#   first (the fault tests restart and pause one of their own).
# - Prints S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY (fixed test credentials) and writes
#   them, as `export` lines, to S3_STATE_DIR/env.
# - Stop it with scripts/s3/stop.sh.
set -euo pipefail

STATE_DIR="${S3_STATE_DIR:-/tmp/ceph-s3}"
ACCESS_KEY="${S3_TEST_ACCESS_KEY:-TESTACCESSKEY0000001}"
SECRET_KEY="${S3_TEST_SECRET_KEY:-testsecretkey0000000000000000000000000001}"
CONF="${STATE_DIR}/ceph.conf"
ENV_FILE="${STATE_DIR}/env"
log() { printf '[s3 %3ds] %s\n' "${SECONDS}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# True when the process whose pid is in file $1 is alive.
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# True when an S3 server answers on $1 (an anonymous ListBuckets gets an XML reply from RGW).
s3_answers() { curl -sS -m 2 -o /dev/null "$1/" 2>/dev/null; }

print_env() {
  cat "${ENV_FILE}"
}

# --- Already running? Then only print the environment. -----------------------------------------
if pid_alive "${STATE_DIR}/run/rgw.pid" && [ -s "${ENV_FILE}" ]; then
  # shellcheck disable=SC1090
  endpoint="$(. "${ENV_FILE}" && echo "${S3_ENDPOINT}")"
  if s3_answers "${endpoint}"; then
    log "radosgw already running at ${endpoint}"
    print_env
    exit 0
  fi
fi

[ "$(id -u)" = 0 ] || die "run as root (the Ceph daemons and apt-get need it)"

# --- Packages ----------------------------------------------------------------------------------
missing=()
for tool in radosgw:radosgw ceph-mon:ceph-mon ceph-osd:ceph-osd monmaptool:ceph-base \
  ceph:ceph-common radosgw-admin:ceph-common curl:curl; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${packages[*]} (apt-get)"
  apt-get update -qq
  # Without recommends: radosgw, ceph-mon and ceph-osd need no MDS, manager or FUSE client.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" \
    >/dev/null
fi

# --- Leftovers of an earlier run: stop them and start over (memstore kept no data anyway). ------
if [ -d "${STATE_DIR}/run" ]; then
  log "cleaning up an earlier run in ${STATE_DIR}"
  "$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
fi
# Refuse to wipe a folder that is not ours (a typo in S3_STATE_DIR must not cost anything).
if [ -n "$(ls -A "${STATE_DIR}" 2>/dev/null)" ] && [ ! -f "${STATE_DIR}/ceph.conf" ]; then
  die "${STATE_DIR} is not empty and holds no ceph.conf: not a state folder of this script"
fi
rm -rf "${STATE_DIR}"
mkdir -p "${STATE_DIR}"/{run,log,mon,osd,rgw}

# --- The gateway's port: S3_PORT, else 7480 or the next free one. -------------------------------
if [ -n "${S3_PORT:-}" ]; then
  port="${S3_PORT}"
  ! port_busy "${port}" || die "S3_PORT=${port} is already in use"
else
  port=7480
  while port_busy "${port}"; do port=$((port + 1)); done
fi
MON_V2="${S3_MON_PORT:-3300}"
MON_V1="${S3_MON_V1_PORT:-6789}"
for p in "${MON_V2}" "${MON_V1}"; do
  ! port_busy "${p}" || die "the Ceph monitor port ${p} is already in use"
done
ENDPOINT="http://127.0.0.1:${port}"

# --- Configuration -------------------------------------------------------------------------------
FSID="$(cat /proc/sys/kernel/random/uuid)"
cat >"${CONF}" <<EOF
[global]
fsid = ${FSID}
mon host = [v2:127.0.0.1:${MON_V2},v1:127.0.0.1:${MON_V1}]
public network = 127.0.0.0/8
# No cephx: everything is on loopback and throwaway.
auth cluster required = none
auth service required = none
auth client required = none
# Without these two, clients (radosgw included) insist on a secure msgr2 session and hang.
ms mon client mode = crc
ms client mode = crc
# All files of the cluster in the state folder (daemons also get pid files and admin sockets).
run dir = ${STATE_DIR}/run
log file = ${STATE_DIR}/log/\$name.log
# One OSD: one replica, few placement groups, no health warnings about either.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
# The monitor stops itself when its disk has under 5% free; a CI disk may well be that full.
mon data avail crit = 0
mon data avail warn = 0

[mon]
pid file = ${STATE_DIR}/run/\$name.pid
admin socket = ${STATE_DIR}/run/\$name.asok
mon data = ${STATE_DIR}/mon
mon initial members = a

[osd]
pid file = ${STATE_DIR}/run/\$name.pid
admin socket = ${STATE_DIR}/run/\$name.asok
osd data = ${STATE_DIR}/osd
osd objectstore = memstore
# The capacity the in-memory OSD reports (memory is only used as objects are written).
memstore device bytes = 4294967296
osd max object name len = 460
osd max object namespace len = 64

[client.rgw.s3]
admin socket = ${STATE_DIR}/run/\$name.asok
rgw frontends = beast endpoint=127.0.0.1:${port} tcp_nodelay=1
rgw data = ${STATE_DIR}/rgw
# Path-style buckets (http://host:port/bucket/key), as the tests and the app use.
rgw dns name = 127.0.0.1
EOF
ceph_() { ceph -c "${CONF}" --connect-timeout 10 "$@"; }

# --- Monitor -------------------------------------------------------------------------------------
log "starting ceph-mon"
monmaptool --create --fsid "${FSID}" --addv a "[v2:127.0.0.1:${MON_V2},v1:127.0.0.1:${MON_V1}]" \
  "${STATE_DIR}/monmap" >/dev/null
ceph-mon -c "${CONF}" --mkfs -i a --monmap "${STATE_DIR}/monmap"
ceph-mon -c "${CONF}" -i a
ceph_ mon stat >/dev/null || die "the monitor does not answer (see ${STATE_DIR}/log/mon.a.log)"

# --- OSD (memstore) ------------------------------------------------------------------------------
log "monitor up; starting ceph-osd (memstore)"
OSD_UUID="$(cat /proc/sys/kernel/random/uuid)"
osd_id="$(ceph_ osd new "${OSD_UUID}")"
ceph-osd -c "${CONF}" -i "${osd_id}" --mkfs --osd-uuid "${OSD_UUID}" >/dev/null 2>&1 ||
  die "ceph-osd --mkfs failed (see ${STATE_DIR}/log/osd.${osd_id}.log)"
ceph-osd -c "${CONF}" -i "${osd_id}" 2>>"${STATE_DIR}/log/osd.${osd_id}.log"
for _ in $(seq 1 60); do
  ceph_ osd dump 2>/dev/null | grep -q "^osd\.${osd_id} up" && break
  sleep 0.5
done
ceph_ osd dump | grep -q "^osd\.${osd_id} up" || die "the OSD did not come up"

# --- RADOS Gateway -------------------------------------------------------------------------------
log "OSD up; starting radosgw on ${ENDPOINT}"
radosgw -c "${CONF}" -n client.rgw.s3 --pid-file "${STATE_DIR}/run/rgw.pid"
for _ in $(seq 1 120); do
  s3_answers "${ENDPOINT}" && break
  sleep 0.5
done
s3_answers "${ENDPOINT}" || die "radosgw does not answer on ${ENDPOINT} (see ${STATE_DIR}/log)"

# --- The S3 user with fixed test credentials ---------------------------------------------------
log "radosgw answers; creating the S3 user"
radosgw-admin -c "${CONF}" user create --uid=test --display-name=test \
  --access-key="${ACCESS_KEY}" --secret="${SECRET_KEY}" >/dev/null

cat >"${ENV_FILE}" <<EOF
export S3_ENDPOINT=${ENDPOINT}
export S3_ACCESS_KEY_ID=${ACCESS_KEY}
export S3_SECRET_ACCESS_KEY=${SECRET_KEY}
export S3_REGION=us-east-1
export S3_FORCE_PATH_STYLE=true
EOF
log "radosgw ready; environment in ${ENV_FILE}"
print_env
