//! Configuration from the environment (`SHOP_*`, nested keys with `__`) and an optional TOML
//! file named by `SHOP_CONFIG`. Each service deserialises its own typed struct from the same
//! sources, so a bad value fails at start-up with an error naming the key.
//!
//! Secrets are `secrecy::SecretString`: their `Debug` output is `[REDACTED]`.

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::contract::env;

/// A configuration error naming the offending key and source.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment errors name the key and where it came from; list every one of them.
        let all: Vec<String> = err
            .into_iter()
            .map(|e| {
                let key = e.path.iter().map(|p| p.to_ascii_uppercase()).collect::<Vec<_>>().join("__");
                let msg = e.kind.to_string();
                if key.is_empty() {
                    msg
                } else {
                    format!("{}{key}: {msg}", env::PREFIX)
                }
            })
            .collect();
        ConfigError(all.join("; "))
    }
}

/// The layered sources, lowest precedence first: struct defaults, the TOML file named by
/// `SHOP_CONFIG`, the plain `DATABASE_URL`, then every `SHOP_*` variable.
pub fn figment() -> Result<Figment, ConfigError> {
    let mut f = Figment::new();
    if let Ok(file) = std::env::var(env::CONFIG_FILE) {
        if !Path::new(&file).is_file() {
            return Err(ConfigError(format!("{}: file `{file}` does not exist", env::CONFIG_FILE)));
        }
        f = f.merge(Toml::file(file));
    }
    f = f.merge(Env::raw().only(&[env::DATABASE_URL_PLAIN]));
    f = f.merge(Env::prefixed(env::PREFIX).split("__"));
    Ok(f)
}

/// Loads `T` from the layered sources. Give `T` `#[serde(default)]` so that every key is
/// optional and its `Default` supplies the defaults.
pub fn load<T: DeserializeOwned>() -> Result<T, ConfigError> {
    Ok(figment()?.extract()?)
}

/// Loads `T` from the given figment (tests use this with `figment::Jail`).
pub fn load_from<T: DeserializeOwned>(f: Figment) -> Result<T, ConfigError> {
    Ok(f.extract()?)
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Hides the password of a URL for logging: `postgres://shop:***@db/catalog`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

#[cfg(test)]
// `figment::Jail` closures return `figment::Error`, which is large; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};

    #[derive(Debug, Deserialize)]
    #[serde(default)]
    struct Sample {
        http_addr: String,
        port: u16,
        database_url: SecretString,
    }

    impl Default for Sample {
        fn default() -> Self {
            Sample {
                http_addr: "127.0.0.1:0".into(),
                port: 1,
                database_url: SecretString::from("sqlite::memory:"),
            }
        }
    }

    #[test]
    fn env_overrides_defaults_and_names_bad_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SHOP_PORT", "8080");
            jail.set_env("DATABASE_URL", "postgres://u:hunter2@db/x");
            let s: Sample = load().unwrap();
            assert_eq!(s.port, 8080);
            assert_eq!(s.database_url.expose_secret(), "postgres://u:hunter2@db/x");
            assert!(!format!("{s:?}").contains("hunter2"), "secrets are redacted in Debug");

            jail.set_env("SHOP_DATABASE_URL", "postgres://shop/y");
            let s: Sample = load().unwrap();
            assert_eq!(s.database_url.expose_secret(), "postgres://shop/y", "SHOP_ key wins");

            jail.set_env("SHOP_PORT", "eighty");
            let err = load::<Sample>().unwrap_err().to_string();
            assert!(err.contains("SHOP_PORT"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn reads_toml_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("shop.toml", "port = 9999\n")?;
            jail.set_env("SHOP_CONFIG", "shop.toml");
            let s: Sample = load().unwrap();
            assert_eq!(s.port, 9999);
            jail.set_env("SHOP_CONFIG", "missing.toml");
            assert!(load::<Sample>().unwrap_err().to_string().contains("missing.toml"));
            Ok(())
        });
    }

    #[test]
    fn redacts_urls() {
        assert_eq!(redact_url("postgres://shop:pw@db:5432/catalog"), "postgres://shop:***@db:5432/catalog");
        assert_eq!(redact_url("sqlite://data/catalog.db"), "sqlite://data/catalog.db");
    }
}
