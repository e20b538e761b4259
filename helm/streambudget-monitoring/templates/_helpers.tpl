{{/*
The chart name, 63 characters at most (a DNS label).
*/}}
{{- define "streambudget-monitoring.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: <release>-streambudget-monitoring,
or the release name when it already contains the chart name.
*/}}
{{- define "streambudget-monitoring.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Common labels, commonLabels included (the chart's own win over them).
*/}}
{{- define "streambudget-monitoring.labels" -}}
{{- $labels := dict
  "helm.sh/chart" (printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-")
  "app.kubernetes.io/name" (include "streambudget-monitoring.name" .)
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/version" .Chart.AppVersion
  "app.kubernetes.io/component" "monitoring"
  "app.kubernetes.io/part-of" "streambudget"
  "app.kubernetes.io/managed-by" .Release.Service }}
{{- toYaml (merge $labels .Values.commonLabels) }}
{{- end }}

{{/*
One alert rule with the release's overrides applied, as YAML, or nothing when
the alert is disabled. Call it with (dict "rule" RULE "root" $). It sets
for, severity and labels from alerts.<name>, adds alertLabels, the
runbook_url annotation, and puts the effective for in place of FOR_DURATION
in the annotations.
*/}}
{{- define "streambudget-monitoring.alert" -}}
{{- $r := deepCopy .rule }}
{{- $v := .root.Values }}
{{- $name := get $r "alert" }}
{{- $o := get $v.alerts $name | default dict }}
{{- if ne (toString (get $o "enabled")) "false" }}
{{- $for := default (get $r "for" | default "0s") (get $o "for") }}
{{- $_ := set $r "for" $for }}
{{- $labels := merge (dict) (get $o "labels" | default dict) $v.alertLabels (get $r "labels" | default dict) }}
{{- with get $o "severity" }}
{{- $_ := set $labels "severity" . }}
{{- end }}
{{- $_ := set $r "labels" $labels }}
{{- $annotations := dict }}
{{- range $k, $text := get $r "annotations" | default dict }}
{{- $_ := set $annotations $k (replace "FOR_DURATION" $for $text) }}
{{- end }}
{{- $_ := set $annotations "runbook_url" (printf "%s#%s" $v.runbookBaseURL (lower $name)) }}
{{- $_ := set $r "annotations" $annotations }}
{{- toYaml $r }}
{{- end }}
{{- end }}
