//! The test environment: one control plane shared by every scenario (each in its own namespace
//! with its own `shop-operator` process), the operator chart's ServiceAccount, the audit log,
//! the machine's PostgreSQL and the Kafka test broker.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::kubelet::Kubelet;

/// The release and namespace of the operator chart installed by the setup.
pub const RELEASE: &str = "ops";
pub const OPERATOR_NS: &str = "shop-operator-system";
/// The chart's ServiceAccount (its full name: `<release>-shop-operator`).
pub const OPERATOR_SA: &str = "ops-shop-operator";
const FIELD_MANAGER: &str = "control-plane-test";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file)
}

/// What the suite needs from the machine, checked before anything starts.
pub struct Env {
    /// The admin kubeconfig (`system:masters`) of the control plane.
    pub kubeconfig: PathBuf,
    pub audit_log: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    /// The `shop-operator` binary under test.
    pub operator_bin: PathBuf,
    /// A kubeconfig with a token of the chart's ServiceAccount: the operator runs with exactly the
    /// chart's permissions.
    pub operator_kubeconfig: PathBuf,
    /// The audit log's user name of that ServiceAccount.
    pub operator_user: String,
    pub postgres_url: String,
    pub kafka_brokers: String,
    /// Scratch directory (logs of the operator processes, helm's caches).
    pub work: PathBuf,
    /// What the setup did before the chart: the documented kustomize commands on the fresh
    /// control plane (see [`setup`]).
    pub install: InstallReport,
}

#[derive(Debug, Default, Clone)]
pub struct InstallReport {
    /// The ShopPlatform CRD did not exist when the suite started.
    pub fresh: bool,
    /// Each documented command with its success and output.
    pub steps: Vec<(String, bool, String)>,
}

fn require_env(name: &str, how: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!("{name} is not set: {how}"),
    }
}

/// Runs a command; `Ok(stdout)` on success, `Err(stdout+stderr)` otherwise.
pub fn run(cmd: &mut Command) -> std::result::Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{stderr}"))
    }
}

impl Env {
    /// `kubectl` as the admin, with a discovery cache of this run only: a cache left by an
    /// earlier control plane on the same port would know kinds this one does not have yet (and
    /// hide, say, a CRD and its custom resource in one apply).
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.work.join("kube-cache"))
            .current_dir(repo());
        c
    }

    pub fn helm(&self) -> Command {
        let mut c = Command::new(&self.helm);
        let h = self.work.join("helm");
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", h.join("cache"))
            .env("HELM_CONFIG_HOME", h.join("config"))
            .env("HELM_DATA_HOME", h.join("data"))
            .current_dir(repo());
        c
    }

    pub async fn admin(&self) -> Client {
        client_for(&self.kubeconfig).await
    }
}

/// A Kubernetes API error as the API server worded it.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

/// One-time setup of the shared control plane. In this order, because the order is what a
/// user on a fresh cluster goes through:
/// 1. the documented kustomize commands of every overlay (`docs/operator.md`), recorded;
/// 2. `helm upgrade --install` of `charts/shop-operator` (release `ops`), whose ServiceAccount
///    the operators under test use;
/// 3. the CloudNativePG and Strimzi CRD fixtures of `tests/data`;
/// 4. a token of the chart's ServiceAccount in a kubeconfig.
pub fn setup() -> Env {
    let kubeconfig = PathBuf::from(require_env(
        "SHOP_TEST_KUBECONFIG",
        "start the control plane with `scripts/k8s-test-cluster start` and \
         `export \"$(scripts/k8s-test-cluster test-env)\"` (scripts/test does both)",
    ));
    let kafka_brokers = require_env(
        "SHOP_TEST_KAFKA_BROKERS",
        "start a broker with `scripts/kafka-test-broker start` and `export \"$(scripts/kafka-test-broker env)\"`",
    );
    let postgres_url = std::env::var("SHOP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let audit_log = kubeconfig.parent().expect("run dir").join("audit.log");
    assert!(
        audit_log.exists(),
        "{} does not exist: SHOP_TEST_KUBECONFIG must be the kubeconfig of a control plane \
         started by scripts/k8s-test-cluster (its audit log is next to it)",
        audit_log.display()
    );
    let tools = run(Command::new(repo().join("scripts/tools")).args(["path", "helm"]))
        .unwrap_or_else(|e| panic!("helm and kubectl are missing: Run: scripts/tools install helm ({e})"));
    let tools = PathBuf::from(tools.trim());
    let operator_bin = std::env::var("SHOP_TEST_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_shop-operator")));
    let work = std::env::temp_dir().join(format!("shop-control-plane-tests-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let mut env = Env {
        kubeconfig,
        audit_log,
        kubectl: tools.join("kubectl/kubectl"),
        helm: tools.join("helm/helm"),
        operator_bin,
        operator_kubeconfig: work.join("operator.kubeconfig"),
        operator_user: format!("system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"),
        postgres_url,
        kafka_brokers,
        work,
        install: InstallReport::default(),
    };

    // 1. The documented commands, on the fresh control plane.
    let crd_exists = run(env.kubectl().args(["get", "crd", "shopplatforms.platform.shop"])).is_ok();
    env.install.fresh = !crd_exists;
    for (what, args) in documented_install_commands() {
        let result = run(env.kubectl().args(&args));
        let ok = result.is_ok();
        env.install.steps.push((
            format!("{what}: kubectl {}", args.join(" ")),
            ok,
            result.unwrap_or_else(|e| e),
        ));
    }

    // 2. The operator chart.
    let result = run(env.helm().args([
        "upgrade",
        "--install",
        RELEASE,
        "charts/shop-operator",
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        "tests.enabled=false",
    ]));
    env.install.steps.push((
        format!("helm upgrade --install {RELEASE} charts/shop-operator -n {OPERATOR_NS}"),
        result.is_ok(),
        result.clone().unwrap_or_else(|e| e),
    ));
    if let Err(e) = result {
        panic!("helm install of charts/shop-operator failed:\n{e}");
    }
    // Whatever the overlays did, the CRD of this tree is what the scenarios run against.
    run(env.kubectl().args([
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "crds/shopplatforms.platform.shop.yaml",
    ]))
    .unwrap_or_else(|e| panic!("applying the CRD: {e}"));

    // 3. The other operators' CRDs (trimmed copies, see tests/data/README.md).
    for f in ["cnpg-clusters.postgresql.cnpg.io.yaml", "strimzi-kafkatopics.kafka.strimzi.io.yaml"] {
        run(env.kubectl().args(["apply", "--server-side", "--force-conflicts", "-f"]).arg(data(f)))
            .unwrap_or_else(|e| panic!("applying {f}: {e}"));
    }
    run(env.kubectl().args([
        "wait",
        "--for",
        "condition=Established",
        "--timeout=60s",
        "crd/shopplatforms.platform.shop",
        "crd/clusters.postgresql.cnpg.io",
        "crd/kafkatopics.kafka.strimzi.io",
    ]))
    .unwrap_or_else(|e| panic!("CRDs not established: {e}"));

    // 4. The chart's ServiceAccount's token.
    let token = run(env.kubectl().args(["create", "token", OPERATOR_SA, "-n", OPERATOR_NS, "--duration=3h"]))
        .unwrap_or_else(|e| panic!("a token of the chart's ServiceAccount: {e}"));
    write_token_kubeconfig(&env.kubeconfig, token.trim(), &env.operator_kubeconfig);
    env
}

/// The install commands of docs/operator.md, in order, for both overlays.
pub fn documented_install_commands() -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("dev overlay, operator", s(&["apply", "--server-side", "-k", "manifests/overlays/dev/operator"])),
        (
            "wait for the CRD",
            s(&[
                "wait",
                "--for",
                "condition=Established",
                "--timeout=60s",
                "crd/shopplatforms.platform.shop",
            ]),
        ),
        ("dev overlay, platform", s(&["apply", "--server-side", "-k", "manifests/overlays/dev"])),
        (
            "production overlay, operator",
            s(&["apply", "--server-side", "-k", "manifests/overlays/production/operator"]),
        ),
        (
            "production overlay, platform",
            s(&["apply", "--server-side", "-k", "manifests/overlays/production"]),
        ),
    ]
}

/// A kubeconfig for `token`, with the admin kubeconfig's server and CA.
/// `payment.provider: simulated` unless the spec names one (it is required); a spec with
/// `"payment": null` is left without one (to see it refused).
pub fn with_payment(spec: &mut Value) {
    match spec.get("payment") {
        Some(Value::Null) => {
            spec.as_object_mut().expect("spec").remove("payment");
        }
        Some(_) => {}
        None => spec["payment"] = json!({"provider": "simulated"}),
    }
}

pub fn write_token_kubeconfig(admin: &Path, token: &str, out: &Path) {
    let kc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(admin).unwrap()).unwrap();
    let cluster = &kc["clusters"][0]["cluster"];
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
         users:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: sa\n\
         current-context: test\n",
        cluster["server"].as_str().unwrap(),
        cluster["certificate-authority-data"].as_str().unwrap(),
    );
    std::fs::write(out, text).unwrap();
}

// --- scenarios ---------------------------------------------------------------------------------

pub type ScenarioFn = fn(Arc<Scenario>) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// One scenario's world: a namespace, an admin client, a kubelet stand-in, operator processes.
pub struct Scenario {
    pub name: &'static str,
    pub ns: String,
    /// A suffix unique to this run, for names shared outside the namespace (topics).
    pub tag: String,
    pub env: Arc<Env>,
    pub client: Client,
    pub kubelet: Kubelet,
    pub dir: PathBuf,
    operators: Mutex<Vec<Operator>>,
    proxies: Mutex<Vec<Proxy>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// What the scenario did, for the report of a failure.
    pub notes: Mutex<Vec<String>>,
}

impl Scenario {
    pub async fn new(name: &'static str, env: Arc<Env>) -> Result<Scenario> {
        let tag = format!("{:04x}", rand::random::<u16>());
        // `ct-`: the databases and roles named after the namespace start with `ct_`, which
        // .ci/run drops when an interrupted run left them.
        let ns = format!("ct-{}-{tag}", name.replace('_', "-"));
        let client = env.admin().await;
        let api: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"shop-control-plane-test": "true"}},
        }))?;
        api.create(&PostParams::default(), &namespace).await.context("creating the namespace")?;
        let dir = env.work.join(&ns);
        std::fs::create_dir_all(&dir)?;
        let kubelet = Kubelet::start(client.clone(), &ns);
        Ok(Scenario {
            name,
            ns,
            tag,
            env,
            client,
            kubelet,
            dir,
            operators: Mutex::new(Vec::new()),
            proxies: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` in the background until the scenario ends (e.g. the test playing Strimzi).
    pub fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.tasks.lock().unwrap().push(tokio::spawn(f));
    }

    pub fn note(&self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("[{}] {what}", self.ns);
        self.notes.lock().unwrap().push(what);
    }

    /// A platform name unique to this run (topics share one broker).
    pub fn platform_name(&self, base: &str) -> String {
        format!("{base}-{}", self.tag)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn dynamic(&self, group: &str, version: &str, kind: &str) -> Api<DynamicObject> {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        Api::namespaced_with(self.client.clone(), &self.ns, &ar)
    }

    pub fn platforms(&self) -> Api<DynamicObject> {
        self.dynamic("platform.shop", "v1alpha1", "ShopPlatform")
    }

    /// Server-side applies a ShopPlatform `name` with `spec` as the admin (a user).
    pub async fn apply_platform(&self, name: &str, mut spec: Value) -> Result<DynamicObject> {
        with_payment(&mut spec);
        let obj = json!({
            "apiVersion": "platform.shop/v1alpha1", "kind": "ShopPlatform",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        });
        self.platforms()
            .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
            .await
            .map_err(|e| anyhow!("applying ShopPlatform {name}: {}", describe(&e)))
    }

    /// Merge-patches the spec of platform `name`.
    pub async fn patch_spec(&self, name: &str, patch: Value) -> Result<DynamicObject> {
        self.platforms()
            .patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": patch})))
            .await
            .map_err(|e| anyhow!("patching ShopPlatform {name}: {}", describe(&e)))
    }

    pub async fn platform(&self, name: &str) -> Result<DynamicObject> {
        self.platforms().get(name).await.map_err(|e| anyhow!("get ShopPlatform {name}: {e}"))
    }

    pub async fn create_secret(&self, name: &str, data: &[(&str, &str)]) -> Result<()> {
        let string_data: BTreeMap<_, _> = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns},
            "stringData": string_data,
        }))?;
        self.api::<Secret>()
            .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&secret))
            .await?;
        Ok(())
    }

    pub async fn secret_value(&self, name: &str, key: &str) -> Result<Option<String>> {
        let s = self.api::<Secret>().get_opt(name).await?;
        Ok(s.and_then(|s| s.data)
            .and_then(|d| d.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned())))
    }

    /// Starts `shop-operator` for this namespace with the chart's ServiceAccount.
    pub fn start_operator(&self, overrides: &[(String, String)]) -> Result<()> {
        let kubeconfig = self.env.operator_kubeconfig.clone();
        self.start_operator_as(&kubeconfig, overrides)
    }

    /// Starts `shop-operator` for this namespace with the credentials of `kubeconfig`.
    pub fn start_operator_as(&self, kubeconfig: &Path, overrides: &[(String, String)]) -> Result<()> {
        self.start_operator_with(kubeconfig, overrides, &[]).map(|_| ())
    }

    /// Starts `shop-operator` with extra environment (flags); returns its index.
    pub fn start_operator_with(
        &self,
        kubeconfig: &Path,
        overrides: &[(String, String)],
        extra_env: &[(String, String)],
    ) -> Result<usize> {
        let mut ops = self.operators.lock().unwrap();
        let n = ops.len();
        let op = Operator::start(
            &self.env,
            &self.ns,
            kubeconfig,
            overrides,
            &self.dir.join(format!("operator-{n}.log")),
            extra_env,
        )?;
        self.note(format!("operator #{n} started (pid {}, metrics 127.0.0.1:{})", op.child.id(), op.port));
        ops.push(op);
        Ok(n)
    }

    /// SIGKILLs operator `i`.
    pub fn kill_operator_at(&self, i: usize) {
        let mut ops = self.operators.lock().unwrap();
        let pid = ops[i].child.id();
        let _ = ops[i].child.kill();
        let _ = ops[i].child.wait();
        drop(ops);
        self.note(format!("operator #{i} (pid {pid}) killed"));
    }

    /// `shop_operator_reconciles_total` of operator `i`.
    pub async fn reconciles_of(&self, i: usize) -> Result<u64> {
        let port = self.operators.lock().unwrap()[i].port;
        let text = http_get(port, "/metrics").await?;
        Ok(text
            .lines()
            .find(|l| l.starts_with("shop_operator_reconciles_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0))
    }

    /// SIGKILLs the running operator (no graceful shutdown).
    pub fn kill_operator(&self) {
        let mut ops = self.operators.lock().unwrap();
        for op in ops.iter_mut().rev() {
            if !matches!(op.child.try_wait(), Ok(None)) {
                continue;
            }
            let _ = op.child.kill();
            let _ = op.child.wait();
            let pid = op.child.id();
            drop(ops);
            self.note(format!("operator pid {pid} killed"));
            return;
        }
    }

    /// `shop_operator_reconciles_total` of the running operator.
    pub async fn reconciles(&self) -> Result<u64> {
        let port = {
            let ops = self.operators.lock().unwrap();
            ops.last().map(|o| o.port).ok_or_else(|| anyhow!("no operator"))?
        };
        let text = http_get(port, "/metrics").await?;
        Ok(text
            .lines()
            .find(|l| l.starts_with("shop_operator_reconciles_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0))
    }

    /// Waits until the running operator has completed `n` more reconciles.
    pub async fn wait_reconciles(&self, n: u64, timeout: Duration) -> Result<()> {
        let start = self.reconciles().await?;
        wait_for(&format!("{n} more reconciles"), timeout, || async {
            Ok((self.reconciles().await? >= start + n).then_some(()))
        })
        .await
    }

    /// The operator's log so far (for failure reports).
    pub fn operator_logs(&self) -> String {
        let ops = self.operators.lock().unwrap();
        ops.iter()
            .map(|o| {
                let text = std::fs::read_to_string(&o.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                format!(
                    "--- {} (last {} lines)\n{}",
                    o.log.display(),
                    tail.len(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A TCP forwarder on a local port to `target` that can be stopped and started again on the
    /// same port (a dependency that goes down and comes back).
    pub async fn proxy(&self, target: &str) -> Result<(usize, u16)> {
        let p = Proxy::start(target, 0).await?;
        let port = p.port;
        let mut proxies = self.proxies.lock().unwrap();
        proxies.push(p);
        Ok((proxies.len() - 1, port))
    }

    pub fn proxy_down(&self, i: usize) {
        self.proxies.lock().unwrap()[i].stop();
        self.note(format!("proxy #{i} down"));
    }

    pub async fn proxy_up(&self, i: usize) -> Result<()> {
        let (target, port) = {
            let p = &self.proxies.lock().unwrap()[i];
            (p.target.clone(), p.port)
        };
        let p = Proxy::start(&target, port).await?;
        self.proxies.lock().unwrap()[i] = p;
        self.note(format!("proxy #{i} up again on port {port}"));
        Ok(())
    }

    /// The operator's writes (create, update, patch, delete) in this namespace, from the audit
    /// log, after byte `offset`.
    pub fn operator_writes_since(&self, offset: u64) -> Vec<String> {
        audit_events_since(&self.env.audit_log, offset)
            .into_iter()
            .filter(|e| {
                e["user"]["username"] == self.env.operator_user.as_str()
                    && e["objectRef"]["namespace"] == self.ns.as_str()
                    && e["verb"].as_str().is_some_and(|v| {
                        matches!(v, "create" | "update" | "patch" | "delete" | "deletecollection")
                    })
            })
            .map(|e| {
                format!(
                    "{} {}/{}{} {}",
                    e["verb"].as_str().unwrap_or_default(),
                    e["objectRef"]["resource"].as_str().unwrap_or_default(),
                    e["objectRef"]["name"].as_str().unwrap_or_default(),
                    e["objectRef"]["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default(),
                    e["responseStatus"]["code"],
                )
            })
            .collect()
    }

    pub fn audit_offset(&self) -> u64 {
        std::fs::metadata(&self.env.audit_log).map(|m| m.len()).unwrap_or(0)
    }

    /// Stops everything the scenario started and removes its namespace (not waited for) and the
    /// databases and roles named after it.
    pub async fn cleanup(&self) {
        for op in self.operators.lock().unwrap().iter_mut() {
            let _ = op.child.kill();
            let _ = op.child.wait();
        }
        for p in self.proxies.lock().unwrap().iter_mut() {
            p.stop();
        }
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        self.kubelet.stop();
        // Leftover platforms keep their finalizer without an operator: drop it, then the namespace.
        if let Ok(list) = self.platforms().list(&Default::default()).await {
            for p in list {
                let name = p.metadata.name.clone().unwrap_or_default();
                let _ = self
                    .platforms()
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                    )
                    .await;
            }
        }
        let _ =
            Api::<Namespace>::all(self.client.clone()).delete(&self.ns, &DeleteParams::background()).await;
        if let Ok(pg) = pg_connect(&self.env.postgres_url).await {
            let prefix = format!("{}_", self.ns.replace('-', "_"));
            let names: Vec<String> = pg
                .query("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", &[&prefix])
                .await
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            for n in names {
                let _ = pg.batch_execute(&format!("DROP DATABASE IF EXISTS \"{n}\" WITH (FORCE)")).await;
            }
            let roles: Vec<String> = pg
                .query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", &[&prefix])
                .await
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            for r in roles {
                let _ = pg.batch_execute(&format!("DROP ROLE IF EXISTS \"{r}\"")).await;
            }
        }
    }
}

// --- operator processes --------------------------------------------------------------------------

struct Operator {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl Operator {
    fn start(
        env: &Env,
        ns: &str,
        kubeconfig: &Path,
        overrides: &[(String, String)],
        log: &Path,
        extra_env: &[(String, String)],
    ) -> Result<Operator> {
        let port = free_port()?;
        let out = std::fs::File::create(log)?;
        let overrides: Vec<String> = overrides.iter().map(|(a, b)| format!("{a}={b}")).collect();
        let child = Command::new(&env.operator_bin)
            .arg("run")
            .env_clear()
            .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("SHOP_OPERATOR_NAMESPACE", ns)
            .env("SHOP_OPERATOR_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("SHOP_OPERATOR_RESYNC_INTERVAL", "2")
            .env("SHOP_OPERATOR_PROGRESS_INTERVAL", "1")
            // Retries after failures wait 5 s, then 8 s: a dependency that returns is noticed soon.
            .env("SHOP_OPERATOR_MAX_RETRY_INTERVAL", "8")
            .env("SHOP_OPERATOR_CONNECT_OVERRIDES", overrides.join(","))
            .env("SHOP_LOG_FORMAT", "text")
            .env("SHOP_LOG", "info,shop_operator=debug,kube=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", env.operator_bin.display()))?;
        Ok(Operator { child, port, log: log.to_path_buf() })
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn http_get(port: u16, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    Ok(buf)
}

// --- proxies -----------------------------------------------------------------------------------

struct Proxy {
    target: String,
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: &str, port: u16) -> Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let to = target.to_string();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = to.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Proxy { target: target.to_string(), port, task: Some(task) })
    }

    /// Closes the listener and every forwarded connection.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

// --- audit log ---------------------------------------------------------------------------------

pub fn audit_events_since(path: &Path, offset: u64) -> Vec<Value> {
    let Ok(mut f) = std::fs::File::open(path) else { return Vec::new() };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    std::io::Cursor::new(text)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .collect()
}

// --- waiting -----------------------------------------------------------------------------------

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > timeout {
            match last_err {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what} (last error: {e:#})"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// --- PostgreSQL --------------------------------------------------------------------------------

pub async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The PostgreSQL identifier the operator gives a service's database and role (as
/// `names::db_identifier`, for the short names the tests use).
pub fn db_name(ns: &str, platform: &str, service: &str) -> String {
    format!("{ns}_{platform}_{service}").replace('-', "_")
}
