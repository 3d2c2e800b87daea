{{- /*
lume-platform.prefectPlaceholder: a Prefect job-template placeholder ("{{ name }}"), which Helm would
otherwise read as its own template syntax. Call with the variable name.
*/ -}}
{{- define "lume-platform.prefectPlaceholder" -}}
{{- printf "{{ %s }}" . | quote -}}
{{- end -}}

{{- /* lume-platform.nullableString: a job variable that is a string or null, with a default. */ -}}
{{- define "lume-platform.nullableString" -}}
anyOf: [{type: string}, {type: "null"}]
default: {{ if .default }}{{ .default | quote }}{{ else }}null{{ end }}
title: {{ .title | quote }}
description: {{ .description | quote }}
{{- end -}}

{{- /*
lume-platform.baseJobTemplate: the work pool's base job template (YAML; the ConfigMap holds it as JSON).
It starts from prefect-kubernetes' default and declares what flow-run pods of the platform need, since
job variables a template does not declare are silently dropped:
  - envFrom the LUME service ConfigMap and Secret, and PREFECT_API_URL;
  - the shared PVC at the mount alias (plus a writable /tmp);
  - a securityContext that passes Pod Security "restricted";
  - image and imagePullPolicy variables whose defaults are the chart's.
The container's env is a list rather than the {{ env }} placeholder: the worker then puts Prefect's
variables and the `env` job variable first and keeps these entries (see prefect_kubernetes.worker).
*/ -}}
{{- define "lume-platform.baseJobTemplate" -}}
{{- $p := "lume-platform.prefectPlaceholder" -}}
{{- $runs := .Values.prefect.flowRuns -}}
job_configuration:
  command: {{ include $p "command" }}
  env: {{ include $p "env" }}
  labels: {{ include $p "labels" }}
  name: {{ include $p "name" }}
  annotations: {{ include $p "annotations" }}
  namespace: {{ include $p "namespace" }}
  stream_output: {{ include $p "stream_output" }}
  pod_watch_timeout_seconds: {{ include $p "pod_watch_timeout_seconds" }}
  job_watch_timeout_seconds: {{ include $p "job_watch_timeout_seconds" }}
  job_manifest:
    apiVersion: batch/v1
    kind: Job
    metadata:
      annotations: {{ include $p "annotations" }}
      generateName: {{ printf "{{ name }}-" | quote }}
      labels: {{ include $p "labels" }}
      namespace: {{ include $p "namespace" }}
    spec:
      backoffLimit: {{ include $p "backoff_limit" }}
      ttlSecondsAfterFinished: {{ include $p "finished_job_ttl" }}
      template:
        spec:
          # prefect-kubernetes refuses a template without these two here (where its own default has them);
          # the API server ignores them in a pod spec.
          completions: 1
          parallelism: 1
          restartPolicy: Never
          serviceAccountName: {{ include $p "service_account_name" }}
          # Flows talk to Prefect and the databases, never to the Kubernetes API.
          automountServiceAccountToken: false
          securityContext:
            {{- include "lume-platform.podSecurityContext" 1000 | nindent 12 }}
          {{- with .Values.imagePullSecrets }}
          imagePullSecrets:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          containers:
            - name: prefect-job
              image: {{ include $p "image" }}
              imagePullPolicy: {{ include $p "image_pull_policy" }}
              args: {{ include $p "command" }}
              env:
                - name: PREFECT_API_URL
                  value: {{ include "lume-platform.prefectApiUrl" . | quote }}
              envFrom:
                {{- include "lume-platform.serviceEnvFrom" . | nindent 16 }}
              resources:
                limits:
                  cpu: {{ include $p "cpu_limit" }}
                  memory: {{ include $p "memory_limit" }}
                requests:
                  cpu: {{ include $p "cpu_request" }}
                  memory: {{ include $p "memory_request" }}
              securityContext:
                {{- include "lume-platform.containerSecurityContext" . | nindent 16 }}
              volumeMounts:
                - name: shared-data
                  mountPath: {{ .Values.sharedVolume.mountAlias | quote }}
                - name: tmp
                  mountPath: /tmp
          volumes:
            - name: shared-data
              persistentVolumeClaim:
                claimName: {{ include "lume-platform.sharedClaimName" . }}
            - name: tmp
              emptyDir: {}
variables:
  type: object
  description: Job variables of LUME flow runs (Flow/FlowRun jobVariables, Prefect job_variables).
  properties:
    name:
      {{- include "lume-platform.nullableString" (dict "title" "Name" "description" "Name given to infrastructure created by the worker.") | nindent 6 }}
    env:
      title: Environment Variables
      description: Environment variables of the flow run, on top of the LUME service environment.
      type: object
      additionalProperties:
        anyOf: [{type: string}, {type: "null"}]
    labels:
      title: Labels
      description: Labels of the flow-run Job and pod.
      type: object
      additionalProperties: {type: string}
    annotations:
      title: Annotations
      description: Annotations of the flow-run Job and pod.
      type: object
      additionalProperties: {type: string}
    command:
      {{- include "lume-platform.nullableString" (dict "title" "Command" "description" "The command of the flow-run container; blank lets the worker generate it.") | nindent 6 }}
    namespace:
      title: Namespace
      description: Namespace of flow-run Jobs (the worker may create Jobs in the release namespace only).
      type: string
      default: {{ .Release.Namespace | quote }}
    image:
      title: Image
      description: Image of the flow-run container.
      type: string
      default: {{ include "lume-platform.flowRunImage" . | quote }}
    image_pull_policy:
      title: Image Pull Policy
      description: Pull policy of the flow-run container.
      type: string
      enum: [IfNotPresent, Always, Never]
      default: {{ $runs.imagePullPolicy | quote }}
    service_account_name:
      title: Service Account Name
      description: Service account of flow-run pods (its token is not mounted).
      type: string
      default: {{ include "lume-platform.flowRunServiceAccountName" . | quote }}
    backoff_limit:
      title: Backoff Limit
      description: Retries of the Job after pod eviction; 0 makes Prefect reschedule the run instead.
      type: integer
      minimum: 0
      default: 0
    finished_job_ttl:
      title: Finished Job TTL
      description: Seconds finished Jobs are kept (null keeps them).
      anyOf: [{type: integer}, {type: "null"}]
      default: {{ if kindIs "invalid" $runs.finishedJobTtlSeconds }}null{{ else }}{{ $runs.finishedJobTtlSeconds }}{{ end }}
    stream_output:
      title: Stream Output
      description: Stream the flow run's output to the worker's log.
      type: boolean
      default: true
    pod_watch_timeout_seconds:
      title: Pod Watch Timeout Seconds
      description: Seconds to wait for the pod to be created.
      type: integer
      default: 300
    job_watch_timeout_seconds:
      title: Job Watch Timeout Seconds
      description: Seconds to wait for each Job event (null waits forever).
      anyOf: [{type: integer}, {type: "null"}]
      default: null
    cpu_request:
      {{- include "lume-platform.nullableString" (dict "title" "CPU Request" "description" "CPU request of the flow-run container (e.g. 500m)." "default" $runs.cpuRequest) | nindent 6 }}
    cpu_limit:
      {{- include "lume-platform.nullableString" (dict "title" "CPU Limit" "description" "CPU limit of the flow-run container." "default" $runs.cpuLimit) | nindent 6 }}
    memory_request:
      {{- include "lume-platform.nullableString" (dict "title" "Memory Request" "description" "Memory request of the flow-run container (e.g. 512Mi)." "default" $runs.memoryRequest) | nindent 6 }}
    memory_limit:
      {{- include "lume-platform.nullableString" (dict "title" "Memory Limit" "description" "Memory limit of the flow-run container." "default" $runs.memoryLimit) | nindent 6 }}
{{- end -}}
