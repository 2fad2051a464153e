//! `verify --drill` for InfluxDB: each resource's backup is restored into a
//! throwaway `influxd` (its own temporary directory, free loopback ports,
//! stopped by its PID afterwards) and what it holds compared with the
//! counts the manifest recorded.

use super::restore::extract;
use super::server::Server;
use crate::bundle::drill::Passed;
use crate::bundle::verify::{Problem, ProblemKind};
use crate::bundle::{Bundle, ResourceRecord, MANIFEST};
use crate::sandbox::influx::Influxd;
use std::time::Instant;

/// What the InfluxDB drills found: `None` when the bundle holds no
/// InfluxDB backup; else a summary line and (measurements, points), or
/// every problem.
pub fn drill(bundle: &Bundle) -> Option<Result<(String, usize, u64), Vec<Problem>>> {
    let records: Vec<_> = bundle
        .manifest
        .resources
        .iter()
        .filter_map(|r| match r {
            ResourceRecord::Influxdb { address, record } => Some((address, record)),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return None;
    }
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut lines = Vec::new();
    let (mut measurements, mut points) = (0usize, 0u64);
    for (address, record) in records {
        let problem = |m: String| Problem {
            path: MANIFEST.to_string(),
            kind: ProblemKind::Drill,
            address: Some(address.clone()),
            message: m,
        };
        let tmp = match tempfile::Builder::new().prefix("imlrecover-influx-drill-").tempdir() {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem(format!("cannot make a temporary directory: {e}")));
                continue;
            }
        };
        let mut server = match Influxd::start(&tmp.path().join("influxd"), None) {
            Ok(s) => s,
            Err(e) => {
                problems.push(problem(format!("cannot start a throwaway influxd: {e}")));
                continue;
            }
        };
        let live = Server {
            http: server.http.clone(),
            rpc: server.rpc.clone(),
            bindir: None,
        };
        let mut restored = Vec::new();
        for (db, want) in &record.databases {
            let Some(want) = want else { continue };
            let dir = tmp.path().join("backup").join(db);
            let outcome = extract(bundle, address, db, &dir)
                .and_then(|_| live.restore(db, None, &dir))
                .and_then(|_| live.counts_settled(db, record.counted_until).map_err(|e| e.to_string()));
            match outcome {
                Ok(got) if got.short_of(want) => problems.push(problem(format!(
                    "database {db} restored into a throwaway influxd holds {got}; the manifest recorded {want}"
                ))),
                Ok(got) => {
                    measurements += got.measurements as usize;
                    points += got.points;
                    restored.push(format!("{db} ({got})"));
                }
                Err(e) => problems.push(problem(format!(
                    "the test restore of database {db} failed: {e}"
                ))),
            }
        }
        server.stop();
        lines.push(format!(
            "{address}: restored {} into a throwaway influxd {}; the counts match the manifest",
            restored.join(", "),
            record.version
        ));
    }
    if !problems.is_empty() {
        return Some(Err(problems));
    }
    Some(Ok((
        format!(
            "{} (in {})",
            lines.join("; "),
            humantime::format_duration(std::time::Duration::from_millis(
                started.elapsed().as_millis() as u64
            ))
        ),
        measurements,
        points,
    )))
}

/// The bundle's drill: the database's (`pg`) and InfluxDB's, together.
pub fn with_database(
    bundle: &Bundle,
    pg: impl FnOnce() -> Result<Passed, Vec<Problem>>,
) -> Result<Passed, Vec<Problem>> {
    let started = Instant::now();
    let influx = drill(bundle);
    let Some(influx) = influx else {
        return pg();
    };
    let pg = bundle.manifest.database.is_some().then(pg);
    match (pg, influx) {
        (None, Ok((summary, tables, rows))) => Ok(Passed {
            summary,
            tables,
            rows,
            seconds: started.elapsed().as_secs_f64(),
        }),
        (Some(Ok(mut p)), Ok((summary, _, _))) => {
            p.summary = format!("{}; {summary}", p.summary);
            p.seconds = started.elapsed().as_secs_f64();
            Ok(p)
        }
        (Some(Err(mut a)), Err(b)) => {
            a.extend(b);
            Err(a)
        }
        (Some(Err(a)), Ok(_)) => Err(a),
        (_, Err(b)) => Err(b),
    }
}
