# benches/compare: the chroma-agent restart of plans/iml-manager.hcl alone,
# against fake storage servers (sshd on 127.0.0.N).
variable "agents" {
  default = []
}

variable "ssh_port" {
  default = 22
}

remote_service "chroma_agent" {
  name        = "chroma-agent"
  hosts       = var.agents
  action      = "restart"
  optional    = false
  parallelism = 32
  timeout     = "60s"
  check       = "service chroma-agent status"

  ssh {
    user          = "root"
    port          = var.ssh_port
    identity_file = "/root/.ssh/id_ed25519"
    known_hosts   = "/root/.ssh/known_hosts"
  }
}
