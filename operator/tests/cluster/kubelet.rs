//! The kubelet's part, played by the test: no kubelet runs in the test control plane, so Pods
//! the Job, ReplicaSet and StatefulSet controllers create stay Pending. This loop gives each Pod
//! of the scenario's namespace the status a kubelet would report (through the Pod's `status`
//! subresource): Running and Ready, Succeeded (a migration Job's pod), crashlooping, or left
//! Pending — as the scenario's policy says. The real controllers then compute Job
//! completion, ReplicaSet/Deployment availability and StatefulSet readiness from it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

/// What happens to a Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Running, every container ready.
    Ready,
    /// Running, not ready: the container is in CrashLoopBackOff.
    Crash,
    /// Succeeded (exit code 0): what a migration Job's pod does.
    Succeed,
    /// Left as it is (Pending: image still pulling, say).
    Hold,
}

pub type Policy = Box<dyn Fn(&Pod) -> Fate + Send + Sync>;

/// Job pods succeed, every other pod becomes ready.
pub fn default_policy() -> Policy {
    Box::new(|pod: &Pod| if is_job_pod(pod) { Fate::Succeed } else { Fate::Ready })
}

pub fn is_job_pod(pod: &Pod) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|o| o.kind == "Job")
}

/// The image of a pod's first container.
pub fn image(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default()
}

pub struct Kubelet {
    policy: Arc<Mutex<Policy>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Kubelet {
    pub fn start(client: Client, ns: &str) -> Kubelet {
        let policy: Arc<Mutex<Policy>> = Arc::new(Mutex::new(default_policy()));
        let api: Api<Pod> = Api::namespaced(client, ns);
        let p = policy.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(pods) = api.list(&ListParams::default()).await {
                    for pod in pods {
                        if pod.metadata.deletion_timestamp.is_some() {
                            continue;
                        }
                        let fate = (p.lock().unwrap())(&pod);
                        if let Some(status) = wanted_status(&pod, fate) {
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            let _ = api
                                .patch_status(
                                    &name,
                                    &PatchParams::default(),
                                    &Patch::Merge(&json!({"status": status})),
                                )
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Kubelet { policy, task: Mutex::new(Some(task)) }
    }

    /// Replaces the policy (pods already handled keep their status unless the new policy wants
    /// another one).
    pub fn set(&self, policy: Policy) {
        *self.policy.lock().unwrap() = policy;
    }

    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).unwrap().to_string()
}

/// The status a kubelet would report for `fate`, or `None` when the pod already has it.
fn wanted_status(pod: &Pod, fate: Fate) -> Option<Value> {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    let crashing = status.container_statuses.iter().flatten().any(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
    });
    let done = match fate {
        Fate::Hold => true,
        Fate::Ready => phase == "Running" && ready,
        Fate::Crash => phase == "Running" && crashing,
        Fate::Succeed => phase == "Succeeded",
    };
    // A finished pod's phase is final: the kubelet never changes it again.
    if done || phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let now = now();
    let containers: Vec<(String, String)> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now});
    let statuses = |state: Value, ready: bool, restarts: i32, last: Value| -> Value {
        Value::Array(
            containers
                .iter()
                .map(|(name, image)| {
                    json!({
                        "name": name, "image": image, "imageID": format!("docker-pullable://{image}"),
                        "containerID": format!("containerd://{}", name),
                        "ready": ready, "started": ready, "restartCount": restarts,
                        "state": state, "lastState": last,
                    })
                })
                .collect(),
        )
    };
    Some(match fate {
        Fate::Ready => json!({
            "phase": "Running", "startTime": now, "hostIP": "127.0.0.1", "podIP": "10.244.0.10",
            "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", true), cond("Ready", true)],
            "containerStatuses": statuses(json!({"running": {"startedAt": now}}), true, 0, json!({})),
        }),
        Fate::Crash => json!({
            "phase": "Running", "startTime": now, "hostIP": "127.0.0.1", "podIP": "10.244.0.11",
            "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", false), cond("Ready", false)],
            "containerStatuses": statuses(
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}),
                false, 4,
                json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}}),
            ),
        }),
        Fate::Succeed => json!({
            "phase": "Succeeded", "startTime": now, "hostIP": "127.0.0.1", "podIP": "10.244.0.12",
            "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", false), cond("Ready", false)],
            "containerStatuses": statuses(json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}), false, 0, json!({})),
        }),
        Fate::Hold => unreachable!(),
    })
}
