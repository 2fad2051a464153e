//! References between resources: address lists (`depends_on`, `notify`,
//! `quiesce`, `ca`), their targets checked against the declared addresses,
//! and the `ROOT.NAME` traversals found in any expression.

use super::*;

impl Decoder {
    pub(super) fn unknown_resource(&mut self, addr: &Address, span: Range<usize>) {
        let all: Vec<String> = self.addresses.keys().map(|a| a.to_string()).collect();
        let help = suggest(&addr.to_string(), all.iter().map(String::as_str))
            .unwrap_or_else(|| format!("declare it: {} \"{}\" {{ ... }}", addr.kind, addr.name));
        self.err(
            ErrorKind::UnknownReference,
            format!("reference to undeclared resource `{addr}`"),
            span,
            "no such resource",
        )
        .help = Some(help);
    }
    /// `[service.httpd, file.x]`: bare references (or strings), with spans.
    pub(super) fn address_list(
        &mut self,
        attr: &Attribute,
        kind: EdgeKind,
        allowed: &[ResourceType],
        refs: &mut Vec<Reference>,
    ) {
        let items: Vec<&Expression> = match &attr.value {
            Expression::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if let Some((addr, span)) = self.address_expr(attr.key.as_str(), item) {
                self.check_target(attr.key.as_str(), &addr, span.clone(), allowed);
                refs.push(Reference {
                    target: RefTarget::Resource(addr),
                    kind,
                    span: span.into(),
                });
            }
        }
    }
    pub(super) fn check_target(
        &mut self,
        key: &str,
        addr: &Address,
        span: Range<usize>,
        allowed: &[ResourceType],
    ) {
        if !self.addresses.contains_key(addr) {
            self.unknown_resource(addr, span);
        } else if !allowed.is_empty() && !allowed.contains(&addr.kind) {
            let kinds: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
            let kind = if key == "notify" {
                ErrorKind::BadNotify
            } else {
                ErrorKind::InvalidValue
            };
            self.err(
                kind,
                format!(
                    "`{key}` must name a {}, but `{addr}` is a {}",
                    kinds.join(" or "),
                    addr.kind
                ),
                span,
                &format!("not a {}", kinds.join(" or ")),
            )
            .help = Some(match key {
                "notify" => {
                    "notify restarts services; to order other resources use depends_on".into()
                }
                _ => format!("`{key}` takes {} addresses", kinds.join(" or ")),
            });
        }
    }
    pub(super) fn address_expr(
        &mut self,
        key: &str,
        e: &Expression,
    ) -> Option<(Address, Range<usize>)> {
        let span = span_of(e);
        let text = match e {
            Expression::Traversal(t) => match (&t.expr, t.operators.as_slice()) {
                (Expression::Variable(root), [op]) => match op.value() {
                    TraversalOperator::GetAttr(name) => {
                        Some(format!("{}.{}", root.as_str(), name.as_str()))
                    }
                    _ => None,
                },
                _ => None,
            },
            Expression::String(s) => Some(s.as_str().to_string()),
            _ => None,
        };
        let Some(text) = text else {
            self.err(
                ErrorKind::WrongType,
                format!("`{key}` takes resource addresses such as service.httpd"),
                span,
                "not a resource address",
            );
            return None;
        };
        if let Some(v) = text.strip_prefix("var.") {
            self.err(
                ErrorKind::InvalidValue,
                format!("`{key}` takes resources, not the variable `var.{v}`"),
                span,
                "a variable",
            );
            return None;
        }
        match text.parse::<Address>() {
            Ok(a) => Some((a, span)),
            Err(e) => {
                let root = text.split('.').next().unwrap_or("");
                let help = suggest(root, ResourceType::ALL.iter().map(|k| k.as_str()));
                self.err(
                    ErrorKind::UnknownReference,
                    e.to_string(),
                    span,
                    "not a resource address",
                )
                .help = help;
                None
            }
        }
    }
}

/// Finds `ROOT.NAME...` traversals in an expression.
#[derive(Default)]
pub(super) struct RefFinder {
    pub(super) found: Vec<(String, String, Range<usize>)>,
}

impl Visit for RefFinder {
    fn visit_traversal(&mut self, node: &hcl::edit::expr::Traversal) {
        if let (Expression::Variable(root), Some(first)) = (&node.expr, node.operators.first()) {
            if let TraversalOperator::GetAttr(name) = first.value() {
                let start = span_of(&node.expr).start;
                let end = span_of(first).end.max(start);
                self.found.push((
                    root.as_str().to_string(),
                    name.as_str().to_string(),
                    start..end,
                ));
            }
        }
        visit_traversal(self, node);
    }
}
