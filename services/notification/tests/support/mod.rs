//! A real SMTP server for tests: aiosmtpd with `scripts/smtp_sink.py`, one per test on a random
//! port (or the one in `SHOP_TEST_SMTP=host:port,maildir`, shared: then tests filter by recipient).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Child>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn python() -> String {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/smtp-test-server"))
            .arg("python")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/smtp-test-server python");
        assert!(out.status.success(), "scripts/smtp-test-server python failed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
    .clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpServer {
    /// A private server on a random port.
    pub fn start() -> SmtpServer {
        let maildir = std::env::temp_dir().join(format!("shop-smtp-{}", uuid::Uuid::new_v4().simple()));
        let mut s = SmtpServer { port: free_port(), maildir, child: None };
        s.restart();
        s
    }

    /// (Re)starts the server on the same port and maildir.
    pub fn restart(&mut self) {
        std::fs::create_dir_all(&self.maildir).unwrap();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port), "-c", "smtp_sink.Sink"])
            .arg(&self.maildir)
            .env("PYTHONPATH", repo_root().join("scripts"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not open port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (the port is closed afterwards).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Decoded summaries of every message received so far.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.maildir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        // Finished summaries only: the sink writes under a hidden temporary name, then renames.
        files.retain(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
        });
        files.sort();
        files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }

    /// Waits until `n` messages arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(Instant::now() < deadline, "expected {n} messages, got {}", m.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
