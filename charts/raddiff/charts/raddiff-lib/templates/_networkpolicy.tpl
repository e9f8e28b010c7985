{{/*
Who may talk to whom. Ingress: only the components listed in `clients` reach the service port (the
orchestrator reaches the model services; localize and evaluator also reach the LLM proxy), and the
monitoring namespace reaches the metrics port. Egress: DNS, the components listed in `calls`, and,
for the LLM proxy alone, the outside world (externalEgress).
*/}}
{{- define "raddiff-lib.networkPolicy" -}}
{{- $np := .Values.global.networkPolicy -}}
{{- $port := include "raddiff-lib.containerPort" . -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "raddiff-lib.fullname" . }}
  labels:
    {{- include "raddiff-lib.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "raddiff-lib.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    {{- if .Values.clients }}
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .Release.Name }}
            matchExpressions:
              - key: app.kubernetes.io/component
                operator: In
                values:
                  {{- toYaml .Values.clients | nindent 18 }}
      ports:
        - port: {{ $port }}
          protocol: TCP
    {{- else }}
    # No client list: the front door is open to every source on its own port only.
    - ports:
        - port: {{ $port }}
          protocol: TCP
    {{- end }}
    {{- if eq .Values.protocol "grpc" }}
    - from:
        {{- toYaml $np.metricsFrom | nindent 8 }}
      ports:
        - port: {{ .Values.ports.metrics }}
          protocol: TCP
    {{- end }}
  egress:
    - to:
        {{- toYaml $np.dnsTo | nindent 8 }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- if .Values.calls }}
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .Release.Name }}
            matchExpressions:
              - key: app.kubernetes.io/component
                operator: In
                values:
                  {{- toYaml .Values.calls | nindent 18 }}
    {{- end }}
    {{- if .Values.externalEgress }}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except:
              {{- toYaml $np.clusterCIDRs | nindent 14 }}
      ports:
        {{- toYaml $np.externalPorts | nindent 8 }}
    {{- end }}
    {{- with .Values.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
