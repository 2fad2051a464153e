# The IML manager server on EL6 (IML 3.x / 4.0.0–4.0.8, SysV init), as declared
# by "Appendix B — Backing up and Restoring the IML software server".
#
#   imlrecover backup -r plans/iml-manager.hcl --root / --bundle-dir /srv/imlbackup
#   imlrecover plan   -r plans/iml-manager.hcl --root / --bundle /srv/imlbackup/latest
#
# Comments name the runbook step each block encodes.

variable "agents" {
  description = "MDS/OSS servers whose chroma-agent is restarted after a restore"
  default     = []
}

variable "installer" {
  description = "The IML installer from the original distribution (runbook: Re-install IML)"
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
  services = "sysv"
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
  command    = [var.installer]
  creates    = "/usr/share/chroma-manager/manage.py"
  timeout    = "1h"
  depends_on = [file.yum_conf, files.yum_repos, file.hosts, file.resolv_conf, file.passwd, file.group]
}

# ---- Services: stopped around the restore (PostgreSQL stays up), then
# started again in the runbook's order: rabbitmq-server, httpd, chroma-supervisor.

service "postgresql" {
  state      = "running"
  depends_on = [exec.installer]
}

service "rabbitmq_server" {
  name       = "rabbitmq-server"
  state      = "running"
  depends_on = [exec.installer]
}

service "httpd" {
  state      = "running"
  depends_on = [service.rabbitmq_server]
}

service "chroma_supervisor" {
  name       = "chroma-supervisor"
  state      = "running"
  depends_on = [service.httpd]
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
file "local_settings" {
  path       = "/usr/share/chroma-manager/local_settings.py"
  depends_on = [exec.installer]
}

# ---- Restore the PostgreSQL Database: `pg_dumpall --clean` restored with
# psql as postgres, with rabbitmq-server, chroma-supervisor and httpd stopped.

database "chroma" {
  superuser  = "postgres"
  run_as     = "postgres"
  host       = var.pg_host
  port       = var.pg_port
  quiesce    = [service.rabbitmq_server, service.chroma_supervisor, service.httpd]
  depends_on = [service.postgresql, cert.authority, cert.manager, file.local_settings]
}

# ---- Potential Issues: "Internal Server Error" after the restore ------------

absent "client_errors_log" {
  path       = "/var/log/chroma/client_errors.log"
  depends_on = [database.chroma]
}

# ---- Potential Issues: "Graph Data Missing After Restore" -------------------
# `service chroma-agent restart` on every MDS/OSS, over SSH, once the manager
# is back.

remote_service "chroma_agent" {
  name        = "chroma-agent"
  hosts       = var.agents
  action      = "restart"
  optional    = true
  parallelism = 32
  timeout     = "60s"
  check       = "service chroma-agent status"
  depends_on  = [database.chroma, service.chroma_supervisor, files.root_ssh_keys, file.root_known_hosts]

  ssh {
    user          = "root"
    port          = var.ssh_port
    identity_file = "/root/.ssh/id_rsa"
    known_hosts   = "/root/.ssh/known_hosts"
  }
}
