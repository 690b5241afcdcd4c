{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "shop-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, or <release>-<chart> when the release name lacks the chart's. */}}
{{- define "shop-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "shop-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object (the same app.kubernetes.io/* set manifests/operator uses, plus Helm's). */}}
{{- define "shop-operator.labels" -}}
helm.sh/chart: {{ include "shop-operator.chart" . }}
{{ include "shop-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: shop-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Stable subset used in selectors. */}}
{{- define "shop-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shop-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shop-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shop-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "shop-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Least privilege: exactly the verbs the reconciler uses — the same rules as
manifests/operator/rbac.yaml (scripts/check-packaging fails when they differ).
*/}}
{{- define "shop-operator.rules" }}
rules:
  - apiGroups: ["platform.shop"]
    resources: ["shopplatforms"]
    verbs: ["get", "list", "watch", "patch"]
  - apiGroups: ["platform.shop"]
    resources: ["shopplatforms/status"]
    verbs: ["get", "patch"]
  # Owner references with blockOwnerDeletion need update on the owner's finalizers.
  - apiGroups: ["platform.shop"]
    resources: ["shopplatforms/finalizers"]
    verbs: ["update"]
  - apiGroups: ["apps"]
    resources: ["deployments", "statefulsets"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: [""]
    resources: ["services", "configmaps"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # Secrets: generated ones are created once, connection Secrets applied; never deleted.
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "patch"]
  # Migration Jobs: created once per version, only read after that; a failed one whose
  # template changed is deleted and created anew.
  - apiGroups: ["batch"]
    resources: ["jobs"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # The pods of a Deployment that is not available, to tell a crashloop from a slow start.
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["list"]
  - apiGroups: ["policy"]
    resources: ["poddisruptionbudgets"]
    verbs: ["get", "create", "patch", "delete"]
  - apiGroups: ["networking.k8s.io"]
    resources: ["ingresses"]
    verbs: ["get", "create", "patch", "delete"]
  # spec.networkPolicies: applied, watched, and the ones no longer desired deleted.
  - apiGroups: ["networking.k8s.io"]
    resources: ["networkpolicies"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # services.<name>.autoscaling.
  - apiGroups: ["autoscaling"]
    resources: ["horizontalpodautoscalers"]
    verbs: ["get", "create", "patch", "delete"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
  # database.mode cloudnativepg only.
  - apiGroups: ["postgresql.cnpg.io"]
    resources: ["clusters", "scheduledbackups"]
    verbs: ["get", "create", "patch"]
  # monitoring.serviceMonitor (only where the Prometheus Operator's CRD is installed).
  - apiGroups: ["monitoring.coreos.com"]
    resources: ["servicemonitors"]
    verbs: ["get", "create", "patch"]
  # kafka.mode strimzi only: topics as KafkaTopic objects, their Ready condition read back.
  - apiGroups: ["kafka.strimzi.io"]
    resources: ["kafkatopics"]
    verbs: ["get", "create", "patch"]
{{- end }}
