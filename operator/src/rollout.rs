//! Where a service's Deployment stands, from what the Deployment controller reports (as
//! `kubectl rollout status` reads it) and, while it is not available, from its pods. Pure
//! functions.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

/// The state of one Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica runs the current template and is available; no old pods left.
    Available,
    /// A rollout (or first start) is under way: a new template, a scale-up, pods starting.
    Progressing(String),
    /// The rollout fails: pods crashloop or cannot start, or the progress deadline passed.
    Failed(String),
    /// The rollout had completed and the Deployment has since lost available pods.
    Unavailable(String),
}

/// Waiting reasons of a container that will not become ready without a change (kubelet's names).
const STUCK: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The Deployment's state, before looking at its pods (see [`with_pods`]).
pub fn state(d: &Deployment) -> Rollout {
    let want = d.spec.replicas.unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    if st.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return Rollout::Progressing("waiting for the Deployment controller".into());
    }
    let conditions = st.conditions.unwrap_or_default();
    let progressing = conditions.iter().find(|c| c.type_.as_deref() == Some("Progressing"));
    if let Some(c) = progressing.filter(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        return Rollout::Failed(format!(
            "progress deadline exceeded: {}",
            c.message.clone().unwrap_or_default()
        ));
    }
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True"))
    {
        return Rollout::Failed(c.message.clone().unwrap_or_else(|| "replica failure".into()));
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let replicas = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    if updated < want {
        return Rollout::Progressing(format!("{updated}/{want} updated"));
    }
    if replicas > updated {
        return Rollout::Progressing(format!("{} old replicas terminating", replicas - updated));
    }
    if available < want {
        let completed = progressing.is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
        let msg = format!("{available}/{want} available");
        return if completed { Rollout::Unavailable(msg) } else { Rollout::Progressing(msg) };
    }
    Rollout::Available
}

/// Why a pod will not become ready by itself, if it will not.
pub fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers =
        status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for c in containers {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            if STUCK.contains(&reason.as_str()) {
                let message = w.message.clone().map(|m| format!(" ({m})")).unwrap_or_default();
                return Some(format!("pod {name}: {reason}{message}, {} restarts", c.restart_count));
            }
        }
    }
    (status.phase.as_deref() == Some("Failed")).then(|| {
        format!("pod {name} failed: {}", status.message.clone().or(status.reason.clone()).unwrap_or_default())
    })
}

/// The state with the pods' word on it: a rollout that is not available and has a pod that will
/// not start fails.
pub fn with_pods(state: Rollout, pods: &[Pod]) -> Rollout {
    match state {
        Rollout::Progressing(_) | Rollout::Unavailable(_) => match pods.iter().find_map(pod_failure) {
            Some(why) => Rollout::Failed(why),
            None => state,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": generation},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn progressing(reason: &str) -> serde_json::Value {
        json!([{"type": "Progressing", "status": "True", "reason": reason}])
    }

    #[test]
    fn like_kubectl_rollout_status() {
        let done = json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "conditions": progressing("NewReplicaSetAvailable")});
        assert_eq!(state(&deployment(3, done.clone())), Rollout::Available);
        assert!(
            matches!(state(&deployment(4, done)), Rollout::Progressing(_)),
            "new generation not observed"
        );
        let surge = json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2, "conditions": progressing("ReplicaSetUpdated")});
        assert_eq!(state(&deployment(4, surge)), Rollout::Progressing("1/2 updated".into()));
        let old = json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2, "conditions": progressing("ReplicaSetUpdated")});
        assert!(matches!(state(&deployment(4, old)), Rollout::Progressing(_)));
        let first = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 0, "conditions": progressing("NewReplicaSetCreated")});
        assert_eq!(state(&deployment(1, first)), Rollout::Progressing("0/2 available".into()));
        let lost = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "conditions": progressing("NewReplicaSetAvailable")});
        assert_eq!(state(&deployment(1, lost)), Rollout::Unavailable("1/2 available".into()));
        let late = json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "took too long"}]});
        assert!(matches!(state(&deployment(1, late)), Rollout::Failed(m) if m.contains("took too long")));
    }

    #[test]
    fn crashlooping_pods_fail_the_rollout() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "d-abc"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}]},
        }))
        .unwrap();
        let healthy: Pod =
            serde_json::from_value(json!({"metadata": {"name": "ok"}, "status": {"phase": "Running"}}))
                .unwrap();
        let waiting = Rollout::Progressing("1/2 updated".into());
        assert_eq!(with_pods(waiting.clone(), std::slice::from_ref(&healthy)), waiting);
        assert_eq!(
            with_pods(waiting, &[healthy, pod]),
            Rollout::Failed("pod d-abc: CrashLoopBackOff (back-off 40s), 4 restarts".into())
        );
        assert_eq!(with_pods(Rollout::Available, &[]), Rollout::Available);
    }
}
