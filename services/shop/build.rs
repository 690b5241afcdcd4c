//! Build metadata for `GET /info`: the git revision and the build time, compiled into the
//! `shop` binary (a leaf crate, so a new commit rebuilds only the binary) and handed to
//! `kit::info` at start. Both can be given from outside (`SHOP_GIT_REVISION`,
//! `SOURCE_DATE_EPOCH`, e.g. by an image build without the `.git` directory); otherwise git is
//! asked, and "unknown" is used when it cannot answer.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SHOP_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // At run time, not `env!`: a compiled build script is shared by checkouts that share a
    // target directory.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../..");
    for f in [".git/HEAD", ".git/refs/heads"] {
        let p = root.join(f);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    let revision = std::env::var("SHOP_GIT_REVISION").ok().filter(|s| !s.is_empty()).or_else(|| {
        let out =
            Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(&root).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!("cargo:rustc-env=SHOP_GIT_REVISION={}", revision.unwrap_or_else(|| "unknown".into()));
    let epoch =
        std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=SHOP_BUILD_EPOCH={epoch}");
}
