//! Writing the bundle an import found: every file through the bundle
//! writer, the dump copied as it is, the manifest marked as imported.

use super::{How, ImportError, Survey};
use crate::bundle::sign::Signer;
use crate::bundle::write::StoreOptions;
use crate::bundle::{
    BundleWriter, Committed, DatabaseRecord, Defaulted, Entry, EntryKind, Imported, ImportedDump,
    Mode, RecipeRef, UNKNOWN_IDENTIFIER,
};
use crate::host::fs::{FileKind, Root};
use crate::recipe::Recipe;
use std::path::Path;

/// The bundle: every file found through the bundle writer, the dump copied
/// as it is, the manifest marked as imported and, with a key, signed.
pub fn write(
    s: &Survey,
    recipe: &Recipe,
    bundle_dir: &Path,
    signer: Option<Signer>,
) -> Result<Committed, ImportError> {
    if let Some(why) = &s.refusal {
        return Err(ImportError::Refused(why.clone()));
    }
    let taken = s.taken();
    let created = taken.and_then(|(d, _)| d.time).unwrap_or(s.now);
    let mut w = BundleWriter::create(
        bundle_dir,
        RecipeRef {
            path: std::fs::canonicalize(&recipe.path)
                .unwrap_or_else(|_| recipe.path.clone())
                .display()
                .to_string(),
            blake3: recipe.hash.clone(),
        },
        &s.source,
        created,
    )?;
    // The key's own path, were it among the files imported (as backup refuses).
    let key_path = signer.as_ref().and_then(|k| k.host_path(Path::new("/")));
    w.set_store_options(StoreOptions {
        signer,
        ..StoreOptions::default()
    });
    let mut defaulted = Vec::new();
    // Read through the directory's own root: a symlink in it cannot lead out.
    let backup = Root::new(&s.source).map_err(|e| ImportError::Read {
        dir: s.source.clone(),
        error: std::io::Error::other(e.to_string()),
    })?;
    for f in &s.found {
        let address = f.record.address().clone();
        for file in &f.files {
            let src = s.source.join(&file.rel);
            let opened = backup.open(&format!("/{}", file.rel));
            let reader = match opened {
                Ok(Some((r, meta))) if meta.kind == FileKind::File => r,
                Ok(_) => {
                    return Err(ImportError::Refused(format!(
                        "{} is no longer a regular file; nothing was written",
                        src.display()
                    )))
                }
                Err(e) => {
                    return Err(ImportError::Read {
                        dir: src,
                        error: std::io::Error::other(e.to_string()),
                    })
                }
            };
            let (rel, hash, size) =
                w.write_file(&file.path, reader, file.sensitive)
                    .map_err(|e| match e {
                        crate::bundle::write::ReadOrWrite::Read(error) => ImportError::Read {
                            dir: src.clone(),
                            error,
                        },
                        crate::bundle::write::ReadOrWrite::Write(e) => ImportError::Write(e),
                    })?;
            if let How::Defaulted { from } = &file.how {
                defaulted.push(Defaulted {
                    path: file.path.clone(),
                    mode: Mode(file.mode),
                    owner: file.owner.clone(),
                    group: file.group.clone(),
                    from: from.to_string(),
                });
            }
            w.push_entry(Entry {
                address: address.clone(),
                path: file.path.clone(),
                kind: EntryKind::File,
                file: Some(rel),
                size: Some(size),
                mode: Some(Mode(file.mode)),
                owner: Some(file.owner.clone()),
                group: Some(file.group.clone()),
                uid: file.uid,
                gid: file.gid,
                blake3: Some(hash),
                sensitive: file.sensitive,
            });
        }
        w.push_resource(f.record.clone());
    }
    let mut unknown = Vec::new();
    let mut imported_dump = None;
    if let (Some((address, spec)), Some((d, c))) = (&s.database, taken) {
        let mut out = w.create_dump_named(d.name.clone())?;
        for p in &d.parts {
            let src = s.source.join(p);
            let copy = std::fs::File::open(&src)
                .and_then(|mut f| std::io::copy(&mut f, out.writer()).map(|_| ()));
            copy.map_err(|error| ImportError::Read { dir: src, error })?;
        }
        let (blake3, size) = out.finish()?;
        if blake3 != c.blake3 || size != c.size {
            return Err(ImportError::Refused(format!(
                "{} changed while it was imported ({} bytes read, now {size}); nothing was written",
                d.name, c.size
            )));
        }
        unknown.push("database.system_identifier".to_string());
        if c.server_version.is_none() {
            unknown.push("database.server_version".to_string());
        }
        w.push_resource(spec.record.clone());
        w.set_database(DatabaseRecord {
            address: address.clone(),
            file: d.name.clone(),
            size,
            blake3,
            sql_size: c.sql_bytes,
            system_identifier: UNKNOWN_IDENTIFIER.to_string(),
            server_version: c
                .server_version
                .clone()
                .unwrap_or_else(|| UNKNOWN_IDENTIFIER.to_string()),
            dumped_by: c.dumped_by.clone(),
            databases: spec.databases.clone(),
            fingerprint: c.fingerprint.databases.clone(),
        });
        imported_dump = Some(ImportedDump {
            name: d.name.clone(),
            parts: d.parts.clone(),
            dumped: humantime::format_rfc3339_seconds(created).to_string(),
        });
    }
    w.set_imported(Imported {
        source: s.source.display().to_string(),
        time: humantime::format_rfc3339_seconds(s.now).to_string(),
        dump: imported_dump,
        defaulted,
        lacking: s.lacking.iter().map(|l| l.address.clone()).collect(),
        unknown,
    });
    if let Some(path) = key_path.filter(|p| w.has_file(p)) {
        return Err(ImportError::Refused(format!(
            "the recipe captures the signing key {path}: it would be stored in the bundle; nothing was written"
        )));
    }
    Ok(w.commit(None)?)
}
