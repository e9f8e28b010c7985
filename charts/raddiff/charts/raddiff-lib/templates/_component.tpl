{{/*
One RadDiff component (a gRPC model service or the REST orchestrator), rendered from its chart's values.
A component chart's only template is:  {{ include "raddiff-lib.component" . }}
*/}}
{{- define "raddiff-lib.component" -}}
{{- if .Values.enabled }}
{{ include "raddiff-lib.serviceAccount" . }}
---
{{ include "raddiff-lib.configMap" . }}
---
{{ include "raddiff-lib.deployment" . }}
---
{{ include "raddiff-lib.service" . }}
---
{{ include "raddiff-lib.pdb" . }}
{{- with include "raddiff-lib.autoscaler" . }}
---
{{ . }}
{{- end }}
{{- if .Values.global.networkPolicy.enabled }}
---
{{ include "raddiff-lib.networkPolicy" . }}
{{- end }}
{{- if .Values.global.serviceMonitor.enabled }}
---
{{ include "raddiff-lib.serviceMonitor" . }}
{{- end }}
{{- if and (eq .Values.protocol "http") .Values.ingress .Values.ingress.enabled }}
---
{{ include "raddiff-lib.ingress" . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "raddiff-lib.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "raddiff-lib.fullname" . }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
# The services never call the Kubernetes API.
automountServiceAccountToken: false
{{- end }}

{{/* The component's own keys, all under its env prefix; shared keys live in <release>-shared. */}}
{{- define "raddiff-lib.configData" -}}
{{- $p := .Values.envPrefix -}}
{{ $p }}HOST: "0.0.0.0"
{{- if eq .Values.protocol "grpc" }}
{{ $p }}GRPC_PORT: {{ .Values.ports.grpc | quote }}
{{ $p }}METRICS_PORT: {{ .Values.ports.metrics | quote }}
{{ $p }}DRAIN_SECONDS: {{ .Values.drainSeconds | quote }}
{{ $p }}MAX_CONCURRENT_RPCS: {{ .Values.maxConcurrentRpcs | quote }}
{{- else }}
{{ $p }}PORT: {{ .Values.ports.http | quote }}
{{- end }}
{{- range $key, $value := .Values.config }}
{{ $p }}{{ $key | upper }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "raddiff-lib.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "raddiff-lib.fullname" . }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
data:
  {{- include "raddiff-lib.configData" . | nindent 2 }}
{{- end }}

{{- define "raddiff-lib.containerPort" -}}
{{- if eq .Values.protocol "grpc" }}{{ .Values.ports.grpc }}{{ else }}{{ .Values.ports.http }}{{ end -}}
{{- end }}

{{/* Native gRPC probes (grpc.health.v1) for the model services, HTTP for the orchestrator. */}}
{{- define "raddiff-lib.probeAction" -}}
{{- if eq .ctx.Values.protocol "grpc" -}}
grpc:
  port: {{ .ctx.Values.ports.grpc }}
  service: {{ .service | quote }}
{{- else -}}
httpGet:
  path: {{ .path }}
  port: http
{{- end }}
{{- end }}

{{- define "raddiff-lib.deployment" -}}
{{- $full := include "raddiff-lib.fullname" . -}}
{{- $g := .Values.global -}}
{{- $gpu := .Values.gpu | default 0 | int -}}
{{- $resources := deepCopy (.Values.resources | default dict) -}}
{{- if gt $gpu 0 }}
{{- $_ := set $resources "requests" (merge (dict $g.gpuResourceName $gpu) ($resources.requests | default dict)) }}
{{- $_ := set $resources "limits" (merge (dict $g.gpuResourceName $gpu) ($resources.limits | default dict)) }}
{{- end }}
{{- $vols := .Values.volumes | default dict -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $full }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      {{- toYaml .Values.rollingUpdate | nindent 6 }}
  selector:
    matchLabels:
      {{- include "raddiff-lib.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "raddiff-lib.labels" . | nindent 8 }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include "raddiff-lib.configData" . | sha256sum }}
        checksum/shared: {{ toJson $g | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $full }}
      automountServiceAccountToken: false
      # Service links would inject RADDIFF_<SVC>_PORT=tcp://... variables that collide with the settings' env prefixes.
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ include "raddiff-lib.gracePeriodSeconds" . }}
      securityContext:
        {{- toYaml $g.podSecurityContext | nindent 8 }}
      {{- with $g.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      affinity:
        {{- if .Values.affinity }}
        {{- toYaml .Values.affinity | nindent 8 }}
        {{- else }}
        # By default, replicas prefer different nodes, so one node's loss leaves the service up.
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "raddiff-lib.selectorLabels" . | nindent 20 }}
        {{- end }}
      containers:
        - name: {{ .Values.component }}
          image: {{ include "raddiff-lib.image" . | quote }}
          imagePullPolicy: {{ $g.image.pullPolicy }}
          command:
            {{- toYaml .Values.command | nindent 12 }}
          {{- with .Values.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            {{- if eq .Values.protocol "grpc" }}
            - name: grpc
              containerPort: {{ .Values.ports.grpc }}
              protocol: TCP
            - name: metrics
              containerPort: {{ .Values.ports.metrics }}
              protocol: TCP
            {{- else }}
            - name: http
              containerPort: {{ .Values.ports.http }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "raddiff-lib.sharedConfigName" . }}
            - configMapRef:
                name: {{ $full }}
          {{- if or .Values.secretEnv .Values.extraEnv }}
          env:
            {{- range .Values.secretEnv }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ .secretName }}
                  key: {{ .key }}
                  optional: {{ .optional | default false }}
            {{- end }}
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          # Model loading happens before the port serves; the kubelet waits up to twice the expected load.
          startupProbe:
            {{- include "raddiff-lib.probeAction" (dict "ctx" . "service" "" "path" .Values.probes.startupPath) | nindent 12 }}
            periodSeconds: {{ .Values.startupProbe.periodSeconds }}
            failureThreshold: {{ include "raddiff-lib.startupFailureThreshold" . }}
            timeoutSeconds: 5
          readinessProbe:
            {{- include "raddiff-lib.probeAction" (dict "ctx" . "service" (.Values.grpcService | default "") "path" .Values.probes.readinessPath) | nindent 12 }}
            periodSeconds: 5
            failureThreshold: 2
            timeoutSeconds: 3
          livenessProbe:
            {{- include "raddiff-lib.probeAction" (dict "ctx" . "service" "" "path" .Values.probes.livenessPath) | nindent 12 }}
            periodSeconds: 15
            failureThreshold: 4
            timeoutSeconds: 5
          lifecycle:
            preStop:
              # Keep serving while endpoints, DNS and clients forget this pod; then SIGTERM starts the drain.
              sleep:
                seconds: {{ include "raddiff-lib.preStopSeconds" . }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- toYaml $g.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $vols.models }}
            - name: models
              mountPath: {{ $g.paths.models }}
              readOnly: true
            {{- end }}
            {{- if $vols.scratch }}
            - name: scratch
              mountPath: {{ $g.paths.scratch }}
            {{- end }}
            {{- if $vols.data }}
            - name: data
              mountPath: {{ $g.paths.data }}
              readOnly: true
            {{- end }}
            {{- if $vols.shm }}
            - name: shm
              mountPath: /dev/shm
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSize | default "1Gi" }}
        {{- if $vols.models }}
        - name: models
          persistentVolumeClaim:
            claimName: {{ include "raddiff-lib.modelCacheClaim" . }}
            readOnly: true
        {{- end }}
        {{- if $vols.scratch }}
        - name: scratch
          persistentVolumeClaim:
            claimName: {{ include "raddiff-lib.scratchClaim" . }}
        {{- end }}
        {{- if $vols.data }}
        - name: data
          persistentVolumeClaim:
            claimName: {{ include "raddiff-lib.dataClaim" . }}
            readOnly: true
        {{- end }}
        {{- if $vols.shm }}
        - name: shm
          emptyDir:
            medium: Memory
            sizeLimit: {{ $vols.shm }}
        {{- end }}
{{- end }}

{{/*
gRPC services get a headless Service: clients resolve dns:///<name>-headless:<port> to every ready pod
and balance calls with round_robin (a ClusterIP balances connections, and gRPC keeps one open).
*/}}
{{- define "raddiff-lib.service" -}}
apiVersion: v1
kind: Service
metadata:
  {{- if eq .Values.protocol "grpc" }}
  name: {{ include "raddiff-lib.headlessName" . }}
  {{- else }}
  name: {{ include "raddiff-lib.fullname" . }}
  {{- end }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
spec:
  {{- if eq .Values.protocol "grpc" }}
  clusterIP: None
  publishNotReadyAddresses: false
  {{- else }}
  type: ClusterIP
  {{- end }}
  selector:
    {{- include "raddiff-lib.selectorLabels" . | nindent 4 }}
  ports:
    {{- if eq .Values.protocol "grpc" }}
    - name: grpc
      port: {{ .Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ .Values.ports.metrics }}
      targetPort: metrics
      protocol: TCP
    {{- else }}
    - name: http
      port: {{ .Values.ports.servicePort }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- end }}

{{- define "raddiff-lib.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "raddiff-lib.fullname" . }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
spec:
  {{- toYaml .Values.pdb | nindent 2 }}
  selector:
    matchLabels:
      {{- include "raddiff-lib.selectorLabels" . | nindent 6 }}
{{- end }}

{{- define "raddiff-lib.serviceMonitor" -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "raddiff-lib.fullname" . }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
    {{- with .Values.global.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "raddiff-lib.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: {{ ternary "metrics" "http" (eq .Values.protocol "grpc") }}
      path: /metrics
      interval: {{ .Values.global.serviceMonitor.interval }}
{{- end }}

{{- define "raddiff-lib.ingress" -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "raddiff-lib.fullname" . }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
  {{- with .Values.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with .Values.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    - host: {{ .Values.ingress.host | quote }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {{ include "raddiff-lib.fullname" . }}
                port:
                  name: http
{{- end }}
