# The IML manager server on EL7, IML 4.0.9–4.0.10 and 5.0 (systemd,
# PostgreSQL 9.2 as `postgresql`, no statistics store): the runbook of
# iml-manager.hcl with the services of these releases — `iml-manager.target`
# groups the manager's own units and nginx replaces httpd.
#
# Derived from whamcloud/integrated-manager-for-lustre at v4.0.9.0 and v5.0.0:
#   iml-manager.target               Requires/Wants nginx, rabbitmq-server,
#                                    iml-settings-populator and the iml-* units
#   iml-*.service                    PartOf=iml-manager.target: stopping the
#                                    target stops them all
#   iml-settings-populator.service   regenerates /var/lib/chroma/iml-settings.conf
#   chroma-manager.spec (4.0.9), python-iml-manager.spec (5.0): Requires
#                                    postgresql-server, rabbitmq-server, nginx
#   chroma_core/lib/service_config.py: CONTROLLED_SERVICES = iml-manager.target,
#                                    nginx; `postgresql`, data /var/lib/pgsql/data;
#                                    writes local_settings.py
# Not for 5.1+ (InfluxDB, Grafana: iml-manager-el7-5.1.hcl) nor EL6 (SysV:
# iml-manager.hcl). `imlrecover init` picks the recipe for a host.
#
#   imlrecover init -o /etc/imlrecover/manager.hcl
#   imlrecover plan -r plans/iml-manager-el7.hcl --root / --bundle /srv/imlbackup/latest

variable "agents" {
  description = "MDS/OSS servers whose chroma-agent is restarted after a restore"
  default     = []
}

variable "installer" {
  description = "Re-install IML, a shell command line: 4.0.9/4.0.10 the installer of the original tarball; 5.0 `yum -y install python2-iml-manager && chroma-config setup USER PASSWORD NTPSERVER`"
  default     = "/root/iml-installer/install"
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

# ---- Re-install IML: run the installer on the rebuilt OS --------------------
# Skipped when IML is already installed. Its answers do not matter: the
# database restore overwrites them.

exec "installer" {
  command    = var.installer
  creates    = "/usr/share/chroma-manager/manage.py"
  timeout    = "1h"
  depends_on = [file.yum_conf, files.yum_repos, file.hosts, file.resolv_conf, file.passwd, file.group]
}

# ---- Services: stopped around the restore (PostgreSQL stays up), then
# started again: rabbitmq-server, nginx, then the manager's target.

service "postgresql" {
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

service "iml_manager" {
  name       = "iml-manager.target"
  state      = "running"
  depends_on = [service.nginx]
}

# ---- Restore the NTP Configuration: after the installer, which writes its
# own ntp.conf; then `service ntpd restart`.

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

# Not in the runbook's checklist, but the manager's settings live here and the
# installer regenerates it.
# /var/lib/chroma/iml-settings.conf is derived, never restored over: not
# captured, it is rewritten by iml-settings-populator (a oneshot the target
# Requires) each time the target starts, which the database restore does.
file "local_settings" {
  path       = "/usr/share/chroma-manager/local_settings.py"
  depends_on = [exec.installer]
}

# ---- Restore the PostgreSQL Database: `pg_dumpall --clean` restored with
# psql as postgres, with rabbitmq-server, the manager target and nginx stopped.

database "chroma" {
  superuser  = "postgres"
  run_as     = "postgres"
  host       = var.pg_host
  port       = var.pg_port
  quiesce    = [service.rabbitmq_server, service.iml_manager, service.nginx]
  depends_on = [service.postgresql, cert.authority, cert.manager, file.local_settings]
}

# ---- Potential Issues: "Internal Server Error" after the restore ------------

absent "client_errors_log" {
  path       = "/var/log/chroma/client_errors.log"
  depends_on = [database.chroma]
}

# ---- Potential Issues: "Graph Data Missing After Restore" -------------------
# `systemctl restart chroma-agent` on every EL7 MDS/OSS, over SSH, once the manager
# is back.

remote_service "chroma_agent" {
  name        = "chroma-agent"
  hosts       = var.agents
  action      = "restart"
  optional    = true
  parallelism = 32
  timeout     = "60s"
  check       = "systemctl is-active chroma-agent"
  init        = "systemd"
  depends_on  = [database.chroma, service.iml_manager, files.root_ssh_keys, file.root_known_hosts]

  ssh {
    user          = "root"
    port          = var.ssh_port
    identity_file = "/root/.ssh/id_rsa"
    known_hosts   = "/root/.ssh/known_hosts"
  }
}
