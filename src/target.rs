//! The validated target of `plan`, `apply` and `audit` (ripgrep's raw
//! arguments → high-level arguments): the recipe, the root, the bundle, the
//! services, the state and the `--replace` addresses, opened once per
//! command and passed down. Nothing below a command opens them again.

use crate::bundle::check::Refused;
use crate::bundle::Bundle;
use crate::cli::{RecipeArgs, RootArgs, TargetArgs};
use crate::host::fs::Root;
use crate::host::service::Services;
use crate::plan::{self, Plan};
use crate::recipe::{self, suggest, Address, Recipe};
use crate::state::State;
use miette::miette;
use std::cell::RefCell;
use std::path::Path;

pub struct Target {
    pub recipe: Recipe,
    pub root: Root,
    pub bundle: Bundle,
    pub services: Services,
    /// Loaded once; apply's steps update it, and the re-plan reads that.
    pub state: RefCell<State>,
    pub replace: Vec<Address>,
    /// Why [`crate::bundle::check`] refused the bundle, kept to be reported
    /// together with the plan's own errors ([`Target::plan`]).
    refused: Option<Refused>,
}

/// What opening does with a bundle that fails [`crate::bundle::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleCheck {
    /// Refuse it (plan, apply).
    Require,
    /// Leave it to the caller (audit reports its problems as findings).
    Report,
}

/// The recipe `-r` names, with `--var`/`--var-file`.
pub fn load_recipe(args: &RecipeArgs) -> miette::Result<Recipe> {
    let path = args
        .recipe
        .as_deref()
        .ok_or_else(|| miette!("this command needs a recipe: -r RECIPE"))?;
    recipe::load(path, &args.var_input()).map_err(miette::Report::new)
}

/// `--bundle`, required by clap (`apply PLANFILE` turns that off).
pub fn bundle_arg(args: &TargetArgs) -> miette::Result<&Path> {
    args.bundle
        .as_deref()
        .ok_or_else(|| miette!("this command needs a bundle: --bundle BUNDLE"))
}

/// `--root`, validated.
pub fn root(args: &RootArgs) -> miette::Result<Root> {
    Ok(Root::new(&args.root)?)
}

/// The host's services, as the recipe's settings drive them.
pub fn services(recipe: &Recipe, root: &Root) -> Services {
    Services::new(recipe.settings.services, root.dir())
}

/// `--replace ADDR…`: each must be a resource the recipe declares.
pub fn replace_addresses(recipe: &Recipe, raw: &[String]) -> miette::Result<Vec<Address>> {
    let all: Vec<String> = recipe
        .resources
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    raw.iter()
        .map(|s| {
            let a: Address = s.parse().map_err(|e| miette!("--replace {s}: {e}"))?;
            if recipe.resource(&a).is_none() {
                let help = suggest(s, all.iter().map(String::as_str)).unwrap_or_default();
                return Err(miette!(
                    help = help,
                    "--replace {s}: the recipe declares no such resource"
                ));
            }
            Ok(a)
        })
        .collect()
}

/// A bundle opened for a recipe: readable with the identities given, and
/// (with [`BundleCheck::Require`]) checked, the refusal kept for later.
pub fn open_bundle(
    path: &Path,
    recipe: &Recipe,
    check: BundleCheck,
) -> miette::Result<(Bundle, Option<Refused>)> {
    let bundle = Bundle::open(path)?;
    crate::bundle::crypt::check_readable(&bundle)?;
    let refused = match check {
        BundleCheck::Require => crate::bundle::check::require(&bundle, Some(recipe)).err(),
        BundleCheck::Report => None,
    };
    Ok((bundle, refused))
}

impl Target {
    /// The target, once its parts are open (apply opens them around its
    /// lock, and needs the services before the bundle): loads the state.
    pub fn new(
        recipe: Recipe,
        root: Root,
        services: Services,
        (bundle, refused): (Bundle, Option<Refused>),
        replace: Vec<Address>,
    ) -> miette::Result<Target> {
        let state = State::load(root.dir())?;
        Ok(Target {
            recipe,
            root,
            bundle,
            services,
            state: RefCell::new(state),
            replace,
            refused,
        })
    }

    /// A refused bundle, refused now (before anything is planned on it).
    pub fn require_bundle(&mut self) -> miette::Result<()> {
        match self.refused.take() {
            Some(r) => Err(r.into()),
            None => Ok(()),
        }
    }

    /// Plans the restore; a refused bundle is the error, the plan's own
    /// errors listed with it.
    pub fn plan(&mut self) -> miette::Result<Plan> {
        let planned = self.plan_again();
        match (self.refused.take(), planned) {
            (None, plan) => plan,
            (Some(r), Ok(_)) => Err(r.into()),
            (Some(mut r), Err(e)) => match e.downcast::<plan::PlanErrors>() {
                Ok(errors) => {
                    r.related = errors.errors;
                    Err(r.into())
                }
                Err(other) => Err(other),
            },
        }
    }

    /// Plans with the state and `replace` as they are now (apply's re-plan
    /// clears `replace` and forgets the statuses its steps saw).
    pub fn plan_again(&self) -> miette::Result<Plan> {
        let state = self.state.borrow();
        Ok(plan::build(&plan::Inputs {
            recipe: &self.recipe,
            root: &self.root,
            bundle: &self.bundle,
            services: &self.services,
            state: &state,
            replace: &self.replace,
        })?)
    }
}
