//! The `influxdb` kind (#17): its block validates, and (against a real
//! `influxd` from the sandbox harness) backup, plan, apply and verify.

use crate::support;

use support::cli::{Imlrecover, Output};

fn validate_text(text: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("recipe.hcl");
    std::fs::write(&path, text).expect("write recipe");
    let out = Imlrecover::new()
        .current_dir(dir.path())
        .args(["validate", "-r", "recipe.hcl"])
        .run();
    (dir, out)
}

const SERVICES: &str = r#"
service "influxdb" {
  state = "running"
}
service "iml_manager" {
  name  = "iml-manager"
  state = "running"
}
"#;

#[test]
fn the_block_validates() {
    let recipe = format!(
        r#"{SERVICES}
influxdb "stats" {{
  databases  = ["iml", "iml_stats", "iml_stratagem_scans"]
  service    = service.influxdb
  rpc        = "127.0.0.1:8088"
  http       = "127.0.0.1:8086"
  bindir     = "/usr/bin"
  quiesce    = [service.iml_manager]
  optional   = false
  depends_on = [service.influxdb]
}}
"#
    );
    let (_d, out) = validate_text(&recipe);
    out.code(0);
    // The defaults: only the required attributes.
    let (_d, out) = validate_text(&format!(
        "{SERVICES}\ninfluxdb \"stats\" {{\n  databases = [\"iml\"]\n  service = service.influxdb\n}}\n"
    ));
    out.code(0);
}

#[test]
fn missing_databases_is_named() {
    let (_d, out) = validate_text(&format!(
        "{SERVICES}\ninfluxdb \"stats\" {{\n  service = service.influxdb\n}}\n"
    ));
    out.code(1)
        .stderr_has("recipe.hcl:10:1")
        .stderr_has("`influxdb.stats` is missing the required attribute `databases`");
}

#[test]
fn unknown_service_reference_is_named() {
    let (_d, out) = validate_text(&format!(
        "{SERVICES}\ninfluxdb \"stats\" {{\n  databases = [\"iml\"]\n  service = service.influx\n}}\n"
    ));
    out.code(1)
        .stderr_has("recipe.hcl:12:13")
        .stderr_has("reference to undeclared resource `service.influx`")
        .stderr_has("did you mean `service.influxdb`?");
}

#[test]
fn bad_values_are_named() {
    let cases = [
        (
            "databases = []\n  service = service.influxdb",
            "`databases` must name at least one database",
        ),
        (
            "databases = [\"iml\", \"iml\"]\n  service = service.influxdb",
            "`databases` names `iml` twice",
        ),
        (
            "databases = [\"iml\"]\n  service = service.influxdb\n  rpc = \"8088\"",
            "`rpc` must be host:port",
        ),
        (
            "databases = [\"iml\"]\n  service = [service.influxdb]",
            "`service` takes one service address",
        ),
        (
            "databases = [\"iml\"]\n  service = service.influxdb\n  quiesce = [service.influxdb]",
            "`quiesce` names service.influxdb, the InfluxDB service itself",
        ),
    ];
    for (body, message) in cases {
        let (_d, out) = validate_text(&format!(
            "{SERVICES}\ninfluxdb \"stats\" {{\n  {body}\n}}\n"
        ));
        out.code(1).stderr_has(message);
    }
}
