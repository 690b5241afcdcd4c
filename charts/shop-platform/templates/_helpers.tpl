{{/* Name of the ShopPlatform: nameOverride or the release name. */}}
{{- define "shop-platform.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}
