//! SASL mechanisms of the Kafka admin client: `PLAIN` (RFC 4616) and `SCRAM-SHA-256` /
//! `SCRAM-SHA-512` (RFC 5802, RFC 7677; no channel binding, as Kafka). The messages travel in
//! `SaslAuthenticate` requests after a `SaslHandshake` (KIP-152).
//!
//! Passwords are used as given (no SASLprep normalisation): identical for ASCII passwords.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// A SASL mechanism the client can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's IANA name, as sent in `SaslHandshake`.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// From the name (case-insensitive), e.g. `SCRAM-SHA-512`.
    pub fn parse(name: &str) -> Result<SaslMechanism, String> {
        [SaslMechanism::Plain, SaslMechanism::ScramSha256, SaslMechanism::ScramSha512]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| format!("unknown SASL mechanism `{name}` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"))
    }
}

/// User name and password for SASL.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslConfig {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// The single `PLAIN` message: `authzid NUL authcid NUL password` (no authzid).
pub fn plain_message(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut mac =
                <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramHash::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramHash::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with HMAC of this hash, one block.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut u = self.hmac(password, &[salt, &1u32.to_be_bytes()]);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &[&u]);
            out.iter_mut().zip(&u).for_each(|(o, b)| *o ^= b);
        }
        out
    }
}

/// Fewer iterations than this are refused (Kafka's own minimum for SCRAM credentials).
pub const MIN_ITERATIONS: u32 = 4096;

/// The client side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramClient {
    hash: ScramHash,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// The server signature the server-final message must carry (after [`Self::client_final`]).
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// A new exchange with a random nonce; `mechanism` must be a SCRAM one.
    pub fn new(mechanism: SaslMechanism, username: &str, password: &str) -> Result<ScramClient, String> {
        use rand::RngCore;
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        Self::with_nonce(mechanism, username, password, &B64.encode(raw))
    }

    fn with_nonce(
        mechanism: SaslMechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Result<ScramClient, String> {
        let hash = match mechanism {
            SaslMechanism::ScramSha256 => ScramHash::Sha256,
            SaslMechanism::ScramSha512 => ScramHash::Sha512,
            SaslMechanism::Plain => return Err("PLAIN is not a SCRAM mechanism".into()),
        };
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Ok(ScramClient {
            hash,
            password: password.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce: nonce.to_string(),
            expected_server_signature: None,
        })
    }

    /// `client-first-message`: GS2 header `n,,` (no channel binding, no authzid) and the bare part.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers the `server-first-message` with the `client-final-message` (with the proof).
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| "server-first-message is not UTF-8".to_string())?;
        let attr = |key: &str| {
            server_first.split(',').find_map(|a| a.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        if let Some(e) = attr("e") {
            return Err(format!("the server refused: {e}"));
        }
        if server_first.starts_with("m=") {
            return Err("the server requires an unsupported SCRAM extension".into());
        }
        let nonce = attr("r").ok_or("server-first-message without nonce")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err("the server's nonce does not extend the client's".into());
        }
        let salt = B64
            .decode(attr("s").ok_or("server-first-message without salt")?)
            .map_err(|_| "the server's salt is not base64".to_string())?;
        let iterations: u32 = attr("i")
            .ok_or("server-first-message without iteration count")?
            .parse()
            .map_err(|_| "the server's iteration count is not a number".to_string())?;
        if iterations < MIN_ITERATIONS {
            return Err(format!("the server asks for {iterations} iterations, fewer than {MIN_ITERATIONS}"));
        }
        let h = self.hash;
        let salted = h.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, &[b"Client Key"]);
        let stored_key = h.hash(&client_key);
        // `biws` = base64("n,,"): the GS2 header, no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = h.hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = h.hmac(&salted, &[b"Server Key"]);
        self.expected_server_signature = Some(h.hmac(&server_key, &[auth_message.as_bytes()]));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the `server-final-message`: the server proves it knows the password too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let text =
            std::str::from_utf8(server_final).map_err(|_| "server-final-message is not UTF-8".to_string())?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let expected = self.expected_server_signature.as_ref().ok_or("server-final before client-final")?;
        let given = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or("server-final-message without verifier")?;
        // Not secret: a comparison in variable time is fine for a value the server sent.
        if &given != expected {
            return Err("the server's signature is wrong (it does not know the password)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    /// RFC 7677, section 3: the SCRAM-SHA-256 example exchange.
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let mut c = ScramClient::with_nonce(SaslMechanism::ScramSha256, "user", "pencil", NONCE).unwrap();
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = c.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(c.verify_server_final(b"v=AAAA").is_err());
        assert!(c.verify_server_final(b"e=invalid-proof").unwrap_err().contains("invalid-proof"));
    }

    /// The same exchange with SHA-512; the expected values were computed independently (Python's
    /// `hashlib.pbkdf2_hmac` and `hmac`).
    #[test]
    fn scram_sha_512_matches_an_independent_computation() {
        let mut c = ScramClient::with_nonce(SaslMechanism::ScramSha512, "user", "pencil", NONCE).unwrap();
        let last = c.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ=="
        );
        c.verify_server_final(
            b"v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==",
        )
        .unwrap();
    }

    #[test]
    fn a_dishonest_or_weak_server_is_refused() {
        let mut c = ScramClient::with_nonce(SaslMechanism::ScramSha256, "user", "pencil", NONCE).unwrap();
        // A nonce that does not extend ours.
        assert!(c.client_final(b"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").is_err());
        // Too few iterations.
        let weak = "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1";
        assert!(c.client_final(weak.as_bytes()).unwrap_err().contains("iterations"));
        assert!(c.client_final(b"e=unknown-user").unwrap_err().contains("unknown-user"));
        // The signature check needs the client-final first.
        let fresh = ScramClient::with_nonce(SaslMechanism::ScramSha256, "user", "pencil", NONCE).unwrap();
        assert!(fresh.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
    }

    #[test]
    fn names_and_messages() {
        assert_eq!(SaslMechanism::parse("scram-sha-512").unwrap(), SaslMechanism::ScramSha512);
        assert_eq!(SaslMechanism::parse("PLAIN").unwrap().name(), "PLAIN");
        assert!(SaslMechanism::parse("GSSAPI").is_err());
        assert_eq!(plain_message("u", "p"), b"\0u\0p");
        let c = ScramClient::with_nonce(SaslMechanism::ScramSha256, "a=b,c", "x", "n").unwrap();
        assert_eq!(c.client_first(), b"n,,n=a=3Db=2Cc,r=n");
        assert!(ScramClient::new(SaslMechanism::Plain, "u", "p").is_err());
        let cfg =
            SaslConfig { mechanism: SaslMechanism::Plain, username: "u".into(), password: "secret".into() };
        assert!(!format!("{cfg:?}").contains("secret"));
    }
}
