//! InfluxDB 1.x's HTTP API, as much as imlrecover needs: `/ping`, `/query`
//! (InfluxQL, JSON answers) and `/write` (line protocol). Plain HTTP/1.0
//! over a socket: one request per connection, no client library.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one request may take (a `count(*)` of a large database is a scan).
const TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach InfluxDB's HTTP API at {addr}: {error}")]
    Connect { addr: String, error: std::io::Error },
    #[error("InfluxDB at {addr} answered {status}: {body}")]
    Status {
        addr: String,
        status: u16,
        body: String,
    },
    #[error("InfluxDB at {addr}: {message}")]
    Query { addr: String, message: String },
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One request; the status and body.
fn request(addr: &str, method: &str, target: &str, body: &[u8]) -> Result<(u16, String), HttpError> {
    request_head(addr, method, target, body).map(|(s, _, b)| (s, b))
}

/// One request; the status, the headers and the body.
fn request_head(
    addr: &str,
    method: &str,
    target: &str,
    body: &[u8],
) -> Result<(u16, String, String), HttpError> {
    let connect = |error| HttpError::Connect {
        addr: addr.to_string(),
        error,
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(connect)?
        .next()
        .ok_or_else(|| connect(std::io::Error::other("no address")))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(connect)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(connect)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(connect)?;
    let head = format!(
        "{method} {target} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(connect)?;
    s.write_all(body).map_err(connect)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(connect)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Query {
            addr: addr.to_string(),
            message: format!("not an HTTP answer: {}", head.lines().next().unwrap_or("")),
        })?;
    Ok((status, head.to_string(), body.to_string()))
}

/// The `X-Influxdb-Version` of `/ping`.
pub fn version(addr: &str) -> Option<String> {
    let (_, head, _) = request_head(addr, "GET", "/ping", b"").ok()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-influxdb-version")
            .then(|| v.trim().to_string())
    })
}

/// Whether the server answers `/ping`.
pub fn ping(addr: &str) -> Result<(), HttpError> {
    match request(addr, "GET", "/ping", b"")? {
        (204 | 200, _) => Ok(()),
        (status, body) => Err(HttpError::Status {
            addr: addr.into(),
            status,
            body,
        }),
    }
}

/// Runs InfluxQL (POST, so that it may change things); the first
/// statement's series (`results[0].series`), empty when it has none.
pub fn query(addr: &str, db: Option<&str>, q: &str) -> Result<Vec<Value>, HttpError> {
    let mut body = format!("q={}", encode(q));
    if let Some(db) = db {
        body.push_str(&format!("&db={}", encode(db)));
    }
    let (status, text) = request(addr, "POST", "/query", body.as_bytes())?;
    let v: Value = serde_json::from_str(&text).map_err(|_| HttpError::Status {
        addr: addr.into(),
        status,
        body: text.chars().take(300).collect(),
    })?;
    let err = |m: &str| HttpError::Query {
        addr: addr.into(),
        message: format!("`{q}`: {m}"),
    };
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(err(e));
    }
    let first = v.get("results").and_then(|r| r.get(0));
    if let Some(e) = first.and_then(|r| r.get("error")).and_then(Value::as_str) {
        return Err(err(e));
    }
    if status != 200 {
        return Err(HttpError::Status {
            addr: addr.into(),
            status,
            body: text.chars().take(300).collect(),
        });
    }
    Ok(first
        .and_then(|r| r.get("series"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Writes line protocol into `db` (nanosecond timestamps).
pub fn write(addr: &str, db: &str, lines: &str) -> Result<(), HttpError> {
    let target = format!("/write?db={}&precision=ns", encode(db));
    match request(addr, "POST", &target, lines.as_bytes())? {
        (204, _) => Ok(()),
        (status, body) => Err(HttpError::Status {
            addr: addr.into(),
            status,
            body,
        }),
    }
}

/// An InfluxQL identifier, double-quoted.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The values of column `col` of every series' rows.
pub fn column<'v>(series: &'v [Value], col: &str) -> Vec<&'v Value> {
    let mut out = Vec::new();
    for s in series {
        let Some(i) = s
            .get("columns")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().position(|c| c.as_str() == Some(col)))
        else {
            continue;
        };
        for row in s.get("values").and_then(Value::as_array).into_iter().flatten() {
            if let Some(v) = row.get(i) {
                out.push(v);
            }
        }
    }
    out
}
