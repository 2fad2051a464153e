//! HCL (via `hcl::edit`, which keeps byte spans) → the typed model.
//!
//! Two passes: block headers first ([`headers`]: so references can be
//! checked against every declared address), then each body against its
//! schema. Problems are collected; evaluation ([`values`]) uses `hcl`'s
//! evaluator with `var.*` and one object per resource type in scope, so
//! `cert.authority` evaluates to its address ([`references`]). A resource
//! block's own attributes are decoded by its kind (`src/resources/`),
//! through [`BlockValues`].

mod block;
mod headers;
mod references;
mod values;

pub use block::BlockValues;
use references::RefFinder;
pub(super) use values::arithmetic_ok;

use super::address::{is_identifier, Address};
use super::diagnostic::{suggest, ErrorKind, RecipeError, RecipeErrors, Source};
use super::schema::{self, BlockSchema};
use super::vars::VarInput;
use super::*;
use crate::resources::registry::ResourceType;
use hcl::edit::expr::{Expression, TraversalOperator};
use hcl::edit::structure::{Attribute, Block, BlockLabel, Body};
use hcl::edit::visit::{visit_traversal, Visit};
use hcl::edit::Span;
use hcl::eval::{Context, Evaluate};
use miette::SourceSpan;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

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
        for &kind in ResourceType::ALL {
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

    fn resource(&mut self, block: &Block, address: Address) -> Option<Resource> {
        let what = format!("`{address}`");
        let schema = address.kind.schema();
        self.pending.clear();
        let mut attrs = self.check_body(&what, block, &schema);
        self.drop_nulls(&what, &schema, &mut attrs);
        let errors_before = self.errors.len();
        let mut refs = Vec::new();
        if let Some(a) = attrs.get("depends_on") {
            self.address_list(a, EdgeKind::DependsOn, &[], &mut refs);
        }
        if let Some(a) = attrs.get("notify") {
            let notifiable: Vec<ResourceType> = ResourceType::ALL
                .iter()
                .copied()
                .filter(|k| k.phase().notifiable())
                .collect();
            self.address_list(a, EdgeKind::Notify, &notifiable, &mut refs);
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
        // The kind decodes its own attributes; a missing one still lets the
        // edges below be recorded.
        let spec = address.kind.decode(&mut BlockValues {
            d: self,
            block,
            attrs,
            refs: &mut refs,
            name: &address.name,
        });
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
}
