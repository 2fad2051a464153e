//! Variable values given on the command line: `--var K=V` and `--var-file F`.

use super::diagnostic::{ErrorKind, RecipeError, Source};
use hcl::edit::Span;
use std::path::PathBuf;
use std::sync::Arc;

/// What the user passed; resolved against the recipe's `variable` blocks.
#[derive(Debug, Clone, Default)]
pub struct VarInput {
    /// `--var K=V`, in order; later ones win.
    pub vars: Vec<(String, String)>,
    /// `--var-file F` (HCL `name = value` lines), applied before `--var`.
    pub files: Vec<PathBuf>,
    /// Values already evaluated (a saved plan's variables); applied first.
    pub values: Vec<(String, hcl::Value)>,
}

impl VarInput {
    /// clap value parser for `--var K=V`.
    pub fn parse_pair(s: &str) -> Result<(String, String), String> {
        match s.split_once('=') {
            Some((k, v)) if super::is_identifier(k) => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "`{s}` is not NAME=VALUE (e.g. --var agents='[\"oss1\",\"oss2\"]')"
            )),
        }
    }

    /// Every value in the order it applies, with where it came from.
    pub(super) fn resolve(&self) -> Result<Vec<Assignment>, Vec<RecipeError>> {
        let mut out: Vec<Assignment> = self
            .values
            .iter()
            .map(|(name, value)| Assignment {
                name: name.clone(),
                value: value.clone(),
                origin: "the saved plan".into(),
            })
            .collect();
        let mut errors = Vec::new();
        for file in &self.files {
            match read_var_file(file) {
                Ok(mut a) => out.append(&mut a),
                Err(mut e) => errors.append(&mut e),
            }
        }
        for (name, raw) in &self.vars {
            match cli_value(raw) {
                Ok(value) => out.push(Assignment {
                    name: name.clone(),
                    value,
                    origin: format!("--var {name}"),
                }),
                Err(e) => errors.push(
                    RecipeError::new(
                        ErrorKind::Variable,
                        format!("--var {name}: cannot parse `{raw}` as an HCL value: {e}"),
                    )
                    .help("quote lists and objects for the shell: --var 'agents=[\"oss1\", \"oss2\"]'"),
                ),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Assignment {
    pub name: String,
    pub value: hcl::Value,
    pub origin: String,
}

/// Plain words are strings (as Terraform does); `[`, `{` or `"` start HCL.
fn cli_value(raw: &str) -> Result<hcl::Value, String> {
    let trimmed = raw.trim_start();
    if !(trimmed.starts_with('[') || trimmed.starts_with('{') || trimmed.starts_with('"')) {
        return Ok(hcl::Value::String(raw.to_string()));
    }
    let expr = hcl::edit::parser::parse_expr(raw).map_err(|e| e.message().to_string())?;
    eval_constant(expr).map_err(|e| e.to_string())
}

fn eval_constant(expr: hcl::edit::expr::Expression) -> Result<hcl::Value, hcl::eval::Error> {
    use hcl::eval::Evaluate;
    let expr = hcl::Expression::from(expr);
    let ctx = hcl::eval::Context::new();
    if !super::decode::arithmetic_ok(&expr, &ctx) {
        return Err(hcl::eval::Error::from(hcl::eval::ErrorKind::Message(
            "the arithmetic divides by zero or overflows".into(),
        )));
    }
    expr.evaluate(&ctx)
}

fn read_var_file(path: &std::path::Path) -> Result<Vec<Assignment>, Vec<RecipeError>> {
    let name = path.display().to_string();
    let text = super::read_text(path).map_err(|e| {
        vec![RecipeError::new(
            ErrorKind::Io,
            format!("cannot read --var-file {name}: {e}"),
        )
        .help("--var-file names a file of `name = value` lines; check the path (relative paths start from the current directory)")]
    })?;
    let source: Source = Arc::new(super::diagnostic::Indexed::new(name.clone(), text.clone()));
    let body = hcl::edit::parser::parse_body(&text)
        .map_err(|e| vec![super::decode::syntax_error(&source, &e)])?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for structure in body.iter() {
        let Some(attr) = structure.as_attribute() else {
            let span = structure.span().unwrap_or(0..0);
            errors.push(
                RecipeError::new(
                    ErrorKind::Variable,
                    "a var file holds only `name = value` lines",
                )
                .at(&source, span, "a block is not allowed here"),
            );
            continue;
        };
        match eval_constant(attr.value.clone()) {
            Ok(value) => out.push(Assignment {
                name: attr.key.as_str().to_string(),
                value,
                origin: format!("--var-file {name}"),
            }),
            Err(e) => errors.push(
                RecipeError::new(
                    ErrorKind::Variable,
                    format!("cannot evaluate `{}`: {e}", attr.key.as_str()),
                )
                .at(
                    &source,
                    attr.value.span().unwrap_or(0..0),
                    "only constant values are allowed in a var file",
                ),
            ),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_values_are_strings_unless_hcl() {
        assert_eq!(
            cli_value("oss1").unwrap(),
            hcl::Value::String("oss1".into())
        );
        assert_eq!(
            cli_value("[\"a\", \"b\"]").unwrap(),
            hcl::Value::Array(vec!["a".into(), "b".into()])
        );
        assert!(cli_value("[\"a\"").is_err());
        assert!(VarInput::parse_pair("noequals").is_err());
        assert_eq!(
            VarInput::parse_pair("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
    }
}
