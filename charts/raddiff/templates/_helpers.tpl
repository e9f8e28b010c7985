{{/* The gRPC components, in the order clients list them. */}}
{{- define "raddiff.grpcComponents" -}}
{{- list "vlm" "embedding" "llm-proxy" "localize" "evaluator" | toJson -}}
{{- end }}

{{- define "raddiff.labels" -}}
{{ include "raddiff-lib.labelsFor" (dict "ctx" .ctx "component" .component) }}
{{- end }}

{{- define "raddiff.orchestratorUrl" -}}
{{- $o := index .Values "orchestrator" -}}
{{- printf "http://%s:%v" (include "raddiff-lib.componentName" (dict "ctx" . "component" "orchestrator")) $o.ports.servicePort -}}
{{- end }}

{{/* RADDIFF_DATA_ROOTS: the listed folders under paths.data, colon-separated, or paths.data itself. */}}
{{- define "raddiff.dataRoots" -}}
{{- $base := .Values.global.paths.data -}}
{{- $roots := list -}}
{{- range .Values.global.data.roots }}{{ $roots = append $roots (printf "%s/%s" $base (trimPrefix "/" .)) }}{{ end -}}
{{- if $roots }}{{ join ":" $roots }}{{ else }}{{ $base }}{{ end -}}
{{- end }}

{{/* A container securityContext and the pod one, shared with the Jobs. */}}
{{- define "raddiff.podSecurity" -}}
securityContext:
  {{- toYaml .Values.global.podSecurityContext | nindent 2 }}
{{- end }}
