{{- /*
lume-platform.testPod: a `helm test` pod that runs a Python check in the platform image with the LUME
service environment, retrying until tests.timeoutSeconds pass; restricted like every platform pod.
Call with (dict "context" $ "name" "mysql" "script" "…python…" "volumes" bool).
The script defines check() and raises on failure.
*/ -}}
{{- define "lume-platform.testPod" -}}
{{- $ := .context -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "lume-platform.componentName" (dict "context" $ "component" (printf "test-%s" .name)) }}
  labels:
    {{- include "lume-platform.labels" (dict "context" $ "component" "test") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    {{- include "lume-platform.podSecurityContext" 1000 | nindent 4 }}
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: check
      image: {{ include "lume-platform.platformImage" $ }}
      imagePullPolicy: {{ $.Values.platformImage.pullPolicy }}
      command:
        - python
        - -c
        - |
          import os, sys, time
          {{- .script | nindent 10 }}
          deadline = time.monotonic() + {{ $.Values.tests.timeoutSeconds | int }}
          while True:
              try:
                  check()
              except Exception as exc:
                  if time.monotonic() > deadline:
                      sys.exit(f"FAILED {{ .name }}: {type(exc).__name__}: {exc}")
                  print(f"waiting for {{ .name }}: {exc}", flush=True)
                  time.sleep(3)
              else:
                  print("OK {{ .name }}")
                  break
      envFrom:
        {{- include "lume-platform.serviceEnvFrom" $ | nindent 8 }}
      securityContext:
        {{- include "lume-platform.containerSecurityContext" $ | nindent 8 }}
      {{- if .volumes }}
      volumeMounts:
        - name: shared-data
          mountPath: {{ $.Values.sharedVolume.mountAlias | quote }}
      {{- end }}
  {{- if .volumes }}
  volumes:
    - name: shared-data
      persistentVolumeClaim:
        claimName: {{ include "lume-platform.sharedClaimName" $ }}
  {{- end }}
{{- end -}}
