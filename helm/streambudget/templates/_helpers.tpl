{{/*
The chart name, 63 characters at most (a DNS label).
*/}}
{{- define "streambudget.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: <release>-streambudget, or the
release name when it already contains the chart name.
*/}}
{{- define "streambudget.fullname" -}}
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
Chart name and version, for the helm.sh/chart label (never in selectors).
*/}}
{{- define "streambudget.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The budget file, parsed: the few fields the chart needs, as JSON
({"team", "stream", "pods", "region"}). Use it as
  {{- $budget := include "streambudget.budget" . | fromJson }}
It fails the render with a message naming what to fix. The full validation is
`streambudget lint`'s job; the chart checks only what it uses.
*/}}
{{- define "streambudget.budget" -}}
{{- $how := "set it with --set-file budget=budgets/<team>.yaml" }}
{{- $raw := .Values.budget }}
{{- if not (kindIs "string" $raw) }}
{{- fail (printf "budget: must be the budget file's text, got a %s; %s" (kindOf $raw) $how) }}
{{- end }}
{{- if not (trim $raw) }}
{{- fail (printf "budget: the team's budget file is required; %s" $how) }}
{{- end }}
{{- $f := fromYaml $raw }}
{{- if hasKey $f "Error" }}
{{- fail (printf "budget: not a YAML mapping of budget fields (%s); %s" (get $f "Error") $how) }}
{{- end }}
{{- if not (get $f "team") }}
{{- fail (printf "budget: the file has no team; %s" $how) }}
{{- end }}
{{- $team := get $f "team" }}
{{- if or (not (kindIs "string" $team)) (not (regexMatch "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$" (toString $team))) (gt (len (toString $team)) 53) }}
{{- fail (printf "budget: team must be 1 to 53 of a-z, 0-9 and '-', starting and ending with a letter or digit, got %q" (toString $team)) }}
{{- end }}
{{- $stream := "" }}
{{- $region := "" }}
{{- if get $f "stream" }}
{{- $stream = get $f "stream" }}
{{- if not (kindIs "string" $stream) }}
{{- fail (printf "budget: stream must be a Kinesis stream name, got %q" (toString $stream)) }}
{{- end }}
{{- else if get $f "streamARN" }}
{{- $arn := get $f "streamARN" }}
{{- $arnRe := "^arn:aws[a-z-]*:kinesis:([a-z0-9-]+):[0-9]{12}:stream/([a-zA-Z0-9_.-]+)$" }}
{{- if not (and (kindIs "string" $arn) (regexMatch $arnRe (toString $arn))) }}
{{- fail (printf "budget: streamARN must look like arn:aws:kinesis:REGION:ACCOUNT:stream/NAME, got %q" (toString $arn)) }}
{{- end }}
{{- $region = regexReplaceAll $arnRe $arn "${1}" }}
{{- $stream = regexReplaceAll $arnRe $arn "${2}" }}
{{- else }}
{{- fail (printf "budget: the file has no stream (or streamARN); %s" $how) }}
{{- end }}
{{- $pods := 1 }}
{{- if hasKey $f "pods" }}
{{- $p := get $f "pods" }}
{{- if not (or (kindIs "float64" $p) (kindIs "int" $p) (kindIs "int64" $p)) }}
{{- fail (printf "budget: pods must be a whole number from 1 to 1000, got %q" (toString $p)) }}
{{- end }}
{{- $pods = int $p }}
{{- if or (ne (float64 $pods) (float64 $p)) (lt $pods 1) (gt $pods 1000) }}
{{- fail (printf "budget: pods must be a whole number from 1 to 1000, got %v" $p) }}
{{- end }}
{{- end }}
{{- dict "team" $team "stream" $stream "pods" $pods "region" $region | toJson }}
{{- end }}

{{/*
The team, from the budget file.
*/}}
{{- define "streambudget.team" -}}
{{- (include "streambudget.budget" . | fromJson).team }}
{{- end }}

{{/*
Selector labels: name, instance and team. Never the chart version or
helm.sh/chart: a Deployment's selector cannot change after it is created.
*/}}
{{- define "streambudget.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streambudget.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
streambudget.io/team: {{ include "streambudget.team" . }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "streambudget.labels" -}}
helm.sh/chart: {{ include "streambudget.chart" . }}
{{ include "streambudget.selectorLabels" . }}
app.kubernetes.io/version: {{ include "streambudget.version" . | quote }}
app.kubernetes.io/component: consumer
app.kubernetes.io/part-of: streambudget
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with omit .Values.commonLabels "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "streambudget.io/team" "app.kubernetes.io/version" "app.kubernetes.io/component" "app.kubernetes.io/part-of" "app.kubernetes.io/managed-by" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The version label: the image tag, or the chart's appVersion.
*/}}
{{- define "streambudget.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The image reference.
*/}}
{{- define "streambudget.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
The ServiceAccount's name.
*/}}
{{- define "streambudget.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streambudget.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
A string as a YAML scalar that decodes to exactly the same bytes: a literal
block (readable) when that is exact, else a double-quoted JSON string. Call it
right after "key: " with (dict "s" STRING "indent" N), N being the key's
indentation plus 2.
A literal block is exact unless the text has characters YAML does not keep
(CR, other control characters, NEL, LS, PS, BOM), starts its first non-empty
line with a space or tab (the indentation would be misread), ends its last
line with a space or tab (helm trims the end of every manifest) or ends with
more than one newline.
*/}}
{{- define "streambudget.exactScalar" -}}
{{- $s := .s }}
{{- if or (not $s) (regexMatch "[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x{9f}\\x{2028}\\x{2029}\\x{feff}\\x{fffe}\\x{ffff}]" $s) (regexMatch "^\\n*[ \\t]" $s) (regexMatch "[ \\t]\\n?$" $s) (hasSuffix "\n\n" $s) }}
{{- toJson $s }}
{{- else if hasSuffix "\n" $s }}
{{- printf "|\n%s" (trimSuffix "\n" $s | indent .indent) }}
{{- else }}
{{- printf "|-\n%s" ($s | indent .indent) }}
{{- end }}
{{- end }}

{{/*
The name of the es-setup hook's Job and ConfigMap: the full name with
-es-setup, 63 characters at most (the Job's name becomes its pods' job-name
label).
*/}}
{{- define "streambudget.esSetupName" -}}
{{- printf "%s-es-setup" (include "streambudget.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
Labels of the es-setup hook's objects and pods: the common labels with
app.kubernetes.io/name <name>-es-setup and component es-setup. The name
differs so that the Deployment's selector (name, instance, team, which
cannot change after install) and the Service, PodDisruptionBudget and
NetworkPolicy that share it never select the hook's pod.
*/}}
{{- define "streambudget.esSetupLabels" -}}
{{- $labels := include "streambudget.labels" . | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/name" (printf "%s-es-setup" (include "streambudget.name" . | trunc 54 | trimSuffix "-")) }}
{{- $_ = set $labels "app.kubernetes.io/component" "es-setup" }}
{{- toYaml $labels }}
{{- end }}

{{/*
The Elasticsearch credentials as container env entries, from a values block
with existingSecret, usernameKey, passwordKey and apiKeyKey (elasticsearch
for the pods, esSetup for the hook). An API key replaces username and
password: a Secret holding only the key is enough. Nothing without
existingSecret. Call it with nindent at the env list's indentation.
*/}}
{{- define "streambudget.credentialsEnv" -}}
{{- if .existingSecret }}
{{- $keys := dict "ELASTICSEARCH_USERNAME" .usernameKey "ELASTICSEARCH_PASSWORD" .passwordKey }}
{{- if .apiKeyKey }}
{{- $keys = dict "ELASTICSEARCH_API_KEY" .apiKeyKey }}
{{- end }}
{{- range $env, $key := $keys }}
{{- if $key }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
