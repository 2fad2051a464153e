//! `imlrecover import`: a runbook backup directory (`$HOME/backup`, made by
//! the runbook's `cp` commands and its cron `pg_dumpall --clean | gzip`)
//! turned into an ordinary bundle. [`survey`] matches every recipe resource
//! with the file the runbook put there ([`layout`]) and picks the dump
//! ([`dump`]) without writing anything; [`write`] then hands what it found
//! to the bundle writer.

pub mod dump;
pub mod layout;
pub mod report;
mod write;

pub use write::write;

use crate::bundle::{normalize, ResourceRecord, WriteError};
use crate::host::fs::{FileKind, Root};
use crate::recipe::{Address, Recipe, Spec};
use crate::resources::database::DatabaseSpec;
use layout::{Candidate, Rule};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    #[error("cannot read the runbook backup {}: {error}", dir.display())]
    #[diagnostic(
        code(imlrecover::import_read),
        help("name the directory the runbook's commands wrote ($HOME/backup, or a copy of it); nothing was written")
    )]
    Read { dir: PathBuf, error: std::io::Error },
    #[error("{0}")]
    #[diagnostic(
        code(imlrecover::import_refused),
        help("the report above says what was found; nothing was written")
    )]
    Refused(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Write(#[from] WriteError),
}

/// How a file's mode and owner were decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// As `cp -a` / `cp -p` kept them.
    Kept(&'static str),
    /// Not a runbook location: as the file is in the directory.
    AsFound,
    /// A plain `cp` kept no owner: from the recipe, or a default.
    Defaulted { from: &'static str },
}

/// One file of the directory and what it becomes in the bundle.
#[derive(Debug, Clone)]
pub struct FoundFile {
    pub path: String,
    pub rel: String,
    pub rule: Option<&'static Rule>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub how: How,
    pub sensitive: bool,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub record: ResourceRecord,
    pub files: Vec<FoundFile>,
}

/// A recipe resource the directory has no copy of.
#[derive(Debug, Clone)]
pub struct Lack {
    pub address: Address,
    pub optional: bool,
    /// The host paths it needs and did not find.
    pub paths: Vec<String>,
    /// Where they were looked for, relative to the directory.
    pub looked: Vec<String>,
    pub note: String,
    /// Files it names that were found, but are not imported without the rest.
    pub unused: Vec<String>,
}

/// A file of the directory the recipe does not name.
#[derive(Debug, Clone)]
pub struct Extra {
    pub rel: String,
    /// The host path the runbook copied it from, when it is a runbook copy.
    pub origin: Option<String>,
}

#[derive(Debug, Clone)]
pub enum DumpState {
    Taken(dump::Checked),
    Refused(String),
    /// Older than the one taken: not read.
    NotRead,
}

#[derive(Debug, Clone)]
pub struct DumpStatus {
    pub dump: dump::Dump,
    pub state: DumpState,
}

/// Everything `import` found, before anything is written.
#[derive(Debug)]
pub struct Survey {
    pub source: PathBuf,
    pub now: SystemTime,
    pub found: Vec<Found>,
    pub lacking: Vec<Lack>,
    pub extras: Vec<Extra>,
    pub dumps: Vec<DumpStatus>,
    pub database: Option<(Address, DatabaseSpec)>,
    /// Why no bundle can be made; `None`: it can.
    pub refusal: Option<String>,
}

impl Survey {
    pub fn taken(&self) -> Option<(&dump::Dump, &dump::Checked)> {
        self.dumps.iter().find_map(|d| match &d.state {
            DumpState::Taken(c) => Some((&d.dump, c)),
            _ => None,
        })
    }
}

/// Matches `recipe` against the runbook backup `dir` and picks the dump
/// (`want`, or the newest complete one). Reads, never writes.
pub fn survey(
    dir: &Path,
    recipe: &Recipe,
    want: Option<&str>,
    now: SystemTime,
) -> Result<Survey, ImportError> {
    let read_err = |error| ImportError::Read {
        dir: dir.to_path_buf(),
        error,
    };
    let source = std::fs::canonicalize(dir).map_err(read_err)?;
    if !source.is_dir() {
        return Err(read_err(std::io::Error::other("it is not a directory")));
    }
    let backup = Root::new(&source).map_err(|e| read_err(std::io::Error::other(e.to_string())))?;
    let mut s = Survey {
        source: source.clone(),
        now,
        found: Vec::new(),
        lacking: Vec::new(),
        extras: Vec::new(),
        dumps: Vec::new(),
        database: None,
        refusal: None,
    };
    let mut databases = Vec::new();
    for r in &recipe.resources {
        let a = &r.address;
        match &r.spec {
            Spec::File(f) => {
                let path = normalize(&f.path);
                let want = Want {
                    mode: f.mode,
                    owner: f.owner.as_deref(),
                    group: f.group.as_deref(),
                    sensitive: f.sensitive,
                };
                match find_path(&backup, &path, &want) {
                    Ok(file) => s.found.push(Found {
                        record: ResourceRecord::File {
                            address: a.clone(),
                            path,
                        },
                        files: vec![file],
                    }),
                    Err(looked) => s.lacking.push(lack(a, f.optional, vec![path], looked)),
                }
            }
            Spec::Files(f) => {
                let want = Want {
                    mode: None,
                    owner: None,
                    group: None,
                    sensitive: f.sensitive,
                };
                let files: Vec<FoundFile> = layout::members_of_glob(&backup, &f.glob)
                    .into_iter()
                    .filter_map(|c| found_file(&backup, c, &want))
                    .collect();
                if files.is_empty() {
                    let mut looked: Vec<String> = layout::rules_for_glob(&f.glob)
                        .iter()
                        .map(|r| format!("{}/{}", r.dest, f.glob.rsplit('/').next().unwrap_or("")))
                        .collect();
                    let mirror = f.glob.trim_start_matches('/').to_string();
                    if !looked.contains(&mirror) {
                        looked.push(mirror);
                    }
                    s.lacking
                        .push(lack(a, f.optional, vec![f.glob.clone()], looked));
                } else {
                    s.found.push(Found {
                        record: ResourceRecord::Files {
                            address: a.clone(),
                            glob: f.glob.clone(),
                            members: files.iter().map(|m| m.path.clone()).collect(),
                        },
                        files,
                    });
                }
            }
            Spec::Cert(c) => {
                let mut parts = vec![(normalize(&c.cert), false), (normalize(&c.key), true)];
                if let Some(serial) = &c.serial {
                    parts.push((normalize(serial), false));
                }
                let mut files = Vec::new();
                let mut missing = Vec::new();
                let mut looked = Vec::new();
                for (path, key) in &parts {
                    let want = Want {
                        mode: None,
                        owner: None,
                        group: None,
                        sensitive: *key,
                    };
                    match find_path(&backup, path, &want) {
                        Ok(f) => files.push(f),
                        Err(l) => {
                            missing.push(path.clone());
                            looked.extend(l);
                        }
                    }
                }
                if missing.is_empty() {
                    s.found.push(Found {
                        record: ResourceRecord::Cert {
                            address: a.clone(),
                            cert: parts[0].0.clone(),
                            key: parts[1].0.clone(),
                            serial: parts.get(2).map(|p| p.0.clone()),
                            ca: c.ca.clone(),
                        },
                        files,
                    });
                } else {
                    let mut l = lack(a, false, missing, looked);
                    l.unused = files.into_iter().map(|f| f.rel).collect();
                    s.lacking.push(l);
                }
            }
            Spec::Database(d) => databases.push((a.clone(), d.clone())),
            // A runbook backup holds no InfluxDB backup.
            Spec::Influxdb(i) => s.lacking.push(lack(a, i.optional, Vec::new(), Vec::new())),
            Spec::Absent(_) | Spec::Service(_) | Spec::Exec(_) | Spec::RemoteService(_) => {}
        }
    }
    if databases.len() > 1 {
        s.refusal = Some(format!(
            "the recipe declares {} database blocks, but a bundle holds one cluster dump",
            databases.len()
        ));
    }
    s.database = databases.into_iter().next();

    let found = dump::find(&source).map_err(read_err)?;
    pick_dump(&mut s, &source, found, want);

    let used: BTreeSet<&str> = s
        .found
        .iter()
        .flat_map(|f| f.files.iter().map(|x| x.rel.as_str()))
        .chain(
            s.lacking
                .iter()
                .flat_map(|l| l.unused.iter().map(String::as_str)),
        )
        .chain(
            s.dumps
                .iter()
                .flat_map(|d| d.dump.parts.iter().map(String::as_str)),
        )
        .collect();
    let mut all = Vec::new();
    walk(&source, "", &mut all).map_err(read_err)?;
    s.extras = all
        .into_iter()
        .filter(|rel| !used.contains(rel.as_str()))
        .map(|rel| Extra {
            origin: layout::origin_of(&rel),
            rel,
        })
        .collect();
    if s.refusal.is_none() && s.found.is_empty() && s.taken().is_none() {
        s.refusal = Some(format!(
            "{} holds nothing the recipe names: is it the runbook's $HOME/backup?",
            source.display()
        ));
    }
    Ok(s)
}

struct Want<'a> {
    mode: Option<u32>,
    owner: Option<&'a str>,
    group: Option<&'a str>,
    sensitive: bool,
}

/// The first place holding a regular file, or every place looked at.
fn find_path(backup: &Root, path: &str, want: &Want) -> Result<FoundFile, Vec<String>> {
    let places = layout::places_for_path(path);
    let looked = places.iter().map(|c| c.rel.clone()).collect();
    places
        .into_iter()
        .find_map(|c| found_file(backup, c, want))
        .ok_or(looked)
}

fn found_file(backup: &Root, c: Candidate, want: &Want) -> Option<FoundFile> {
    let meta = backup.metadata(&format!("/{}", c.rel)).ok().flatten()?;
    if meta.kind != FileKind::File {
        return None;
    }
    let kept = |how| FoundFile {
        path: c.path.clone(),
        rel: c.rel.clone(),
        rule: c.rule,
        mode: meta.mode,
        owner: meta.owner.clone().unwrap_or_else(|| meta.uid.to_string()),
        group: meta.group.clone().unwrap_or_else(|| meta.gid.to_string()),
        uid: Some(meta.uid),
        gid: Some(meta.gid),
        how,
        sensitive: want.sensitive,
    };
    Some(match c.rule {
        Some(r) if r.keeps_owner() => kept(How::Kept(r.command)),
        None => kept(How::AsFound),
        Some(_) => {
            // Plain cp: the copy is root's, with the umask's mode.
            let owner = want.owner.unwrap_or("root").to_string();
            let group = want.group.unwrap_or("root").to_string();
            let from = if want.mode.is_some() || want.owner.is_some() || want.group.is_some() {
                "the recipe"
            } else {
                "default"
            };
            FoundFile {
                mode: want
                    .mode
                    .unwrap_or(if want.sensitive { 0o600 } else { 0o644 }),
                uid: (owner == "root").then_some(0),
                gid: (group == "root").then_some(0),
                owner,
                group,
                how: How::Defaulted { from },
                ..kept(How::AsFound)
            }
        }
    })
}

fn lack(a: &Address, optional: bool, paths: Vec<String>, looked: Vec<String>) -> Lack {
    let notes: Vec<&str> = paths
        .iter()
        .flat_map(|p| {
            layout::RULES.iter().filter(move |r| {
                glob::Pattern::new(r.source).is_ok_and(|g| g.matches(p)) || r.source == p
            })
        })
        .filter_map(|r| r.note)
        .collect();
    let runbook_saves = paths.iter().any(|p| {
        layout::places_for_path(p).iter().any(|c| c.rule.is_some())
            || !layout::rules_for_glob(p).is_empty()
    });
    let note = match notes.first() {
        Some(n) => n.to_string(),
        None if !runbook_saves => "the runbook does not save it".to_string(),
        None => "the runbook's copy is not in the directory".to_string(),
    };
    Lack {
        address: a.clone(),
        optional,
        paths,
        looked,
        note,
        unused: Vec::new(),
    }
}

/// `--dump NAME`, else the newest dump that reads whole and holds the
/// recipe's databases; older ones are not read.
fn pick_dump(s: &mut Survey, dir: &Path, found: Vec<dump::Dump>, want: Option<&str>) {
    let required: Vec<String> = s
        .database
        .as_ref()
        .map(|(_, d)| d.databases.clone())
        .unwrap_or_default();
    let check = |d: &dump::Dump| -> DumpState {
        match dump::check(dir, d) {
            Err(why) => DumpState::Refused(why),
            Ok(c) => {
                let missing: Vec<&str> = required
                    .iter()
                    .filter(|db| !c.fingerprint.databases.contains_key(*db))
                    .map(String::as_str)
                    .collect();
                if missing.is_empty() {
                    DumpState::Taken(c)
                } else {
                    DumpState::Refused(format!(
                        "it holds no database {} (it has: {})",
                        missing.join(", "),
                        c.fingerprint
                            .databases
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    };
    if let Some(name) = want {
        let hit = found
            .iter()
            .position(|d| d.name == name || d.parts.iter().any(|p| p == name));
        for (i, d) in found.into_iter().enumerate() {
            let state = if Some(i) == hit {
                check(&d)
            } else {
                DumpState::NotRead
            };
            s.dumps.push(DumpStatus { dump: d, state });
        }
        match hit.map(|i| &s.dumps[i].state) {
            None => {
                s.refusal = Some(format!(
                    "--dump {name}: {} has no such dump",
                    s.source.display()
                ))
            }
            Some(DumpState::Refused(why)) => {
                s.refusal = Some(format!("--dump {name} is refused: {why}"))
            }
            _ => {}
        }
        return;
    }
    if s.database.is_none() {
        s.dumps = found
            .into_iter()
            .map(|dump| DumpStatus {
                dump,
                state: DumpState::NotRead,
            })
            .collect();
        return;
    }
    let mut taken = false;
    for d in found {
        let state = if taken { DumpState::NotRead } else { check(&d) };
        taken |= matches!(state, DumpState::Taken(_));
        s.dumps.push(DumpStatus { dump: d, state });
    }
    if !taken && s.refusal.is_none() {
        s.refusal =
            Some(if s.dumps.is_empty() {
                format!(
                "{} holds no pgbackup-YYYY-MM-DD-HH:MM:SS.sql.gz dump, and the recipe declares {}",
                s.source.display(),
                s.database.as_ref().map(|d| d.0.to_string()).unwrap_or_default()
            )
            } else {
                format!(
                    "none of the {} dumps in {} is complete",
                    s.dumps.len(),
                    s.source.display()
                )
            });
    }
}

/// Regular files under `dir`, relative, sorted (symlinks not followed).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(prefix))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let t = e.file_type()?;
        if t.is_dir() {
            walk(dir, &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}
