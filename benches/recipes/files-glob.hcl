# benches/compare: a `files` glob over many files (plan and verify rows).
variable "glob" {
  description = "the glob, under --root"
  default     = "/srv/data/*"
}

files "data" {
  glob = var.glob
}
