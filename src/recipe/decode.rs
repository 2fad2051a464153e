//! HCL (via `hcl::edit`, which keeps byte spans) → the typed model.
//!
//! Two passes: block headers first (so references can be checked against
//! every declared address), then each body against its schema. Problems are
//! collected; evaluation uses `hcl`'s evaluator with `var.*` and one object
//! per resource type in scope, so `cert.authority` evaluates to its address.

use super::address::{is_identifier, Address, ResourceType};
use super::diagnostic::{suggest, ErrorKind, RecipeError, RecipeErrors, Source};
use super::schema::{self, BlockSchema};
use super::vars::VarInput;
use super::*;
use hcl::edit::expr::{Expression, TraversalOperator};
use hcl::edit::structure::{Attribute, Block, BlockLabel, Body};
use hcl::edit::visit::{visit_traversal, Visit};
use hcl::edit::Span;
use hcl::eval::{Context, Evaluate};
use miette::SourceSpan;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

pub(super) fn syntax_error(source: &Source, e: &hcl::edit::parser::Error) -> RecipeError {
    let offset = e.location().offset();
    RecipeError::new(
        ErrorKind::Syntax,
        format!("HCL syntax error: {}", e.message()),
    )
    .at(source, offset..offset, e.message().to_string())
    .help("check for a missing quote, brace or `=` near here")
}

pub(super) fn decode(
    name: &str,
    text: String,
    vars: &VarInput,
    hash: String,
) -> Result<Recipe, RecipeErrors> {
    let source: Source = Arc::new(super::diagnostic::Indexed::new(name, text));
    let fail = |errors| RecipeErrors {
        path: name.to_string(),
        errors,
    };
    let body = hcl::edit::parser::parse_body(source.inner())
        .map_err(|e| fail(vec![syntax_error(&source, &e)]))?;
    let mut d = Decoder {
        source: source.clone(),
        errors: Vec::new(),
        addresses: HashMap::new(),
        variables: BTreeMap::new(),
        unset: Vec::new(),
        ctx: Context::new(),
        edges: Vec::new(),
        pending: Vec::new(),
    };
    let headers = d.headers(&body);
    let variables = d.variables(&headers, vars);
    d.build_context();
    let settings = d.settings(&headers);
    let resources: Vec<Resource> = headers
        .iter()
        .filter_map(|h| match &h.kind {
            HeaderKind::Resource(addr) => d.resource(h.block, addr.clone()),
            _ => None,
        })
        .collect();
    let graph = crate::graph::Graph::from_parts(
        d.variables.keys().map(String::as_str),
        d.edges.iter().map(|(a, _, r)| (a, r.as_slice())),
    );
    let spans: HashMap<Address, SourceSpan> =
        d.edges.iter().map(|(a, s, _)| (a.clone(), *s)).collect();
    let mut errors = d.errors;
    errors.extend(graph.cycle_errors(&source, &spans));
    let recipe = Recipe {
        path: name.into(),
        source,
        hash,
        settings,
        variables,
        resources,
    };
    if errors.is_empty() {
        Ok(recipe)
    } else {
        Err(fail(errors))
    }
}

enum HeaderKind {
    Variable(String),
    Settings,
    Resource(Address),
}

struct Header<'a> {
    block: &'a Block,
    kind: HeaderKind,
}

struct Decoder {
    source: Source,
    errors: Vec<RecipeError>,
    /// Every declared resource, with its header span.
    addresses: HashMap<Address, Range<usize>>,
    variables: BTreeMap<String, hcl::Value>,
    /// Declared but without a value: already reported once.
    unset: Vec<String>,
    ctx: Context<'static>,
    /// Every resource's references, even those with errors, for cycle checks.
    edges: Vec<(Address, SourceSpan, Vec<Reference>)>,
    /// References found by `eval` in the resource being decoded.
    pending: Vec<Reference>,
}

fn span_of(s: &impl Span) -> Range<usize> {
    s.span().unwrap_or(0..0)
}

/// `file "ntp_conf"`: from the identifier to the last label.
fn header_span(block: &Block) -> Range<usize> {
    let start = span_of(&block.ident).start;
    let end = block
        .labels
        .last()
        .map_or(span_of(&block.ident).end, |l| span_of(l).end);
    start..end.max(start)
}

fn label_str(label: &BlockLabel) -> &str {
    match label {
        BlockLabel::Ident(i) => i.as_str(),
        BlockLabel::String(s) => s.as_str(),
    }
}

fn type_name(v: &hcl::Value) -> &'static str {
    match v {
        hcl::Value::Null => "null",
        hcl::Value::Bool(_) => "bool",
        hcl::Value::Number(_) => "number",
        hcl::Value::String(_) => "string",
        hcl::Value::Array(_) => "list",
        hcl::Value::Object(_) => "object",
    }
}

impl Decoder {
    fn err(
        &mut self,
        kind: ErrorKind,
        msg: String,
        span: Range<usize>,
        label: &str,
    ) -> &mut RecipeError {
        self.errors
            .push(RecipeError::new(kind, msg).at(&self.source, span, label));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    fn headers<'a>(&mut self, body: &'a Body) -> Vec<Header<'a>> {
        let mut seen_vars: HashMap<String, Range<usize>> = HashMap::new();
        let mut settings_seen: Option<Range<usize>> = None;
        let mut out = Vec::new();
        let mut addrs: Vec<(&'a Block, Address)> = Vec::new();
        for structure in body.iter() {
            let block = match structure.as_block() {
                Some(b) => b,
                None => {
                    let span = span_of(structure);
                    let key = structure
                        .as_attribute()
                        .map_or("", |a| a.key.as_str())
                        .to_string();
                    self.err(
                        ErrorKind::UnknownAttribute,
                        format!("attribute `{key}` is not allowed at the top level of a recipe"),
                        span,
                        "move this into a block",
                    )
                    .help = Some(
                        "settings go in an `imlrecover { ... }` block, values in `variable` blocks"
                            .into(),
                    );
                    continue;
                }
            };
            let ident = block.ident.as_str();
            let hspan = header_span(block);
            if ident == "imlrecover" {
                if !block.labels.is_empty() {
                    self.err(
                        ErrorKind::InvalidValue,
                        "an `imlrecover` block takes no label".into(),
                        hspan,
                        "remove the label",
                    );
                } else if let Some(first) = &settings_seen {
                    let first = first.clone();
                    self.err(
                        ErrorKind::Duplicate,
                        "only one `imlrecover` block is allowed".into(),
                        hspan,
                        "second settings block",
                    )
                    .labels
                    .push((first.into(), "first declared here".into()));
                } else {
                    settings_seen = Some(hspan);
                    out.push(Header {
                        block,
                        kind: HeaderKind::Settings,
                    });
                }
                continue;
            }
            let is_var = ident == "variable";
            let kind = ResourceType::from_keyword(ident);
            if !is_var && kind.is_none() {
                let help = suggest(ident, schema::TOP_LEVEL.iter().copied()).unwrap_or_else(|| {
                    format!("block types are: {}", schema::TOP_LEVEL.join(", "))
                });
                self.err(
                    ErrorKind::UnknownBlock,
                    format!("unknown block type `{ident}`"),
                    span_of(&block.ident),
                    "not a block type imlrecover knows",
                )
                .help = Some(help);
                continue;
            }
            let name = match block.labels.as_slice() {
                [label] if is_identifier(label_str(label)) => label_str(label).to_string(),
                [label] => {
                    self.err(
                        ErrorKind::InvalidValue,
                        format!("`{}` is not a valid name", label_str(label)),
                        span_of(label),
                        "names start with a letter or `_` and contain letters, digits, `_` and `-`",
                    );
                    continue;
                }
                _ => {
                    self.err(
                        ErrorKind::InvalidValue,
                        format!("a `{ident}` block takes exactly one label, its name"),
                        hspan,
                        "expected e.g. `file \"ntp_conf\" {`",
                    );
                    continue;
                }
            };
            if is_var {
                if let Some(first) = seen_vars.get(&name).cloned() {
                    self.err(
                        ErrorKind::Duplicate,
                        format!("variable `{name}` is declared twice"),
                        hspan,
                        "declared again here",
                    )
                    .labels
                    .push((first.into(), "first declared here".into()));
                } else {
                    seen_vars.insert(name.clone(), hspan);
                    out.push(Header {
                        block,
                        kind: HeaderKind::Variable(name),
                    });
                }
                continue;
            }
            let Some(kind) = kind else { continue };
            let addr = Address::new(kind, name);
            if let Some(first) = self.addresses.get(&addr).cloned() {
                self.err(
                    ErrorKind::Duplicate,
                    format!("duplicate resource address `{addr}`"),
                    hspan,
                    "declared again here",
                )
                .labels
                .push((first.into(), "first declared here".into()));
                continue;
            }
            self.addresses.insert(addr.clone(), hspan);
            addrs.push((block, addr));
        }
        out.extend(addrs.into_iter().map(|(block, addr)| Header {
            block,
            kind: HeaderKind::Resource(addr),
        }));
        out
    }

    /// Checks a block body against its schema; returns its attributes by name.
    fn check_body<'b>(
        &mut self,
        what: &str,
        block: &'b Block,
        schema: &BlockSchema,
    ) -> HashMap<&'b str, &'b Attribute> {
        let mut attrs: HashMap<&'b str, &'b Attribute> = HashMap::new();
        let mut blocks: Vec<&str> = Vec::new();
        for structure in block.body.iter() {
            if let Some(attr) = structure.as_attribute() {
                let key = attr.key.as_str();
                if !schema.attrs.iter().any(|(n, _)| *n == key) {
                    let help =
                        suggest(key, schema.attrs.iter().map(|(n, _)| *n)).unwrap_or_else(|| {
                            let names: Vec<&str> = schema.attrs.iter().map(|(n, _)| *n).collect();
                            format!("{what} accepts: {}", names.join(", "))
                        });
                    self.err(
                        ErrorKind::UnknownAttribute,
                        format!("unknown attribute `{key}` in {what}"),
                        span_of(&attr.key),
                        "not an attribute of this block",
                    )
                    .help = Some(help);
                } else if let Some(first) = attrs.get(key) {
                    let first = span_of(&first.key);
                    self.err(
                        ErrorKind::Duplicate,
                        format!("attribute `{key}` is set twice in {what}"),
                        span_of(&attr.key),
                        "set again here",
                    )
                    .labels
                    .push((first.into(), "first set here".into()));
                } else {
                    attrs.insert(key, attr);
                }
            } else if let Some(nested) = structure.as_block() {
                let ident = nested.ident.as_str();
                if schema.blocks.iter().any(|(n, _)| *n == ident) {
                    if blocks.contains(&ident) {
                        self.err(
                            ErrorKind::Duplicate,
                            format!("only one `{ident}` block is allowed in {what}"),
                            span_of(&nested.ident),
                            "second block",
                        );
                    }
                    blocks.push(ident);
                } else {
                    let names: Vec<&str> = schema.blocks.iter().map(|(n, _)| *n).collect();
                    let help = suggest(ident, names.iter().copied()).unwrap_or_else(|| {
                        if names.is_empty() {
                            format!("{what} takes no nested blocks")
                        } else {
                            format!("{what} accepts the blocks: {}", names.join(", "))
                        }
                    });
                    self.err(
                        ErrorKind::UnknownBlock,
                        format!("unknown block `{ident}` in {what}"),
                        span_of(&nested.ident),
                        "not allowed here",
                    )
                    .help = Some(help);
                }
            }
        }
        for (name, required) in schema.attrs {
            if *required && !attrs.contains_key(name) {
                self.err(
                    ErrorKind::MissingAttribute,
                    format!("{what} is missing the required attribute `{name}`"),
                    header_span(block),
                    &format!("`{name}` is required"),
                );
            }
        }
        for (name, required) in schema.blocks {
            if *required && !blocks.contains(name) {
                self.err(
                    ErrorKind::MissingAttribute,
                    format!("{what} is missing the required block `{name}`"),
                    header_span(block),
                    &format!("add a `{name} {{ ... }}` block"),
                );
            }
        }
        attrs
    }

    /// `null` means "not set" (as in Terraform), so a variable defaulting to
    /// null leaves an optional attribute at its default.
    fn drop_nulls(
        &mut self,
        what: &str,
        schema: &BlockSchema,
        attrs: &mut HashMap<&str, &Attribute>,
    ) {
        let nulls: Vec<(&str, Range<usize>)> = attrs
            .iter()
            .filter(|(_, a)| {
                let expr = hcl::Expression::from(a.value.clone());
                arithmetic_ok(&expr, &self.ctx)
                    && matches!(expr.evaluate(&self.ctx), Ok(hcl::Value::Null))
            })
            .map(|(k, a)| (*k, span_of(&a.value)))
            .collect();
        for (key, span) in nulls {
            // Still an edge: `host = var.pg_host` depends on the variable.
            if let Some(a) = attrs.remove(key) {
                self.eval(a);
            }
            if schema
                .attrs
                .iter()
                .any(|(n, required)| *n == key && *required)
            {
                self.err(
                    ErrorKind::MissingAttribute,
                    format!("`{key}` in {what} is required but is null"),
                    span,
                    "null here",
                );
            }
        }
    }

    fn variables(&mut self, headers: &[Header], input: &VarInput) -> Vec<Variable> {
        let assignments = match input.resolve() {
            Ok(a) => a,
            Err(mut e) => {
                self.errors.append(&mut e);
                Vec::new()
            }
        };
        let declared: Vec<&str> = headers
            .iter()
            .filter_map(|h| match &h.kind {
                HeaderKind::Variable(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        for a in &assignments {
            if !declared.contains(&a.name.as_str()) {
                let help = suggest(&a.name, declared.iter().copied())
                    .unwrap_or_else(|| format!("declared variables: {}", declared.join(", ")));
                self.errors.push(
                    RecipeError::new(
                        ErrorKind::Variable,
                        format!("{}: the recipe declares no variable `{}`", a.origin, a.name),
                    )
                    .help(help),
                );
            }
        }
        let mut out = Vec::new();
        for h in headers {
            let HeaderKind::Variable(name) = &h.kind else {
                continue;
            };
            let what = format!("variable `{name}`");
            let attrs = self.check_body(&what, h.block, &schema::VARIABLE);
            let description = attrs.get("description").and_then(|a| self.string(a));
            let sensitive = attrs
                .get("sensitive")
                .and_then(|a| self.bool(a))
                .unwrap_or(false);
            let default = attrs.get("default").and_then(|a| self.constant(a));
            let value = assignments
                .iter()
                .rev()
                .find(|a| &a.name == name)
                .map(|a| a.value.clone())
                .or(default);
            let Some(value) = value else {
                self.err(
                    ErrorKind::Variable,
                    format!("variable `{name}` has no value"),
                    header_span(h.block),
                    "no default here",
                )
                .help = Some(format!(
                    "set it with --var {name}=VALUE or --var-file, or give it a `default`"
                ));
                self.unset.push(name.clone());
                continue;
            };
            if sensitive {
                crate::redact::add_value(&value);
            }
            self.variables.insert(name.clone(), value.clone());
            out.push(Variable {
                name: name.clone(),
                sensitive,
                description,
                value,
                span: header_span(h.block).into(),
            });
        }
        out
    }

    fn build_context(&mut self) {
        let vars: hcl::Map<String, hcl::Value> = self
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.ctx.declare_var("var", hcl::Value::Object(vars));
        for kind in ResourceType::ALL {
            let members: hcl::Map<String, hcl::Value> = self
                .addresses
                .keys()
                .filter(|a| a.kind == kind)
                .map(|a| (a.name.clone(), hcl::Value::String(a.to_string())))
                .collect();
            self.ctx
                .declare_var(kind.as_str(), hcl::Value::Object(members));
        }
    }

    fn settings(&mut self, headers: &[Header]) -> Settings {
        let mut settings = Settings::default();
        for h in headers {
            if !matches!(h.kind, HeaderKind::Settings) {
                continue;
            }
            let attrs = self.check_body("the `imlrecover` block", h.block, &schema::SETTINGS);
            if let Some(a) = attrs.get("services") {
                if let Some(b) = self.backend(a) {
                    settings.services = b;
                }
            }
            if let Some(a) = attrs.get("recipients") {
                if let Some(list) = self.string_list(a) {
                    // Refused here, with the line and column, not at backup.
                    for r in &list {
                        if let Err(e) = r.trim().parse::<age::x25519::Recipient>() {
                            self.err(
                                ErrorKind::InvalidValue,
                                format!("`{r}` is not an age recipient ({e})"),
                                span_of(&a.value),
                                "expected public keys like \"age1…\" (from `age-keygen`)",
                            );
                        }
                    }
                    settings.recipients = list;
                }
            }
            if let Some(a) = attrs.get("sign_key") {
                settings.sign_key = self.path(a);
            }
            if let Some(a) = attrs.get("trust") {
                if let Some(list) = self.string_list(a) {
                    for k in &list {
                        if let Err(e) = crate::bundle::sign::parse_public(k) {
                            let msg = format!("`trust`: {e}");
                            let hint = "expected ed25519 public keys: \"ssh-ed25519 AAAA…\" (sign.key.pub) or a PEM block";
                            self.err(ErrorKind::InvalidValue, msg, span_of(&a.value), hint);
                        }
                    }
                    settings.trust = list;
                }
            }
        }
        settings
    }

    /// Evaluates an attribute; references to undeclared things are reported
    /// here (with suggestions) and recorded in `self.pending` otherwise.
    fn eval(&mut self, attr: &Attribute) -> Option<hcl::Value> {
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

    fn eval_raw(&mut self, attr: &Attribute) -> Option<hcl::Value> {
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
    fn constant(&mut self, attr: &Attribute) -> Option<hcl::Value> {
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

    fn number_error(&mut self, attr: &Attribute) {
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

    fn unknown_resource(&mut self, addr: &Address, span: Range<usize>) {
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

    fn wrong_type(
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

    fn string(&mut self, attr: &Attribute) -> Option<String> {
        let v = self.eval(attr)?;
        self.as_string(attr, v)
    }

    fn as_string(&mut self, attr: &Attribute, v: hcl::Value) -> Option<String> {
        match v {
            hcl::Value::String(s) => Some(s),
            other => {
                self.wrong_type(attr, "a string", &other, None);
                None
            }
        }
    }

    fn bool(&mut self, attr: &Attribute) -> Option<bool> {
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

    fn number(&mut self, attr: &Attribute, v: hcl::Value, max: u64) -> Option<u64> {
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

    fn port(&mut self, attr: &Attribute) -> Option<u16> {
        let v = self.eval(attr)?;
        self.number(attr, v, u16::MAX as u64).map(|n| n as u16)
    }

    fn string_list(&mut self, attr: &Attribute) -> Option<Vec<String>> {
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
    fn command(&mut self, attr: &Attribute) -> Option<Vec<String>> {
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

    fn duration(&mut self, attr: &Attribute) -> Option<Duration> {
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

    fn path(&mut self, attr: &Attribute) -> Option<String> {
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

    fn mode(&mut self, attr: &Attribute) -> Option<u32> {
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

    fn backend(&mut self, attr: &Attribute) -> Option<ServiceBackend> {
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
    fn one_of<T: Copy>(
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

    /// `[service.httpd, file.x]`: bare references (or strings), with spans.
    fn address_list(
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

    fn check_target(
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

    fn address_expr(&mut self, key: &str, e: &Expression) -> Option<(Address, Range<usize>)> {
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

    fn resource(&mut self, block: &Block, address: Address) -> Option<Resource> {
        let what = format!("`{address}`");
        let schema = schema::resource(address.kind);
        self.pending.clear();
        let mut attrs = self.check_body(&what, block, &schema);
        self.drop_nulls(&what, &schema, &mut attrs);
        let errors_before = self.errors.len();
        let mut refs = Vec::new();
        if let Some(a) = attrs.get("depends_on") {
            self.address_list(a, EdgeKind::DependsOn, &[], &mut refs);
        }
        if let Some(a) = attrs.get("notify") {
            self.address_list(
                a,
                EdgeKind::Notify,
                &[ResourceType::Service, ResourceType::RemoteService],
                &mut refs,
            );
        }
        let self_refs: Vec<Range<usize>> = refs
            .iter()
            .filter(|r| r.target == RefTarget::Resource(address.clone()))
            .map(|r| r.span.offset()..r.span.offset() + r.span.len())
            .collect();
        for span in self_refs {
            self.err(
                ErrorKind::Cycle,
                format!("`{address}` refers to itself"),
                span,
                "self reference",
            );
        }
        let name = address.name.clone();
        // A closure so `?` on a missing attribute still records the edges below.
        let mut decode_spec = || -> Option<Spec> {
            Some(match address.kind {
                ResourceType::File => {
                    let path = attrs.get("path").and_then(|a| self.path(a));
                    let mode = attrs.get("mode").and_then(|a| self.mode(a));
                    let owner = attrs.get("owner").and_then(|a| self.string(a));
                    let group = attrs.get("group").and_then(|a| self.string(a));
                    let sensitive = attrs
                        .get("sensitive")
                        .and_then(|a| self.bool(a))
                        .unwrap_or(false);
                    let optional = attrs
                        .get("optional")
                        .and_then(|a| self.bool(a))
                        .unwrap_or(false);
                    Spec::File(FileSpec {
                        path: path?,
                        mode,
                        owner,
                        group,
                        sensitive,
                        optional,
                    })
                }
                ResourceType::Files => {
                    let glob = attrs.get("glob").and_then(|a| self.path(a));
                    if let (Some(g), Some(a)) = (&glob, attrs.get("glob")) {
                        if let Err(e) = glob::Pattern::new(g) {
                            self.err(
                                ErrorKind::InvalidValue,
                                format!("`{g}` is not a valid glob: {}", e.msg),
                                span_of(&a.value),
                                "invalid glob",
                            );
                        }
                    }
                    let sensitive = attrs
                        .get("sensitive")
                        .and_then(|a| self.bool(a))
                        .unwrap_or(false);
                    let optional = attrs
                        .get("optional")
                        .and_then(|a| self.bool(a))
                        .unwrap_or(false);
                    Spec::Files(FilesSpec {
                        glob: glob?,
                        sensitive,
                        optional,
                    })
                }
                ResourceType::Absent => {
                    let path = attrs.get("path").and_then(|a| self.path(a));
                    Spec::Absent(AbsentSpec { path: path? })
                }
                ResourceType::Cert => {
                    let cert = attrs.get("cert").and_then(|a| self.path(a));
                    let key = attrs.get("key").and_then(|a| self.path(a));
                    let serial = attrs.get("serial").and_then(|a| self.path(a));
                    let mut ca = None;
                    if let Some(a) = attrs.get("ca") {
                        let mut ca_refs = Vec::new();
                        self.address_list(
                            a,
                            EdgeKind::Reference,
                            &[ResourceType::Cert],
                            &mut ca_refs,
                        );
                        if matches!(a.value, Expression::Array(_)) || ca_refs.len() > 1 {
                            self.err(
                                ErrorKind::WrongType,
                                "`ca` takes one cert address, e.g. ca = cert.authority".into(),
                                span_of(&a.value),
                                "not a single address",
                            );
                        } else if let Some(r) = ca_refs.pop() {
                            if let RefTarget::Resource(addr) = &r.target {
                                ca = Some(addr.clone());
                            }
                            refs.push(r);
                        }
                    }
                    Spec::Cert(CertSpec {
                        cert: cert?,
                        key: key?,
                        serial,
                        ca,
                    })
                }
                ResourceType::Database => {
                    let superuser = attrs.get("superuser").and_then(|a| self.string(a));
                    let databases = match attrs.get("databases") {
                        Some(a) => self.string_list(a),
                        None => Some(vec![name.clone()]),
                    };
                    let host = attrs.get("host").and_then(|a| self.string(a));
                    let port = attrs.get("port").and_then(|a| self.port(a));
                    let run_as = attrs.get("run_as").and_then(|a| self.string(a));
                    let bindir = attrs.get("bindir").and_then(|a| self.path(a));
                    let mut quiesce_refs = Vec::new();
                    if let Some(a) = attrs.get("quiesce") {
                        self.address_list(
                            a,
                            EdgeKind::Quiesce,
                            &[ResourceType::Service],
                            &mut quiesce_refs,
                        );
                    }
                    let quiesce = quiesce_refs
                        .iter()
                        .filter_map(|r| match &r.target {
                            RefTarget::Resource(a) => Some(a.clone()),
                            RefTarget::Variable(_) => None,
                        })
                        .collect();
                    refs.extend(quiesce_refs);
                    Spec::Database(DatabaseSpec {
                        databases: databases?,
                        superuser: superuser?,
                        host,
                        port,
                        run_as,
                        bindir,
                        quiesce,
                    })
                }
                ResourceType::Service => {
                    let svc_name = match attrs.get("name") {
                        Some(a) => self.string(a),
                        None => Some(name.clone()),
                    };
                    let state = attrs.get("state").and_then(|a| {
                        self.one_of(
                            a,
                            "service state",
                            &[
                                ("running", ServiceState::Running),
                                ("stopped", ServiceState::Stopped),
                            ],
                        )
                    });
                    Spec::Service(ServiceSpec {
                        name: svc_name?,
                        state: state?,
                    })
                }
                ResourceType::Exec => {
                    let command = attrs.get("command").and_then(|a| self.command(a));
                    let creates = attrs.get("creates").and_then(|a| self.path(a));
                    let unless = attrs.get("unless").and_then(|a| self.command(a));
                    let timeout = match attrs.get("timeout") {
                        Some(a) => self.duration(a),
                        None => Some(Duration::from_secs(3600)),
                    };
                    Spec::Exec(ExecSpec {
                        command: command?,
                        creates,
                        unless,
                        timeout: timeout?,
                    })
                }
                ResourceType::RemoteService => self.remote_service(block, &attrs)?,
            })
        };
        let spec = decode_spec();
        let span: SourceSpan = header_span(block).into();
        refs.append(&mut self.pending);
        self.edges.push((address.clone(), span, refs.clone()));
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Resource {
            address,
            span,
            references: refs,
            spec: spec?,
        })
    }

    fn remote_service(&mut self, block: &Block, attrs: &HashMap<&str, &Attribute>) -> Option<Spec> {
        let svc = attrs.get("name").and_then(|a| self.string(a));
        let hosts = attrs.get("hosts").and_then(|a| self.string_list(a));
        let action = match attrs.get("action") {
            None => Some(RemoteAction::Restart),
            Some(a) => self.one_of(
                a,
                "action",
                &[
                    ("restart", RemoteAction::Restart),
                    ("start", RemoteAction::Start),
                    ("stop", RemoteAction::Stop),
                ],
            ),
        };
        let optional = attrs
            .get("optional")
            .and_then(|a| self.bool(a))
            .unwrap_or(false);
        let parallelism = match attrs.get("parallelism") {
            Some(a) => {
                let v = self.eval(a)?;
                self.number(a, v, 1024).map(|n| n as usize)
            }
            None => Some(32),
        };
        let timeout = match attrs.get("timeout") {
            Some(a) => self.duration(a),
            None => Some(Duration::from_secs(60)),
        };
        let check = attrs.get("check").and_then(|a| self.string(a));
        let init = match attrs.get("init") {
            Some(a) => self.backend(a),
            None => Some(ServiceBackend::Sysv),
        };
        let ssh_block = block
            .body
            .iter()
            .filter_map(|s| s.as_block())
            .find(|b| b.ident.as_str() == "ssh")?;
        if !ssh_block.labels.is_empty() {
            self.err(
                ErrorKind::InvalidValue,
                "an `ssh` block takes no label".into(),
                header_span(ssh_block),
                "remove the label",
            );
        }
        let mut ssh_attrs = self.check_body("the `ssh` block", ssh_block, &schema::SSH);
        self.drop_nulls("the `ssh` block", &schema::SSH, &mut ssh_attrs);
        let user = ssh_attrs.get("user").and_then(|a| self.string(a));
        let port = match ssh_attrs.get("port") {
            Some(a) => self.port(a),
            None => Some(22),
        };
        let identity_file = ssh_attrs.get("identity_file").and_then(|a| self.path(a));
        let known_hosts = ssh_attrs.get("known_hosts").and_then(|a| self.path(a));
        Some(Spec::RemoteService(RemoteServiceSpec {
            name: svc?,
            hosts: hosts?,
            action: action?,
            optional,
            parallelism: parallelism?,
            timeout: timeout?,
            check,
            init: init?,
            ssh: SshSpec {
                user: user?,
                port: port?,
                identity_file,
                known_hosts: known_hosts?,
            },
        }))
    }
}

/// Finds `ROOT.NAME...` traversals in an expression.
#[derive(Default)]
struct RefFinder {
    found: Vec<(String, String, Range<usize>)>,
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

/// A number no arithmetic of a recipe should give: `1/0` evaluates to the
/// largest float (or infinity), an overflow too.
fn out_of_range(v: &hcl::Value) -> bool {
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
pub(super) fn arithmetic_ok(expr: &hcl::Expression, ctx: &Context) -> bool {
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
