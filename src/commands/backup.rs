//! `imlrecover backup`: capture what the recipe declares into a new bundle.

use super::{CmdResult, Outcome};
use crate::apply::protocol::take_lock;
use crate::bundle::{BundleWriter, RecipeRef};
use crate::cli::BackupArgs;
use crate::host::fs::Root;
use crate::printer::Printer;
use crate::resources::{self, CaptureCx, Captured};
use crate::target::load_recipe;
use crate::views;
use crate::views::apply::Human;
use crate::views::apply_record::Gathered;
use crate::views::backup::{BackupRecord, ResourceRecord};
use crate::views::transfer::PushRecord;
use miette::Report;
use std::time::{Instant, SystemTime};

pub fn run(printer: &Printer, args: &BackupArgs) -> CmdResult {
    let machine = args.output.machine();
    let quiet = printer.for_document();
    let p = if machine { &quiet } else { printer };
    let mut record = BackupRecord::default();
    let result = backup(p, args, machine, &mut record);
    record.warnings = views::progress::take_warnings();
    views::document::finish(printer, args.output.format, "backup", &record, result)
}

fn backup(
    printer: &Printer,
    args: &BackupArgs,
    machine: bool,
    record: &mut BackupRecord,
) -> CmdResult {
    let started = Instant::now();
    // A mistyped --push target fails before anything is captured.
    let push_target = args
        .push
        .as_deref()
        .map(crate::transfer::RemoteTarget::parse)
        .transpose()
        .map_err(Report::new)?;
    let recipe = load_recipe(&args.recipe)?;
    let mut store = store_options(&recipe, args)?;
    let root = Root::new(&args.root.root).map_err(Report::new)?;
    store.signer = signer(&recipe, args, &root)?;
    let key_path = store.signer.as_ref().and_then(|s| s.host_path(root.dir()));
    let signed = crate::bundle::sign::backup_note(store.signer.as_ref(), &recipe);
    // Never capture a restore in progress: the apply lock, or wait for it.
    let _lock = if machine {
        take_lock(&Gathered::new(printer), &root, args.wait)?
    } else {
        take_lock(&Human::new(printer), &root, args.wait)?
    };
    let databases: Vec<_> = recipe
        .resources
        .iter()
        .filter(|r| resources::registry::restores_dump(r))
        .map(|r| r.address.to_string())
        .collect();
    if databases.len() > 1 {
        return Err(miette::miette!(
            help = "declare the cluster once; list its databases with `databases = [...]`",
            "the recipe declares {} database blocks ({}), but a bundle holds one cluster dump",
            databases.len(),
            databases.join(", ")
        ));
    }

    let mut bundle = BundleWriter::create(
        &args.bundle_dir,
        RecipeRef {
            // Absolute, so the manifest means the same from any directory.
            path: std::fs::canonicalize(&recipe.path)
                .unwrap_or_else(|_| recipe.path.clone())
                .display()
                .to_string(),
            blake3: recipe.hash.clone(),
        },
        root.dir(),
        SystemTime::now(),
    )
    .map_err(Report::new)?;
    bundle.set_store_options(store);
    let mut total = Captured::default();
    let mut resources_done = 0usize;
    {
        let mut cx = CaptureCx {
            root: &root,
            bundle: &mut bundle,
            printer,
        };
        for r in &recipe.resources {
            let t0 = Instant::now();
            // On error `bundle` is dropped here, which removes it.
            let Some(done) = resources::registry::capture(&mut cx, r) else {
                continue;
            };
            let mut rec = ResourceRecord {
                address: r.address.to_string(),
                status: "done",
                files: 0,
                absent: 0,
                bytes: 0,
                error: None,
                seconds: t0.elapsed().as_secs_f64(),
            };
            let done = match done {
                Ok(done) => done,
                Err(e) => {
                    rec.status = "failed";
                    rec.error = Some(e.to_string());
                    record.resources.push(rec);
                    return Err(Report::new(e));
                }
            };
            (rec.files, rec.absent, rec.bytes) = (done.files, done.absent, done.bytes);
            record.resources.push(rec);
            resources_done += 1;
            total.files += done.files;
            total.absent += done.absent;
            total.bytes += done.bytes;
        }
    }
    if let Some(path) = key_path.filter(|p| bundle.has_file(p)) {
        return Err(crate::bundle::sign::SignError::KeyCaptured { path }.into());
    }
    let committed = bundle
        .commit(Some(&args.retention.policy()))
        .map_err(Report::new)?;

    let m = &committed.manifest;
    record_metrics(&total, m);
    let finished = views::backup::Finished {
        committed: &committed,
        total: &total,
        resources: resources_done,
        elapsed: started.elapsed(),
        signed: signed.as_deref(),
    };
    record.finished(&finished);
    if !machine {
        printer.out(&views::backup::human(printer, &finished))?;
    }
    if let Some(target) = &push_target {
        let started = Instant::now();
        let pushed = record.push.insert(PushRecord::new(target));
        crate::transfer::push_path(
            &committed.path,
            target,
            &(&args.ssh).into(),
            args.push_keep
                .map(crate::bundle::retention::Policy::last)
                .as_ref(),
            &crate::views::transfer::Bar::new(printer),
        )
        .map_err(Report::new)
        .and_then(|done| {
            pushed.pushed(target, &done, started.elapsed());
            match machine {
                true => Ok(()),
                false => views::transfer::pushed(printer, target, &done, started.elapsed()),
            }
        })
        .map_err(|e| {
            pushed.error = Some(e.to_string());
            pushed.seconds = started.elapsed().as_secs_f64();
            e.wrap_err(format!(
                "the backup {} is complete, but pushing it failed (retry with `imlrecover push {} TARGET`)",
                committed.path.display(),
                committed.path.display()
            ))
        })?;
    }
    Ok(Outcome::Clean)
}

/// What `--metrics-file` shows of a backup (the bundle's size, rows and files).
fn record_metrics(total: &Captured, m: &crate::bundle::Manifest) {
    use crate::metrics::{record, Family};
    let (dump, rows, tables) = m.database.as_ref().map_or((0, 0, 0), |db| {
        (
            db.size,
            db.fingerprint
                .values()
                .flat_map(|t| t.values())
                .sum::<u64>(),
            db.fingerprint.values().map(|t| t.len()).sum::<usize>(),
        )
    });
    record(Family::gauge(
        "imlrecover_backup_files",
        "Files the last successful backup captured.",
        total.files as f64,
    ));
    record(Family::gauge(
        "imlrecover_backup_bytes",
        "Bytes of the last successful backup: captured files plus the compressed dump.",
        (total.bytes + dump) as f64,
    ));
    record(Family::gauge(
        "imlrecover_backup_dump_bytes",
        "Bytes of the last successful backup's compressed database dump.",
        dump as f64,
    ));
    record(Family::gauge(
        "imlrecover_backup_rows",
        "Table rows in the last successful backup's dump (its fingerprint).",
        rows as f64,
    ));
    record(Family::gauge(
        "imlrecover_backup_tables",
        "Tables in the last successful backup's dump.",
        tables as f64,
    ));
}

/// Recipients from the recipe and `--recipient`; `--encrypt-all`, `--split-size`.
fn store_options(
    recipe: &crate::recipe::Recipe,
    args: &BackupArgs,
) -> miette::Result<crate::bundle::write::StoreOptions> {
    use crate::bundle::crypt;
    let mut names: Vec<String> = recipe.settings.recipients.clone();
    for r in &args.recipient {
        if !names.contains(r) {
            names.push(r.clone());
        }
    }
    let recipients = crypt::recipients(&names).map_err(Report::new)?;
    if args.encrypt_all && recipients.is_empty() {
        return Err(Report::new(crypt::CryptError::NoRecipients));
    }
    Ok(crate::bundle::write::StoreOptions {
        recipients,
        recipient_names: names,
        encrypt_all: args.encrypt_all,
        split_size: args.split_size,
        signer: None,
    })
}

/// `--sign-key` or the recipe's `sign_key`, checked to stay off the store.
fn signer(
    recipe: &crate::recipe::Recipe,
    args: &BackupArgs,
    root: &Root,
) -> miette::Result<Option<crate::bundle::sign::Signer>> {
    let signer =
        crate::bundle::sign::Signer::for_backup(args.sign.sign_key.as_deref(), recipe, root)?;
    if let Some(s) = &signer {
        s.check_off_store(&args.bundle_dir).map_err(Report::new)?;
    }
    Ok(signer)
}
