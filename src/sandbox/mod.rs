//! Real parts for a sandboxed manager host: used by `imlrecover demo` and by
//! the tests. Nothing here is a stub: init scripts start and stop real
//! daemons, certificates come from `openssl`, clusters from `initdb`, storage
//! servers are real `sshd` on loopback addresses.

pub mod agents;
pub mod certs;
pub mod chroma;
pub mod el7;
pub mod influx;
pub mod initd;
pub mod manager;
pub mod releases;
