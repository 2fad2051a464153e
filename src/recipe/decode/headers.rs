//! The first pass: block headers (every declared address, variable and
//! the settings block), then each body checked against its schema.

use super::*;

impl Decoder {
    pub(super) fn headers<'a>(&mut self, body: &'a Body) -> Vec<Header<'a>> {
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
                let top_level = schema::top_level();
                let help = suggest(ident, top_level.iter().copied())
                    .unwrap_or_else(|| format!("block types are: {}", top_level.join(", ")));
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
    pub(super) fn check_body<'b>(
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
    pub(super) fn drop_nulls(
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
}
