//! Bounded-time fuzzing of what reads untrusted input: the recipe loader,
//! the manifest reader and the dump scanner. A fixed seed and case count
//! keep it deterministic and quick (it runs in .ci/run with the rest of
//! `cargo test`); every input must give a result or an error, never a panic.

use imlrecover::host::postgres::DumpScanner;
use imlrecover::recipe::{load_str, VarInput};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Interesting bytes and fragments for these formats.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "\n",
    "=",
    "${",
    "%{",
    "var.",
    "1/0",
    "-",
    "*",
    "..",
    "/",
    "\u{feff}",
    "\u{1b}",
    "\0",
    "9223372036854775807",
    "1e308",
    "COPY ",
    " FROM stdin;",
    "\\.",
    "\\connect ",
    "\\! ",
    "`",
    "--",
    "'",
    "$$",
    "null",
    "true",
    "file \"x\" {",
    "files",
    "glob",
    "depends_on = [",
    "é",
    "\r",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(4) {
            0 => {
                let p = PIECES[rng.below(PIECES.len())].as_bytes();
                v.splice(at..at, p.iter().copied());
            }
            1 if !v.is_empty() => {
                let end = (at + rng.below(16)).min(v.len());
                v.drain(at.min(v.len())..end);
            }
            2 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = rng.next() as u8;
            }
            _ => {
                let from = rng.below(v.len() + 1);
                let end = (from + rng.below(32)).min(v.len());
                let chunk: Vec<u8> = v[from..end].to_vec();
                v.splice(at..at, chunk);
            }
        }
    }
    v
}

const CASES: usize = 400;

#[test]
fn the_recipe_loader_never_panics() {
    let bases = [
        std::fs::read_to_string("plans/iml-manager.hcl").unwrap(),
        std::fs::read_to_string("fixtures/backup/el6.hcl").unwrap(),
        "variable \"n\" {\n  default = 3\n}\nfile \"a\" {\n  path = \"/etc/${var.n * 2}\"\n  mode = 420 / var.n\n}\n".to_string(),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for base in &bases {
        for case in 0..CASES {
            let input = mutate(&mut rng, base.as_bytes());
            let text = String::from_utf8_lossy(&input).into_owned();
            let result = std::panic::catch_unwind(|| {
                let _ = load_str("fuzz.hcl", text.clone(), &VarInput::default());
            });
            assert!(
                result.is_ok(),
                "case {case}: the loader panicked on:\n{text}"
            );
        }
    }
}

#[test]
fn the_manifest_and_dump_readers_never_panic() {
    let manifest = include_str!("../docs/bundle.md");
    let json_start = manifest.find("{\n").unwrap_or(0);
    let json = &manifest[json_start..];
    let dump = "--\n-- PostgreSQL database cluster dump\n--\n\\restrict abc\nSET client_encoding = 'UTF8';\n\
                \\connect chroma\nCOPY public.t (a, b) FROM stdin;\n1\tx\\ty\n2\t\\N\n\\.\n\
                \\unrestrict abc\n\n--\n-- PostgreSQL database cluster dump complete\n--\n\n";
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for case in 0..CASES * 2 {
        let m = mutate(&mut rng, json.as_bytes());
        let r = std::panic::catch_unwind(|| {
            let _ = serde_json::from_slice::<imlrecover::bundle::Manifest>(&m);
        });
        assert!(r.is_ok(), "case {case}: the manifest reader panicked");
        let d = mutate(&mut rng, dump.as_bytes());
        let chunk = 1 + rng.below(64);
        let r = std::panic::catch_unwind(|| {
            let mut s = DumpScanner::new();
            for c in d.chunks(chunk) {
                s.feed(c);
                let _ = s.hostile_content();
            }
            let _ = s.finish();
        });
        assert!(
            r.is_ok(),
            "case {case}: the dump scanner panicked on {:?}",
            String::from_utf8_lossy(&d)
        );
    }
}
