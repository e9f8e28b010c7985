{{/*
The Indexed Job spec of a benchmark sweep, shared by the rendered Job (charts/jobs/render_bench_job.py)
and the suspended CronJob. dict "ctx" $ "pairs" N "configMap" NAME "name" JOBNAME.
Index i runs pair i (0-based line of the JSONL, blank lines excluded) against the orchestrator.
*/}}
{{- define "raddiff.benchJobSpec" -}}
{{- $ctx := .ctx -}}
{{- $b := $ctx.Values.bench -}}
{{- $pairs := .pairs | int -}}
{{- if lt $pairs 1 }}{{ fail "bench: pairs must be at least 1 (one Job index per benchmark pair)" }}{{ end -}}
completionMode: Indexed
completions: {{ $pairs }}
parallelism: {{ min $pairs ($b.parallelism | int) }}
# Each pair retries on its own; a sweep fails only when too many pairs do.
backoffLimitPerIndex: {{ $b.backoffLimitPerIndex }}
maxFailedIndexes: {{ min $pairs ($b.maxFailedIndexes | int) }}
activeDeadlineSeconds: {{ $b.activeDeadlineSeconds }}
ttlSecondsAfterFinished: {{ $b.ttlSecondsAfterFinished }}
podFailurePolicy:
  rules:
    # Bad input (a malformed pair, images that do not exist) will not improve on retry: fail the index.
    - action: FailIndex
      onExitCodes:
        containerName: bench
        operator: In
        values: [{{ $b.badInputExitCode }}]
    # A pod evicted or preempted did nothing wrong: retry without counting it.
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  metadata:
    labels:
      {{- include "raddiff.labels" (dict "ctx" $ctx "component" "bench") | nindent 6 }}
  spec:
    restartPolicy: Never
    automountServiceAccountToken: false
    enableServiceLinks: false
    {{- include "raddiff.podSecurity" $ctx | nindent 4 }}
    {{- with $ctx.Values.global.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    containers:
      - name: bench
        image: {{ include "raddiff-lib.imageRef" (dict "global" $ctx.Values.global "image" $b.image) | quote }}
        imagePullPolicy: {{ $ctx.Values.global.image.pullPolicy }}
        # raddiff-bench comes with the accuracy harness; run-pair exits {{ $b.badInputExitCode }} on bad input.
        command:
          - raddiff-bench
          - run-pair
          - --jsonl
          - /bench/pairs.jsonl
          - --index
          - $(JOB_COMPLETION_INDEX)
          - --orchestrator
          - {{ include "raddiff.orchestratorUrl" $ctx }}
          {{- range $b.extraArgs }}
          - {{ . | quote }}
          {{- end }}
        env:
          - {name: HOME, value: /tmp}
        resources:
          {{- toYaml $b.resources | nindent 10 }}
        securityContext:
          {{- toYaml $ctx.Values.global.containerSecurityContext | nindent 10 }}
        volumeMounts:
          - {name: tmp, mountPath: /tmp}
          - {name: pairs, mountPath: /bench, readOnly: true}
    volumes:
      - name: tmp
        emptyDir: {sizeLimit: 1Gi}
      - name: pairs
        configMap:
          name: {{ .configMap }}
          items:
            - {key: pairs.jsonl, path: pairs.jsonl}
{{- end }}
