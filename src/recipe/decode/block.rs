//! What a resource kind sees of its block while decoding it: its
//! attributes by name, read with the decoder's typed readers, so every
//! problem is reported with its span like any other.

use super::*;

/// One resource block, its body already checked against its kind's schema.
/// Each reader returns `None` when the attribute is absent or (reported)
/// wrong.
pub struct BlockValues<'d, 'b> {
    pub(super) d: &'d mut Decoder,
    pub(super) block: &'b Block,
    pub(super) attrs: HashMap<&'b str, &'b Attribute>,
    pub(super) refs: &'d mut Vec<Reference>,
    pub(super) name: &'d str,
}

impl<'b> BlockValues<'_, 'b> {
    /// The block's label: the resource's name.
    pub fn name(&self) -> &str {
        self.name
    }

    pub fn has(&self, key: &str) -> bool {
        self.attrs.contains_key(key)
    }

    /// Whether the attribute is written as a list (`[...]`).
    pub fn is_list(&self, key: &str) -> bool {
        self.attrs
            .get(key)
            .is_some_and(|a| matches!(a.value, Expression::Array(_)))
    }

    fn attr(&self, key: &str) -> Option<&'b Attribute> {
        self.attrs.get(key).copied()
    }

    /// The evaluated value, untyped.
    pub fn value(&mut self, key: &str) -> Option<hcl::Value> {
        let a = self.attr(key)?;
        self.d.eval(a)
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        let a = self.attr(key)?;
        self.d.string(a)
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let a = self.attr(key)?;
        self.d.bool(a)
    }

    /// A whole number from 1 to `max`, of a value from [`Self::value`].
    pub fn number(&mut self, key: &str, v: hcl::Value, max: u64) -> Option<u64> {
        let a = self.attr(key)?;
        self.d.number(a, v, max)
    }

    pub fn port(&mut self, key: &str) -> Option<u16> {
        let a = self.attr(key)?;
        self.d.port(a)
    }

    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        let a = self.attr(key)?;
        self.d.string_list(a)
    }

    /// A command: a list is argv, a string runs under `/bin/sh -c`.
    pub fn command(&mut self, key: &str) -> Option<Vec<String>> {
        let a = self.attr(key)?;
        self.d.command(a)
    }

    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        let a = self.attr(key)?;
        self.d.duration(a)
    }

    /// An absolute path without `..`.
    pub fn path(&mut self, key: &str) -> Option<String> {
        let a = self.attr(key)?;
        self.d.path(a)
    }

    /// An octal file mode written as a string (`"0644"`).
    pub fn mode(&mut self, key: &str) -> Option<u32> {
        let a = self.attr(key)?;
        self.d.mode(a)
    }

    /// `sysv` or `systemd`.
    pub fn backend(&mut self, key: &str) -> Option<ServiceBackend> {
        let a = self.attr(key)?;
        self.d.backend(a)
    }

    /// A string that must be one of a few words.
    pub fn one_of<T: Copy>(&mut self, key: &str, what: &str, choices: &[(&str, T)]) -> Option<T> {
        let a = self.attr(key)?;
        self.d.one_of(a, what, choices)
    }

    /// `[service.httpd, file.x]`: references to declared resources of the
    /// types `allowed` accepts, with spans; each is checked and reported.
    /// The caller decides which become the resource's edges
    /// ([`Self::reference`]).
    pub fn addresses(
        &mut self,
        key: &str,
        kind: EdgeKind,
        allowed: impl Fn(ResourceType) -> bool,
    ) -> Vec<Reference> {
        let mut out = Vec::new();
        if let Some(a) = self.attr(key) {
            let allowed: Vec<ResourceType> = ResourceType::ALL
                .iter()
                .copied()
                .filter(|k| allowed(*k))
                .collect();
            self.d.address_list(a, kind, &allowed, &mut out);
        }
        out
    }

    /// Records an edge of this resource.
    pub fn reference(&mut self, r: Reference) {
        self.refs.push(r);
    }

    /// Reports a problem with an attribute's value.
    pub fn invalid(&mut self, key: &str, kind: ErrorKind, message: String, label: &str) {
        if let Some(a) = self.attr(key) {
            self.d.err(kind, message, span_of(&a.value), label);
        }
    }

    /// The nested block `ident` (at most one, checked by the schema),
    /// its body checked against `schema`.
    pub fn nested(&mut self, ident: &str, schema: &BlockSchema) -> Option<BlockValues<'_, 'b>> {
        let block = self
            .block
            .body
            .iter()
            .filter_map(|s| s.as_block())
            .find(|b| b.ident.as_str() == ident)?;
        if !block.labels.is_empty() {
            self.d.err(
                ErrorKind::InvalidValue,
                format!("an `{ident}` block takes no label"),
                header_span(block),
                "remove the label",
            );
        }
        let what = format!("the `{ident}` block");
        let mut attrs = self.d.check_body(&what, block, schema);
        self.d.drop_nulls(&what, schema, &mut attrs);
        Some(BlockValues {
            d: &mut *self.d,
            block,
            attrs,
            refs: &mut *self.refs,
            name: self.name,
        })
    }
}
