{{/*
Timing rules that the chart enforces at render time, so a bad profile fails `helm template` with a
message naming the component instead of deploying pods that get killed mid-drain or flap on load.
*/}}

{{/* Seconds of the preStop pause: endpoints and DNS forget the pod before it stops taking calls. */}}
{{- define "raddiff-lib.preStopSeconds" -}}
{{- if hasKey .Values "preStopSeconds" }}{{ .Values.preStopSeconds | int }}{{ else }}{{ .Values.global.preStopSeconds | int }}{{ end -}}
{{- end }}

{{/* Must exceed preStop pause + drain (RADDIFF_<X>_DRAIN_SECONDS), or the kubelet kills in-flight calls. */}}
{{- define "raddiff-lib.gracePeriodSeconds" -}}
{{- $pause := include "raddiff-lib.preStopSeconds" . | int -}}
{{- $drain := .Values.drainSeconds | ceil | int -}}
{{- $grace := .Values.terminationGracePeriodSeconds | default (add $pause $drain 15) | int -}}
{{- if le $grace (add $pause $drain) -}}
{{- fail (printf "%s: terminationGracePeriodSeconds (%d) must be longer than preStopSeconds (%d) + drainSeconds (%d)" .Values.component $grace $pause $drain) -}}
{{- end -}}
{{ $grace }}
{{- end }}

{{/* The startup probe allows twice the expected model load before the kubelet restarts the pod. */}}
{{- define "raddiff-lib.startupFailureThreshold" -}}
{{- $period := .Values.startupProbe.periodSeconds | int -}}
{{- $budget := mul 2 (.Values.modelLoadSeconds | int) -}}
{{- max 3 (div (add $budget $period -1) $period) -}}
{{- end }}

{{/* Scaling down sooner than a new replica can load its model makes the autoscaler thrash. */}}
{{- define "raddiff-lib.cooldownSeconds" -}}
{{- $cooldown := .Values.autoscaling.cooldownSeconds | int -}}
{{- if le $cooldown (.Values.modelLoadSeconds | int) -}}
{{- fail (printf "%s: autoscaling.cooldownSeconds (%d) must be longer than modelLoadSeconds (%d)" .Values.component $cooldown (.Values.modelLoadSeconds | int)) -}}
{{- end -}}
{{ $cooldown }}
{{- end }}
