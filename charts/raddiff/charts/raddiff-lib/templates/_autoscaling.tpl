{{/*
Exactly one autoscaler per Deployment, or none:
  signal "queue" (GPU services): KEDA ScaledObject on raddiff_inflight_requests from Prometheus, or, where
    KEDA is absent (global.keda.enabled=false), an HPA on the same metric as a Pods custom metric
    (served by prometheus-adapter). GPU utilisation is the wrong signal: a batching engine is busy
    at any load, and requests queue long before it saturates.
  signal "cpu" (CPU services): an HPA on CPU utilisation.
*/}}
{{- define "raddiff-lib.autoscaler" -}}
{{- $a := .Values.autoscaling -}}
{{- if $a.enabled }}
{{- if eq $a.signal "queue" }}
{{- if .Values.global.keda.enabled }}
{{ include "raddiff-lib.scaledObject" . }}
{{- else }}
{{ include "raddiff-lib.hpa" (dict "ctx" . "metrics" (include "raddiff-lib.queueMetric" .)) }}
{{- end }}
{{- else if eq $a.signal "cpu" }}
{{ include "raddiff-lib.hpa" (dict "ctx" . "metrics" (include "raddiff-lib.cpuMetric" .)) }}
{{- else }}
{{- fail (printf "%s: autoscaling.signal must be queue or cpu, not %q" .Values.component $a.signal) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Scale down one pod a minute after the cooldown window; scale up two a minute, at once. */}}
{{- define "raddiff-lib.scalingBehavior" -}}
scaleDown:
  stabilizationWindowSeconds: {{ include "raddiff-lib.cooldownSeconds" . }}
  policies:
    - type: Pods
      value: 1
      periodSeconds: 60
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - type: Pods
      value: {{ .Values.autoscaling.scaleUpPods | default 2 }}
      periodSeconds: 60
{{- end }}

{{- define "raddiff-lib.inflightQuery" -}}
sum(raddiff_inflight_requests{namespace="{{ .Release.Namespace }}",pod=~"{{ include "raddiff-lib.fullname" . }}-[a-z0-9]+-[a-z0-9]+"})
{{- end }}

{{- define "raddiff-lib.scaledObject" -}}
{{- $a := .Values.autoscaling -}}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "raddiff-lib.fullname" . }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "raddiff-lib.fullname" . }}
  pollingInterval: {{ $a.pollingSeconds | default 15 }}
  # cooldownPeriod governs scaling to zero; N -> M is the HPA's stabilization window, set to the same.
  cooldownPeriod: {{ include "raddiff-lib.cooldownSeconds" . }}
  minReplicaCount: {{ $a.minReplicas }}
  maxReplicaCount: {{ $a.maxReplicas }}
  # Prometheus down or the query failing: hold at least the fallback count rather than shrink blind.
  fallback:
    failureThreshold: 3
    replicas: {{ $a.fallbackReplicas }}
    behavior: currentReplicasIfHigher
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        {{- include "raddiff-lib.scalingBehavior" . | nindent 8 }}
  triggers:
    - type: prometheus
      name: inflight
      metricType: AverageValue
      metadata:
        serverAddress: {{ .Values.global.keda.prometheusAddress | quote }}
        query: {{ include "raddiff-lib.inflightQuery" . | quote }}
        threshold: {{ $a.inflightPerReplica | quote }}
        # An empty result is an error (so the fallback applies), not a zero load.
        ignoreNullValues: "false"
{{- end }}

{{- define "raddiff-lib.queueMetric" -}}
- type: Pods
  pods:
    metric:
      name: raddiff_inflight_requests
    target:
      type: AverageValue
      averageValue: {{ .Values.autoscaling.inflightPerReplica | quote }}
{{- end }}

{{- define "raddiff-lib.cpuMetric" -}}
- type: Resource
  resource:
    name: cpu
    target:
      type: Utilization
      averageUtilization: {{ .Values.autoscaling.cpuUtilization }}
{{- end }}

{{- define "raddiff-lib.hpa" -}}
{{- $ctx := .ctx -}}
{{- $a := $ctx.Values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "raddiff-lib.fullname" $ctx }}
  labels:
    {{- include "raddiff-lib.labels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "raddiff-lib.fullname" $ctx }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- .metrics | nindent 4 }}
  behavior:
    {{- include "raddiff-lib.scalingBehavior" $ctx | nindent 4 }}
{{- end }}
