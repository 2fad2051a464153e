# The IML manager server on EL7, IML 6.1–6.3 (systemd, PostgreSQL 9.6 as `postgresql-9.6`,
# data /var/lib/pgsql/9.6/data), with its statistics in InfluxDB 1.x and Grafana, whose
# state is a PostgreSQL database of its own (`grafana`, owner chroma) in the
# manager's cluster.
#
# Derived from whamcloud/integrated-manager-for-lustre at v6.1.0, v6.2.0 and v6.3.0:
#   iml-manager.target               Requires nginx, rabbitmq-server, postgresql-9.6,
#                                    influxdb, grafana-server, iml-settings-populator and
#                                    about twenty iml-* units
#   iml-*.service                    PartOf=iml-manager.target: stopping the
#                                    target stops them all
#   iml-settings-populator.service   `manage.py print-settings` into
#                                    /var/lib/chroma/iml-settings.conf (derived)
#   python-iml-manager.spec          package python2-iml-manager; Requires
#                                    postgresql96-server >= 9.6.17, influxdb, grafana,
#                                    rabbitmq-server, nginx
#   chroma_core/lib/service_config.py  _setup_influxdb (databases iml,
#                                    iml_stratagem_scans, iml_stats), _setup_grafana
#                                    (grafana-server), `createdb -O chroma grafana`,
#                                    postgresql96-setup initdb, /var/lib/pgsql/9.6/data
# Installed with `yum install python2-iml-manager` then `chroma-config setup`.
# `imlrecover init` picks the recipe for a host and fills its variables.
#
#   imlrecover init -o /etc/imlrecover/manager.hcl
#   imlrecover plan -r plans/iml-manager-el7-6.1.hcl --root / --bundle /srv/imlbackup/latest

variable "agents" {
  description = "MDS/OSS servers whose chroma-agent is restarted after a restore"
  default     = []
}

variable "installer" {
  description = "Re-install IML, a shell command line (its answers do not matter: the database restore overwrites them)"
  default     = "yum -y install python2-iml-manager && chroma-config setup admin lustre localhost"
}

variable "pg_host" {
  description = "PostgreSQL socket directory or host; null: psql's default"
  default     = null
}

variable "pg_port" {
  description = "PostgreSQL port; null: psql's default (5432)"
  default     = null
}

variable "ssh_port" {
  description = "sshd port on the storage servers"
  default     = 22
}

variable "influx_databases" {
  description = "The InfluxDB databases of the statistics (iml, iml_stats, iml_stratagem_scans)"
  default     = ["iml", "iml_stats", "iml_stratagem_scans"]
}

variable "influx_rpc" {
  description = "influxd's backup/restore RPC address (bind-address in /etc/influxdb/influxdb.conf)"
  default     = "127.0.0.1:8088"
}

variable "influx_http" {
  description = "influxd's HTTP API address ([http] bind-address in /etc/influxdb/influxdb.conf)"
  default     = "127.0.0.1:8086"
}

imlrecover {
  services = "systemd"
}

# ---- Backup checklist: Network Configuration Files -------------------------

file "network" {
  path = "/etc/sysconfig/network"
}

files "ifcfg" {
  glob = "/etc/sysconfig/network-scripts/ifcfg-*"
}

# Host Name Resolution: /etc/hosts names every managed server.
file "hosts" {
  path = "/etc/hosts"
}

file "resolv_conf" {
  path = "/etc/resolv.conf"
}

file "nsswitch_conf" {
  path = "/etc/nsswitch.conf"
}

# ---- YUM Configuration: the installer resolves dependencies through YUM ----

file "yum_conf" {
  path = "/etc/yum.conf"
}

files "yum_repos" {
  glob = "/etc/yum.repos.d/*"
}

# ---- User Configuration ----------------------------------------------------

file "passwd" {
  path = "/etc/passwd"
}

file "shadow" {
  path      = "/etc/shadow"
  sensitive = true
}

file "group" {
  path = "/etc/group"
}

file "gshadow" {
  path      = "/etc/gshadow"
  sensitive = true
}

file "sudoers" {
  path      = "/etc/sudoers"
  sensitive = true
}

# ---- SSH Host keys (Optional): keep the server's identity ------------------

files "ssh_host_keys" {
  glob      = "/etc/ssh/ssh_host_*key*"
  sensitive = true
  optional  = true
}

# ---- SSH user keys (Optional): root's key reaches every managed server -----

files "root_ssh_keys" {
  glob      = "/root/.ssh/id_rsa*"
  sensitive = true
  optional  = true
}

files "root_ssh_dsa_keys" {
  glob      = "/root/.ssh/id_dsa*"
  sensitive = true
  optional  = true
}

# Not in the runbook: the storage servers' host keys as root knows them. A
# rebuilt manager needs them to talk to its agents (remote_service pins them).
file "root_known_hosts" {
  path     = "/root/.ssh/known_hosts"
  optional = true
}

# 6.1+: settings a site overrides by hand (EnvironmentFile of the iml-* units).
file "overrides" {
  path     = "/var/lib/chroma/overrides.conf"
  optional = true
}

# ---- Re-install IML: `yum install python2-iml-manager`, `chroma-config setup`
# on the rebuilt OS. Skipped when IML is already installed.

exec "installer" {
  command    = var.installer
  creates    = "/usr/share/chroma-manager/manage.py"
  timeout    = "1h"
  depends_on = [file.yum_conf, files.yum_repos, file.hosts, file.resolv_conf, file.passwd, file.group]
}

# ---- Services: PostgreSQL and InfluxDB stay up; what writes their databases
# is stopped around the restores and started again: rabbitmq-server, nginx,
# grafana-server, then the manager's target.

service "postgresql" {
  name       = "postgresql-9.6"
  state      = "running"
  depends_on = [exec.installer]
}

service "influxdb" {
  state      = "running"
  depends_on = [exec.installer]
}

service "rabbitmq_server" {
  name       = "rabbitmq-server"
  state      = "running"
  depends_on = [exec.installer]
}

service "nginx" {
  state      = "running"
  depends_on = [service.rabbitmq_server]
}

# Grafana keeps its dashboards and users in the `grafana` database: connected
# to it, it would keep `DROP DATABASE grafana` from happening.
service "grafana" {
  name       = "grafana-server"
  state      = "running"
  depends_on = [service.postgresql, service.influxdb]
}

service "iml_manager" {
  name       = "iml-manager.target"
  state      = "running"
  depends_on = [service.nginx, service.grafana]
}

# ---- Restore the NTP Configuration: after the installer, which writes its
# own ntp.conf (chroma-config setup stops chronyd for ntpd); then restart ntpd.

file "ntp_conf" {
  path       = "/etc/ntp.conf"
  depends_on = [exec.installer]
  notify     = [service.ntpd]
}

service "ntpd" {
  state = "running"
}

# ---- Restore the IML SSL certificates: after the installer, or it overwrites
# them. The authority and the database must come from the same bundle.

cert "authority" {
  cert       = "/var/lib/chroma/authority.crt"
  key        = "/var/lib/chroma/authority.pem"
  serial     = "/var/lib/chroma/authority.srl"
  depends_on = [exec.installer]
}

cert "manager" {
  cert       = "/var/lib/chroma/manager.crt"
  key        = "/var/lib/chroma/manager.pem"
  ca         = cert.authority
  depends_on = [exec.installer]
}

# The manager's settings (DATABASES), written by chroma-config setup.
# /var/lib/chroma/iml-settings.conf is derived, never restored over: not
# captured, it is rewritten from these settings and the database by
# iml-settings-populator, a oneshot the target Requires, each time the target
# starts — which the restores below do (the target is in their quiesce).
file "local_settings" {
  path       = "/usr/share/chroma-manager/local_settings.py"
  depends_on = [exec.installer]
}

# ---- Restore the PostgreSQL Database: `pg_dumpall --clean`, the `chroma`
# and `grafana` databases, with what writes them stopped.

database "chroma" {
  superuser  = "postgres"
  run_as     = "postgres"
  databases  = ["chroma", "grafana"]
  host       = var.pg_host
  port       = var.pg_port
  quiesce    = [service.rabbitmq_server, service.iml_manager, service.nginx, service.grafana]
  depends_on = [service.postgresql, cert.authority, cert.manager, file.local_settings, file.overrides]
}

# ---- The statistics behind every chart: `influxd backup -portable` of the
# manager's databases, restored with InfluxDB running after the installer and
# before the manager's units start again.

influxdb "stats" {
  databases  = var.influx_databases
  service    = service.influxdb
  rpc        = var.influx_rpc
  http       = var.influx_http
  quiesce    = [service.iml_manager, service.grafana]
  depends_on = [service.influxdb]
}

# ---- Potential Issues: "Internal Server Error" after the restore ------------

absent "client_errors_log" {
  path       = "/var/log/chroma/client_errors.log"
  depends_on = [database.chroma]
}

# ---- Potential Issues: "Graph Data Missing After Restore" -------------------
# `systemctl restart chroma-agent` on every MDS/OSS, over SSH, once the
# manager is back.

remote_service "chroma_agent" {
  name        = "chroma-agent"
  hosts       = var.agents
  action      = "restart"
  optional    = true
  parallelism = 32
  timeout     = "60s"
  check       = "systemctl is-active chroma-agent"
  init        = "systemd"
  depends_on  = [database.chroma, influxdb.stats, service.iml_manager, files.root_ssh_keys, file.root_known_hosts]

  ssh {
    user          = "root"
    port          = var.ssh_port
    identity_file = "/root/.ssh/id_rsa"
    known_hosts   = "/root/.ssh/known_hosts"
  }
}
