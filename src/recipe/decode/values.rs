//! Attribute values: evaluation (with `var.*` and resource addresses in
//! scope) and the typed readers (strings, paths, modes, durations, …).

use super::*;

impl Decoder {
    /// Evaluates an attribute; references to undeclared things are reported
    /// here (with suggestions) and recorded in `self.pending` otherwise.
    pub(super) fn eval(&mut self, attr: &Attribute) -> Option<hcl::Value> {
        let mut finder = RefFinder::default();
        finder.visit_expr(&attr.value);
        let mut ok = true;
        for (root, name, span) in finder.found {
            if root == "var" {
                if self.unset.contains(&name) {
                    ok = false;
                } else if self.variables.contains_key(&name) {
                    self.pending.push(Reference {
                        target: RefTarget::Variable(name),
                        kind: EdgeKind::Reference,
                        span: span.into(),
                    });
                } else {
                    ok = false;
                    let help = suggest(&name, self.variables.keys().map(String::as_str));
                    self.err(
                        ErrorKind::UnknownReference,
                        format!("reference to undeclared variable `var.{name}`"),
                        span,
                        "no such variable",
                    )
                    .help = help.or(Some(format!(
                        "declare it: variable \"{name}\" {{ default = ... }}"
                    )));
                }
            } else if let Some(kind) = ResourceType::from_keyword(&root) {
                let addr = Address::new(kind, name);
                if self.addresses.contains_key(&addr) {
                    self.pending.push(Reference {
                        target: RefTarget::Resource(addr),
                        kind: EdgeKind::Reference,
                        span: span.into(),
                    });
                } else {
                    ok = false;
                    self.unknown_resource(&addr, span);
                }
            }
        }
        if !ok {
            return None;
        }
        self.eval_raw(attr)
    }
    pub(super) fn eval_raw(&mut self, attr: &Attribute) -> Option<hcl::Value> {
        let expr = hcl::Expression::from(attr.value.clone());
        if !arithmetic_ok(&expr, &self.ctx) {
            self.number_error(attr);
            return None;
        }
        match expr.evaluate(&self.ctx) {
            Ok(v) if out_of_range(&v) => {
                self.number_error(attr);
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                self.err(
                    ErrorKind::InvalidValue,
                    format!("cannot evaluate `{}`: {e}", attr.key.as_str()),
                    span_of(&attr.value),
                    "this expression",
                );
                None
            }
        }
    }
    /// For variable defaults: no references allowed.
    pub(super) fn constant(&mut self, attr: &Attribute) -> Option<hcl::Value> {
        let expr = hcl::Expression::from(attr.value.clone());
        if !arithmetic_ok(&expr, &Context::new()) {
            self.number_error(attr);
            return None;
        }
        match expr.evaluate(&Context::new()) {
            Ok(v) if out_of_range(&v) => {
                self.number_error(attr);
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                self.err(
                    ErrorKind::InvalidValue,
                    format!("a variable default must be a constant: {e}"),
                    span_of(&attr.value),
                    "not a constant",
                );
                None
            }
        }
    }
    pub(super) fn number_error(&mut self, attr: &Attribute) {
        self.err(
            ErrorKind::InvalidValue,
            format!(
                "`{}`: the arithmetic divides by zero or overflows",
                attr.key.as_str()
            ),
            span_of(&attr.value),
            "this expression",
        );
    }
    pub(super) fn wrong_type(
        &mut self,
        attr: &Attribute,
        expected: &str,
        found: &hcl::Value,
        help: Option<String>,
    ) {
        self.err(
            ErrorKind::WrongType,
            format!(
                "`{}` must be {expected}, found {}",
                attr.key.as_str(),
                type_name(found)
            ),
            span_of(&attr.value),
            &format!("expected {expected}"),
        )
        .help = help;
    }
    pub(super) fn string(&mut self, attr: &Attribute) -> Option<String> {
        let v = self.eval(attr)?;
        self.as_string(attr, v)
    }
    pub(super) fn as_string(&mut self, attr: &Attribute, v: hcl::Value) -> Option<String> {
        match v {
            hcl::Value::String(s) => Some(s),
            other => {
                self.wrong_type(attr, "a string", &other, None);
                None
            }
        }
    }
    pub(super) fn bool(&mut self, attr: &Attribute) -> Option<bool> {
        match self.eval(attr)? {
            hcl::Value::Bool(b) => Some(b),
            // `--var x=true` arrives as a string, as in Terraform.
            hcl::Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
            other => {
                self.wrong_type(attr, "true or false", &other, None);
                None
            }
        }
    }
    pub(super) fn number(&mut self, attr: &Attribute, v: hcl::Value, max: u64) -> Option<u64> {
        let n = match &v {
            hcl::Value::Number(n) => n.as_u64(),
            hcl::Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => {
                self.wrong_type(attr, "a whole number", &v, None);
                return None;
            }
        };
        match n {
            Some(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    ErrorKind::InvalidValue,
                    format!(
                        "`{}` must be a whole number from 1 to {max}",
                        attr.key.as_str()
                    ),
                    span_of(&attr.value),
                    "out of range",
                );
                None
            }
        }
    }
    pub(super) fn port(&mut self, attr: &Attribute) -> Option<u16> {
        let v = self.eval(attr)?;
        self.number(attr, v, u16::MAX as u64).map(|n| n as u16)
    }
    pub(super) fn string_list(&mut self, attr: &Attribute) -> Option<Vec<String>> {
        let v = self.eval(attr)?;
        let hcl::Value::Array(items) = v else {
            self.wrong_type(
                attr,
                "a list of strings",
                &v,
                Some(format!("write {} = [\"...\"]", attr.key.as_str())),
            );
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            match item {
                hcl::Value::String(s) => out.push(s),
                other => {
                    self.wrong_type(attr, "a list of strings", &other, None);
                    return None;
                }
            }
        }
        Some(out)
    }
    /// A command: a list is argv, a string runs under `/bin/sh -c`.
    pub(super) fn command(&mut self, attr: &Attribute) -> Option<Vec<String>> {
        if let Expression::Array(_) = &attr.value {
            let argv = self.string_list(attr)?;
            if argv.is_empty() {
                self.err(
                    ErrorKind::InvalidValue,
                    format!("`{}` must not be empty", attr.key.as_str()),
                    span_of(&attr.value),
                    "empty command",
                );
                return None;
            }
            return Some(argv);
        }
        let v = self.eval(attr)?;
        let s = self.as_string(attr, v)?;
        Some(vec!["/bin/sh".into(), "-c".into(), s])
    }
    pub(super) fn duration(&mut self, attr: &Attribute) -> Option<Duration> {
        let v = self.eval(attr)?;
        let parsed = match &v {
            hcl::Value::Number(n) => n.as_u64().map(Duration::from_secs),
            hcl::Value::String(s) => humantime::parse_duration(s).ok(),
            _ => {
                self.wrong_type(attr, "a duration such as \"60s\"", &v, None);
                return None;
            }
        };
        match parsed {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                self.err(
                    ErrorKind::InvalidValue,
                    format!("`{}` is not a duration", attr.key.as_str()),
                    span_of(&attr.value),
                    "expected e.g. \"60s\", \"5m\" or \"1h\"",
                );
                None
            }
        }
    }
    pub(super) fn path(&mut self, attr: &Attribute) -> Option<String> {
        let v = self.eval(attr)?;
        let s = self.as_string(attr, v)?;
        if !s.starts_with('/') || s.split('/').any(|c| c == "..") {
            self.err(
                ErrorKind::InvalidValue,
                format!(
                    "`{}` must be an absolute path without `..`, found `{s}`",
                    attr.key.as_str()
                ),
                span_of(&attr.value),
                "not an absolute path",
            )
            .help = Some(
                "paths are absolute on the managed host; `--root` is prefixed at run time".into(),
            );
            return None;
        }
        Some(s)
    }
    pub(super) fn mode(&mut self, attr: &Attribute) -> Option<u32> {
        let v = self.eval(attr)?;
        let hcl::Value::String(s) = v else {
            let hint = match &v {
                hcl::Value::Number(n) => format!("quote it: mode = \"{:0>4}\"", n.to_string()),
                _ => "write the mode as an octal string, e.g. mode = \"0644\"".into(),
            };
            self.wrong_type(attr, "an octal string such as \"0644\"", &v, Some(hint));
            return None;
        };
        let valid = (3..=4).contains(&s.len()) && s.chars().all(|c| ('0'..='7').contains(&c));
        match u32::from_str_radix(&s, 8) {
            Ok(m) if valid => Some(m),
            _ => {
                self.err(
                    ErrorKind::InvalidValue,
                    format!("`{s}` is not an octal file mode"),
                    span_of(&attr.value),
                    "3 or 4 digits from 0 to 7",
                )
                .help = Some("e.g. \"0644\" for rw-r--r--, \"0600\" for a secret".into());
                None
            }
        }
    }
    pub(super) fn backend(&mut self, attr: &Attribute) -> Option<ServiceBackend> {
        self.one_of(
            attr,
            "service backend",
            &[
                ("sysv", ServiceBackend::Sysv),
                ("systemd", ServiceBackend::Systemd),
            ],
        )
    }
    /// A string that must be one of a few words.
    pub(super) fn one_of<T: Copy>(
        &mut self,
        attr: &Attribute,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let v = self.eval(attr)?;
        let word = self.as_string(attr, v)?;
        if let Some((_, t)) = choices.iter().find(|(w, _)| *w == word) {
            return Some(*t);
        }
        let quoted: Vec<String> = choices.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        let expected = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        let help = suggest(&word, choices.iter().map(|(w, _)| *w));
        self.err(
            ErrorKind::InvalidValue,
            format!("unknown {what} `{word}`"),
            span_of(&attr.value),
            &format!("expected {expected}"),
        )
        .help = help;
        None
    }
}

pub(super) fn type_name(v: &hcl::Value) -> &'static str {
    match v {
        hcl::Value::Null => "null",
        hcl::Value::Bool(_) => "bool",
        hcl::Value::Number(_) => "number",
        hcl::Value::String(_) => "string",
        hcl::Value::Array(_) => "list",
        hcl::Value::Object(_) => "object",
    }
}

/// A number no arithmetic of a recipe should give: `1/0` evaluates to the
/// largest float (or infinity), an overflow too.
pub(super) fn out_of_range(v: &hcl::Value) -> bool {
    match v {
        hcl::Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| !f.is_finite() || f.abs() >= f64::MAX),
        hcl::Value::Array(items) => items.iter().any(out_of_range),
        hcl::Value::Object(map) => map.values().any(out_of_range),
        _ => false,
    }
}

/// Whether every `+ - * / %` in `expr` stays in range: hcl divides by zero
/// into the largest float and wraps integer overflow (it asserts only in
/// debug builds), so both are checked before evaluating.
pub(crate) fn arithmetic_ok(expr: &hcl::Expression, ctx: &Context) -> bool {
    use hcl::expr::{BinaryOperator as B, Expression as E, Operation};
    match expr {
        E::Array(items) => items.iter().all(|e| arithmetic_ok(e, ctx)),
        E::Object(map) => map.values().all(|e| arithmetic_ok(e, ctx)),
        E::Parenthesis(e) => arithmetic_ok(e, ctx),
        E::FuncCall(f) => f.args.iter().all(|e| arithmetic_ok(e, ctx)),
        E::Conditional(c) => [&c.cond_expr, &c.true_expr, &c.false_expr]
            .into_iter()
            .all(|e| arithmetic_ok(e, ctx)),
        E::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => arithmetic_ok(&u.expr, ctx),
            Operation::Binary(b) => {
                if !arithmetic_ok(&b.lhs_expr, ctx) || !arithmetic_ok(&b.rhs_expr, ctx) {
                    return false;
                }
                let arithmetic =
                    matches!(b.operator, B::Plus | B::Minus | B::Mul | B::Div | B::Mod);
                if !arithmetic {
                    return true;
                }
                let (Ok(hcl::Value::Number(l)), Ok(hcl::Value::Number(r))) =
                    (b.lhs_expr.evaluate(ctx), b.rhs_expr.evaluate(ctx))
                else {
                    // Not numbers: evaluation reports the type error.
                    return true;
                };
                if let (Some(l), Some(r)) = (l.as_i64(), r.as_i64()) {
                    return match b.operator {
                        B::Plus => l.checked_add(r).is_some(),
                        B::Minus => l.checked_sub(r).is_some(),
                        B::Mul => l.checked_mul(r).is_some(),
                        _ => r != 0 && l.checked_rem(r).is_some(),
                    };
                }
                let (Some(l), Some(r)) = (l.as_f64(), r.as_f64()) else {
                    return true;
                };
                let v = match b.operator {
                    B::Plus => l + r,
                    B::Minus => l - r,
                    B::Mul => l * r,
                    B::Div => l / r,
                    _ => l % r,
                };
                v.is_finite() && (!matches!(b.operator, B::Div | B::Mod) || r != 0.0)
            }
        },
        _ => true,
    }
}
