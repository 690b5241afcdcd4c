//! The real `shop-operator` binary against a real Kubernetes control plane: etcd,
//! kube-apiserver and kube-controller-manager of the release pinned in `tools/k8s`
//! (`scripts/k8s-test-cluster`; `SHOP_TEST_KUBECONFIG`, set by `scripts/test`; the test fails
//! when it is unset), the machine's PostgreSQL and the Kafka test broker
//! (`SHOP_TEST_KAFKA_BROKERS`).
//!
//! - The operator chart is installed with `helm`; each scenario runs its own operator process
//!   (`--namespace` of its own namespace) with a token of the chart's ServiceAccount, so a verb
//!   missing from the chart's ClusterRole fails a scenario.
//! - **No kubelet runs.** The test plays the kubelet's part ([`kubelet`]): it marks the Pods the
//!   Job, ReplicaSet and StatefulSet controllers create Running/Ready, Succeeded, crashlooping,
//!   failed or Pending through the Pods' `status` subresource, and the real controllers compute
//!   Job completion and Deployment availability from that. Likewise the test plays
//!   CloudNativePG (it writes the `<cluster>-superuser` Secret) and Strimzi (it marks
//!   `KafkaTopic`s Ready); their CRDs are trimmed copies (`tests/data/README.md`).
//! - Scenarios run in parallel, each in its own namespace (`SHOP_TEST_PARALLEL`, default 6);
//!   `SHOP_TEST_SCENARIOS=upgrade,names` runs the scenarios whose names contain one of the
//!   words. Run by hand: docs/development.md, "The control-plane suite".

mod harness;
mod kubelet;
mod scenarios;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_plane_scenarios() {
    let t0 = Instant::now();
    let env = Arc::new(tokio::task::spawn_blocking(harness::setup).await.expect("setup"));
    eprintln!(
        "setup (overlays, helm install, CRDs, ServiceAccount token): {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let filter: Vec<String> = std::env::var("SHOP_TEST_SCENARIOS")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let parallel: usize = std::env::var("SHOP_TEST_PARALLEL").ok().and_then(|p| p.parse().ok()).unwrap_or(6);
    let selected: Vec<_> = scenarios::ALL
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    assert!(!selected.is_empty(), "no scenario matches SHOP_TEST_SCENARIOS={filter:?}");
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::new();
    for (name, f) in selected {
        let (name, f, env, limit) = (*name, *f, env.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            let start = Instant::now();
            let s = match Scenario::new(name, env).await {
                Ok(s) => s,
                Err(e) => return (name, Err(format!("setting up: {e:#}")), start.elapsed()),
            };
            let ns = s.ns.clone();
            s.note(format!("scenario {}", s.name));
            let shared = Arc::new(s);
            let run = f(shared.clone());
            let result = match tokio::time::timeout(Duration::from_secs(300), run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("timed out after 300 s".to_string()),
            };
            let result = result.map_err(|e| {
                format!(
                    "namespace {ns}: {e}\n  steps: {}\n{}",
                    shared.notes.lock().unwrap().join("\n         "),
                    shared.operator_logs()
                )
            });
            shared.cleanup().await;
            (name, result, start.elapsed())
        }));
    }
    let mut failures = Vec::new();
    let mut failed = Vec::new();
    let mut table = Vec::new();
    for t in tasks {
        let (name, result, took) = t.await.expect("scenario task");
        table.push(format!(
            "  {:<22} {:>6.1}s  {}",
            name,
            took.as_secs_f64(),
            if result.is_ok() { "ok" } else { "FAILED" }
        ));
        if let Err(e) = result {
            failures.push(format!("=== {name}\n{e}"));
            failed.push((name, e));
        }
    }
    eprintln!(
        "\ncontrol-plane scenarios ({} in {:.1}s, {parallel} at a time):\n{}",
        table.len(),
        t0.elapsed().as_secs_f64(),
        table.join("\n")
    );
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&env.work);
    } else {
        eprintln!("operator logs and scratch files: {}", env.work.display());
    }
    if !failures.is_empty() {
        // The details (steps, operator logs) first, then one line per failed scenario with its
        // error as the very last output, without a backtrace: a log shown by its head and tail
        // still names what failed.
        eprintln!("{}", failures.join("\n\n"));
        let summary: Vec<String> = failed
            .iter()
            .map(|(name, e)| format!("  {name}: {}", e.lines().next().unwrap_or_default()))
            .collect();
        eprintln!("\n{} scenario(s) failed:\n{}", failed.len(), summary.join("\n"));
        std::panic::resume_unwind(Box::new(format!("{} control-plane scenario(s) failed", failed.len())));
    }
}
