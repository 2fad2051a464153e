#!/usr/bin/env bash
# The restore of an IML 6.1–6.3 manager (EL7, systemd, InfluxDB) as the raw
# shell commands an administrator types, for the EL7 RTO row of
# benches/compare: the runbook's Appendix B with `systemctl` for `service`,
# `yum install python2-iml-manager && chroma-config setup` for the
# installer, and `influxd restore -portable` for the statistics. The same
# steps as `imlrecover apply` of plans/iml-manager-el7-6.1.hcl with no
# agents, without any of its checks: no safety dump or backup, no
# verification, no re-plan.
#
#   ROOT=... BUNDLE=... INSTALLER=... PGHOST=... PGPORT=... SYSTEMCTL=... \
#   INFLUX_RPC=... INFLUX_DBS="iml iml_stats ..." [PSQL=...] seed-restore-el7.sh
#
# SYSTEMCTL is the sandbox's systemctl (docker-systemctl-replacement with
# --root=ROOT: the units live under ROOT, like every path of the recipe).
set -eu
: "${ROOT:?}" "${BUNDLE:?}" "${INSTALLER:?}" "${PGHOST:?}" "${PGPORT:?}" "${SYSTEMCTL:?}" "${INFLUX_RPC:?}" "${INFLUX_DBS:?}"
B=$BUNDLE/files
# shellcheck disable=SC2086  # SYSTEMCTL is a command line
systemctl() { $SYSTEMCTL "$@" >/dev/null 2>&1; }

# The OS configuration the checklist saved (a kickstart would do the same).
mkdir -p "$ROOT/etc/sysconfig/network-scripts" "$ROOT/etc/yum.repos.d" "$ROOT/etc/ssh" "$ROOT/root/.ssh" "$ROOT/var/lib/chroma"
cp -p "$B/etc/sysconfig/network" "$ROOT/etc/sysconfig/"
cp -p "$B"/etc/sysconfig/network-scripts/ifcfg-* "$ROOT/etc/sysconfig/network-scripts/"
cp -p "$B/etc/hosts" "$B/etc/resolv.conf" "$B/etc/nsswitch.conf" "$B/etc/yum.conf" "$ROOT/etc/"
cp -p "$B"/etc/yum.repos.d/* "$ROOT/etc/yum.repos.d/"
cp -p "$B/etc/passwd" "$B/etc/shadow" "$B/etc/group" "$B/etc/gshadow" "$B/etc/sudoers" "$ROOT/etc/"
cp -p "$B"/etc/ssh/ssh_host*key* "$ROOT/etc/ssh/" 2>/dev/null || true
cp -p "$B"/root/.ssh/id_rsa* "$B"/root/.ssh/id_dsa* "$B"/root/.ssh/known_hosts "$ROOT/root/.ssh/" 2>/dev/null || true
cp -p "$B/var/lib/chroma/overrides.conf" "$ROOT/var/lib/chroma/" 2>/dev/null || true

# Re-install IML: yum install python2-iml-manager && chroma-config setup.
"$INSTALLER" >/dev/null

# Stop what writes the databases (PostgreSQL and InfluxDB stay up).
systemctl stop iml-manager.target grafana-server nginx rabbitmq-server

# Restore ntp.conf and restart NTP.
cp "$B/etc/ntp.conf" "$ROOT/etc/ntp.conf"
systemctl restart ntpd

# Restore the certificates and the manager's settings.
for f in authority.crt authority.pem authority.srl manager.crt manager.pem; do
  /bin/cp "$B/var/lib/chroma/$f" "$ROOT/var/lib/chroma/."
done
cp "$B/usr/share/chroma-manager/local_settings.py" "$ROOT/usr/share/chroma-manager/"

# Restore the database (chroma and grafana), pointed at the sandbox cluster.
PSQL=${PSQL:-psql}
zcat "$BUNDLE"/pgbackup-*.sql.gz | su - postgres -c "$PSQL -h '$PGHOST' -p '$PGPORT' postgres" >/dev/null 2>&1

# Restore the statistics, one database at a time (none exists on the new host).
for db in $INFLUX_DBS; do
  influxd restore -portable -host "$INFLUX_RPC" -db "$db" "$B/influxdb.stats/$db" >/dev/null 2>&1
done

# Start the manager again.
systemctl start rabbitmq-server nginx grafana-server iml-manager.target

# Potential issues: Internal Server Error.
rm -f "$ROOT/var/log/chroma/client_errors.log"
