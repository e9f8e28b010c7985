{{/*
Names and labels. Every object of a component is named <release>-<component>; the headless gRPC
Service adds "-headless", which is why the base name is cut to 54 characters (63 is the DNS-1123 limit).
*/}}
{{- define "raddiff-lib.fullname" -}}
{{- include "raddiff-lib.componentName" (dict "ctx" . "component" .Values.component) -}}
{{- end }}

{{/* dict "ctx" $ "component" "vlm": the same name from the umbrella chart, which computes the targets. */}}
{{- define "raddiff-lib.componentName" -}}
{{- printf "%s-%s" .ctx.Release.Name .component | trunc 54 | trimSuffix "-" -}}
{{- end }}

{{- define "raddiff-lib.headlessName" -}}
{{- printf "%s-headless" (include "raddiff-lib.fullname" .) -}}
{{- end }}

{{/* Release-wide objects (shared ConfigMap, PVCs, Jobs) are named <release>-<suffix>. */}}
{{- define "raddiff-lib.releaseName" -}}
{{- printf "%s-%s" .ctx.Release.Name .suffix | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* dict "ctx" $ "component" "x" */}}
{{- define "raddiff-lib.selectorLabelsFor" -}}
app.kubernetes.io/name: raddiff
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "raddiff-lib.labelsFor" -}}
{{ include "raddiff-lib.selectorLabelsFor" . }}
app.kubernetes.io/part-of: raddiff
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | default .ctx.Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "raddiff-lib.selectorLabels" -}}
{{ include "raddiff-lib.selectorLabelsFor" (dict "ctx" . "component" .Values.component) }}
{{- end }}

{{- define "raddiff-lib.labels" -}}
{{ include "raddiff-lib.labelsFor" (dict "ctx" . "component" .Values.component) }}
{{- end }}

{{/* The image of a component: <registry>/<repository>:<tag>; a tag may carry @sha256:... (skaffold sets both). */}}
{{- define "raddiff-lib.imageRef" -}}
{{- $registry := .global.image.registry | default "" -}}
{{- $tag := .image.tag | default .global.image.tag -}}
{{- if $registry -}}{{ printf "%s/%s:%s" $registry .image.repository $tag }}{{- else -}}{{ printf "%s:%s" .image.repository $tag }}{{- end -}}
{{- end }}

{{- define "raddiff-lib.image" -}}
{{- include "raddiff-lib.imageRef" (dict "global" .Values.global "image" .Values.image) -}}
{{- end }}

{{/* Claim names of the release-wide volumes: an existing claim, or the one this release creates. */}}
{{- define "raddiff-lib.modelCacheClaim" -}}
{{- .Values.global.modelCache.existingClaim | default (printf "%s-model-cache" .Release.Name) -}}
{{- end }}

{{- define "raddiff-lib.scratchClaim" -}}
{{- .Values.global.scratch.existingClaim | default (printf "%s-scratch" .Release.Name) -}}
{{- end }}

{{- define "raddiff-lib.dataClaim" -}}
{{- .Values.global.data.existingClaim | default (printf "%s-data" .Release.Name) -}}
{{- end }}

{{- define "raddiff-lib.sharedConfigName" -}}
{{- printf "%s-shared" .Release.Name -}}
{{- end }}
