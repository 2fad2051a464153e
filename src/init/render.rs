//! The shipped recipe of the detected family, with its variables' defaults
//! set to what was found (or to `--var`), each with a comment saying why.
//! The text stays the shipped recipe's, comments and all, so that a diff
//! against `plans/` shows exactly what `init` chose.

use super::detect::Detection;
use super::Family;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InitError {
    #[error("--var {name}: the recipe for {releases} ({plan}) has no variable `{name}` (it has: {known})")]
    #[diagnostic(
        code(imlrecover::init_var),
        help("nothing was written; name one of its variables")
    )]
    UnknownVar {
        name: String,
        releases: &'static str,
        plan: &'static str,
        known: String,
    },
    #[error("the drafted recipe does not load: {0}")]
    #[diagnostic(
        code(imlrecover::init_invalid),
        help("nothing was written; check the --var values (lists are HCL: --var agents='[\"oss1\"]')")
    )]
    Invalid(String),
}

/// One variable's value as HCL text (`None`: the shipped default) and why.
struct Choice {
    value: Option<String>,
    why: String,
}

/// The recipe text for `d`, `--var` pairs winning over detection.
pub fn render(d: &Detection, vars: &[(String, String)]) -> Result<String, InitError> {
    let family = d.family.value;
    let text = family.text();
    let known = variable_names(text);
    let mut choices: Vec<(String, Choice)> = detected(d)
        .into_iter()
        .filter(|(name, _)| known.contains(name))
        .collect();
    for (name, raw) in vars {
        if !known.contains(name) {
            return Err(InitError::UnknownVar {
                name: name.clone(),
                releases: family.releases(),
                plan: family.plan(),
                known: known.join(", "),
            });
        }
        choices.retain(|(n, _)| n != name);
        choices.push((
            name.clone(),
            Choice {
                value: Some(cli_hcl(raw)),
                why: "given with --var (wins over detection)".into(),
            },
        ));
    }
    let mut out = header(d);
    let mut current: Option<String> = None;
    let mut in_pg_service = false;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("variable \"")
            .and_then(|r| r.split('"').next())
        {
            current = Some(name.to_string());
        } else if line == "}" {
            current = None;
            in_pg_service = false;
        }
        if line.starts_with("service \"postgresql\" {") {
            in_pg_service = true;
        }
        if let Some(name) = &current {
            if line.trim_start().starts_with("default") {
                if let Some((_, c)) = choices.iter().find(|(n, _)| n == name) {
                    out.push_str(&format!("  # init: {}\n", c.why));
                    match &c.value {
                        Some(v) => out.push_str(&format!("  default     = {v}\n")),
                        None => {
                            out.push_str(line);
                            out.push('\n');
                        }
                    }
                    continue;
                }
            }
        }
        // The PostgreSQL service by the name this host has.
        if in_pg_service && line.trim_start().starts_with("name ") {
            out.push_str(&format!("  # init: {}\n", d.pg_service.evidence));
            out.push_str(&format!("  name       = {}\n", quote(&d.pg_service.value)));
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("service \"postgresql\" {")
            && !block_has_name(text, "service \"postgresql\" {")
            && d.pg_service.value != "postgresql"
        {
            out.push_str(&format!("  # init: {}\n", d.pg_service.evidence));
            out.push_str(&format!("  name       = {}\n", quote(&d.pg_service.value)));
        }
    }
    // What is drafted must load, with the values as written.
    crate::recipe::load_str(
        family.plan(),
        out.clone(),
        &crate::recipe::VarInput::default(),
    )
    .map_err(|e| InitError::Invalid(format!("{:?}", miette::Report::new(e))))?;
    Ok(out)
}

fn block_has_name(text: &str, opening: &str) -> bool {
    text.split(opening)
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .is_some_and(|body| body.lines().any(|l| l.trim_start().starts_with("name ")))
}

/// The comment block on top: what was found, and from what.
fn header(d: &Detection) -> String {
    let f = d.family.value;
    let mut h = format!(
        "# Drafted by `imlrecover init` from {} for {} ({}),\n# from {} of imlrecover {}.\n",
        d.root.display(),
        f.releases(),
        f.id(),
        f.plan(),
        env!("CARGO_PKG_VERSION"),
    );
    let mut fact = |what: &str, value: &str, why: &str| {
        h.push_str(&format!("#   {what:<14} {value} ({why})\n"));
    };
    fact("release:", d.family.value.id(), &d.family.evidence);
    fact(
        "init system:",
        if d.systemd.value { "systemd" } else { "SysV" },
        &d.systemd.evidence,
    );
    fact("PostgreSQL:", &d.pg_service.value, &d.pg_service.evidence);
    match &d.pg_data {
        Some(p) => fact("data:", &p.value, &p.evidence),
        None => fact(
            "data:",
            "not found",
            "no PG_VERSION in /var/lib/pgsql/9.6/data or /var/lib/pgsql/data",
        ),
    }
    fact(
        "InfluxDB:",
        if d.influxdb.value {
            "present"
        } else {
            "absent"
        },
        &d.influxdb.evidence,
    );
    if d.systemd.value != (f != Family::El6) {
        h.push_str(&format!(
            "# WARNING: the init system does not match {}; check the release found above.\n",
            f.releases()
        ));
    }
    if d.influxdb.value != matches!(f, Family::El7_51 | Family::El7_61) {
        h.push_str(&format!(
            "# WARNING: InfluxDB is {} but {} {} it; check the release found above.\n",
            if d.influxdb.value {
                "present"
            } else {
                "absent"
            },
            f.releases(),
            if d.influxdb.value {
                "does not run"
            } else {
                "runs"
            },
        ));
    }
    h.push_str("# Review it, then: imlrecover validate -r FILE; imlrecover backup -r FILE ...\n\n");
    h
}

/// Values found on the host, by variable name.
fn detected(d: &Detection) -> Vec<(String, Choice)> {
    let mut out = vec![(
        "agents".to_string(),
        Choice {
            value: Some(list(&d.agents.value)),
            why: format!(
                "{} storage server{}: {}",
                d.agents.value.len(),
                if d.agents.value.len() == 1 { "" } else { "s" },
                d.agents.evidence
            ),
        },
    )];
    match &d.pg_socket {
        Some(s) => {
            out.push((
                "pg_host".into(),
                Choice {
                    value: Some(quote(&s.value.0)),
                    why: format!("socket directory from {}", s.evidence),
                },
            ));
            out.push((
                "pg_port".into(),
                Choice {
                    value: Some(s.value.1.to_string()),
                    why: format!("port from {}", s.evidence),
                },
            ));
        }
        None => {
            for name in ["pg_host", "pg_port"] {
                out.push((
                    name.into(),
                    Choice {
                        value: Some("null".into()),
                        why: "no running server's postmaster.pid found: psql's default; set it with --var if the socket is elsewhere".into(),
                    },
                ));
            }
        }
    }
    let dbs = match (
        &d.influx_databases,
        d.version.as_ref().map(|v| v.value.as_str()),
    ) {
        (Some(f), _) => Some((f.value.clone(), f.evidence.clone())),
        (None, Some(v)) if super::version_key(v).is_some_and(|k| k < [6, 0, 0]) => Some((
            vec!["iml".into(), "iml_stratagem_scans".into()],
            format!("IML {v} has no iml_stats (it came with 6.0)"),
        )),
        _ => None,
    };
    if let Some((dbs, why)) = dbs {
        out.push((
            "influx_databases".into(),
            Choice {
                value: Some(list(&dbs)),
                why,
            },
        ));
    }
    for (name, found) in [
        ("influx_rpc", &d.influx_rpc),
        ("influx_http", &d.influx_http),
    ] {
        if let Some(f) = found {
            out.push((
                name.into(),
                Choice {
                    value: Some(quote(&f.value)),
                    why: f.evidence.clone(),
                },
            ));
        }
    }
    // What a host cannot tell: said so, so that a person decides.
    out.push((
        "installer".into(),
        Choice {
            value: None,
            why: "not detectable: the shipped default; set the command that reinstalls this release (--var installer=...)".into(),
        },
    ));
    out.push((
        "ssh_port".into(),
        Choice {
            value: None,
            why: "not detectable from the manager: sshd's port on the storage servers".into(),
        },
    ));
    out
}

/// The variables a recipe text declares, in order.
fn variable_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("variable \"")?.split('"').next())
        .map(str::to_string)
        .collect()
}

/// A `--var` value as HCL, as `--var` reads it: `[`, `{` or `"` start HCL,
/// anything else is a string.
fn cli_hcl(raw: &str) -> String {
    let t = raw.trim_start();
    if t.starts_with('[') || t.starts_with('{') || t.starts_with('"') {
        raw.to_string()
    } else {
        quote(raw)
    }
}

/// An HCL string literal (no interpolation).
pub fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                q.push(c);
                q.push(c);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_without_interpolation() {
        assert_eq!(quote("a\"b\\c ${x} %{y}"), "\"a\\\"b\\\\c $${x} %%{y}\"");
        assert_eq!(cli_hcl("oss1"), "\"oss1\"");
        assert_eq!(cli_hcl("[\"a\"]"), "[\"a\"]");
    }
}
