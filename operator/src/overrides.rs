//! Connect overrides: the operator reaches `host:port` at another address. For an operator that
//! runs where the cluster's Service names do not resolve (on a developer's machine against a
//! cluster through port-forwards, or in the control-plane tests, where nothing resolves
//! `*.svc`): `--connect-override shop-postgres.dev.svc:5432=127.0.0.1:15432`. Host names are
//! kept for TLS verification; only the address connected to changes.

use std::collections::BTreeMap;

/// `host:port` → `addr:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOverrides(BTreeMap<String, String>);

impl ConnectOverrides {
    /// Parses `from=to[,from=to…]` where both sides are `host:port`.
    pub fn parse(spec: &str) -> Result<ConnectOverrides, String> {
        let mut map = BTreeMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (from, to) = entry
                .split_once('=')
                .ok_or_else(|| format!("connect override `{entry}`: expected host:port=addr:port"))?;
            for side in [from, to] {
                let ok =
                    side.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok {
                    return Err(format!("connect override `{entry}`: `{side}` is not host:port"));
                }
            }
            map.insert(from.trim().to_ascii_lowercase(), to.trim().to_string());
        }
        Ok(ConnectOverrides(map))
    }

    /// The address to connect to for `addr` (`host:port`): its override, or itself.
    pub fn resolve<'a>(&'a self, addr: &'a str) -> &'a str {
        self.0.get(&addr.to_ascii_lowercase()).map(String::as_str).unwrap_or(addr)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        let o =
            ConnectOverrides::parse("db.ns.svc:5432=127.0.0.1:15432, k.ns.svc:9092=localhost:19092").unwrap();
        assert_eq!(o.resolve("db.ns.svc:5432"), "127.0.0.1:15432");
        assert_eq!(o.resolve("DB.ns.svc:5432"), "127.0.0.1:15432");
        assert_eq!(o.resolve("k.ns.svc:9092"), "localhost:19092");
        assert_eq!(o.resolve("other:1"), "other:1");
        assert!(ConnectOverrides::parse("").unwrap().is_empty());
        for bad in ["x", "a:1=b", "a=b:2", "a:x=b:2"] {
            assert!(ConnectOverrides::parse(bad).is_err(), "{bad}");
        }
    }
}
