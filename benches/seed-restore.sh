#!/usr/bin/env bash
# The runbook's restore ("Appendix B", Restoring the IML Service) as the raw
# shell commands an administrator types, for the RTO row of benches/compare.
# Same steps as `imlrecover apply` of plans/iml-manager.hcl with no agents,
# without any of its checks: no safety dump, no verification, no re-plan.
#
#   ROOT=... BUNDLE=... INSTALLER=... PGHOST=... PGPORT=... [PSQL=...] seed-restore.sh
#
# `service NAME ACTION` is `env -i $ROOT/etc/init.d/NAME ACTION` (the sandbox's
# init scripts live under ROOT, like every path of the recipe).
set -eu
: "${ROOT:?}" "${BUNDLE:?}" "${INSTALLER:?}" "${PGHOST:?}" "${PGPORT:?}"
B=$BUNDLE/files
service() { env -i "$ROOT/etc/init.d/$1" "$2" >/dev/null; }

# The OS configuration the checklist saved (a kickstart would do the same).
mkdir -p "$ROOT/etc/sysconfig/network-scripts" "$ROOT/etc/yum.repos.d" "$ROOT/etc/ssh" "$ROOT/root/.ssh"
cp -p "$B/etc/sysconfig/network" "$ROOT/etc/sysconfig/"
cp -p "$B"/etc/sysconfig/network-scripts/ifcfg-* "$ROOT/etc/sysconfig/network-scripts/"
cp -p "$B/etc/hosts" "$B/etc/resolv.conf" "$B/etc/nsswitch.conf" "$B/etc/yum.conf" "$ROOT/etc/"
cp -p "$B"/etc/yum.repos.d/* "$ROOT/etc/yum.repos.d/"
cp -p "$B/etc/passwd" "$B/etc/shadow" "$B/etc/group" "$B/etc/gshadow" "$B/etc/sudoers" "$ROOT/etc/"
cp -p "$B"/etc/ssh/ssh_host*key* "$ROOT/etc/ssh/" 2>/dev/null || true
cp -p "$B"/root/.ssh/id_rsa* "$B"/root/.ssh/id_dsa* "$B"/root/.ssh/known_hosts "$ROOT/root/.ssh/" 2>/dev/null || true

# Re-install IML.
"$INSTALLER" >/dev/null

# Stop the services (PostgreSQL stays up).
service rabbitmq-server stop
service chroma-supervisor stop
service httpd stop

# Restore ntp.conf and restart NTP.
cp "$B/etc/ntp.conf" "$ROOT/etc/ntp.conf"
service ntpd restart

# Restore the certificates (and the manager's settings).
mkdir -p "$ROOT/var/lib/chroma"
for f in authority.crt authority.pem authority.srl manager.crt manager.pem; do
  /bin/cp "$B/var/lib/chroma/$f" "$ROOT/var/lib/chroma/."
done
cp "$B/usr/share/chroma-manager/local_settings.py" "$ROOT/usr/share/chroma-manager/"

# Restore the database, as the runbook types it (`su - postgres -c "psql
# postgres"`), pointed at the sandbox cluster.
PSQL=${PSQL:-psql}
zcat "$BUNDLE"/pgbackup-*.sql.gz | su - postgres -c "$PSQL -h '$PGHOST' -p '$PGPORT' postgres" >/dev/null 2>&1

# Restart the services.
service rabbitmq-server start
service httpd start
service chroma-supervisor start

# Potential issues: Internal Server Error.
rm -f "$ROOT/var/log/chroma/client_errors.log"
