//! The real SMTP test server (aiosmtpd with `scripts/smtp_sink.py`), one per test binary, shared
//! by its tests: they tell their messages apart by recipient (every test user has a fresh
//! address). The server stops when the test binary exits (it waits on its stdin).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    _child: Child,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The binary's server, started on first use.
pub fn smtp() -> &'static Smtp {
    static SMTP: OnceLock<Smtp> = OnceLock::new();
    SMTP.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/smtp-test-server"))
            .arg("python")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/smtp-test-server python");
        assert!(out.status.success(), "scripts/smtp-test-server python failed");
        let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = std::env::temp_dir().join(format!("shop-e2e-smtp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&maildir).unwrap();
        // The server lives as long as this process holds the pipe to the shell's stdin.
        let script = r#""$0" -m aiosmtpd -n -l "127.0.0.1:$1" -c smtp_sink.Sink "$2" & pid=$!; cat >/dev/null; kill $pid; rm -rf "$2""#;
        let child = Command::new("sh")
            .args(["-c", script, &python, &port.to_string()])
            .arg(&maildir)
            .env("PYTHONPATH", repo_root().join("scripts"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not open port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp { port, maildir, _child: child }
    })
}

/// The notification service's SMTP settings for [`smtp`].
pub fn smtp_config() -> shop_notification::config::SmtpConfig {
    shop_notification::config::SmtpConfig {
        host: "127.0.0.1".into(),
        port: smtp().port,
        tls: shop_notification::config::TlsMode::None,
        timeout_secs: 10,
        ..Default::default()
    }
}

/// Decoded summaries of the messages in `maildir` sent to `to`, oldest first.
pub fn messages_to(maildir: &Path, to: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "json")
            && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
    });
    files.sort();
    files
        .iter()
        .filter_map(|p| serde_json::from_str::<Value>(&std::fs::read_to_string(p).ok()?).ok())
        .filter(|m| m["rcptTos"].as_array().is_some_and(|r| r.iter().any(|x| x.as_str() == Some(to))))
        .collect()
}

/// Waits for the `n`-th message to `to` whose subject contains `subject`.
pub async fn wait_for_mail(maildir: &Path, to: &str, subject: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found: Vec<Value> = messages_to(maildir, to)
            .into_iter()
            .filter(|m| {
                m["subject"].as_str().is_some_and(|s| s.to_lowercase().contains(&subject.to_lowercase()))
            })
            .collect();
        if found.len() >= n {
            return found[n - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no mail '{subject}' #{n} to {to}: {:?}",
            messages_to(maildir, to)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The token of the link in a security mail (`…#token=<token>`).
pub fn link_token(mail: &Value) -> String {
    let text = mail["text"].as_str().unwrap_or_else(|| panic!("no text part: {mail}"));
    let at = text.find("#token=").unwrap_or_else(|| panic!("no link in: {text}")) + "#token=".len();
    text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}
