{{- /*
Named templates shared by every manifest of the chart: names, labels, images, security contexts and the
service environment. Everything here is written once and included everywhere.
*/ -}}

{{- /* lume-platform.name: the chart name, or nameOverride. */ -}}
{{- define "lume-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* lume-platform.fullname: the prefix of every resource name (release name, plus the chart name unless the release name contains it). */ -}}
{{- define "lume-platform.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "lume-platform.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* lume-platform.componentName: "<fullname>-<component>"; call with (dict "context" $ "component" "mysql"). */ -}}
{{- define "lume-platform.componentName" -}}
{{- printf "%s-%s" (include "lume-platform.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* lume-platform.selectorLabels: the immutable labels selectors use (name, instance, component). */ -}}
{{- define "lume-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lume-platform.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- /* lume-platform.labels: the app.kubernetes.io/* labels of every resource; call with (dict "context" $ "component" "…"). */ -}}
{{- define "lume-platform.labels" -}}
{{ include "lume-platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: lume-platform
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .context.Chart.Name .context.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- /* lume-platform.image: "repository:tag" of an image block; call with (dict "image" .Values.mysql.image "context" $). */ -}}
{{- define "lume-platform.image" -}}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion (.image.tag | toString)) -}}
{{- end -}}

{{- /* lume-platform.platformImage: the platform image reference. */ -}}
{{- define "lume-platform.platformImage" -}}
{{- include "lume-platform.image" (dict "image" .Values.platformImage "context" .) -}}
{{- end -}}

{{- /* lume-platform.flowRunImage: the default image of flow-run pods. */ -}}
{{- define "lume-platform.flowRunImage" -}}
{{- default (include "lume-platform.platformImage" .) .Values.prefect.flowRuns.image -}}
{{- end -}}

{{- /*
lume-platform.podSecurityContext: a pod securityContext that passes Pod Security "restricted"
(non-root, seccomp RuntimeDefault); call with the user id. fsGroup makes fresh volumes writable by it.
*/ -}}
{{- define "lume-platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- /* lume-platform.containerSecurityContext: the container half of Pod Security "restricted". */ -}}
{{- define "lume-platform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- /* Names of the resources several templates refer to. */ -}}
{{- define "lume-platform.serviceEnvName" -}}
{{- include "lume-platform.componentName" (dict "context" . "component" "service-env") -}}
{{- end -}}
{{- define "lume-platform.prefectServerName" -}}
{{- include "lume-platform.componentName" (dict "context" . "component" "prefect-server") -}}
{{- end -}}
{{- define "lume-platform.mysqlName" -}}
{{- include "lume-platform.componentName" (dict "context" . "component" "mysql") -}}
{{- end -}}
{{- define "lume-platform.mongodbName" -}}
{{- include "lume-platform.componentName" (dict "context" . "component" "mongodb") -}}
{{- end -}}
{{- define "lume-platform.sharedClaimName" -}}
{{- default (include "lume-platform.componentName" (dict "context" . "component" "shared-data")) .Values.sharedVolume.existingClaim -}}
{{- end -}}
{{- define "lume-platform.flowRunServiceAccountName" -}}
{{- include "lume-platform.componentName" (dict "context" . "component" "flow-run") -}}
{{- end -}}
{{- define "lume-platform.operatorName" -}}
{{- include "lume-platform.componentName" (dict "context" . "component" "operator") -}}
{{- end -}}
{{- define "lume-platform.dashboardName" -}}
{{- include "lume-platform.componentName" (dict "context" . "component" "dashboard") -}}
{{- end -}}
{{- define "lume-platform.dashboardTokenSecretName" -}}
{{- default (printf "%s-token" (include "lume-platform.dashboardName" .)) .Values.dashboard.auth.existingSecret -}}
{{- end -}}

{{- /* lume-platform.operatorHealthPort: the port of the operator's liveness endpoint (/healthz). */ -}}
{{- define "lume-platform.operatorHealthPort" -}}
8080
{{- end -}}

{{- /* lume-platform.prefectUiUrl: the Prefect UI as browsers reach it (dashboard.prefectUiUrl, else uiApiUrl without /api). */ -}}
{{- define "lume-platform.prefectUiUrl" -}}
{{- default (trimSuffix "/" (trimSuffix "/api" .Values.prefect.server.uiApiUrl)) .Values.dashboard.prefectUiUrl -}}
{{- end -}}

{{- /* lume-platform.prefectApiUrl: the in-cluster Prefect API URL (PREFECT_API_URL of every client). */ -}}
{{- define "lume-platform.prefectApiUrl" -}}
{{- printf "http://%s.%s.svc:%d/api" (include "lume-platform.prefectServerName" .) .Release.Namespace (int .Values.prefect.server.service.port) -}}
{{- end -}}

{{- /*
lume-platform.generatedPassword: the value of KEY in the existing Secret NAME, else GIVEN, else a new
random one: passwords are generated on install and kept by every upgrade.
Call with (dict "context" $ "secret" NAME "key" KEY "given" VALUE).
*/ -}}
{{- define "lume-platform.generatedPassword" -}}
{{- $existing := lookup "v1" "Secret" .context.Release.Namespace .secret -}}
{{- if .given -}}
{{- .given -}}
{{- else if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{- /*
lume-platform.serviceEnvFrom: the envFrom entries that give a pod the LUME_* service environment
(the ConfigMap and the Secret of the same name).
*/ -}}
{{- define "lume-platform.serviceEnvFrom" -}}
- configMapRef:
    name: {{ include "lume-platform.serviceEnvName" . }}
- secretRef:
    name: {{ include "lume-platform.serviceEnvName" . }}
{{- end -}}

{{- /* lume-platform.envMap: a map of name to value as a container env list; call with the map. */ -}}
{{- define "lume-platform.envMap" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- /* lume-platform.validateValues: fail with every problem in the values at once, naming the value path. */ -}}
{{- define "lume-platform.validateValues" -}}
{{- $problems := list -}}
{{- if hasPrefix "prefect" (lower .Values.prefect.worker.workPool) -}}
{{- $problems = append $problems "prefect.worker.workPool must not start with \"prefect\" (Prefect reserves those names)" -}}
{{- end -}}
{{- if not (isAbs .Values.sharedVolume.mountAlias) -}}
{{- $problems = append $problems (printf "sharedVolume.mountAlias must be an absolute path, got %q" .Values.sharedVolume.mountAlias) -}}
{{- end -}}
{{- if not (isAbs .Values.sharedVolume.mountPath) -}}
{{- $problems = append $problems (printf "sharedVolume.mountPath must be an absolute path, got %q" .Values.sharedVolume.mountPath) -}}
{{- end -}}
{{- if and .Values.sharedVolume.hostPath .Values.sharedVolume.existingClaim -}}
{{- $problems = append $problems "sharedVolume.hostPath and sharedVolume.existingClaim exclude each other" -}}
{{- end -}}
{{- if and (eq .Values.prefect.server.service.type "ClusterIP") .Values.prefect.server.service.nodePort -}}
{{- $problems = append $problems "prefect.server.service.nodePort needs prefect.server.service.type NodePort" -}}
{{- end -}}
{{- if and (eq .Values.dashboard.service.type "ClusterIP") .Values.dashboard.service.nodePort -}}
{{- $problems = append $problems "dashboard.service.nodePort needs dashboard.service.type NodePort" -}}
{{- end -}}
{{- if eq (int .Values.metrics.port) (int (include "lume-platform.operatorHealthPort" .)) -}}
{{- $problems = append $problems (printf "metrics.port must differ from the operator's health port %s" (include "lume-platform.operatorHealthPort" .)) -}}
{{- end -}}
{{- if and .Values.dashboard.auth.enabled .Values.dashboard.auth.existingSecret .Values.dashboard.auth.token -}}
{{- $problems = append $problems "dashboard.auth.token and dashboard.auth.existingSecret exclude each other" -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "\nVALUES VALIDATION:\n  - %s" (join "\n  - " $problems)) -}}
{{- end -}}
{{- end -}}

{{- /*
lume-platform.operatorRules: the rules of files/operator-rules.yaml, split by scope: call with
(dict "context" $ "cluster" true) for the rules on cluster-scoped resources (CRDs, namespaces), which
only a ClusterRole can grant, or "cluster" false for the rest. Each rule is kept verbatim.
*/ -}}
{{- define "lume-platform.operatorRules" -}}
{{- $text := .context.Files.Get "files/operator-rules.yaml" -}}
{{- if not $text -}}
{{- fail "files/operator-rules.yaml is missing from the chart: it holds the operator's RBAC rules" -}}
{{- end -}}
{{- $clusterScoped := list "customresourcedefinitions" "namespaces" "clusterkopfpeerings" "nodes" "persistentvolumes" "storageclasses" -}}
{{- $selected := list -}}
{{- range $rule := fromYamlArray $text -}}
{{- $isCluster := false -}}
{{- range $rule.resources -}}{{- if has . $clusterScoped -}}{{- $isCluster = true -}}{{- end -}}{{- end -}}
{{- if eq $isCluster $.cluster -}}{{- $selected = append $selected $rule -}}{{- end -}}
{{- end -}}
{{- toYaml $selected -}}
{{- end -}}

{{- /* lume-platform.operatorClusterName: a cluster-wide unique name for the operator's cluster-scoped RBAC. */ -}}
{{- define "lume-platform.operatorClusterName" -}}
{{- printf "%s-%s-operator" (include "lume-platform.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* lume-platform.cleanupHookAnnotations: a pre-delete hook object, created before the Job by weight. */ -}}
{{- define "lume-platform.cleanupHookAnnotations" -}}
helm.sh/hook: pre-delete
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}


{{- /* lume-platform.prometheusAnnotations: where an annotation-based Prometheus finds the operator's metrics. */ -}}
{{- define "lume-platform.prometheusAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end -}}
