//! Golden tests: the objects rendered for a minimal and a full spec, byte for byte, and the CRD
//! against its checked-in copy. `UPDATE_GOLDEN=1 cargo test -p shop-operator --test golden`
//! rewrites the golden files.

use std::path::{Path, PathBuf};

use shop_operator::builders::render_yaml;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(name: &str) {
    let input = std::fs::read_to_string(dir().join(format!("{name}.input.yaml"))).unwrap();
    let sp = shop_operator::load_sample(&input).unwrap();
    let rendered = render_yaml(&sp);
    let path = dir().join(format!("{name}.yaml"));
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != rendered {
        let first = expected.lines().zip(rendered.lines()).position(|(a, b)| a != b);
        panic!(
            "{} differs from what the builders render (first differing line: {:?}).\n\
             Review the change and regenerate with: UPDATE_GOLDEN=1 cargo test -p shop-operator --test golden",
            path.display(),
            first.map(|i| i + 1)
        );
    }
}

#[test]
fn minimal_spec_renders_as_golden() {
    check("minimal");
}

#[test]
fn full_spec_renders_as_golden() {
    check("full");
}

/// CloudNativePG with backups and a recovery, Kafka over SASL/TLS, autoscaling, extra env over
/// the Stripe Secret, a disabled service, custom NetworkPolicy peers, `deletionPolicy: Retain`.
#[test]
fn cloudnativepg_spec_renders_as_golden() {
    check("cloudnativepg");
}

/// Everything embedded with its own images and storage class, TLS at the Ingress, no
/// NetworkPolicies, `deletionPolicy: Retain`.
#[test]
fn embedded_spec_renders_as_golden() {
    check("embedded");
}

#[test]
fn checked_in_crd_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/shopplatforms.platform.shop.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == shop_operator::crd_yaml(),
        "{} is out of date; run: cargo run -p shop-operator --bin crdgen > crds/shopplatforms.platform.shop.yaml",
        path.display()
    );
}

#[test]
fn samples_parse_and_render() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples");
    let mut n = 0;
    for entry in std::fs::read_dir(samples).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let sp = shop_operator::load_sample(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(render_yaml(&sp).contains("kind: Deployment"), "{}", path.display());
        n += 1;
    }
    assert!(n >= 2);
}
