//! The load driver of `scripts/bench`: customers who buy through the public API, over HTTP,
//! as a black box. Not a test: it prints figures.
//!
//! ```text
//! loadgen setup --base URL --state FILE [--customers 8] [--products 50] [--stock 1000000]
//! loadgen run   --base URL --state FILE --until authorized|paid
//!               [--warmup 10] [--duration 30] [--checkouts N] [--customers 8]
//! ```
//!
//! `setup` logs in as the demo admin, registers the customers, picks `--products` seeded,
//! active products and raises their stock (an admin adjustment), and writes what `run` needs to
//! `--state` (JSON: the customers' credentials and the product ids).
//!
//! `run`: each customer loops add to cart → checkout → payment intent → confirm
//! (`pm_card_visa`) and, with `--until paid`, polls the order every 5 ms until it is PAID. Each
//! checkout buys one unit of a random product of the state's list. After `--warmup` seconds it
//! measures for `--duration` seconds (or exactly `--checkouts` checkouts, without warm-up) and
//! prints checkouts/s and latency percentiles per step and end to end; the last line is
//! `RESULT key=value …` for the script.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PASSWORD: &str = "Bench12345";
const STEPS: [&str; 5] = ["cart", "checkout", "intent", "confirm", "paid"];

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name)
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}")))
        .unwrap_or(default)
}

#[derive(Clone)]
struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Client { base: base.trim_end_matches('/').to_string(), http }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok((status, v))
    }

    async fn get(&self, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base)).bearer_auth(token)).await
    }

    async fn post(
        &self,
        token: &str,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let (status, v) = self
            .post("", "/api/v1/auth/login", &json!({ "email": email, "password": password }), None)
            .await?;
        anyhow::ensure!(status == 200, "login as {email}: {status} {v}");
        Ok(v["accessToken"].as_str().unwrap_or_default().to_string())
    }
}

fn expect(what: &str, (status, body): (u16, Value), ok: &[u16]) -> anyhow::Result<Value> {
    anyhow::ensure!(ok.contains(&status), "{what}: {status} {body}");
    Ok(body)
}

async fn setup(args: &[String]) -> anyhow::Result<()> {
    let base = arg(args, "--base").expect("--base");
    let state = arg(args, "--state").expect("--state");
    let customers = num(args, "--customers", 8);
    let want = num(args, "--products", 50) as usize;
    let stock = num(args, "--stock", 1_000_000) as i64;
    let c = Client::new(&base);
    let admin = c.login("admin@example.com", "Admin123!").await?;
    let mut products = Vec::new();
    let mut page = 1;
    while products.len() < want {
        let v = expect(
            "stock list",
            c.get(&admin, &format!("/api/v1/inventory?pageSize=100&page={page}")).await?,
            &[200],
        )?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for s in items {
            let id = s["productId"].as_str().unwrap_or_default().to_string();
            let (status, p) = c.get(&admin, &format!("/api/v1/products/{id}")).await?;
            if status == 200 && p["active"] == true && products.len() < want {
                products.push(id);
            }
        }
        page += 1;
    }
    anyhow::ensure!(!products.is_empty(), "no active seeded product");
    for id in &products {
        expect(
            "stock adjustment",
            c.post(
                &admin,
                &format!("/api/v1/inventory/{id}/adjust"),
                &json!({ "type": "PURCHASE", "quantity": stock, "reason": "bench" }),
                None,
            )
            .await?,
            &[200],
        )?;
    }
    let mut emails = Vec::new();
    for _ in 0..customers {
        let email = format!("bench-{}@example.com", uuid::Uuid::now_v7().simple());
        let body = json!({ "email": email, "password": PASSWORD, "firstName": "Bench" });
        expect("register", c.post("", "/api/v1/auth/register", &body, None).await?, &[200, 201])?;
        emails.push(email);
    }
    let out = json!({ "customers": emails, "products": products });
    std::fs::write(&state, serde_json::to_vec_pretty(&out)?)?;
    println!("setup: {} customers, {} products with +{stock} units", emails.len(), products.len());
    Ok(())
}

/// One checkout's step latencies (µs), in [`STEPS`] order (`paid` 0 when not waited for).
type Sample = [u64; 5];

async fn checkout(c: &Client, token: &str, product: &str, until_paid: bool) -> anyhow::Result<Sample> {
    let mut s = [0u64; 5];
    let t = Instant::now();
    expect(
        "add to cart",
        c.post(token, "/api/v1/cart/items", &json!({ "productId": product, "quantity": 1 }), None).await?,
        &[200, 201],
    )?;
    s[0] = t.elapsed().as_micros() as u64;
    let t = Instant::now();
    let key = uuid::Uuid::now_v7().to_string();
    let address = json!({ "name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "Springfield",
        "postalCode": "12345", "country": "US" });
    let order = expect(
        "checkout",
        c.post(
            token,
            "/api/v1/orders/checkout",
            &json!({ "shippingAddress": address, "shippingMethod": "standard" }),
            Some(&key),
        )
        .await?,
        &[201],
    )?;
    s[1] = t.elapsed().as_micros() as u64;
    let order_id = order["id"].as_str().unwrap_or_default().to_string();
    let t = Instant::now();
    let key = uuid::Uuid::now_v7().to_string();
    let intent = expect(
        "payment intent",
        c.post(token, "/api/v1/payments/intent", &json!({ "orderId": order_id }), Some(&key)).await?,
        &[200, 201],
    )?;
    s[2] = t.elapsed().as_micros() as u64;
    let payment = intent["id"].as_str().unwrap_or_default().to_string();
    let t = Instant::now();
    let confirmed = expect(
        "confirm",
        c.post(
            token,
            &format!("/api/v1/payments/{payment}/confirm"),
            &json!({ "paymentMethod": "pm_card_visa" }),
            None,
        )
        .await?,
        &[200],
    )?;
    anyhow::ensure!(
        confirmed["status"] == "AUTHORIZED" || confirmed["status"] == "CAPTURED",
        "confirm: {confirmed}"
    );
    s[3] = t.elapsed().as_micros() as u64;
    if until_paid {
        let t = Instant::now();
        loop {
            let o = expect("order", c.get(token, &format!("/api/v1/orders/{order_id}")).await?, &[200])?;
            if o["status"] == "PAID" {
                break;
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "order never PAID: {o}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s[4] = t.elapsed().as_micros() as u64;
    }
    Ok(s)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let base = arg(args, "--base").expect("--base");
    let state: Value = serde_json::from_slice(&std::fs::read(arg(args, "--state").expect("--state"))?)?;
    let until_paid = match arg(args, "--until").as_deref() {
        Some("paid") => true,
        Some("authorized") | None => false,
        Some(other) => anyhow::bail!("--until authorized|paid, not {other}"),
    };
    let fixed = arg(args, "--checkouts").map(|v| v.parse::<u64>()).transpose()?;
    let warmup = if fixed.is_some() { 0 } else { num(args, "--warmup", 10) };
    let duration = num(args, "--duration", 30);
    let emails: Vec<String> =
        state["customers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let customers = (num(args, "--customers", emails.len() as u64) as usize).min(emails.len());
    let products: Vec<String> =
        state["products"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let c = Client::new(&base);
    let mut tokens = Vec::new();
    for e in emails.iter().take(customers) {
        tokens.push(c.login(e, PASSWORD).await?);
    }
    let measuring = Arc::new(AtomicBool::new(warmup == 0));
    let stop = Arc::new(AtomicBool::new(false));
    let remaining = Arc::new(AtomicU64::new(fixed.unwrap_or(u64::MAX)));
    let products = Arc::new(products);
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (c, measuring, stop, remaining, products) =
            (c.clone(), measuring.clone(), stop.clone(), remaining.clone(), products.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut seed = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            while !stop.load(Ordering::Relaxed) {
                if fixed.is_some()
                    && remaining
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let product = &products[(seed % products.len() as u64) as usize];
                let counted = measuring.load(Ordering::Relaxed);
                let t = Instant::now();
                let s = checkout(&c, &token, product, until_paid).await?;
                let total = t.elapsed().as_micros() as u64;
                // A checkout counts when it started and ended inside the window.
                if counted && !stop.load(Ordering::Relaxed) {
                    samples.push((s, total));
                }
            }
            anyhow::Ok(samples)
        }));
    }
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    if fixed.is_none() {
        tokio::time::sleep(Duration::from_secs(duration)).await;
        stop.store(true, Ordering::SeqCst);
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = if fixed.is_some() { started.elapsed() } else { Duration::from_secs(duration) };
    let n = all.len();
    let rate = n as f64 / elapsed.as_secs_f64();
    let target = if until_paid { "PAID" } else { "AUTHORIZED" };
    println!(
        "{n} checkouts to {target} in {:.1} s by {customers} customers: {rate:.1} checkouts/s",
        elapsed.as_secs_f64()
    );
    let mut result = BTreeMap::new();
    result.insert("checkouts".to_string(), n.to_string());
    result.insert("rate".to_string(), format!("{rate:.1}"));
    let mut totals: Vec<u64> = all.iter().map(|(_, t)| *t).collect();
    totals.sort_unstable();
    println!("  {:<10} {:>8} {:>8} {:>8} {:>8}", "step (ms)", "p50", "p90", "p99", "max");
    let steps = if until_paid { &STEPS[..] } else { &STEPS[..4] };
    for (i, step) in steps.iter().enumerate() {
        let mut v: Vec<u64> = all.iter().map(|(s, _)| s[i]).collect();
        v.sort_unstable();
        println!(
            "  {step:<10} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            pct(&v, 0.5),
            pct(&v, 0.9),
            pct(&v, 0.99),
            pct(&v, 1.0)
        );
        result.insert(format!("{step}_p50"), format!("{:.1}", pct(&v, 0.5)));
        result.insert(format!("{step}_p99"), format!("{:.1}", pct(&v, 0.99)));
    }
    println!(
        "  {:<10} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        "total",
        pct(&totals, 0.5),
        pct(&totals, 0.9),
        pct(&totals, 0.99),
        pct(&totals, 1.0)
    );
    for (k, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        result.insert(format!("total_{k}"), format!("{:.1}", pct(&totals, p)));
    }
    let line: Vec<String> = result.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", line.join(" "));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads = num(&args, "--threads", 1) as usize;
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
    rt.block_on(async {
        match args.first().map(String::as_str) {
            Some("setup") => setup(&args).await,
            Some("run") => run(&args).await,
            _ => anyhow::bail!("usage: loadgen setup|run --base URL --state FILE …"),
        }
    })
}
