//! Build fingerprint: hashes the crate's own inputs (`src/**`, `shaders/**`, `Cargo.toml`,
//! `Cargo.lock`) into `VERIDOC_BUILD_ID` (32 hex digits), exposed as `veridoc::BUILD_ID`.
//! Result and report cache keys include it, so an engine rebuilt from other sources (other
//! check constants, another kernel) never serves its predecessor's cached results.
//!
//! Deterministic: files are visited in sorted relative-path order, each contributing its
//! path ('/'-separated), length and bytes; timestamps, the checkout's location and the
//! environment are not hashed. The hash is 128-bit FNV-1a (std only, no build dependency):
//! a fingerprint against accidental reuse, not a defence against crafted collisions.
//! Cost: one pass over ~2 MB of sources, a few ms.

use std::path::{Path, PathBuf};

const FNV_OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const FNV_PRIME: u128 = 0x0000000001000000000000000000013B;

fn fnv(h: &mut u128, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u128::from(b);
        *h = h.wrapping_mul(FNV_PRIME);
    }
}

/// Regular files under `dir`, recursively (symlinks not followed), as paths relative to
/// `root`.
fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let p = e.path();
        if t.is_dir() {
            files(root, &p, out);
        } else if t.is_file() {
            if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut list = Vec::new();
    for d in ["src", "shaders"] {
        files(&root, &root.join(d), &mut list);
        println!("cargo:rerun-if-changed={d}");
    }
    for f in ["Cargo.toml", "Cargo.lock"] {
        if root.join(f).is_file() {
            list.push(PathBuf::from(f));
        }
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let mut named: Vec<(String, PathBuf)> = list
        .into_iter()
        .map(|p| {
            let name = p
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            (name, p)
        })
        .collect();
    named.sort();
    let mut h = FNV_OFFSET;
    for (name, rel) in &named {
        let bytes = std::fs::read(root.join(rel)).unwrap_or_default();
        fnv(&mut h, name.as_bytes());
        fnv(&mut h, &[0]);
        fnv(&mut h, &(bytes.len() as u64).to_le_bytes());
        fnv(&mut h, &bytes);
    }
    println!("cargo:rustc-env=VERIDOC_BUILD_ID={h:032x}");
}
