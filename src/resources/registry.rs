//! How the rest of the program reaches a kind: [`ResourceType`] (an
//! address's `TYPE`), [`Spec`] (a decoded block) and the functions below,
//! which dispatch to the kind's [`Kind`] impl. Both types are made by the
//! `kinds!` macro from the one list of kinds, in `src/resources/mod.rs`.
//!
//! A new kind is its own file under `src/resources/` (implementing
//! [`Kind`]) plus one line in that list.

pub(crate) use super::dispatch;
pub use super::{ResourceType, Spec};

/// Makes, from the list of kinds, their modules, [`ResourceType`], [`Spec`]
/// and `dispatch`.
macro_rules! kinds {
    ($($variant:ident => $module:ident :: $kind:ident,)*) => {
        $(pub mod $module;)*

        /// The resource block types a recipe may declare, in the order
        /// they are listed (which is also how addresses sort).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResourceType {
            $($variant,)*
        }

        impl ResourceType {
            pub const ALL: &'static [ResourceType] = &[$(ResourceType::$variant,)*];

            /// Its block keyword, also the `TYPE` of its addresses.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ResourceType::$variant => <$crate::resources::$module::$kind as $crate::resources::kind::Kind>::KEYWORD,)*
                }
            }

            /// The attributes and nested blocks its block accepts.
            pub fn schema(self) -> $crate::recipe::BlockSchema {
                match self {
                    $(ResourceType::$variant => <$crate::resources::$module::$kind as $crate::resources::kind::Kind>::SCHEMA,)*
                }
            }

            /// Where its steps go in a plan.
            pub fn phase(self) -> $crate::resources::kind::Phase {
                match self {
                    $(ResourceType::$variant => <$crate::resources::$module::$kind as $crate::resources::kind::Kind>::PHASE,)*
                }
            }

            /// Whether `backup` puts it in the bundle.
            pub fn captures(self) -> bool {
                match self {
                    $(ResourceType::$variant => <$crate::resources::$module::$kind as $crate::resources::kind::Kind>::CAPTURES,)*
                }
            }

            /// The audit suite of its own checks, if it has any.
            pub fn audit_suite(self) -> Option<$crate::audit::Suite> {
                match self {
                    $(ResourceType::$variant => <$crate::resources::$module::$kind as $crate::resources::kind::Kind>::AUDIT,)*
                }
            }

            /// Decodes a block of this type, its attributes already checked
            /// against [`ResourceType::schema`].
            pub(crate) fn decode(self, b: &mut $crate::recipe::BlockValues) -> Option<Spec> {
                match self {
                    $(ResourceType::$variant =>
                        <$crate::resources::$module::$kind as $crate::resources::kind::Kind>::decode(b).map(Spec::$variant),)*
                }
            }
        }

        /// A decoded resource block: its kind's typed spec.
        #[derive(Debug, Clone)]
        pub enum Spec {
            $($variant(<$crate::resources::$module::$kind as $crate::resources::kind::Kind>::Spec),)*
        }

        /// The one place a resource's kind is chosen, so that its
        /// observation and its comparison always go to the same kind.
        pub(crate) fn dispatch<'r, W: $crate::resources::registry::WithKind<'r>>(
            resource: &'r $crate::recipe::Resource,
            w: W,
        ) -> W::Out {
            let a = &resource.address;
            match &resource.spec {
                $(Spec::$variant(s) => w.with($crate::resources::$module::$kind, a, s),)*
            }
        }
    };
}
pub(super) use kinds;

use super::kind::{Applied, ApplyCx, Cx, Kind, Named, Observation, ResourceError};
use super::{CaptureCx, CaptureError, Captured};
use crate::plan::{fingerprint, ResourceChange, Step};
use crate::recipe::{Address, Resource, ServiceState};

/// Something to do with a resource's kind and its typed spec.
pub(crate) trait WithKind<'r> {
    type Out;
    fn with<K: Kind>(self, kind: K, address: &'r Address, spec: &'r K::Spec) -> Self::Out;
}

impl ResourceType {
    pub fn from_keyword(s: &str) -> Option<ResourceType> {
        ResourceType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Every keyword, comma-separated, for messages.
    pub fn keywords() -> String {
        let all: Vec<&str> = ResourceType::ALL.iter().map(|t| t.as_str()).collect();
        all.join(", ")
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ResourceType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ResourceType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ResourceType, D::Error> {
        let s = String::deserialize(d)?;
        ResourceType::from_keyword(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown resource type `{s}`, expected one of {}",
                ResourceType::keywords()
            ))
        })
    }
}

/// Observes one resource with its kind. Read-only; `cx.prior` is not used.
pub fn observe_resource(resource: &Resource, cx: &Cx) -> Result<Observation, ResourceError> {
    struct Observe<'c, 'a>(&'c Cx<'a>);
    impl WithKind<'_> for Observe<'_, '_> {
        type Out = Result<Observation, ResourceError>;
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out {
            Ok(Observation(Box::new(kind.observe(address, spec, self.0)?)))
        }
    }
    dispatch(resource, Observe(cx))
}

/// Compares one resource's observation with the recipe and the bundle.
pub fn compare_resource(
    resource: &Resource,
    observation: Observation,
    cx: &Cx,
) -> Result<ResourceChange, ResourceError> {
    struct Compare<'c, 'a>(Observation, &'c Cx<'a>);
    impl WithKind<'_> for Compare<'_, '_> {
        type Out = Result<ResourceChange, ResourceError>;
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out {
            let Compare(Observation(any), cx) = self;
            // Cannot fail for an observation `observe_resource` made of this
            // resource: `dispatch` chooses the same kind for both.
            let observed = any.downcast::<K::Observed>().map_err(|_| {
                ResourceError::new(address, "internal error: observed as another kind")
            })?;
            let verdict = kind.compare(address, spec, &observed, cx)?;
            let before = serde_json::to_value(&*observed).unwrap_or(serde_json::Value::Null);
            Ok(ResourceChange {
                address: address.clone(),
                action: verdict.action,
                reason: verdict.reason,
                details: verdict.details,
                files: verdict.files,
                observed: fingerprint(&before),
                before,
                after: verdict.after,
                sensitive: verdict.sensitive,
            })
        }
    }
    dispatch(resource, Compare(observation, cx))
}

/// Starts what a step can do ahead of its turn (see [`Kind::prepare`]).
pub fn prepare_step(resource: &Resource, step: &Step, cx: &ApplyCx) {
    struct Prepare<'s, 'c, 'a>(&'s Step, &'c ApplyCx<'a>);
    impl WithKind<'_> for Prepare<'_, '_, '_> {
        type Out = ();
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) {
            kind.prepare(address, spec, self.0, self.1)
        }
    }
    dispatch(resource, Prepare(step, cx))
}

/// Applies one step with its resource's kind.
pub fn apply_step(
    resource: &Resource,
    step: &Step,
    change: &ResourceChange,
    cx: &ApplyCx,
) -> Result<Applied, ResourceError> {
    struct Apply<'s, 'c, 'a>(&'s Step, &'s ResourceChange, &'c ApplyCx<'a>);
    impl WithKind<'_> for Apply<'_, '_, '_> {
        type Out = Result<Applied, ResourceError>;
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out {
            kind.apply(address, spec, self.0, self.1, self.2)
        }
    }
    dispatch(resource, Apply(step, change, cx))
}

/// What `backup` puts in the bundle for one resource; `None` for a kind
/// that captures nothing.
pub fn capture(cx: &mut CaptureCx, resource: &Resource) -> Option<Result<Captured, CaptureError>> {
    struct Capture<'c, 'x>(&'c mut CaptureCx<'x>);
    impl WithKind<'_> for Capture<'_, '_> {
        type Out = Option<Result<Captured, CaptureError>>;
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out {
            K::CAPTURES.then(|| kind.capture(self.0, address, spec))
        }
    }
    dispatch(resource, Capture(cx))
}

/// The services a resource's step stops around itself (a database's quiesce).
pub fn quiesces(resource: &Resource) -> &[Address] {
    struct Quiesce;
    impl<'r> WithKind<'r> for Quiesce {
        type Out = &'r [Address];
        fn with<K: Kind>(self, _: K, _: &'r Address, spec: &'r K::Spec) -> Self::Out {
            K::quiesces(spec)
        }
    }
    dispatch(resource, Quiesce)
}

/// The state a service resource wants (`None` for other kinds).
pub fn desired_state(resource: &Resource) -> Option<ServiceState> {
    struct Desired;
    impl WithKind<'_> for Desired {
        type Out = Option<ServiceState>;
        fn with<K: Kind>(self, _: K, _: &Address, spec: &K::Spec) -> Self::Out {
            K::desired_state(spec)
        }
    }
    dispatch(resource, Desired)
}

/// The paths and globs under the root a resource names.
pub fn named(resource: &Resource, out: &mut Named) {
    struct Name<'o>(&'o mut Named);
    impl WithKind<'_> for Name<'_> {
        type Out = ();
        fn with<K: Kind>(self, _: K, _: &Address, spec: &K::Spec) {
            K::named(spec, self.0)
        }
    }
    dispatch(resource, Name(out))
}

/// Whether a manifest entry under a resource's address is one its kind
/// captures (see [`Kind::owns_entry`]).
pub fn owns_entry(resource: &Resource, entry: &crate::bundle::Entry) -> Result<(), String> {
    struct Owns<'e>(&'e crate::bundle::Entry);
    impl WithKind<'_> for Owns<'_> {
        type Out = Result<(), String>;
        fn with<K: Kind>(self, _: K, _: &Address, spec: &K::Spec) -> Self::Out {
            K::owns_entry(spec, self.0)
        }
    }
    dispatch(resource, Owns(entry))
}

/// A resource's own audit checks (certificates, unmanaged files of a set).
pub fn audit(
    resource: &Resource,
    i: &crate::audit::checks::Inputs,
    out: &mut super::kind::Audited,
) -> Result<(), crate::audit::checks::AuditError> {
    struct Audit<'i, 'a, 'o>(
        &'i crate::audit::checks::Inputs<'a>,
        &'o mut super::kind::Audited,
    );
    impl WithKind<'_> for Audit<'_, '_, '_> {
        type Out = Result<(), crate::audit::checks::AuditError>;
        fn with<K: Kind>(self, kind: K, address: &Address, spec: &K::Spec) -> Self::Out {
            kind.audit(address, spec, self.0, self.1)
        }
    }
    dispatch(resource, Audit(i, out))
}
