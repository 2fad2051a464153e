# benches/compare: the database alone (backup, restore and peak-RSS rows).
variable "pg_host" {
  default = null
}

variable "pg_port" {
  default = null
}

database "chroma" {
  superuser = "postgres"
  run_as    = "postgres"
  host      = var.pg_host
  port      = var.pg_port
}
