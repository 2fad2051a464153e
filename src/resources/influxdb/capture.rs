//! Capturing InfluxDB: `influxd backup -portable` of each database into a
//! work directory, every file it wrote then put into the bundle (hashed,
//! encrypted and split as the bundle's options say), and the counts of
//! what each database held recorded in the manifest.

use super::server::Server;
use super::{entry_path, InfluxError, InfluxRecord, InfluxdbSpec};
use crate::bundle::write::ReadOrWrite;
use crate::bundle::{Entry, EntryKind, ResourceRecord};
use crate::recipe::Address;
use crate::resources::{CaptureCx, CaptureError, Captured};
use std::collections::BTreeMap;

pub(super) fn capture(
    cx: &mut CaptureCx,
    address: &Address,
    spec: &InfluxdbSpec,
) -> Result<Captured, CaptureError> {
    let server = Server::of(spec);
    let fail = |m: String, help: &str| -> CaptureError {
        InfluxError::new(address, m, format!("{help}; no bundle was written")).into()
    };
    server.reachable().map_err(|m| {
        fail(
            m,
            &format!(
                "is the InfluxDB service ({}) running, and do `http`/`rpc` in the recipe name its addresses?",
                spec.service
            ),
        )
    })?;
    let live = server
        .databases()
        .map_err(|e| fail(e.to_string(), "check InfluxDB's log"))?;
    // Counted up to now: points written while the backup runs are in it
    // but not counted, so a restore must hold at least these.
    let until = now_ns();
    let work = tempfile::Builder::new()
        .prefix(".influxdb-")
        .tempdir_in(cx.bundle.tmp_path())
        .map_err(|e| fail(format!("cannot make a work directory: {e}"), "check the bundle directory"))?;
    let mut record = InfluxRecord {
        version: super::server::version(&server),
        counted_until: until,
        databases: BTreeMap::new(),
    };
    let mut captured = Captured::default();
    for db in &spec.databases {
        if !live.contains(db) {
            if spec.optional {
                let e = Entry::absent(address.clone(), entry_path(address, db, None), false);
                captured.add(&e);
                cx.bundle.push_entry(e);
                record.databases.insert(db.clone(), None);
                continue;
            }
            return Err(fail(
                format!(
                    "InfluxDB has no database {db} (it has: {})",
                    if live.is_empty() { "none".to_string() } else { live.join(", ") }
                ),
                "a bundle must bring back the databases the recipe names; is this the manager's InfluxDB? Mark the resource `optional = true` if the host may lack one",
            ));
        }
        let counts = server
            .counts(db, until)
            .map_err(|e| fail(e.to_string(), "check InfluxDB's log"))?;
        let dir = work.path().join(db);
        server
            .backup(db, &dir)
            .map_err(|m| fail(m, "check InfluxDB's log and the disk"))?;
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| fail(format!("cannot read {}: {e}", dir.display()), "check the disk"))?
            .filter_map(|d| d.ok())
            .filter(|d| d.file_type().is_ok_and(|t| t.is_file()))
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let path = entry_path(address, db, Some(&name));
            let src = dir.join(&name);
            let file = std::fs::File::open(&src)
                .map_err(|e| fail(format!("cannot read {}: {e}", src.display()), "check the disk"))?;
            let (rel, hash, size) = cx.bundle.write_file(&path, file, false).map_err(|e| match e {
                ReadOrWrite::Read(e) => fail(format!("cannot read {}: {e}", src.display()), "check the disk"),
                ReadOrWrite::Write(w) => CaptureError::Write(w),
            })?;
            let e = Entry {
                address: address.clone(),
                path,
                kind: EntryKind::File,
                file: Some(rel),
                size: Some(size),
                mode: None,
                owner: None,
                group: None,
                uid: None,
                gid: None,
                blake3: Some(hash),
                sensitive: false,
            };
            captured.add(&e);
            cx.bundle.push_entry(e);
        }
        record.databases.insert(db.clone(), Some(counts));
    }
    drop(work);
    cx.bundle.push_resource(ResourceRecord::Influxdb {
        address: address.clone(),
        record,
    });
    Ok(captured)
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
